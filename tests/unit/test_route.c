/*
 * test_route.c - the compiled route table: host lookup (exact, wildcard,
 * apex, ports, IP literals, 853), every kind of matches rule, git fetch
 * and push, DNS-over-HTTPS refusals and the regex limits.  Configs are
 * built by hand; no loader involved.
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
#include "pathnorm.h"
#include "route.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int p443[] = {443};
static int p443_8443[] = {443, 8443};
static int p80_853[] = {80, 853, 443};

/* ---- host lookup ---------------------------------------------------- */

static struct pconf_route host_routes[] = {
    {.host = "example.com", .ports = p443, .n_ports = 1},
    {.host = "*.example.com", .ports = p443_8443, .n_ports = 2},
    {.host = "*.api.example.com", .ports = p443, .n_ports = 1},
    {.host = "exact.api.example.com", .ports = p80_853, .n_ports = 3},
    {.host = "*.b.example.org", .ports = p443, .n_ports = 1},
    {.host = "noports.example.net", .ports = NULL, .n_ports = 0},
};
static struct pconf host_conf = {.refs = 1, .bottle = "t", .routes = host_routes, .n_routes = 6};

struct lookup_case {
    const char *host;
    int port;
    int route; /* index into host_routes, -1: denied */
    const char *reason;
};

static const struct lookup_case lookups[] = {
    {"example.com", 443, 0, NULL},
    {"example.com", 8443, -1, "port not allowed for host"}, /* exact wins, no fallback */
    {"www.example.com", 443, 1, NULL},
    {"www.example.com", 8443, 1, NULL},
    {"www.example.com", 80, -1, "port not allowed for host"},
    {"a.b.c.example.com", 443, 1, NULL},
    {"api.example.com", 443, 1, NULL}, /* apex of *.api.example.com: not it */
    {"v1.api.example.com", 443, 2, NULL},
    {"x.v1.api.example.com", 443, 2, NULL}, /* longest suffix */
    {"v1.api.example.com", 8443, -1, "port not allowed for host"},
    {"exact.api.example.com", 80, 3, NULL}, /* exact beats the wildcard */
    {"exact.api.example.com", 8443, -1, "port not allowed for host"},
    {"exact.api.example.com", 853, -1, "DNS over TLS (port 853) is denied"},
    {"b.example.org", 443, -1, "no route for host"},
    {"a.b.example.org", 443, 4, NULL},
    {"example.org", 443, -1, "no route for host"},
    {"notexample.com", 443, -1, "no route for host"},
    {"example.com.evil.net", 443, -1, "no route for host"},
    {"com", 443, -1, "no route for host"},
    {".example.com", 443, -1, "no route for host"},
    {"", 443, -1, "no route for host"},
    {"noports.example.net", 443, 5, NULL},
    {"noports.example.net", 80, -1, "port not allowed for host"},
    {"127.0.0.1", 443, -1, "IP-literal destinations are denied"},
    {"10.0.0.1", 443, -1, "IP-literal destinations are denied"},
    {"::1", 443, -1, "IP-literal destinations are denied"},
    {"[::1]", 443, -1, "IP-literal destinations are denied"},
    {"2130706433", 443, -1, "IP-literal destinations are denied"},
    {"0x7f.1", 443, -1, "IP-literal destinations are denied"},
};

static void test_lookup(void **state)
{
    struct route_table *t = NULL;
    struct diag_list diags;

    (void)state;
    diag_list_init(&diags);
    assert_int_equal(route_table_build(&host_conf, &diags, &t), 0);
    assert_int_equal(diags.n, 0);
    for (size_t i = 0; i < N(lookups); i++) {
        const struct lookup_case *c = &lookups[i];
        const char *reason = NULL;
        const struct pconf_route *r = route_lookup(t, c->host, c->port, &reason);
        if (c->route < 0) {
            if (r)
                fail_msg("%s:%d: got route '%s', want denial", c->host, c->port, r->host);
            if (!reason || strcmp(reason, c->reason) != 0)
                fail_msg("%s:%d: reason '%s', want '%s'", c->host, c->port, reason, c->reason);
        } else if (r != &host_routes[c->route]) {
            fail_msg("%s:%d: got %s, want '%s'", c->host, c->port, r ? r->host : reason,
                     host_routes[c->route].host);
        }
    }
    assert_null(route_lookup(t, NULL, 443, NULL));
    route_table_free(t);
    diag_list_release(&diags);
}

static void test_duplicate_host(void **state)
{
    struct pconf_route rs[] = {
        {.host = "a.example.com", .ports = p443, .n_ports = 1},
        {.host = "*.example.com", .ports = p443, .n_ports = 1},
        {.host = "a.example.com", .ports = p443, .n_ports = 1},
        {.host = "*.example.com", .ports = p443, .n_ports = 1},
    };
    struct pconf c = {.refs = 1, .bottle = "t", .routes = rs, .n_routes = 4};
    struct route_table *t = (struct route_table *)0x1;
    struct diag_list diags;

    (void)state;
    diag_list_init(&diags);
    assert_int_equal(route_table_build(&c, &diags, &t), BD_E_PARSE);
    assert_ptr_equal(t, (struct route_table *)0x1);
    assert_int_equal(diags.n_errors, 2);
    diag_list_release(&diags);
}

/* ---- request matching ------------------------------------------------ */

static struct pconf_path api_paths[] = {
    {PCONF_PATH_PREFIX, "/api"}, {PCONF_PATH_PREFIX, "/v2/"}, {PCONF_PATH_EXACT, "/exact/x"}};
static struct pconf_path regex_paths[] = {{PCONF_PATH_REGEX, "/repos/[a-z]+/[a-z]+/issues"}};
static struct pconf_path root_paths[] = {{PCONF_PATH_PREFIX, "/"}};
static struct pconf_path npm_paths[] = {{PCONF_PATH_PREFIX, "/@types%2fnode"}};
static struct pconf_path unnorm_paths[] = {{PCONF_PATH_PREFIX, "/x/./y//%7ez"}};
static struct pconf_path evil_paths[] = {{PCONF_PATH_REGEX, "/(a+)+$"}};
static char *get_only[] = {"GET"};
static char *get_post[] = {"GET", "POST"};
static struct pconf_header h_exact[] = {{"x-api-version", "2", PCONF_HEADER_EXACT}};
static struct pconf_header h_regex[] = {{"x-client", "cli/[0-9]+\\.[0-9]+", PCONF_HEADER_REGEX},
                                        {"x-team", "blue", PCONF_HEADER_EXACT}};
static struct pconf_header h_evil[] = {{"x-evil", "(a|aa)+$", PCONF_HEADER_REGEX}};

static struct pconf_match m_api[] = {
    {api_paths, 3, get_post, 2, NULL, 0},
    {regex_paths, 1, get_only, 1, NULL, 0},
    {root_paths, 1, NULL, 0, h_exact, 1},
    {NULL, 0, NULL, 0, h_regex, 2},
};
static struct pconf_match m_npm[] = {{npm_paths, 1, get_only, 1, NULL, 0},
                                     {unnorm_paths, 1, NULL, 0, NULL, 0}};
static struct pconf_match m_evil_path[] = {{evil_paths, 1, NULL, 0, NULL, 0}};
static struct pconf_match m_evil_hdr[] = {{NULL, 0, NULL, 0, h_evil, 1},
                                          {root_paths, 1, NULL, 0, NULL, 0}};
static struct pconf_match m_methods_only[] = {{NULL, 0, get_only, 1, NULL, 0}};

static struct pconf_route req_routes[] = {
    {.host = "api.example.com", .ports = p443, .n_ports = 1, .matches = m_api, .n_matches = 4},
    {.host = "open.example.com", .ports = p443, .n_ports = 1},
    {.host = "git.example.com", .ports = p443, .n_ports = 1, .git_fetch = 1},
    {.host = "gitm.example.com",
     .ports = p443,
     .n_ports = 1,
     .git_fetch = 1,
     .matches = m_methods_only,
     .n_matches = 1},
    {.host = "registry.npmjs.org", .ports = p443, .n_ports = 1, .matches = m_npm, .n_matches = 2},
    {.host = "evil.example.com",
     .ports = p443,
     .n_ports = 1,
     .matches = m_evil_path,
     .n_matches = 1},
    {.host = "evilh.example.com",
     .ports = p443,
     .n_ports = 1,
     .matches = m_evil_hdr,
     .n_matches = 2},
    {.host = "all.example.com",
     .ports = p443,
     .n_ports = 1,
     .matches = m_methods_only,
     .n_matches = 1},
};
static struct pconf req_conf = {.refs = 1, .bottle = "t", .routes = req_routes, .n_routes = 8};

enum { API, OPEN, GIT, GITM, NPM, EVIL, EVILH, ALL };

struct req_case {
    int route;
    const char *method;
    const char *target;  /* raw, normalised by the test */
    const char *headers; /* "name: value\n"... */
    const char *content_type;
    int allow;
    const char *reason;
};

static const struct req_case reqs[] = {
    /* no matches: everything */
    {OPEN, "DELETE", "/anything/at/all?x=1", NULL, NULL, 1, "route has no matches"},
    /* prefix: whole segments */
    {API, "GET", "/api", NULL, NULL, 1, "matches"},
    {API, "GET", "/api/", NULL, NULL, 1, "matches"},
    {API, "POST", "/api/x/y", NULL, NULL, 1, "matches"},
    {API, "GET", "/apix", NULL, NULL, 0, "no matches entry allows the request"},
    {API, "GET", "/ap", NULL, NULL, 0, "no matches entry allows the request"},
    {API, "PUT", "/api/x", NULL, NULL, 0, "no matches entry allows the request"},
    {API, "get", "/api/x", NULL, NULL, 0, "no matches entry allows the request"},
    /* a prefix with a trailing slash: itself and below, not the bare name */
    {API, "GET", "/v2/", NULL, NULL, 1, "matches"},
    {API, "GET", "/v2/x", NULL, NULL, 1, "matches"},
    {API, "GET", "/v2", NULL, NULL, 0, "no matches entry allows the request"},
    {API, "GET", "/v2x", NULL, NULL, 0, "no matches entry allows the request"},
    /* normalisation happens before matching */
    {API, "GET", "/x/../api/y", NULL, NULL, 1, "matches"},
    {API, "GET", "/api/../admin", NULL, NULL, 0, "no matches entry allows the request"},
    {API, "GET", "//api//x", NULL, NULL, 1, "matches"},
    {API, "GET", "/%61pi", NULL, NULL, 1, "matches"},
    /* exact */
    {API, "GET", "/exact/x", NULL, NULL, 1, "matches"},
    {API, "GET", "/exact/x?q", NULL, NULL, 1, "matches"},
    {API, "GET", "/exact/x/", NULL, NULL, 0, "no matches entry allows the request"},
    {API, "GET", "/exact/xy", NULL, NULL, 0, "no matches entry allows the request"},
    {API, "GET", "/exact", NULL, NULL, 0, "no matches entry allows the request"},
    /* regex, anchored both ends, query excluded */
    {API, "GET", "/repos/org/proj/issues", NULL, NULL, 1, "matches"},
    {API, "GET", "/repos/org/proj/issues?state=open", NULL, NULL, 1, "matches"},
    {API, "GET", "/repos/org/proj/issues/1", NULL, NULL, 0, "no matches entry allows the request"},
    {API, "GET", "/x/repos/org/proj/issues", NULL, NULL, 0, "no matches entry allows the request"},
    {API, "POST", "/repos/org/proj/issues", NULL, NULL, 0, "no matches entry allows the request"},
    /* header exact: name case-insensitive, value trimmed and exact */
    {API, "PUT", "/anything", "X-API-Version: 2\n", NULL, 1, "matches"},
    {API, "PUT", "/anything", "x-api-version:  2 \n", NULL, 1, "matches"},
    {API, "PUT", "/anything", "x-api-version: 3\n", NULL, 0, "no matches entry allows the request"},
    {API, "PUT", "/anything", "x-api-version: 22\n", NULL, 0,
     "no matches entry allows the request"},
    {API, "PUT", "/anything", "x-api-version: 3\nx-api-version: 2\n", NULL, 1, "matches"},
    {API, "PUT", "/anything", "x-api-versio: 2\n", NULL, 0, "no matches entry allows the request"},
    /* header regex, anchored; every header rule of the entry must hold */
    {API, "PUT", "/z", "x-client: cli/1.2\nx-team: blue\n", NULL, 1, "matches"},
    {API, "PUT", "/z", "x-client: cli/1.2\n", NULL, 0, "no matches entry allows the request"},
    {API, "PUT", "/z", "x-client: cli/1.2x\nx-team: blue\n", NULL, 0,
     "no matches entry allows the request"},
    {API, "PUT", "/z", "x-client: my-cli/1.2\nx-team: blue\n", NULL, 0,
     "no matches entry allows the request"},
    {API, "PUT", "/z", "x-team: blue\nX-Client: cli/10.20\n", NULL, 1, "matches"},
    /* npm scoped names */
    {NPM, "GET", "/@types%2fnode", NULL, NULL, 1, "matches"},
    {NPM, "GET", "/@types%2fnode/-/node-20.0.0.tgz", NULL, NULL, 1, "matches"},
    {NPM, "GET", "/@types%2fnodejs", NULL, NULL, 0, "no matches entry allows the request"},
    {NPM, "GET", "/x/y/~z/w", NULL, NULL, 1, "matches"}, /* config value normalised */
    /* git fetch, exactly the two endpoints */
    {GIT, "GET", "/org/repo.git/info/refs?service=git-upload-pack", NULL, NULL, 1, "git fetch"},
    {GIT, "POST", "/org/repo.git/git-upload-pack", NULL, "application/x-git-upload-pack-request", 1,
     "git fetch"},
    {GITM, "GET", "/org/repo.git/info/refs?service=git-upload-pack", NULL, NULL, 1, "git fetch"},
    {GITM, "POST", "/org/repo.git/git-upload-pack", NULL, "application/x-git-upload-pack-request",
     1, "git fetch"},
    /* the fetch endpoint is not a way around matches for other bodies */
    {GITM, "POST", "/org/repo.git/git-upload-pack", NULL, NULL, 0,
     "no matches entry allows the request"},
    {GITM, "POST", "/org/repo.git/git-upload-pack", NULL, "application/json", 0,
     "no matches entry allows the request"},
    {GITM, "POST", "/git-upload-pack", NULL, NULL, 0, "no matches entry allows the request"},
    {GITM, "POST", "/org/repo.git/info/refs?service=git-upload-pack", NULL, NULL, 0,
     "no matches entry allows the request"},
    {GITM, "GET", "/org/repo.git/info/refs", NULL, NULL, 1, "matches"}, /* via matches */
    {GITM, "PUT", "/org/repo.git/info/refs?service=git-upload-pack", NULL, NULL, 0,
     "no matches entry allows the request"},
    {GITM, "PUT", "/org/repo.git/info/refs?service=git-upload-pack&x=1", NULL, NULL, 0,
     "no matches entry allows the request"},
    {API, "POST", "/org/repo.git/git-upload-pack", NULL, NULL, 0,
     "no matches entry allows the request"}, /* git_fetch off */
    /* git push: always refused, in all three forms, even where matches allow */
    {GIT, "POST", "/org/repo.git/git-receive-pack", NULL, NULL, 0,
     "git push (git-receive-pack) is denied"},
    {GIT, "GET", "/org/repo.git/info/refs?service=git-receive-pack", NULL, NULL, 0,
     "git push (git-receive-pack) is denied"},
    {GIT, "POST", "/org/repo.git/git-upload-pack", NULL, "application/x-git-receive-pack-request",
     0, "git push (git-receive-pack) is denied"},
    {OPEN, "POST", "/org/repo.git/git-receive-pack", NULL, NULL, 0,
     "git push (git-receive-pack) is denied"},
    {OPEN, "POST", "/org/repo.git/GIT-RECEIVE-PACK/", NULL, NULL, 0,
     "git push (git-receive-pack) is denied"},
    {OPEN, "POST", "/org/repo.git/git%2dreceive%2Dpack", NULL, NULL, 0,
     "git push (git-receive-pack) is denied"},
    {OPEN, "POST", "/org/repo.git/git-receive-pack;jsessionid=1", NULL, NULL, 0,
     "git push (git-receive-pack) is denied"},
    {OPEN, "GET", "/org/repo.git/info/refs?service=git-receive-pack", NULL, NULL, 0,
     "git push (git-receive-pack) is denied"},
    {OPEN, "GET", "/org/repo.git/info/refs?x=1&service=git%2dreceive%2Dpack", NULL, NULL, 0,
     "git push (git-receive-pack) is denied"},
    {OPEN, "GET", "/org/repo.git/info/refs?SERVICE=git-receive-pack", NULL, NULL, 0,
     "git push (git-receive-pack) is denied"},
    {OPEN, "POST", "/upload", NULL, "application/x-git-receive-pack-request; charset=x", 0,
     "git push (git-receive-pack) is denied"},
    {OPEN, "POST", "/upload", "Content-Type: Application/X-Git-Receive-Pack-Request\n", NULL, 0,
     "git push (git-receive-pack) is denied"},
    {OPEN, "POST", "/upload", "accept: application/x-git-receive-pack-result\n", NULL, 0,
     "git push (git-receive-pack) is denied"},
    {OPEN, "GET", "/search?q=receive-pack", NULL, NULL, 1, "route has no matches"},
    /* DNS over HTTPS: refused on every route */
    {OPEN, "GET", "/dns-query?dns=AAAB", NULL, NULL, 0, "DNS over HTTPS is denied"},
    {OPEN, "POST", "/dns-query", NULL, "application/dns-message", 0, "DNS over HTTPS is denied"},
    {OPEN, "GET", "/x/y/dns-query", NULL, NULL, 0, "DNS over HTTPS is denied"},
    {OPEN, "GET", "/DNS-Query/", NULL, NULL, 0, "DNS over HTTPS is denied"},
    {OPEN, "GET", "/dns-query;x", NULL, NULL, 0, "DNS over HTTPS is denied"},
    {OPEN, "GET", "/dns%2dquery", NULL, NULL, 0, "DNS over HTTPS is denied"},
    {OPEN, "GET", "/resolve?name=example.com&type=A", NULL, NULL, 0, "DNS over HTTPS is denied"},
    {OPEN, "GET", "/resolve/", NULL, NULL, 0, "DNS over HTTPS is denied"},
    {OPEN, "GET", "/api/resolve", NULL, NULL, 1, "route has no matches"},
    {OPEN, "GET", "/dns-query/x", NULL, NULL, 1, "route has no matches"},
    {OPEN, "GET", "/my-dns-query", NULL, NULL, 1, "route has no matches"},
    {OPEN, "POST", "/q", NULL, "application/dns-message", 0, "DNS over HTTPS is denied"},
    {OPEN, "POST", "/q", NULL, "Application/DNS-Message ; x=y", 0, "DNS over HTTPS is denied"},
    {OPEN, "GET", "/q", "accept: text/html, application/dns-json;q=0.9\n", NULL, 0,
     "DNS over HTTPS is denied"},
    {OPEN, "GET", "/q", "content-type: application/dns-json\n", NULL, 0,
     "DNS over HTTPS is denied"},
    {OPEN, "GET", "/q", "accept: application/dns-messages\n", NULL, 1, "route has no matches"},
    {API, "GET", "/api/dns-query", NULL, NULL, 0, "DNS over HTTPS is denied"},
    /* RFC 8484's GET form on any path: a "dns" parameter holding a query */
    {OPEN, "GET", "/x?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB", NULL, NULL, 0,
     "DNS over HTTPS is denied"},
    {OPEN, "GET", "/a/b?ct=x&DNS=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB=", NULL, NULL, 0,
     "DNS over HTTPS is denied"},
    {OPEN, "GET", "/x?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB&y=1", NULL, NULL, 0,
     "DNS over HTTPS is denied"},
    {API, "GET", "/api/v1?dns=AAABAAABAAAAAAAAB2V4YW1wbGUDY29tAAAcAAE", NULL, NULL, 0,
     "DNS over HTTPS is denied"},
    /* not a DNS query: a response (QR set), a word, a truncated question */
    {OPEN, "GET", "/x?dns=AACBAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB", NULL, NULL, 1,
     "route has no matches"},
    {OPEN, "GET", "/x?dns=cloudflare", NULL, NULL, 1, "route has no matches"},
    {OPEN, "GET", "/x?dns=AAABAAABAAAAAAAAA3d3dwdleGFt", NULL, NULL, 1, "route has no matches"},
    {OPEN, "GET", "/x?mydns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB", NULL, NULL, 1,
     "route has no matches"},
    /* regex limits fail closed, at once */
    {EVILH, "GET", "/x", "x-evil: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab\n",
     NULL, 0, "regex match limit"},
    {EVILH, "GET", "/x", "x-evil: aaaa\n", NULL, 1, "matches"},
    {EVILH, "GET", "/x", "x-evil: aaab\n", NULL, 1, "matches"}, /* entry 2 */
    {EVIL, "GET", "/aaaa", NULL, NULL, 1, "matches"},
    /* methods only */
    {ALL, "GET", "/x", NULL, NULL, 1, "matches"},
    {ALL, "HEAD", "/x", NULL, NULL, 0, "no matches entry allows the request"},
};

static struct route_table *build_req_table(void)
{
    struct route_table *t = NULL;
    struct diag_list diags;

    diag_list_init(&diags);
    assert_int_equal(route_table_build(&req_conf, &diags, &t), 0);
    assert_int_equal(diags.n, 0);
    diag_list_release(&diags);
    return t;
}

/* Normalises target, splits headers, runs route_match_request. */
static int run(const struct route_table *t, const struct pconf_route *r, const char *method,
               const char *target, const char *headers, const char *content_type,
               const char **reason)
{
    struct slice names[8], values[8], query;
    size_t n = 0;
    struct buf path;
    const char *why;
    int allow;

    for (const char *h = headers; h && *h && n < N(names);) {
        const char *colon = strchr(h, ':'), *nl = strchr(h, '\n');
        assert_non_null(colon);
        assert_non_null(nl);
        names[n] = (struct slice){h, (size_t)(colon - h)};
        values[n] = (struct slice){colon + 1, (size_t)(nl - colon - 1)};
        n++;
        h = nl + 1;
    }
    buf_init(&path, 0);
    if (path_normalize(target, strlen(target), &path, &query, &why) != 0)
        fail_msg("'%s': normalisation refused it: %s", target, why);
    allow = route_match_request(t, r, method, names, values, n, buf_cstr(&path), query,
                                content_type, reason);
    buf_release(&path);
    return allow;
}

static void test_requests(void **state)
{
    struct route_table *t = build_req_table();

    (void)state;
    for (size_t i = 0; i < N(reqs); i++) {
        const struct req_case *c = &reqs[i];
        const char *reason = NULL;
        int allow = run(t, &req_routes[c->route], c->method, c->target, c->headers, c->content_type,
                        &reason);
        if (allow != c->allow || !reason || strcmp(reason, c->reason) != 0)
            fail_msg("case %zu: %s %s%s on '%s': got %d '%s', want %d '%s'", i, c->method,
                     c->target, c->headers ? " (+headers)" : "", req_routes[c->route].host, allow,
                     reason ? reason : "(null)", c->allow, c->reason);
    }
    route_table_free(t);
}

static void test_regex_limit_is_fast(void **state)
{
    struct route_table *t = build_req_table();
    struct buf path, hdr;
    struct slice name = SLICE_LIT("x-evil"), value;
    const char *reason = NULL;
    struct timespec a, b;

    (void)state;
    buf_init(&path, 0);
    buf_init(&hdr, 0);
    buf_putc(&path, '/');
    for (int i = 0; i < 5000; i++) {
        buf_putc(&path, 'a');
        buf_putc(&hdr, 'a');
    }
    buf_putc(&path, 'b');
    buf_putc(&hdr, 'b');
    value = (struct slice){hdr.data, hdr.len};

    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(route_match_request(t, &req_routes[EVIL], "GET", NULL, NULL, 0, path.data,
                                         (struct slice){NULL, 0}, NULL, &reason),
                     0);
    assert_string_equal(reason, "regex match limit");
    assert_int_equal(route_match_request(t, &req_routes[EVILH], "GET", &name, &value, 1, "/x",
                                         (struct slice){NULL, 0}, NULL, &reason),
                     0);
    assert_string_equal(reason, "regex match limit");
    clock_gettime(CLOCK_MONOTONIC, &b);
    /* generous for sanitizer builds; without the limits this takes ages */
    assert_true((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < 2000);

    buf_release(&path);
    buf_release(&hdr);
    route_table_free(t);
}

static void test_foreign_route(void **state)
{
    struct route_table *t = build_req_table();
    struct pconf_route other = {.host = "x.example.com"};
    const char *reason = NULL;

    (void)state;
    assert_int_equal(route_match_request(t, &other, "GET", NULL, NULL, 0, "/",
                                         (struct slice){NULL, 0}, NULL, &reason),
                     0);
    assert_string_equal(reason, "no route");
    assert_int_equal(route_match_request(t, &req_routes[OPEN], "GET", NULL, NULL, 0, "/",
                                         (struct slice){NULL, 0}, NULL, NULL),
                     1);
    route_table_free(t);
}

static void test_build_errors(void **state)
{
    struct pconf_path bad_paths[] = {{PCONF_PATH_REGEX, "/(unclosed"},
                                     {PCONF_PATH_PREFIX, "/a/../../b"},
                                     {PCONF_PATH_EXACT, "/a%2fb"},
                                     {PCONF_PATH_PREFIX, "/a?b"},
                                     {PCONF_PATH_PREFIX, "/fine"}};
    struct pconf_header bad_hdrs[] = {{"x", "[z-a]", PCONF_HEADER_REGEX}};
    struct pconf_match m[] = {{bad_paths, 5, NULL, 0, bad_hdrs, 1}};
    struct pconf_route rs[] = {
        {.host = "a.example.com", .ports = p443, .n_ports = 1, .matches = m, .n_matches = 1}};
    struct pconf c = {.refs = 1, .bottle = "t", .routes = rs, .n_routes = 1};
    struct route_table *t = NULL;
    struct diag_list diags;

    (void)state;
    diag_list_init(&diags);
    assert_int_equal(route_table_build(&c, &diags, &t), BD_E_PARSE);
    assert_null(t);
    assert_int_equal(diags.n_errors, 5); /* every error, not just the first */
    assert_non_null(strstr(diags.v[0].msg, "matches[0].paths[0]: invalid regex"));
    assert_non_null(strstr(diags.v[1].msg, "'..' above the root"));
    assert_non_null(strstr(diags.v[2].msg, "encoded '/' in path"));
    assert_non_null(strstr(diags.v[3].msg, "cannot hold a query"));
    assert_non_null(strstr(diags.v[4].msg, "matches[0].headers[0]: invalid regex"));
    diag_list_release(&diags);
}

static void test_empty_config(void **state)
{
    struct pconf c = {.refs = 1, .bottle = "t"};
    struct route_table *t = NULL;
    struct diag_list diags;
    const char *reason;

    (void)state;
    diag_list_init(&diags);
    assert_int_equal(route_table_build(&c, &diags, &t), 0);
    assert_null(route_lookup(t, "example.com", 443, &reason));
    assert_string_equal(reason, "no route for host");
    route_table_free(t);
    route_table_free(NULL);
    diag_list_release(&diags);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),        cmocka_unit_test(test_duplicate_host),
        cmocka_unit_test(test_requests),      cmocka_unit_test(test_regex_limit_is_fast),
        cmocka_unit_test(test_foreign_route), cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_empty_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
