/*
 * test_gate_conf.c - the git gate's config.json (gate.h): a valid config
 * and its derived paths and defaults, then one refusal per rule, each a
 * config beside the field its error must name.  Every field that reaches
 * the ssh config or a shell line must be refused when it carries a byte
 * that would need quoting there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "gate.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static char dir[] = "/tmp/test_gate_conf.XXXXXX";

static int load(const char *json, struct gate_conf *c, char **err)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
    return gate_conf_load(path, "/srv/git", c, err);
}

#define REPO(name, url, host, port, key)                                                           \
    "{\"name\":\"" name "\",\"url\":\"" url "\",\"host\":\"" host "\",\"port\":" port              \
    ",\"host_key\":\"" key "\"}"
#define GOOD_REPO                                                                                  \
    REPO("proj", "ssh://git@forge.example:2222/org/proj.git", "forge.example", "2222",             \
         "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGmOE4TfoW+aTa92mInUSdkmoen45Xp7irnmygBqWaya")

static void test_valid(void **state)
{
    (void)state;
    struct gate_conf c;
    char *err = NULL;
    assert_int_equal(load("{\"proxy\":\"10.0.0.2:9099\",\"repos\":[" GOOD_REPO
                          "," REPO("other_1.x", "ssh://h/p", "h", "22", "") "]}",
                          &c, &err),
                     0);
    assert_null(err);
    assert_int_equal(c.n_repos, 2);
    assert_string_equal(c.proxy, "10.0.0.2:9099");
    assert_string_equal(c.dir, dir);
    assert_string_equal(c.root, "/srv/git");
    assert_string_equal(c.state, "/srv/git/.gate");
    assert_true(c.max_blob == GATE_MAX_BLOB && c.max_push == GATE_MAX_PUSH);
    const struct gate_repo *r = gate_conf_repo(&c, "proj", 4);
    assert_non_null(r);
    assert_int_equal(r->port, 2222);
    assert_string_equal(r->host, "forge.example");
    assert_null(gate_conf_repo(&c, "pro", 3));
    assert_string_equal(gate_conf_repo(&c, "other_1.x", 9)->host_key, "");
    gate_conf_release(&c);

    assert_int_equal(
        load("{\"proxy\":\"p:1\",\"repos\":[" REPO(
                 "v6", "ssh://git@[fd00::1]:22/p", "fd00::1", "22",
                 "") "," REPO("up", "ssh://git@Forge.Example/p", "forge.example", "22", "") "]}",
             &c, &err),
        0);
    gate_conf_release(&c);

    assert_int_equal(load("{\"proxy\":\"proxy:9099\",\"repos\":[],\"max_blob_bytes\":1000,"
                          "\"max_push_bytes\":5000}",
                          &c, &err),
                     0);
    assert_true(c.max_blob == 1000 && c.max_push == 5000 && c.n_repos == 0);
    gate_conf_release(&c);
}

struct bad {
    const char *json;
    const char *names; /* a fragment of the error */
};

static const struct bad bads[] = {
    {"[]", "not a JSON object"},
    {"{\"proxy\":\"p:1\",\"repos\":[],\"extra\":1}", "unknown key 'extra'"},
    {"{\"repos\":[]}", "'proxy'"},
    {"{\"proxy\":\"p\",\"repos\":[]}", "'proxy'"},
    {"{\"proxy\":\"p:0\",\"repos\":[]}", "'proxy'"},
    {"{\"proxy\":\"p;rm:1\",\"repos\":[]}", "'proxy'"},
    {"{\"proxy\":\"p:1\"}", "'repos'"},
    {"{\"proxy\":\"p:1\",\"repos\":[1]}", "repos[0] is not an object"},
    {"{\"proxy\":\"p:1\",\"repos\":[{\"name\":\"a\",\"bogus\":1}]}", "unknown key 'bogus'"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("../x", "ssh://h/p", "h", "22", "") "]}", ".name"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a b", "ssh://h/p", "h", "22", "") "]}", ".name"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("-x", "ssh://h/p", "h", "22", "") "]}", ".name"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a'b", "ssh://h/p", "h", "22", "") "]}", ".name"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a", "https://h/p", "h", "22", "") "]}", ".url"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a", "ssh://h/p q", "h", "22", "") "]}", ".url"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a", "ssh://h/p;x", "h", "22", "") "]}", ".url"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a", "ssh://h", "h", "22", "") "]}", ".url"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a", "ssh://h/p", "h$(x)", "22", "") "]}", ".host"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a", "ssh://h/p", "-oProxy", "22", "") "]}", ".host"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a", "ssh://h/p", "h", "0", "") "]}", ".port"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a", "ssh://h/p", "h", "65536", "") "]}", ".port"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a", "ssh://h/p", "h", "2.5", "") "]}", ".port"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a", "ssh://h/p", "h", "22", "ssh-ed25519") "]}",
     ".host_key"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a", "ssh://h/p", "h", "22", "ssh-ed25519 AA\\nBB") "]}",
     ".host_key"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a", "ssh://h/p", "h", "22",
                                           "ssh-ed25519 AAAA comment") "]}",
     ".host_key"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a", "ssh://h/p", "h", "22",
                                           "") "," REPO("a", "ssh://h/q", "h", "22", "") "]}",
     "repo 'a' given twice"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a", "ssh://h/p", "g", "22", "") "]}", "url's host"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a", "ssh://h:2222/p", "h", "22", "") "]}",
     "url's host"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a", "ssh://h/p", "h", "2222", "") "]}", "url's host"},
    {"{\"proxy\":\"p:1\",\"repos\":[" REPO("a", "ssh://u@h:x/p", "h", "22", "") "]}", "url's host"},
    {"{\"proxy\":\"p:1\",\"repos\":[],\"max_blob_bytes\":0}", "'max_blob_bytes'"},
    {"{\"proxy\":\"p:1\",\"repos\":[],\"max_push_bytes\":1.5}", "'max_push_bytes'"},
};

static void test_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(bads); i++) {
        struct gate_conf c;
        char *err = NULL;
        int r = load(bads[i].json, &c, &err);
        if (r != BD_E_INVAL || !err || !strstr(err, bads[i].names))
            fail_msg("case %zu (%s): got %d '%s', want an error naming '%s'", i, bads[i].json, r,
                     err ? err : "", bads[i].names);
        free(err);
    }
}

static void test_unreadable(void **state)
{
    (void)state;
    struct gate_conf c;
    char *err = NULL;
    assert_int_equal(gate_conf_load("/nonexistent/config.json", "/srv/git", &c, &err), BD_E_IO);
    assert_non_null(strstr(err, "/nonexistent/config.json"));
    free(err);
}

static void test_safe_path(void **state)
{
    (void)state;
    assert_true(gate_safe_path("/usr/local/bin/bottle-proxy"));
    assert_true(gate_safe_path("/tmp/x_1.2+3-4"));
    assert_false(gate_safe_path(""));
    assert_false(gate_safe_path("/tmp/a b"));
    assert_false(gate_safe_path("/tmp/a'b"));
    assert_false(gate_safe_path("/tmp/$HOME"));
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_unreadable),
        cmocka_unit_test(test_safe_path),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
