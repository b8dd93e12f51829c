/*
 * fuzz_route.c - request path normalisation and route matching on hostile
 * input.
 *
 * Input layout: byte 0 picks the method and the host, then the request
 * target up to the first '\n', then "name: value" header lines.  The
 * target is normalised; when accepted, the output must be a fixed point of
 * the normaliser and obey pathnorm.h's invariants (starts with '/', no
 * "//" but a trailing one, no dot-segment, no "%00", only uppercase
 * escapes of non-unreserved bytes but npm's "%2f"), and it is matched
 * against a small fixed table that has every kind of rule, including a
 * catastrophic regex, which must end under its limits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_target.h"
#include "pathnorm.h"
#include "route.h"

#define MAX_HDRS 8

static struct pconf_path api_paths[] = {
    {PCONF_PATH_PREFIX, "/api/v1/"}, {PCONF_PATH_PREFIX, "/api"}, {PCONF_PATH_EXACT, "/exact"}};
static struct pconf_path re_paths[] = {{PCONF_PATH_REGEX, "/r/[a-z]+(/[0-9]+)*/?"},
                                       {PCONF_PATH_REGEX, "/(a+)+b"}};
static struct pconf_path npm_paths[] = {{PCONF_PATH_PREFIX, "/@types%2fnode"}};
static char *get_post[] = {"GET", "POST"};
static struct pconf_header hdrs[] = {{"x-kind", "(a|aa)+c", PCONF_HEADER_REGEX},
                                     {"x-token", "yes", PCONF_HEADER_EXACT}};
static struct pconf_match api_matches[] = {
    {api_paths, 3, get_post, 2, NULL, 0},
    {re_paths, 2, NULL, 0, hdrs, 1},
    {NULL, 0, NULL, 0, hdrs + 1, 1},
};
static struct pconf_match npm_matches[] = {{npm_paths, 1, NULL, 0, NULL, 0}};
static int p443[] = {443}, p443_80[] = {443, 80, 853};

static struct pconf_route routes[] = {
    {.host = "api.example.com",
     .ports = p443,
     .n_ports = 1,
     .matches = api_matches,
     .n_matches = 3},
    {.host = "*.example.com", .ports = p443_80, .n_ports = 3, .git_fetch = 1},
    {.host = "registry.npmjs.org",
     .ports = p443,
     .n_ports = 1,
     .matches = npm_matches,
     .n_matches = 1},
};
static struct pconf conf = {.refs = 1, .bottle = "fuzz", .routes = routes, .n_routes = 3};

static const char *const methods[] = {"GET", "POST", "PUT", "DELETE"};
static const char *const hosts[] = {"api.example.com", "git.example.com", "registry.npmjs.org",
                                    "example.com"};

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static void check_invariants(const char *p, size_t n)
{
    if (n == 0 || p[0] != '/' || strlen(p) != n)
        abort();
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c >= 0x7f || c == '\\' || c == '#' || c == '?')
            abort();
        if (c == '/' && i + 1 < n && p[i + 1] == '/')
            abort();
        if (c == '/') {
            size_t len = strcspn(p + i + 1, "/");
            if ((len == 1 && p[i + 1] == '.') || (len == 2 && p[i + 1] == '.' && p[i + 2] == '.'))
                abort();
        }
        if (c == '%') {
            if (i + 2 >= n)
                abort();
            char h[3] = {p[i + 1], p[i + 2], 0};
            unsigned long v = strtoul(h, NULL, 16);
            int npm = v == 0x2f;
            if (!npm && (strchr("0123456789ABCDEF", h[0]) == NULL ||
                         strchr("0123456789ABCDEF", h[1]) == NULL))
                abort();
            if (v == 0 || unreserved((unsigned char)v) || v < 0x20 || v == 0x7f || v == '\\')
                abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct route_table *table;
    struct slice names[MAX_HDRS], values[MAX_HDRS], query, q2;
    struct buf path, again;
    const char *reason = NULL;
    size_t n_hdrs = 0;

    if (!table) {
        struct diag_list diags;
        diag_list_init(&diags);
        if (route_table_build(&conf, &diags, &table) < 0)
            abort();
        diag_list_release(&diags);
    }
    if (size < 1)
        return 0;
    const char *method = methods[data[0] & 3];
    const char *host = hosts[(data[0] >> 2) & 3];
    const char *s = (const char *)data + 1, *end = (const char *)data + size;
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    size_t tlen = nl ? (size_t)(nl - s) : (size_t)(end - s);

    for (const char *h = nl ? nl + 1 : end; h < end && n_hdrs < MAX_HDRS;) {
        const char *eol = memchr(h, '\n', (size_t)(end - h));
        const char *line_end = eol ? eol : end;
        const char *colon = memchr(h, ':', (size_t)(line_end - h));
        if (colon) {
            names[n_hdrs] = (struct slice){h, (size_t)(colon - h)};
            values[n_hdrs] = (struct slice){colon + 1, (size_t)(line_end - colon - 1)};
            n_hdrs++;
        }
        h = eol ? eol + 1 : end;
    }

    buf_init(&path, 3 * tlen + 2);
    buf_init(&again, 3 * tlen + 2);
    if (path_normalize(s, tlen, &path, &query, &reason) == 0) {
        check_invariants(path.data, path.len);
        if (path_normalize(path.data, path.len, &again, &q2, &reason) != 0 ||
            again.len != path.len || memcmp(again.data, path.data, path.len) != 0 || q2.ptr)
            abort();
        if (query.ptr && (query.ptr < s || query.ptr + query.len > s + tlen))
            abort();

        const struct pconf_route *r =
            route_lookup(table, host, (data[0] >> 4) & 1 ? 80 : 443, &reason);
        if (r) {
            int allow = route_match_request(table, r, method, names, values, n_hdrs, path.data,
                                            query, NULL, &reason);
            if (!reason || (allow != 0 && allow != 1))
                abort();
            if (allow && strstr(path.data, "git-receive-pack"))
                abort();
            if (allow && r == &routes[0] && strcmp(reason, "matches") != 0)
                abort();
        }
    } else if (!reason) {
        abort();
    }
    buf_release(&path);
    buf_release(&again);
    return 0;
}
