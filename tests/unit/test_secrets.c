/*
 * test_secrets.c - the secret store: file checks, parsing, bindings,
 * --secret-env, rotation, and that no diagnostic ever shows a value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "secrets.h"
#include "xalloc.h"

/* Distinctive values: no diagnostic may contain them or any 6-byte piece of them. */
#define V1 "v1-VALUEpart-9f8e7d=tail"
#define V2 "v2-OTHERpart-1a2b3c"

static char tmpdir[] = "/tmp/test_secrets.XXXXXX";
static int n_files;

static char *write_file(const char *content, mode_t mode)
{
    char *path = xasprintf("%s/secrets%d", tmpdir, ++n_files);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static void assert_no_value_piece(const struct diag_list *d, const char *value)
{
    size_t n = strlen(value);
    for (size_t i = 0; i < d->n; i++) {
        char *text = diag_format(&d->v[i]);
        for (size_t off = 0; off + 6 <= n; off++) {
            char piece[7];
            memcpy(piece, value + off, 6);
            piece[6] = '\0';
            if (strstr(text, piece))
                fail_msg("diagnostic shows part of a value ('%s'): %s", piece, text);
        }
        free(text);
    }
}

/* Loads content as a file with mode; returns the error and the store in *ret (NULL on error). */
static int load_text(const char *content, mode_t mode, struct diag_list *d,
                     struct secret_store **ret)
{
    char *path = write_file(content, mode);
    *ret = NULL;
    int rc = secret_store_load(path, 1, NULL, 0, d, ret);
    assert_no_value_piece(d, V1);
    assert_no_value_piece(d, V2);
    unlink(path);
    free(path);
    return rc;
}

static int has_diag(const struct diag_list *d, const char *fragment)
{
    for (size_t i = 0; i < d->n; i++)
        if (strstr(d->v[i].msg, fragment))
            return 1;
    return 0;
}

static void test_modes(void **state)
{
    (void)state;
    const char *text = "TOKEN@api.example.com=" V1 "\n";
    static const mode_t ok_modes[] = {0600, 0400};
    for (size_t i = 0; i < 2; i++) {
        struct diag_list d;
        diag_list_init(&d);
        struct secret_store *s;
        assert_int_equal(load_text(text, ok_modes[i], &d, &s), 0);
        assert_int_equal(s->n, 1);
        assert_int_equal(d.n, 0);
        secret_store_free(s);
        diag_list_release(&d);
    }
    static const mode_t bad_modes[] = {0644, 0640, 0700, 0604, 04600};
    for (size_t i = 0; i < sizeof(bad_modes) / sizeof(*bad_modes); i++) {
        struct diag_list d;
        diag_list_init(&d);
        struct secret_store *s;
        assert_int_equal(load_text(text, bad_modes[i], &d, &s), BD_E_INVAL);
        assert_null(s);
        assert_true(has_diag(&d, "must be 0600 or 0400"));
        diag_list_release(&d);
    }
}

static void test_symlink_and_type(void **state)
{
    (void)state;
    char *target = write_file("TOKEN@api.example.com=" V1 "\n", 0600);
    char *link = xasprintf("%s/link", tmpdir);
    assert_int_equal(symlink(target, link), 0);
    struct diag_list d;
    diag_list_init(&d);
    struct secret_store *s = NULL;
    assert_int_equal(secret_store_load(link, 1, NULL, 0, &d, &s), BD_E_INVAL);
    assert_null(s);
    assert_true(has_diag(&d, "symbolic link"));
    diag_list_release(&d);

    diag_list_init(&d);
    assert_int_equal(secret_store_load(tmpdir, 1, NULL, 0, &d, &s), BD_E_INVAL);
    assert_true(has_diag(&d, "not a regular file"));
    diag_list_release(&d);
    unlink(link);
    unlink(target);
    free(link);
    free(target);
}

static void test_other_owner(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip(); /* only root can give a file away */
    char *path = write_file("TOKEN@api.example.com=" V1 "\n", 0600);
    assert_int_equal(chown(path, 4242, 4242), 0);
    struct diag_list d;
    diag_list_init(&d);
    struct secret_store *s = NULL;
    assert_int_equal(secret_store_load(path, 1, NULL, 0, &d, &s), BD_E_INVAL);
    assert_true(has_diag(&d, "owned by uid 4242"));
    diag_list_release(&d);
    unlink(path);
    free(path);
}

static void test_absent(void **state)
{
    (void)state;
    char *path = xasprintf("%s/nonexistent", tmpdir);
    struct diag_list d;
    diag_list_init(&d);
    struct secret_store *s = NULL;
    assert_int_equal(secret_store_load(path, 0, NULL, 0, &d, &s), 0);
    assert_int_equal(s->n, 0); /* the default file may be absent */
    secret_store_free(s);
    s = NULL;
    assert_int_equal(secret_store_load(path, 1, NULL, 0, &d, &s), BD_E_NOTFOUND);
    assert_null(s);
    diag_list_release(&d);
    free(path);
}

static void test_parse(void **state)
{
    (void)state;
    struct diag_list d;
    diag_list_init(&d);
    struct secret_store *s;
    assert_int_equal(load_text("# a comment\n"
                               "\n"
                               "   \t\n"
                               "  # indented comment\n"
                               "A_1@Example.COM=" V1 "\r\n"
                               "B @ x.example.org , *.b.example.net = " V2 "\n"
                               "C@h.example.com=x@y=z\n",
                               0600, &d, &s),
                     BD_E_PARSE); /* B's value starts with a space */
    assert_int_equal(d.n, 1);
    assert_int_equal(d.v[0].line, 6);
    assert_true(has_diag(&d, "the value of secret 'B'"));
    diag_list_release(&d);

    diag_list_init(&d);
    assert_int_equal(load_text("# a comment\n"
                               "A_1@Example.COM=" V1 "\r\n"
                               "B @ x.example.org , *.b.example.net =" V2 "\n"
                               "C@h.example.com=x@y=z", /* no final newline */
                               0600, &d, &s),
                     0);
    assert_int_equal(d.n, 0);
    assert_int_equal(s->n, 3);
    assert_string_equal(s->v[0].name, "A_1");
    assert_string_equal(s->v[0].value, V1); /* '=' kept, CR dropped */
    assert_int_equal(s->v[0].n_hosts, 1);
    assert_string_equal(s->v[0].hosts[0], "example.com");
    assert_string_equal(s->v[1].name, "B");
    assert_string_equal(s->v[1].value, V2);
    assert_int_equal(s->v[1].n_hosts, 2);
    assert_string_equal(s->v[1].hosts[0], "*.b.example.net"); /* sorted */
    assert_string_equal(s->v[1].hosts[1], "x.example.org");
    assert_string_equal(s->v[2].value, "x@y=z");
    secret_store_free(s);
    diag_list_release(&d);
}

static void test_parse_errors(void **state)
{
    (void)state;
    struct diag_list d;
    diag_list_init(&d);
    struct secret_store *s;
    int rc = load_text("lower@api.example.com=" V1 "\n" /* 1 bad name */
                       "9X@api.example.com=" V1 "\n"    /* 2 bad name */
                       "NOBIND=" V1 "\n"                /* 3 no binding */
                       "EMPTY@=" V1 "\n"                /* 4 empty binding */
                       "BADHOST@exa mple.com=" V1 "\n"  /* 5 bad host */
                       "IP@10.0.0.1=" V1 "\n"           /* 6 IP literal */
                       "STAR@*,a.example.com=" V1 "\n"  /* 7 '*' not alone */
                       V2 "\n"                          /* 8 no = */
                       "NOVALUE@a.example.com=\n"       /* 9 empty value */
                       "CTRL@a.example.com="
                       "ab\001" V1 "\n"                   /* 10 control char */
                       "DUP@a.example.com=" V1 "\n"       /* 11 */
                       "DUP@b.example.com=" V2 "\n"       /* 12 duplicate */
                       "sk-" V1 "@a.example.com=" V2 "\n" /* 13 a value as name */
                       "TRAIL@a.example.com=" V1 " \n"    /* 14 trailing space */
                       "WILD@*.com=" V1 "\n",             /* 15 too-short wildcard */
                       0600, &d, &s);
    assert_int_equal(rc, BD_E_PARSE);
    assert_null(s);
    int lines[16] = {0};
    for (size_t i = 0; i < d.n; i++) {
        assert_int_equal(d.v[i].level, DIAG_ERROR);
        assert_in_range(d.v[i].line, 1, 15);
        lines[d.v[i].line]++;
    }
    for (int l = 1; l <= 15; l++)
        if (l != 11 && !lines[l])
            fail_msg("no diagnostic on line %d", l);
    assert_int_equal(lines[11], 0);
    assert_true(has_diag(&d, "invalid secret name (not shown)"));
    assert_true(has_diag(&d, "secret 'NOBIND' has no host binding"));
    assert_true(has_diag(&d, "secret 'EMPTY': empty entry in host binding"));
    assert_true(has_diag(&d, "secret 'BADHOST': invalid host 'exa mple.com'"));
    assert_true(has_diag(&d, "secret 'IP': invalid host '10.0.0.1'"));
    assert_true(has_diag(&d, "'*' (any host) must be the only entry"));
    assert_true(has_diag(&d, "expected NAME@HOST[,HOST...]=VALUE (line not shown)"));
    assert_true(has_diag(&d, "the value of secret 'NOVALUE'"));
    assert_true(has_diag(&d, "the value of secret 'CTRL'"));
    assert_true(has_diag(&d, "the value of secret 'TRAIL'"));
    assert_true(has_diag(&d, "secret 'DUP' is defined twice (first at "));
    diag_list_release(&d);
}

static void test_bindings(void **state)
{
    (void)state;
    struct diag_list d;
    diag_list_init(&d);
    struct secret_store *s;
    assert_int_equal(load_text("EXACT@api.example.com=" V1 "\n"
                               "WILD@*.example.org=" V1 "\n"
                               "ANY@*=" V2 "\n",
                               0600, &d, &s),
                     0);
    /* '*' is a logged opt-out: a warning naming the secret. */
    assert_int_equal(d.n, 1);
    assert_int_equal(d.v[0].level, DIAG_WARNING);
    assert_int_equal(d.v[0].line, 3);
    assert_true(has_diag(&d, "secret 'ANY' is bound to any host"));

    const struct secret *sec = NULL;
    assert_int_equal(secret_store_lookup(s, "EXACT", "api.example.com", &sec), 0);
    assert_string_equal(sec->name, "EXACT");
    struct {
        const char *name, *host;
        int want;
    } cases[] = {
        {"EXACT", "example.com", BD_E_INVAL},
        {"EXACT", "x.api.example.com", BD_E_INVAL},
        {"EXACT", "*.example.com", BD_E_INVAL},
        {"WILD", "a.example.org", 0},
        {"WILD", "a.b.example.org", 0},
        {"WILD", "example.org", BD_E_INVAL},
        {"WILD", "*.example.org", 0},            /* a wildcard route: the same wildcard */
        {"WILD", "*.a.example.org", BD_E_INVAL}, /* not a narrower one */
        {"ANY", "anything.example.net", 0},
        {"ANY", "*.example.net", 0},
        {"MISSING", "api.example.com", BD_E_NOTFOUND},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        sec = NULL;
        int rc = secret_store_lookup(s, cases[i].name, cases[i].host, &sec);
        if (rc != cases[i].want)
            fail_msg("%s for %s: got %d, want %d", cases[i].name, cases[i].host, rc, cases[i].want);
        if (rc) {
            assert_null(sec); /* untouched */
            char *msg = secret_lookup_message(s, rc, cases[i].name, cases[i].host);
            assert_non_null(strstr(msg, cases[i].name));
            assert_non_null(strstr(msg, cases[i].host));
            assert_null(strstr(msg, "VALUEpart"));
            assert_null(strstr(msg, "OTHERpart"));
            if (rc == BD_E_NOTFOUND)
                assert_non_null(strstr(msg, "is not in the secret store"));
            else
                assert_non_null(strstr(msg, "may not be used for host"));
            free(msg);
        }
    }
    secret_store_free(s);
    diag_list_release(&d);
}

static void test_secret_env(void **state)
{
    (void)state;
    setenv("T_ENV_TOKEN", V1, 1);
    setenv("T_ENV_BAD", " " V2, 1);
    unsetenv("T_ENV_MISSING");
    char *path = write_file("FILE_TOKEN@a.example.com=" V2 "\n", 0600);
    struct diag_list d;
    diag_list_init(&d);
    struct secret_store *s = NULL;
    const char *ok[] = {"T_ENV_TOKEN@api.example.com,*.example.org"};
    assert_int_equal(secret_store_load(path, 1, ok, 1, &d, &s), 0);
    assert_int_equal(s->n, 2);
    const struct secret *sec = NULL;
    assert_int_equal(secret_store_lookup(s, "T_ENV_TOKEN", "x.example.org", &sec), 0);
    assert_string_equal(sec->value, V1);
    assert_string_equal(sec->origin, "--secret-env");
    secret_store_free(s);
    s = NULL;

    const char *with_value = "T_ENV_TOKEN@a.example.com=" V2;
    const char *bad[] = {"T_ENV_MISSING@a.example.com", "T_ENV_BAD@a.example.com", "T_ENV_TOKEN",
                         with_value, "FILE_TOKEN@b.example.com"};
    setenv("FILE_TOKEN", V1, 1);
    assert_int_equal(secret_store_load(path, 1, bad, 5, &d, &s), BD_E_PARSE);
    assert_null(s);
    assert_true(has_diag(&d, "environment variable 'T_ENV_MISSING' is not set"));
    assert_true(has_diag(&d, "the value of environment variable 'T_ENV_BAD'"));
    assert_true(has_diag(&d, "secret 'T_ENV_TOKEN' has no host binding"));
    assert_true(has_diag(&d, "never from the command line"));
    assert_true(has_diag(&d, "secret 'FILE_TOKEN' is defined twice"));
    assert_no_value_piece(&d, V1);
    assert_no_value_piece(&d, V2);
    diag_list_release(&d);
    unlink(path);
    free(path);
}

static void test_rotation(void **state)
{
    (void)state;
    char *path = write_file("TOKEN@api.example.com=" V1 "\n", 0600);
    struct diag_list d;
    diag_list_init(&d);
    struct secret_store *s = NULL;
    const struct secret *sec = NULL;
    assert_int_equal(secret_store_load(path, 1, NULL, 0, &d, &s), 0);
    assert_int_equal(secret_store_lookup(s, "TOKEN", "api.example.com", &sec), 0);
    assert_string_equal(sec->value, V1);
    secret_store_free(s);

    FILE *f = fopen(path, "w"); /* rotate in place */
    assert_non_null(f);
    fputs("TOKEN@api.example.com=" V2 "\n", f);
    fclose(f);
    s = NULL;
    assert_int_equal(secret_store_load(path, 1, NULL, 0, &d, &s), 0);
    assert_int_equal(secret_store_lookup(s, "TOKEN", "api.example.com", &sec), 0);
    assert_string_equal(sec->value, V2);
    secret_store_free(s);
    diag_list_release(&d);
    unlink(path);
    free(path);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(secret_name_ok("A", 1));
    assert_true(secret_name_ok("_A9_", 4));
    assert_false(secret_name_ok("", 0));
    assert_false(secret_name_ok("9A", 2));
    assert_false(secret_name_ok("a", 1));
    assert_false(secret_name_ok("A-B", 3));
    char *long_name = xmalloc(SECRET_NAME_MAX + 2);
    memset(long_name, 'A', SECRET_NAME_MAX + 1);
    long_name[SECRET_NAME_MAX + 1] = '\0';
    assert_true(secret_name_ok(long_name, SECRET_NAME_MAX));
    assert_false(secret_name_ok(long_name, SECRET_NAME_MAX + 1));
    free(long_name);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes),       cmocka_unit_test(test_symlink_and_type),
        cmocka_unit_test(test_other_owner), cmocka_unit_test(test_absent),
        cmocka_unit_test(test_parse),       cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_bindings),    cmocka_unit_test(test_secret_env),
        cmocka_unit_test(test_rotation),    cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
