/*
 * route.c - compiled route table and request matching (see route.h).
 *
 * Hosts are indexed in two sorted arrays searched with bsearch: exact
 * names, and wildcard suffixes stored with their leading dot
 * (".example.com" for "*.example.com").  A host's candidate suffixes are
 * tried from its first dot on, so the first hit is the longest suffix, and
 * the apex never matches: a suffix is only looked up when at least one
 * label stands in front of it.
 *
 * Compiled parts live in arrays parallel to the config's: route i of the
 * config is croutes[i] here, so route_match_request() finds the compiled
 * form of a pconf_route by pointer difference.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "b64.h"
#include "err.h"
#include "host.h"
#include "pathnorm.h"
#include "route.h"
#include "urlpath.h"
#include "xalloc.h"

#define DIAG_FILE    "routes.json"
#define MAX_NORM_LEN ((size_t)64 << 10)

struct cpath {
    enum pconf_path_type type;
    char *value; /* prefix, exact: normalised copy */
    size_t len;
    pcre2_code *re; /* regex */
};

struct cheader {
    const char *name; /* borrowed from the config, lower-case */
    size_t name_len;
    const char *value; /* borrowed; exact */
    size_t value_len;
    pcre2_code *re; /* regex */
};

struct cmatch {
    struct cpath *paths;
    size_t n_paths;
    struct cheader *headers;
    size_t n_headers;
};

struct croute {
    struct cmatch *matches;
    size_t n_matches;
};

struct host_entry {
    const char *key; /* exact name, or the suffix with its leading dot */
    size_t route;
};

struct route_table {
    const struct pconf *conf;
    struct croute *routes;
    struct host_entry *exact, *wild;
    size_t n_exact, n_wild;
    pcre2_match_context *mctx;
};

/* ---- building ---------------------------------------------------------- */

static pcre2_code *compile_regex(const struct pconf *conf, struct diag_list *diags,
                                 const char *what, const char *pattern)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_ANCHORED | PCRE2_ENDANCHORED, &err, &off, NULL);

    if (!re) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(err, msg, sizeof(msg)) < 0)
            memcpy(msg, "unknown error", sizeof("unknown error"));
        diag_error(diags, DIAG_FILE, 0, 0, conf->bottle, NULL,
                   "%s: invalid regex at offset %zu: %s", what, (size_t)off, (char *)msg);
        return NULL;
    }
    /* JIT is an optimisation: without it (no JIT support, no executable
     * memory) the interpreter runs the same pattern under the same limits. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

static int build_path(const struct pconf *conf, struct diag_list *diags, const char *what,
                      const struct pconf_path *p, struct cpath *cp)
{
    struct buf norm;
    struct slice query;
    const char *reason = "path too long";
    int r;

    cp->type = p->type;
    if (p->type == PCONF_PATH_REGEX) {
        cp->re = compile_regex(conf, diags, what, p->value);
        return cp->re ? 0 : BD_E_PARSE;
    }
    buf_init(&norm, MAX_NORM_LEN);
    r = path_normalize(p->value, strlen(p->value), &norm, &query, &reason);
    if (r == 0 && query.ptr) {
        reason = "a path value cannot hold a query";
        r = BD_E_INVAL;
    }
    if (r < 0) {
        diag_error(diags, DIAG_FILE, 0, 0, conf->bottle, NULL, "%s: path '%s' is refused: %s", what,
                   p->value, reason);
        buf_release(&norm);
        return BD_E_PARSE;
    }
    cp->value = buf_detach(&norm, &cp->len);
    return 0;
}

static int build_route(const struct pconf *conf, struct diag_list *diags, size_t ri,
                       struct croute *cr)
{
    const struct pconf_route *r = &conf->routes[ri];
    int ret = 0;

    cr->n_matches = r->n_matches;
    cr->matches = xcalloc(r->n_matches ? r->n_matches : 1, sizeof(*cr->matches));
    for (size_t mi = 0; mi < r->n_matches; mi++) {
        const struct pconf_match *m = &r->matches[mi];
        struct cmatch *cm = &cr->matches[mi];

        cm->n_paths = m->n_paths;
        cm->paths = xcalloc(m->n_paths ? m->n_paths : 1, sizeof(*cm->paths));
        for (size_t pi = 0; pi < m->n_paths; pi++) {
            char *what = xasprintf("route '%s': matches[%zu].paths[%zu]", r->host, mi, pi);
            if (build_path(conf, diags, what, &m->paths[pi], &cm->paths[pi]) < 0)
                ret = BD_E_PARSE;
            free(what);
        }
        cm->n_headers = m->n_headers;
        cm->headers = xcalloc(m->n_headers ? m->n_headers : 1, sizeof(*cm->headers));
        for (size_t hi = 0; hi < m->n_headers; hi++) {
            const struct pconf_header *h = &m->headers[hi];
            struct cheader *ch = &cm->headers[hi];

            ch->name = h->name;
            ch->name_len = strlen(h->name);
            ch->value = h->value;
            ch->value_len = strlen(h->value);
            if (h->type == PCONF_HEADER_REGEX) {
                char *what = xasprintf("route '%s': matches[%zu].headers[%zu]", r->host, mi, hi);
                ch->re = compile_regex(conf, diags, what, h->value);
                if (!ch->re)
                    ret = BD_E_PARSE;
                free(what);
            }
        }
    }
    return ret;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct host_entry *)a)->key, ((const struct host_entry *)b)->key);
}

static int index_hosts(const struct pconf *conf, struct diag_list *diags, struct route_table *t)
{
    int ret = 0;

    t->exact = xcalloc(conf->n_routes ? conf->n_routes : 1, sizeof(*t->exact));
    t->wild = xcalloc(conf->n_routes ? conf->n_routes : 1, sizeof(*t->wild));
    for (size_t i = 0; i < conf->n_routes; i++) {
        const char *h = conf->routes[i].host;
        if (h[0] == '*' && h[1] == '.')
            t->wild[t->n_wild++] = (struct host_entry){h + 1, i};
        else
            t->exact[t->n_exact++] = (struct host_entry){h, i};
    }
    qsort(t->exact, t->n_exact, sizeof(*t->exact), cmp_entry);
    qsort(t->wild, t->n_wild, sizeof(*t->wild), cmp_entry);
    for (size_t i = 1; i < t->n_exact; i++)
        if (strcmp(t->exact[i - 1].key, t->exact[i].key) == 0) {
            diag_error(diags, DIAG_FILE, 0, 0, conf->bottle, NULL, "route '%s': duplicate host",
                       t->exact[i].key);
            ret = BD_E_PARSE;
        }
    for (size_t i = 1; i < t->n_wild; i++)
        if (strcmp(t->wild[i - 1].key, t->wild[i].key) == 0) {
            diag_error(diags, DIAG_FILE, 0, 0, conf->bottle, NULL, "route '*%s': duplicate host",
                       t->wild[i].key);
            ret = BD_E_PARSE;
        }
    return ret;
}

int route_table_build(const struct pconf *conf, struct diag_list *diags, struct route_table **ret)
{
    struct route_table *t = xcalloc(1, sizeof(*t));
    int r = 0;

    t->conf = conf;
    t->routes = xcalloc(conf->n_routes ? conf->n_routes : 1, sizeof(*t->routes));
    for (size_t i = 0; i < conf->n_routes; i++)
        if (build_route(conf, diags, i, &t->routes[i]) < 0)
            r = BD_E_PARSE;
    if (index_hosts(conf, diags, t) < 0)
        r = BD_E_PARSE;

    t->mctx = pcre2_match_context_create(NULL);
    if (!t->mctx)
        abort(); /* allocation failure, as xmalloc */
    pcre2_set_match_limit(t->mctx, ROUTE_REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(t->mctx, ROUTE_REGEX_DEPTH_LIMIT);
    pcre2_set_heap_limit(t->mctx, ROUTE_REGEX_HEAP_LIMIT);

    if (r < 0) {
        route_table_free(t);
        return r;
    }
    *ret = t;
    return 0;
}

void route_table_free(struct route_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->conf->n_routes; i++) {
        struct croute *cr = &t->routes[i];
        for (size_t mi = 0; mi < cr->n_matches; mi++) {
            struct cmatch *cm = &cr->matches[mi];
            for (size_t pi = 0; pi < cm->n_paths; pi++) {
                free(cm->paths[pi].value);
                pcre2_code_free(cm->paths[pi].re);
            }
            for (size_t hi = 0; hi < cm->n_headers; hi++)
                pcre2_code_free(cm->headers[hi].re);
            free(cm->paths);
            free(cm->headers);
        }
        free(cr->matches);
    }
    free(t->routes);
    free(t->exact);
    free(t->wild);
    pcre2_match_context_free(t->mctx);
    free(t);
}

/* ---- host lookup ------------------------------------------------------- */

static const struct host_entry *find(const struct host_entry *v, size_t n, const char *key)
{
    struct host_entry k = {key, 0};

    return n ? bsearch(&k, v, n, sizeof(*v), cmp_entry) : NULL;
}

static int port_listed(const struct pconf_route *r, int port)
{
    if (r->n_ports == 0)
        return port == 443; /* the manifest default, should the loader not fill it */
    for (size_t i = 0; i < r->n_ports; i++)
        if (r->ports[i] == port)
            return 1;
    return 0;
}

const struct pconf_route *route_lookup(const struct route_table *t, const char *host, int port,
                                       const char **reason)
{
    const struct host_entry *e = NULL;
    const char *why;
    const struct pconf_route *r;

    if (!reason)
        reason = &why;
    if (!host || !host[0]) {
        *reason = "no route for host";
        return NULL;
    }
    if (host_is_ip_literal(host, strlen(host))) {
        *reason = "IP-literal destinations are denied";
        return NULL;
    }
    if (port == 853) {
        *reason = "DNS over TLS (port 853) is denied";
        return NULL;
    }
    e = find(t->exact, t->n_exact, host);
    if (!e && host[0] != '.')
        for (const char *d = strchr(host + 1, '.'); d && !e; d = strchr(d + 1, '.'))
            e = find(t->wild, t->n_wild, d);
    if (!e) {
        *reason = "no route for host";
        return NULL;
    }
    r = &t->conf->routes[e->route];
    if (!port_listed(r, port)) {
        *reason = "port not allowed for host";
        return NULL;
    }
    *reason = "route";
    return r;
}

/* ---- request matching -------------------------------------------------- */

static struct slice trim(struct slice s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

static int slice_ieq(struct slice a, const char *lit)
{
    size_t n = strlen(lit);

    return a.len == n && strncasecmp(a.ptr, lit, n) == 0;
}

/* 1 match, 0 no match, -1 limit or error (deny). */
static int regex_match(const struct route_table *t, const pcre2_code *re, const char *s, size_t n)
{
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int rc;

    if (!md)
        abort();
    rc = pcre2_match(re, (PCRE2_SPTR)(n ? s : ""), n, 0, 0, md, t->mctx);
    pcre2_match_data_free(md);
    if (rc >= 0)
        return 1;
    return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

/* Is one of the comma-separated media types in v one of the types[]? */
static int media_in(struct slice v, const char *const *types)
{
    while (v.len) {
        const char *comma = memchr(v.ptr, ',', v.len);
        struct slice item = {v.ptr, comma ? (size_t)(comma - v.ptr) : v.len};
        const char *semi = memchr(item.ptr, ';', item.len);

        if (semi)
            item.len = (size_t)(semi - item.ptr);
        item = trim(item);
        for (size_t i = 0; types[i]; i++)
            if (slice_ieq(item, types[i]))
                return 1;
        if (!comma)
            break;
        v.len -= (size_t)(comma - v.ptr) + 1;
        v.ptr = comma + 1;
    }
    return 0;
}

static const char *const doh_types[] = {"application/dns-message", "application/dns-json", NULL};
static const char *const push_types[] = {"application/x-git-receive-pack-request",
                                         "application/x-git-receive-pack-result",
                                         "application/x-git-receive-pack-advertisement", NULL};
static const char *const fetch_request_types[] = {"application/x-git-upload-pack-request", NULL};

/* Checks the request's media types (Content-Type, Accept) against types. */
static int request_has_media(const struct slice *names, const struct slice *values, size_t n,
                             const char *content_type, const char *const *types)
{
    if (content_type && media_in(slice_from_cstr(content_type), types))
        return 1;
    for (size_t i = 0; i < n; i++)
        if ((slice_ieq(names[i], "content-type") || slice_ieq(names[i], "accept")) &&
            media_in(values[i], types))
            return 1;
    return 0;
}

/* Form-decodes s ('+' is a space, %XX) into a new string, as
 * git-http-backend decodes its query. */
static char *form_decode(const char *s, size_t n)
{
    char *d = xmalloc(n + 1), *o = d;

    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hex_digit(s[i + 1])) >= 0 &&
            (lo = hex_digit(s[i + 2])) >= 0) {
            *o++ = (char)(hi << 4 | lo);
            i += 2;
        } else {
            *o++ = s[i] == '+' ? ' ' : s[i];
        }
    }
    *o = '\0';
    return d;
}

/* Is pred true of any name=value parameter of the query (form-decoded)? */
static int query_any(struct slice q, int (*pred)(const char *name, const char *value))
{
    const char *p = q.ptr, *end;

    if (!p)
        return 0;
    end = p + q.len;
    while (p < end) {
        const char *amp = p;
        while (amp < end && *amp != '&' && *amp != ';')
            amp++;
        const char *eq = memchr(p, '=', (size_t)(amp - p));
        if (eq) {
            char *name = form_decode(p, (size_t)(eq - p));
            char *value = form_decode(eq + 1, (size_t)(amp - eq - 1));
            int yes = pred(name, value);
            free(name);
            free(value);
            if (yes)
                return 1;
        }
        p = amp + 1;
    }
    return 0;
}

/* A parameter "service" whose value names receive-pack. */
static int param_is_push(const char *name, const char *value)
{
    return strcasecmp(name, "service") == 0 && strcasestr(value, "receive-pack") != NULL;
}

/*
 * A parameter "dns" (RFC 8484's GET form, on any path) whose value
 * decodes as base64url to a DNS query: a 12-byte header with QR clear,
 * opcode QUERY, one question or more and no answers, and a first question
 * whose name is a well-formed label sequence followed by type and class.
 */
static int param_is_doh(const char *name, const char *value)
{
    unsigned char m[512];
    size_t n = 0, bits = 0;
    unsigned acc = 0;

    if (strcasecmp(name, "dns") != 0)
        return 0;
    for (const char *c = value; *c && *c != '='; c++) {
        int d = b64_digit((unsigned char)*c);
        if (d < 0)
            return 0;
        acc = (acc << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == sizeof(m))
                break; /* the header and first question are all we look at */
            m[n++] = (unsigned char)(acc >> bits);
        }
    }
    if (n < 17 || (m[2] & 0x80) || ((m[2] >> 3) & 0x0f) != 0)
        return 0;
    unsigned qd = (unsigned)m[4] << 8 | m[5], an = (unsigned)m[6] << 8 | m[7];
    if (qd == 0 || an != 0)
        return 0;
    size_t at = 12, name_len = 0;
    while (at < n && m[at] != 0) {
        if (m[at] > 63)
            return 0;
        name_len += m[at] + 1u;
        at += m[at] + 1u;
        if (name_len > 255)
            return 0;
    }
    return at + 5 <= n; /* the root label, QTYPE and QCLASS */
}

/* Does path contain word, case-insensitively?  For "git-receive-pack"
 * that is any segment holding it, parameters (";x") and all: servlet
 * containers strip parameters before routing. */
static int path_contains(const char *path, const char *word)
{
    return strcasestr(path, word) != NULL;
}

/* Is the last segment of path, a trailing '/' and ";parameters" ignored,
 * seg (case-insensitive)?  With root_only, the path must be "/" + seg. */
static int last_segment_is(const char *path, const char *seg, int root_only)
{
    size_t len = strlen(path), n = strlen(seg);
    const char *start, *semi;

    if (len > 1 && path[len - 1] == '/')
        len--;
    start = path + len;
    while (start > path && start[-1] != '/')
        start--;
    if (root_only && start != path + 1)
        return 0;
    semi = memchr(start, ';', (size_t)(path + len - start));
    if (semi)
        len = (size_t)(semi - path);
    return (size_t)(path + len - start) == n && strncasecmp(start, seg, n) == 0;
}

/* path is "<repo>" + suffix, the repo at least one non-empty segment. */
static int repo_endpoint(const char *path, const char *suffix)
{
    size_t len = strlen(path), n = strlen(suffix);

    return len > n + 1 && memcmp(path + len - n, suffix, n) == 0;
}

static int prefix_match(const struct cpath *p, const char *path, size_t len)
{
    if (len < p->len || memcmp(path, p->value, p->len) != 0)
        return 0;
    return p->value[p->len - 1] == '/' || len == p->len || path[p->len] == '/';
}

/* 1 match, 0 no, -1 regex limit. */
static int entry_matches(const struct route_table *t, const struct pconf_match *m,
                         const struct cmatch *cm, const char *method, const struct slice *names,
                         const struct slice *values, size_t n_hdrs, const char *path)
{
    size_t plen = strlen(path);
    int any;

    if (m->n_methods) {
        any = 0;
        for (size_t i = 0; i < m->n_methods && !any; i++)
            any = strcmp(m->methods[i], method) == 0;
        if (!any)
            return 0;
    }
    for (size_t hi = 0; hi < cm->n_headers; hi++) {
        const struct cheader *h = &cm->headers[hi];
        any = 0;
        for (size_t i = 0; i < n_hdrs && !any; i++) {
            struct slice v;
            if (names[i].len != h->name_len || strncasecmp(names[i].ptr, h->name, h->name_len))
                continue;
            v = trim(values[i]);
            if (h->re) {
                if ((any = regex_match(t, h->re, v.ptr, v.len)) < 0)
                    return -1;
            } else {
                any = v.len == h->value_len && memcmp(v.ptr, h->value, v.len) == 0;
            }
        }
        if (!any)
            return 0;
    }
    if (cm->n_paths == 0)
        return 1;
    for (size_t pi = 0; pi < cm->n_paths; pi++) {
        const struct cpath *p = &cm->paths[pi];
        switch (p->type) {
        case PCONF_PATH_PREFIX:
            any = prefix_match(p, path, plen);
            break;
        case PCONF_PATH_EXACT:
            any = plen == p->len && memcmp(path, p->value, plen) == 0;
            break;
        case PCONF_PATH_REGEX:
            any = regex_match(t, p->re, path, plen);
            break;
        default:
            any = 0;
        }
        if (any)
            return any;
    }
    return 0;
}

int route_match_request(const struct route_table *t, const struct pconf_route *r,
                        const char *method, const struct slice *hdr_names,
                        const struct slice *hdr_values, size_t n_hdrs, const char *norm_path,
                        struct slice query, const char *content_type, const char **reason)
{
    const char *why;
    const struct croute *cr;
    size_t ri;

    if (!reason)
        reason = &why;
    if (!r || r < t->conf->routes || r >= t->conf->routes + t->conf->n_routes) {
        *reason = "no route";
        return 0;
    }
    ri = (size_t)(r - t->conf->routes);
    cr = &t->routes[ri];

    if (path_contains(norm_path, "git-receive-pack") || query_any(query, param_is_push) ||
        request_has_media(hdr_names, hdr_values, n_hdrs, content_type, push_types)) {
        *reason = "git push (git-receive-pack) is denied";
        return 0;
    }
    if (request_has_media(hdr_names, hdr_values, n_hdrs, content_type, doh_types) ||
        last_segment_is(norm_path, "dns-query", 0) || last_segment_is(norm_path, "resolve", 1) ||
        query_any(query, param_is_doh)) {
        *reason = "DNS over HTTPS is denied";
        return 0;
    }
    if (r->git_fetch &&
        ((strcmp(method, "GET") == 0 && repo_endpoint(norm_path, "/info/refs") && query.ptr &&
          query.len == strlen("service=git-upload-pack") &&
          memcmp(query.ptr, "service=git-upload-pack", query.len) == 0) ||
         (strcmp(method, "POST") == 0 && repo_endpoint(norm_path, "/git-upload-pack") &&
          content_type && media_in(slice_from_cstr(content_type), fetch_request_types)))) {
        *reason = "git fetch";
        return 1;
    }
    if (r->n_matches == 0) {
        *reason = "route has no matches";
        return 1;
    }
    for (size_t mi = 0; mi < r->n_matches; mi++) {
        int m = entry_matches(t, &r->matches[mi], &cr->matches[mi], method, hdr_names, hdr_values,
                              n_hdrs, norm_path);
        if (m < 0) {
            *reason = "regex match limit";
            return 0;
        }
        if (m) {
            *reason = "matches";
            return 1;
        }
    }
    *reason = "no matches entry allows the request";
    return 0;
}
