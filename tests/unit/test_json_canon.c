/*
 * test_json_canon.c - canonical JSON: key order, escaping, numbers, pretty
 * form, and that equal values give equal bytes (and so equal hashes).
 */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "hash.h"
#include "json_canon.h"
#include "xalloc.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Parses text (which must be valid JSON) and prints it canonically. */
static char *canon(const char *text, int pretty)
{
    cJSON *v = cJSON_Parse(text);
    if (!v)
        fail_msg("test input is not JSON: %s", text);
    char *out = json_canon_print(v, pretty);
    cJSON_Delete(v);
    return out;
}

struct canon_case {
    const char *in, *want;
};

static const struct canon_case compact_cases[] = {
    {"{\"b\": 1, \"a\": [true, false, null], \"c\": {\"z\": \"x\", \"y\": 2.5}}",
     "{\"a\":[true,false,null],\"b\":1,\"c\":{\"y\":2.5,\"z\":\"x\"}}"},
    /* bytewise order: 'B' < '_' < 'a' < 'aa' < 'b' < UTF-8 'é', prefix first */
    {"{\"é\":0,\"b\":0,\"aa\":0,\"a\":0,\"_\":0,\"B\":0,\"ab\":0,\"abc\":0}",
     "{\"B\":0,\"_\":0,\"a\":0,\"aa\":0,\"ab\":0,\"abc\":0,\"b\":0,\"é\":0}"},
    {"[]", "[]"},
    {"{}", "{}"},
    {"[[], {}, [[]], {\"a\": {}}]", "[[],{},[[]],{\"a\":{}}]"},
    {"\"plain\"", "\"plain\""},
    {"null", "null"},
    /* numbers */
    {"[2147483648, -0, 0, -3, 1e15, 1.5, 0.1, 1e300, -2.5e-7]",
     "[2147483648,0,0,-3,1000000000000000,1.5,0.10000000000000001,1.0000000000000001e+300,-2."
     "4999999999999999e-07]"},
    {"[9007199254740992, -9007199254740992, 9007199254740994, 18446744073709551616]",
     "[9007199254740992,-9007199254740992,9007199254740994,1.8446744073709552e+19]"},
    /* escaping: only '"', '\\' and controls; '/' and non-ASCII pass through */
    {"\"q\\\" b\\\\ n\\n r\\r t\\t b\\b f\\f 1\\u0001 1f\\u001f del\\u007f /\\/ \\u00e9 é\"",
     "\"q\\\" b\\\\ n\\n r\\r t\\t b\\b f\\f 1\\u0001 1f\\u001f del\x7f // é é\""},
    {"{\"k\\ney\": \"v\"}", "{\"k\\ney\":\"v\"}"},
};

static void test_compact(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(compact_cases); i++) {
        char *out = canon(compact_cases[i].in, 0);
        assert_string_equal(out, compact_cases[i].want);
        free(out);
    }
}

static void test_equal_values_equal_bytes(void **state)
{
    (void)state;
    char *a = canon("{\"x\": [1, {\"q\": 1, \"p\": 2}], \"w\": \"s\", \"v\": 1.0}", 0);
    char *b = canon("{ \"v\" : 1, \"x\" : [ 1.0e0, {\"p\":2,\"q\":1} ], \"w\":\"s\" }", 0);
    char ha[SHA256_HEX_LEN + 1], hb[SHA256_HEX_LEN + 1];

    assert_string_equal(a, b);
    sha256_hex(a, strlen(a), ha);
    sha256_hex(b, strlen(b), hb);
    assert_string_equal(ha, hb);
    free(a);
    free(b);
}

static void test_built_tree(void **state)
{
    (void)state;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", -0.0);
    cJSON_AddNumberToObject(o, "nan", NAN);
    cJSON_AddNumberToObject(o, "inf", INFINITY);
    cJSON_AddItemToObject(o, "s", cJSON_CreateStringReference("ref"));
    cJSON_AddStringToObject(o, "ctl", "a\x02z");
    /* Duplicate keys keep their relative order. */
    cJSON_AddNumberToObject(o, "d", 2);
    cJSON_AddNumberToObject(o, "d", 1);
    char *out = json_canon_print(o, 0);
    assert_string_equal(out, "{\"ctl\":\"a\\u0002z\",\"d\":2,\"d\":1,\"inf\":null,\"n\":0,"
                             "\"nan\":null,\"s\":\"ref\"}");
    free(out);
    cJSON_Delete(o);
}

static void test_pretty(void **state)
{
    (void)state;
    char *out =
        canon("{\"b\": [1, \"two\", [], {}], \"a\": {\"y\": null, \"x\": true}, \"c\": []}", 1);
    assert_string_equal(out, "{\n"
                             "  \"a\": {\n"
                             "    \"x\": true,\n"
                             "    \"y\": null\n"
                             "  },\n"
                             "  \"b\": [\n"
                             "    1,\n"
                             "    \"two\",\n"
                             "    [],\n"
                             "    {}\n"
                             "  ],\n"
                             "  \"c\": []\n"
                             "}\n");
    free(out);
    out = canon("{}", 1);
    assert_string_equal(out, "{}\n");
    free(out);
    out = canon("[]", 1);
    assert_string_equal(out, "[]\n");
    free(out);
    out = canon("42", 1);
    assert_string_equal(out, "42\n");
    free(out);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    enum { DEPTH = 900 }; /* under cJSON's own parse limit of 1000 */
    char *in = xmalloc(2 * DEPTH + 1);
    memset(in, '[', DEPTH);
    memset(in + DEPTH, ']', DEPTH);
    in[2 * DEPTH] = '\0';
    char *out = canon(in, 0);
    assert_string_equal(out, in);
    free(out);
    free(in);
}

/* A Raw node has no canonical form: printing one is a bug and aborts. */
static void test_raw_aborts(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cJSON *a = cJSON_CreateArray();
        cJSON_AddItemToArray(a, cJSON_CreateRaw("{\"x\":1}"));
        char *out = json_canon_print(a, 0);
        free(out);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compact),      cmocka_unit_test(test_equal_values_equal_bytes),
        cmocka_unit_test(test_built_tree),   cmocka_unit_test(test_pretty),
        cmocka_unit_test(test_deep_nesting), cmocka_unit_test(test_raw_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
