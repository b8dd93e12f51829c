/*
 * test_forge.c - the forge drivers' pure parts: Link headers, Retry-After
 * in its four forms, the retry decision, same-origin checks, repo paths
 * and default API roots, key-list JSON as each forge answers it, error
 * bodies, token scrubbing and forge_open()'s argument checks.  No network:
 * tests/forge/t0001-forge.sh drives the backends against a local forge.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "err.h"
#include "forge.h"
#include "forge_http.h"

#define S(lit) (lit), sizeof(lit) - 1

static void expect_next(const char *link, const char *want)
{
    char *url = NULL;
    int r = forge_parse_link_next(link, &url);
    if (!want) {
        assert_int_equal(r, BD_E_NOTFOUND);
        return;
    }
    assert_int_equal(r, 0);
    assert_string_equal(url, want);
    free(url);
}

static void test_link_next(void **state)
{
    (void)state;
    char *url = NULL;

    /* GitHub's documented form */
    expect_next("<https://api.github.com/repositories/1300192/issues?page=2>; rel=\"prev\", "
                "<https://api.github.com/repositories/1300192/issues?page=4>; rel=\"next\", "
                "<https://api.github.com/repositories/1300192/issues?page=515>; rel=\"last\", "
                "<https://api.github.com/repositories/1300192/issues?page=1>; rel=\"first\"",
                "https://api.github.com/repositories/1300192/issues?page=4");
    /* last page: no next */
    expect_next("<https://x/k?page=1>; rel=\"first\", <https://x/k?page=2>; rel=\"prev\"", NULL);
    expect_next("", NULL);
    /* a relation list, case-insensitive names, unquoted value, extra params */
    expect_next("<https://x/a>; REL=\"last next\"", "https://x/a");
    expect_next("<https://x/b>;rel=NEXT", "https://x/b");
    expect_next("<https://x/c>; title=\"a, b; c\"; rel=\"next\"", "https://x/c");
    /* a comma inside the URI, GitLab's several lines joined */
    expect_next("<https://x/d?a=1,2>; rel=\"prev\", <https://x/e?a=3,4>; rel=\"next\"",
                "https://x/e?a=3,4");
    /* "nextish" is not next */
    expect_next("<https://x/f>; rel=\"nextpage\"", NULL);

    assert_int_equal(forge_parse_link_next("https://x/g; rel=\"next\"", &url), BD_E_PARSE);
    assert_int_equal(forge_parse_link_next("<https://x/h; rel=\"next\"", &url), BD_E_PARSE);
    assert_int_equal(forge_parse_link_next("<https://x/i>; rel=\"next", &url), BD_E_PARSE);
    assert_int_equal(forge_parse_link_next("<https://x/j>; rel=\"next\" junk", &url), BD_E_PARSE);
    assert_int_equal(forge_parse_link_next("<>; rel=\"next\"", &url), BD_E_PARSE);
    assert_null(url);
}

static void test_retry_after(void **state)
{
    (void)state;
    /* Sun, 06 Nov 1994 08:49:37 GMT */
    const time_t t = 784111777;
    long s = -1;

    assert_int_equal(forge_parse_retry_after("120", t, &s), 0);
    assert_int_equal(s, 120);
    assert_int_equal(forge_parse_retry_after(" 1 ", t, &s), 0);
    assert_int_equal(s, 1);
    assert_int_equal(forge_parse_retry_after("0", t, &s), 0);
    assert_int_equal(s, 0);
    /* the three HTTP-date forms, 90 s ahead */
    assert_int_equal(forge_parse_retry_after("Sun, 06 Nov 1994 08:51:07 GMT", t, &s), 0);
    assert_int_equal(s, 90);
    assert_int_equal(forge_parse_retry_after("Sunday, 06-Nov-94 08:51:07 GMT", t, &s), 0);
    assert_int_equal(s, 90);
    assert_int_equal(forge_parse_retry_after("Sun Nov  6 08:51:07 1994", t, &s), 0);
    assert_int_equal(s, 90);
    /* a date in the past: now */
    assert_int_equal(forge_parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", t, &s), 0);
    assert_int_equal(s, 0);
    /* across a month and a year */
    assert_int_equal(forge_parse_retry_after("Thu, 01 Jan 2026 00:00:10 GMT", 1767225600, &s), 0);
    assert_int_equal(s, 10);

    s = 7;
    assert_int_equal(forge_parse_retry_after("", t, &s), BD_E_PARSE);
    assert_int_equal(forge_parse_retry_after("-1", t, &s), BD_E_PARSE);
    assert_int_equal(forge_parse_retry_after("1.5", t, &s), BD_E_PARSE);
    assert_int_equal(forge_parse_retry_after("soon", t, &s), BD_E_PARSE);
    assert_int_equal(forge_parse_retry_after("1234567890123", t, &s), BD_E_PARSE);
    assert_int_equal(forge_parse_retry_after("Sun, 06 Nov 1994 08:51:07 UTC", t, &s), BD_E_PARSE);
    assert_int_equal(forge_parse_retry_after("Sun, 6 Nov 1994 08:51:07 GMT", t, &s), BD_E_PARSE);
    assert_int_equal(forge_parse_retry_after("Sun, 06 Foo 1994 08:51:07 GMT", t, &s), BD_E_PARSE);
    assert_int_equal(forge_parse_retry_after("Sun, 06 Nov 1994 25:51:07 GMT", t, &s), BD_E_PARSE);
    assert_int_equal(forge_parse_retry_after(NULL, t, &s), BD_E_PARSE);
    assert_int_equal(s, 7);
}

static void test_retry_wait(void **state)
{
    (void)state;
    const time_t now = 1700000000;
    long ms = -1;
    struct forge_rl none = {0};
    struct forge_rl ra1 = {.retry_after = "1"};
    struct forge_rl gh_exhausted = {.remaining = "0", .reset = "1700000005"};
    struct forge_rl gh_past = {.remaining = "0", .reset = "1699999990"};
    struct forge_rl gh_left = {.remaining = "42", .reset = "1700000005"};
    struct forge_rl date = {.retry_after = "Tue, 14 Nov 2023 22:13:40 GMT"};

    assert_int_equal(forge_retry_wait(429, &ra1, now, 0, 1000, &ms), 1);
    assert_int_equal(ms, 1000);
    assert_int_equal(forge_retry_wait(429, &date, now, 0, 1000, &ms), 1);
    assert_int_equal(ms, 20000);
    /* no hint: backoff, doubled per attempt */
    assert_int_equal(forge_retry_wait(503, &none, now, 0, 100, &ms), 1);
    assert_int_equal(ms, 100);
    assert_int_equal(forge_retry_wait(502, &none, now, 2, 100, &ms), 1);
    assert_int_equal(ms, 400);
    assert_int_equal(forge_retry_wait(500, &none, now, 1, 100, &ms), 1);
    assert_int_equal(forge_retry_wait(504, &none, now, 1, 100, &ms), 1);
    /* GitHub's primary limit: 403 + remaining 0, wait for the reset */
    assert_int_equal(forge_retry_wait(403, &gh_exhausted, now, 0, 1000, &ms), 1);
    assert_int_equal(ms, 5000);
    assert_int_equal(forge_retry_wait(429, &gh_exhausted, now, 0, 1000, &ms), 1);
    assert_int_equal(ms, 5000);
    /* a reset already past (clock skew): a second */
    assert_int_equal(forge_retry_wait(403, &gh_past, now, 0, 1000, &ms), 1);
    assert_int_equal(ms, 1000);
    /* the secondary limit: 403 + Retry-After */
    assert_int_equal(forge_retry_wait(403, &ra1, now, 0, 1000, &ms), 1);
    assert_int_equal(ms, 1000);
    /* Retry-After wins over the reset */
    struct forge_rl both = {.retry_after = "2", .remaining = "0", .reset = "1700000009"};
    assert_int_equal(forge_retry_wait(429, &both, now, 0, 1000, &ms), 1);
    assert_int_equal(ms, 2000);

    ms = -1;
    assert_int_equal(forge_retry_wait(403, &none, now, 0, 1000, &ms), 0);
    assert_int_equal(forge_retry_wait(403, &gh_left, now, 0, 1000, &ms), 0);
    assert_int_equal(forge_retry_wait(401, &ra1, now, 0, 1000, &ms), 0);
    assert_int_equal(forge_retry_wait(404, &none, now, 0, 1000, &ms), 0);
    assert_int_equal(forge_retry_wait(422, &none, now, 0, 1000, &ms), 0);
    assert_int_equal(forge_retry_wait(501, &none, now, 0, 1000, &ms), 0);
    assert_int_equal(forge_retry_wait(200, &gh_exhausted, now, 0, 1000, &ms), 0);
    assert_int_equal(ms, -1);

    assert_true(forge_rl_exhausted(&gh_exhausted));
    assert_false(forge_rl_exhausted(&gh_left));
    assert_false(forge_rl_exhausted(&none));
}

static void test_same_origin(void **state)
{
    (void)state;
    assert_true(forge_same_origin("https://api.github.com", "https://api.github.com/x?page=2"));
    assert_true(forge_same_origin("https://h:8443/api/v1", "https://h:8443/other"));
    assert_true(forge_same_origin("https://h/api/v4", "https://h:443/api/v4/x"));
    assert_true(forge_same_origin("https://H.example/api", "https://h.EXAMPLE/x"));
    assert_false(forge_same_origin("https://h:8443/api", "https://h:8444/api"));
    assert_false(forge_same_origin("https://h/api", "http://h/api"));
    assert_false(forge_same_origin("https://h/api", "https://evil.example/api"));
    assert_false(forge_same_origin("https://h/api", "https://h.evil.example/api"));
    assert_false(forge_same_origin("https://h/api", "https://user:pw@h/api"));
    assert_false(forge_same_origin("https://h/api", "/relative"));
}

static void expect_repo(const char *url, const char *want)
{
    char *p = NULL;
    int r = forge_repo_path(url, &p);
    if (!want) {
        assert_int_equal(r, BD_E_INVAL);
        assert_null(p);
        return;
    }
    assert_int_equal(r, 0);
    assert_string_equal(p, want);
    free(p);
}

static void test_repo_path(void **state)
{
    (void)state;
    expect_repo("ssh://git@gitea.example.com:30009/team/tools.git", "team/tools");
    expect_repo("ssh://git@github.com/octo/hello-world", "octo/hello-world");
    expect_repo("ssh://git@h/team/tools/", "team/tools");
    expect_repo("ssh://git@gitlab.example.com/grp/sub/deeper/proj.git", "grp/sub/deeper/proj");
    expect_repo("ssh://git@h/a.b/c_d-e.git", "a.b/c_d-e");
    expect_repo("ssh://git@h/team/tools.git.git", "team/tools.git");

    expect_repo("git@github.com:octo/hello.git", NULL);
    expect_repo("https://github.com/octo/hello.git", NULL);
    expect_repo("ssh://git@h/tools.git", NULL);
    expect_repo("ssh://git@h", NULL);
    expect_repo("ssh://git@h/", NULL);
    expect_repo("ssh://git@h//team/tools", NULL);
    expect_repo("ssh://git@h/team//tools", NULL);
    expect_repo("ssh://git@h/team/../tools", NULL);
    expect_repo("ssh://git@h/team/./tools", NULL);
    expect_repo("ssh://git@h/team/to%2Fols", NULL);
    expect_repo("ssh://git@h/team/tools?x", NULL);
    expect_repo("ssh://git@h/team/to ols", NULL);
    expect_repo(NULL, NULL);
}

static void test_api_roots(void **state)
{
    (void)state;
    char *s = NULL;

    assert_int_equal(forge_default_api_root("gitea", "gitea.example.com", &s), 0);
    assert_string_equal(s, "https://gitea.example.com/api/v1");
    free(s);
    assert_int_equal(forge_default_api_root("forgejo", "codeberg.org", &s), 0);
    assert_string_equal(s, "https://codeberg.org/api/v1");
    free(s);
    assert_int_equal(forge_default_api_root("github", "github.com", &s), 0);
    assert_string_equal(s, "https://api.github.com");
    free(s);
    assert_int_equal(forge_default_api_root("gitlab", "gitlab.example.com", &s), 0);
    assert_string_equal(s, "https://gitlab.example.com/api/v4");
    free(s);
    s = NULL;
    assert_int_equal(forge_default_api_root("bitbucket", "b.org", &s), BD_E_INVAL);
    assert_int_equal(forge_default_api_root("gitea", "", &s), BD_E_INVAL);
    assert_int_equal(forge_default_api_root("gitlab", NULL, &s), BD_E_INVAL);
    assert_int_equal(forge_default_api_root("gitea", "h/x", &s), BD_E_INVAL);
    assert_null(s);

    assert_int_equal(forge_api_root_host("https://Gitea.Example.com:8443/api/v1", &s), 0);
    assert_string_equal(s, "gitea.example.com");
    free(s);
    assert_int_equal(forge_api_root_host("https://api.github.com", &s), 0);
    assert_string_equal(s, "api.github.com");
    free(s);
    s = NULL;
    assert_int_equal(forge_api_root_host("https://127.0.0.1/api", &s), BD_E_INVAL);
    assert_int_equal(forge_api_root_host("not a url", &s), BD_E_INVAL);
    assert_null(s);

    assert_ptr_equal(forge_ops_lookup("gitea"), &forge_gitea_ops);
    assert_ptr_equal(forge_ops_lookup("forgejo"), &forge_gitea_ops);
    assert_ptr_equal(forge_ops_lookup("github"), &forge_github_ops);
    assert_ptr_equal(forge_ops_lookup("gitlab"), &forge_gitlab_ops);
    assert_null(forge_ops_lookup("static"));
    assert_null(forge_ops_lookup(NULL));
}

/* Gitea 1.2x GET /repos/{o}/{r}/keys, shortened */
static const char gitea_keys[] =
    "[{\"id\":7,\"key_id\":0,\"key\":\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1 x\",\"url\":"
    "\"https://g/api/v1/repos/team/tools/keys/7\",\"title\":\"bottled:i:b:tools\","
    "\"fingerprint\":\"SHA256:abc\",\"created_at\":\"2026-01-01T00:00:00Z\",\"read_only\":false},"
    "{\"id\":9,\"key\":\"ssh-rsa AAAAB3 y\",\"title\":\"ci\",\"fingerprint\":\"SHA256:def\","
    "\"read_only\":true}]";

/* GitHub GET /repos/{o}/{r}/keys: no fingerprint */
static const char github_keys[] =
    "[{\"id\":1234,\"key\":\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2\",\"url\":"
    "\"https://api.github.com/repos/octo/hello/keys/1234\",\"title\":\"bottled:i:b:hello\","
    "\"verified\":true,\"created_at\":\"2014-12-10T15:53:42Z\",\"read_only\":false,"
    "\"added_by\":\"octocat\",\"last_used\":null,\"enabled\":true}]";

/* GitLab GET /projects/:id/deploy_keys */
static const char gitlab_keys[] =
    "[{\"id\":1,\"title\":\"Public key\",\"key\":\"ssh-rsa AAAAB3Nz\",\"fingerprint\":"
    "\"4a:9d:64:15:ed:3a:e6:07:6e:89:36:b3:3b:03:05:d9\",\"fingerprint_sha256\":"
    "\"SHA256:Jrs3LD1Ji30xNLtTVf9NDCj7kkBgPBb2pjvTZ3HfIgU\",\"created_at\":"
    "\"2013-10-02T10:12:29Z\",\"expires_at\":null,\"can_push\":false},"
    "{\"id\":3,\"title\":\"bottled:i:b:proj\",\"key\":\"ssh-ed25519 AAAAC3\",\"fingerprint\":"
    "\"aa:bb\",\"created_at\":\"2013-10-02T11:12:29Z\",\"can_push\":true}]";

static void test_key_json(void **state)
{
    (void)state;
    struct forge_key_list l = {0};
    struct forge_key k;

    assert_int_equal(forge_parse_key_list(S(gitea_keys), false, &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.v[0].id, 7);
    assert_string_equal(l.v[0].title, "bottled:i:b:tools");
    assert_string_equal(l.v[0].key, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1 x");
    assert_string_equal(l.v[0].fingerprint, "SHA256:abc");
    assert_false(l.v[0].read_only);
    assert_true(l.v[1].read_only);

    /* pages append */
    assert_int_equal(forge_parse_key_list(S(github_keys), false, &l), 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.v[2].id, 1234);
    assert_null(l.v[2].fingerprint);
    assert_false(l.v[2].read_only);
    assert_string_equal(l.v[0].title, "bottled:i:b:tools");
    forge_key_list_release(&l);
    assert_int_equal(l.n, 0);

    assert_int_equal(forge_parse_key_list(S(gitlab_keys), true, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[0].fingerprint, "SHA256:Jrs3LD1Ji30xNLtTVf9NDCj7kkBgPBb2pjvTZ3HfIgU");
    assert_true(l.v[0].read_only);
    assert_string_equal(l.v[1].fingerprint, "aa:bb"); /* no sha256: the MD5 one */
    assert_false(l.v[1].read_only);
    forge_key_list_release(&l);

    /* empty page */
    assert_int_equal(forge_parse_key_list(S("[]"), false, &l), 0);
    assert_int_equal(l.n, 0);
    forge_key_list_release(&l);

    /* a key without read_only/can_push is not taken as writable */
    assert_int_equal(forge_parse_key(S("{\"id\":5,\"title\":\"t\"}"), false, &k), 0);
    assert_true(k.read_only);
    assert_null(k.key);
    forge_key_release(&k);
    assert_int_equal(forge_parse_key(S("{\"id\":5}"), true, &k), 0);
    assert_true(k.read_only);
    forge_key_release(&k);

    /* refused, list untouched */
    assert_int_equal(forge_parse_key_list(S(gitea_keys), false, &l), 0);
    assert_int_equal(forge_parse_key_list(S("{\"message\":\"x\"}"), false, &l), BD_E_PROTO);
    assert_int_equal(forge_parse_key_list(S("[{\"title\":\"no id\"}]"), false, &l), BD_E_PROTO);
    assert_int_equal(forge_parse_key_list(S("[{\"id\":1},{\"id\":\"2\"}]"), false, &l), BD_E_PROTO);
    assert_int_equal(forge_parse_key_list(S("[{\"id\":1.5}]"), false, &l), BD_E_PROTO);
    assert_int_equal(forge_parse_key_list(S("[{\"id\":0}]"), false, &l), BD_E_PROTO);
    assert_int_equal(forge_parse_key_list(S("[{\"id\":-3}]"), false, &l), BD_E_PROTO);
    assert_int_equal(forge_parse_key_list(S("[{\"id\":1e300}]"), false, &l), BD_E_PROTO);
    assert_int_equal(forge_parse_key_list(S("[1,2]"), false, &l), BD_E_PROTO);
    assert_int_equal(forge_parse_key_list(S("[{\"id\":1}"), false, &l), BD_E_PROTO);
    assert_int_equal(l.n, 2);
    forge_key_list_release(&l);
    assert_int_equal(forge_parse_key(S("[]"), false, &k), BD_E_PROTO);
}

static void test_key_cap(void **state)
{
    (void)state;
    struct forge_key_list l = {0};
    struct buf b;

    buf_init(&b, 0);
    buf_putc(&b, '[');
    for (int i = 1; i <= 101; i++)
        buf_appendf(&b, "%s{\"id\":%d,\"read_only\":false}", i > 1 ? "," : "", i);
    buf_putc(&b, ']');
    for (int page = 0; page < FORGE_MAX_KEYS / 101; page++)
        assert_int_equal(forge_parse_key_list(b.data, b.len, false, &l), 0);
    assert_int_equal(forge_parse_key_list(b.data, b.len, false, &l), BD_E_TOO_BIG);
    assert_int_equal(l.n, (FORGE_MAX_KEYS / 101) * 101);
    forge_key_list_release(&l);
    buf_release(&b);
}

static void expect_msg(const char *body, const char *want)
{
    char out[FORGE_MSG_MAX + 1];
    forge_error_message(body, strlen(body), out, sizeof(out));
    assert_string_equal(out, want);
}

static void test_error_message(void **state)
{
    (void)state;
    char small[8];

    expect_msg("{\"message\":\"Validation Failed\",\"errors\":[{\"resource\":\"PublicKey\","
               "\"code\":\"custom\",\"field\":\"key\",\"message\":\"key is already in use\"}],"
               "\"documentation_url\":\"https://docs.github.com/rest\"}",
               "Validation Failed: key is already in use");
    expect_msg("{\"message\":\"Validation Failed\",\"errors\":[{\"resource\":\"PublicKey\","
               "\"code\":\"missing_field\",\"field\":\"key\"}]}",
               "Validation Failed: missing_field");
    expect_msg("{\"message\":\"This key has already been added to this repository\",\"url\":"
               "\"https://g/api/swagger\"}",
               "This key has already been added to this repository");
    expect_msg("{\"message\":{\"deploy_key.key\":[\"is invalid\",\"is too short\"],"
               "\"deploy_key.fingerprint_sha256\":[\"has already been taken\"]}}",
               "deploy_key.key is invalid, is too short; deploy_key.fingerprint_sha256 has "
               "already been taken");
    expect_msg("{\"message\":\"404 Project Not Found\"}", "404 Project Not Found");
    expect_msg("{\"error\":\"invalid_token\",\"error_description\":\"Token was revoked.\"}",
               "invalid_token: Token was revoked.");
    expect_msg("<html>Bad Gateway\n<body>", "<html>Bad Gateway");
    expect_msg("{\"message\":\"a\\nb\\u0007c\"}", "a?b?c");
    expect_msg("{\"other\":1}", "");
    expect_msg("", "");
    forge_error_message("{\"message\":\"long message\"}", 27, small, sizeof(small));
    assert_string_equal(small, "long me");
}

#define TOKEN "tok-VALUE-do-not-print-51c0ffee"

static void test_open_and_scrub(void **state)
{
    (void)state;
    struct forge *f = NULL;
    char err[256];

    assert_int_equal(
        forge_open("gitea", "https://g.example/api/v1/", TOKEN, NULL, &f, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_string_equal(f->api_root, "https://g.example/api/v1");
    assert_string_equal(forge_errmsg(f), "");
    assert_int_equal(forge_mutations(f), 0);

    /* every message is scrubbed, whole and cut */
    forge_set_errmsg(f, "echo: %s and again %s.", TOKEN, TOKEN);
    assert_string_equal(forge_errmsg(f), "echo: *** and again ***.");
    forge_set_errmsg(f, "cut: %.12s", TOKEN);
    assert_string_equal(forge_errmsg(f), "cut: ***");
    forge_set_errmsg(f, "short prefix %.4s is fine", TOKEN);
    assert_string_equal(forge_errmsg(f), "short prefix tok- is fine");

    /* repo checks happen before any request */
    int64_t id = 0;
    assert_int_equal(forge_add_key(f, "tools", "t", "ssh-ed25519 AAAA", &id), BD_E_INVAL);
    assert_non_null(strstr(forge_errmsg(f), "gitea: add key to 'tools': a repository is"));
    assert_int_equal(forge_add_key(f, "a/b/c", "t", "ssh-ed25519 AAAA", &id), BD_E_INVAL);
    assert_int_equal(forge_add_key(f, "a/b", "", "ssh-ed25519 AAAA", &id), BD_E_INVAL);
    assert_int_equal(forge_delete_key(f, "a/b", 0), BD_E_INVAL);
    assert_int_equal(id, 0);
    assert_int_equal(forge_mutations(f), 0);
    forge_close(f);

    assert_int_equal(
        forge_open("gitlab", "https://gl.example/api/v4", TOKEN, NULL, &f, err, sizeof(err)), 0);
    struct forge_key_list l = {0};
    assert_int_equal(forge_list_keys(f, "solo", &l), BD_E_INVAL);
    assert_non_null(strstr(forge_errmsg(f), "group[/subgroup...]/project"));
    forge_close(f);

    f = NULL;
    assert_int_equal(
        forge_open("gitea", "http://g.example/api/v1", TOKEN, NULL, &f, err, sizeof(err)),
        BD_E_INVAL);
    assert_non_null(strstr(err, "not an https:// URL"));
    assert_int_equal(
        forge_open("gitea", "https://u:p@g.example/api/v1", TOKEN, NULL, &f, err, sizeof(err)),
        BD_E_INVAL);
    assert_int_equal(
        forge_open("gitea", "https://g.example/api/v1?x=1", TOKEN, NULL, &f, err, sizeof(err)),
        BD_E_INVAL);
    assert_int_equal(forge_open("gitea", "https:///api", TOKEN, NULL, &f, err, sizeof(err)),
                     BD_E_INVAL);
    assert_int_equal(forge_open("bitbucket", "https://b.org", TOKEN, NULL, &f, err, sizeof(err)),
                     BD_E_INVAL);
    assert_non_null(strstr(err, "unknown forge provider"));
    assert_int_equal(forge_open("gitea", "https://g.example", "short", NULL, &f, err, sizeof(err)),
                     BD_E_INVAL);
    assert_int_equal(
        forge_open("gitea", "https://g.example", "tok with space", NULL, &f, err, sizeof(err)),
        BD_E_INVAL);
    assert_null(strstr(err, "tok with space"));
    assert_int_equal(forge_open("gitea", "https://g.example", "token-with-crlf\r\nX: y", NULL, &f,
                                err, sizeof(err)),
                     BD_E_INVAL);
    assert_int_equal(forge_open("gitea", "https://g.example", NULL, NULL, &f, NULL, 0), BD_E_INVAL);
    assert_null(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_link_next),     cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_retry_wait),    cmocka_unit_test(test_same_origin),
        cmocka_unit_test(test_repo_path),     cmocka_unit_test(test_api_roots),
        cmocka_unit_test(test_key_json),      cmocka_unit_test(test_key_cap),
        cmocka_unit_test(test_error_message), cmocka_unit_test(test_open_and_scrub),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
