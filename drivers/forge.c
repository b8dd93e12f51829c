/*
 * forge.c - the forge backend registry, the handle, the wrappers every
 * caller goes through (they name the call for messages and reset the
 * error), and the pure helpers: default API roots, repo paths, key JSON.
 *
 * Adding a backend: its own forge_<name>.c with a const struct forge_ops
 * and one line in backends[].
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "err.h"
#include "fault.h"
#include "forge.h"
#include "forge_http.h"
#include "host.h"
#include "xalloc.h"

static const struct {
    const char *name;
    const struct forge_ops *ops;
} backends[] = {
    {"gitea", &forge_gitea_ops},
    {"forgejo", &forge_gitea_ops}, /* Forgejo keeps Gitea's API for keys */
    {"github", &forge_github_ops},
    {"gitlab", &forge_gitlab_ops},
};

const struct forge_ops *forge_ops_lookup(const char *provider)
{
    for (size_t i = 0; provider && i < sizeof(backends) / sizeof(backends[0]); i++)
        if (strcmp(backends[i].name, provider) == 0)
            return backends[i].ops;
    return NULL;
}

/* ------------------------------------------------------------ data */

void forge_key_release(struct forge_key *k)
{
    free(k->title);
    free(k->key);
    free(k->fingerprint);
    memset(k, 0, sizeof(*k));
}

void forge_key_list_release(struct forge_key_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        forge_key_release(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static char *jstr(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) && v->valuestring ? xstrdup(v->valuestring) : NULL;
}

/* The largest integer a double (cJSON's number) holds exactly. */
#define JSON_INT_MAX 9007199254740991.0

static int parse_key_obj(const cJSON *o, bool can_push, struct forge_key *ret)
{
    struct forge_key k;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");

    if (!cJSON_IsObject(o) || !cJSON_IsNumber(id) || id->valuedouble < 1 ||
        id->valuedouble > JSON_INT_MAX || id->valuedouble != (double)(int64_t)id->valuedouble)
        return BD_E_PROTO;
    memset(&k, 0, sizeof(k));
    k.id = (int64_t)id->valuedouble;
    k.title = jstr(o, "title");
    k.key = jstr(o, "key");
    if (can_push) {
        k.fingerprint = jstr(o, "fingerprint_sha256");
        if (!k.fingerprint)
            k.fingerprint = jstr(o, "fingerprint");
        /* absent can_push is GitLab's default: read-only */
        k.read_only = !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "can_push"));
    } else {
        k.fingerprint = jstr(o, "fingerprint");
        /* absent read_only: GitHub and Gitea default to read-only too */
        const cJSON *ro = cJSON_GetObjectItemCaseSensitive(o, "read_only");
        k.read_only = !cJSON_IsFalse(ro);
    }
    if (k.fingerprint && !*k.fingerprint) {
        free(k.fingerprint);
        k.fingerprint = NULL;
    }
    *ret = k;
    return 0;
}

int forge_parse_key(const char *json, size_t len, bool can_push, struct forge_key *ret)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    int r = root ? parse_key_obj(root, can_push, ret) : BD_E_PROTO;
    cJSON_Delete(root);
    return r;
}

int forge_parse_key_list(const char *json, size_t len, bool can_push, struct forge_key_list *list)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *it;
    int r = 0;

    if (!cJSON_IsArray(root)) {
        r = BD_E_PROTO;
        goto out;
    }
    size_t n = (size_t)cJSON_GetArraySize(root);
    if (list->n + n > FORGE_MAX_KEYS) {
        r = BD_E_TOO_BIG;
        goto out;
    }
    struct forge_key *v = xcalloc(n ? n : 1, sizeof(*v));
    size_t got = 0;
    cJSON_ArrayForEach(it, root)
    {
        r = parse_key_obj(it, can_push, &v[got]);
        if (r < 0)
            break;
        got++;
    }
    if (r < 0) {
        for (size_t i = 0; i < got; i++)
            forge_key_release(&v[i]);
        free(v);
        goto out;
    }
    list->v = xrealloc(list->v, (list->n + got + 1) * sizeof(*list->v));
    memcpy(list->v + list->n, v, got * sizeof(*v));
    list->n += got;
    free(v);
out:
    cJSON_Delete(root);
    return r;
}

/* ------------------------------------------------------------ helpers */

int forge_default_api_root(const char *provider, const char *url_host, char **ret)
{
    const struct forge_ops *ops = forge_ops_lookup(provider);

    if (!ops)
        return BD_E_INVAL;
    if (ops == &forge_github_ops) {
        *ret = xstrdup("https://api.github.com");
        return 0;
    }
    if (!url_host || !*url_host || strpbrk(url_host, "/?#@[] \t\r\n"))
        return BD_E_INVAL;
    *ret = xasprintf("https://%s/api/%s", url_host, ops == &forge_gitlab_ops ? "v4" : "v1");
    return 0;
}

static bool segment_ok(const char *s, size_t n)
{
    if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
            return false;
    return true;
}

/* The number of segments of a repo path, or -1 if one is not a valid segment. */
static int repo_segments(const char *path, size_t n)
{
    int segs = 0;
    for (size_t i = 0; i <= n;) {
        size_t j = i;
        while (j < n && path[j] != '/')
            j++;
        if (!segment_ok(path + i, j - i))
            return -1;
        segs++;
        i = j + 1;
    }
    return segs;
}

int forge_repo_path(const char *ssh_url, char **ret)
{
    if (!ssh_url || strncmp(ssh_url, "ssh://", 6) != 0)
        return BD_E_INVAL;
    const char *path = strchr(ssh_url + 6, '/');
    if (!path)
        return BD_E_INVAL;
    path++;
    size_t n = strlen(path);
    /* as the manifest computes `repository`: ".git" off, then trailing '/' */
    if (n > 4 && strcmp(path + n - 4, ".git") == 0)
        n -= 4;
    while (n && path[n - 1] == '/')
        n--;
    if (repo_segments(path, n) < 2)
        return BD_E_INVAL;
    *ret = xstrndup(path, n);
    return 0;
}

int forge_api_root_host(const char *api_root, char **ret)
{
    CURLU *u = curl_url();
    char *host = NULL;
    int r = BD_E_INVAL;

    if (!u)
        abort();
    if (curl_url_set(u, CURLUPART_URL, api_root, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        goto out;
    char *norm = NULL;
    if (host_normalize(host, strlen(host), 0, &norm) != HOST_OK)
        goto out;
    *ret = norm;
    r = 0;
out:
    curl_free(host);
    curl_url_cleanup(u);
    return r;
}

int forge_check_repo(struct forge *f, const char *repo, bool subgroups)
{
    int segs = repo ? repo_segments(repo, strlen(repo)) : -1;
    if (segs == 2 || (subgroups && segs > 2))
        return 0;
    forge_set_errmsg(f, "%s: a repository is %s, each part of letters, digits, '.', '_', '-'",
                     f->what, subgroups ? "group[/subgroup...]/project" : "owner/repo");
    return BD_E_INVAL;
}

int forge_get_pages(struct forge *f, const char *repo, char *url, bool can_push,
                    forge_next_page_fn *next, struct forge_key_list *ret)
{
    struct forge_key_list l = {0};
    struct forge_resp resp;
    int r = 0;

    for (int page = 1; url; page++) {
        if (page > FORGE_MAX_PAGES) {
            forge_set_errmsg(f, "%s: more than %d pages of keys", f->what, FORGE_MAX_PAGES);
            r = BD_E_TOO_BIG;
            break;
        }
        r = forge_http_request(f, "GET", url, NULL, &resp);
        if (r < 0)
            break;
        if (resp.status != 200) {
            r = forge_http_fail(f, &resp);
            forge_resp_release(&resp);
            break;
        }
        size_t before = l.n;
        r = forge_parse_key_list(resp.body.data, resp.body.len, can_push, &l);
        if (r < 0) {
            if (r == BD_E_TOO_BIG)
                forge_set_errmsg(f, "%s: more than %d keys", f->what, FORGE_MAX_KEYS);
            else
                forge_set_errmsg(f, "%s: page %d is not a JSON array of keys", f->what, page);
            forge_resp_release(&resp);
            break;
        }
        free(url);
        url = next(f, repo, page, &resp, l.n - before, l.n, &r);
        forge_resp_release(&resp);
        if (r < 0)
            break;
    }
    free(url);
    if (r < 0) {
        forge_key_list_release(&l);
        return r;
    }
    *ret = l;
    return 0;
}

/* ------------------------------------------------------------ handle */

const struct forge_opts forge_opts_default = {
    .max_retries = 3,
    .max_wait_s = 60,
    .timeout_s = 30,
    .backoff_ms = 1000,
};

/* Copies src into dst, cut to size - 1 bytes. */
static void copy_cut(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void forge_set_errmsg(struct forge *f, const char *fmt, ...)
{
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    /* the one place every message passes: the token never stays in one */
    forge_http_scrub(f->http, tmp, sizeof(tmp));
    copy_cut(f->errmsg, sizeof(f->errmsg), tmp);
    forge_http_scrub(f->http, f->errmsg, sizeof(f->errmsg));
}

static void errmsg_out(char *errmsg, size_t errmsg_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errmsg_out(char *errmsg, size_t errmsg_len, const char *fmt, ...)
{
    va_list ap;
    if (!errmsg || !errmsg_len)
        return;
    va_start(ap, fmt);
    vsnprintf(errmsg, errmsg_len, fmt, ap);
    va_end(ap);
}

/* An https:// URL with a host, no user info, query or fragment. */
static bool api_root_ok(const char *s)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *user = NULL, *query = NULL, *frag = NULL;
    bool ok = false;

    if (!u)
        abort();
    /* libcurl reads "https:///x" as host x; an API root spells its host */
    if (strncasecmp(s, "https://", 8) == 0 && s[8] && s[8] != '/' && !strpbrk(s, " \t\r\n") &&
        curl_url_set(u, CURLUPART_URL, s, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && *host &&
        curl_url_get(u, CURLUPART_USER, &user, 0) != CURLUE_OK &&
        curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK &&
        curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) != CURLUE_OK)
        ok = strcmp(scheme, "https") == 0;
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(query);
    curl_free(frag);
    curl_url_cleanup(u);
    return ok;
}

int forge_open(const char *provider, const char *api_root, const char *token, const char *ca_file,
               struct forge **ret, char *errmsg, size_t errmsg_len)
{
    const struct forge_ops *ops = forge_ops_lookup(provider);
    struct forge *f;

    if (!ops) {
        errmsg_out(errmsg, errmsg_len,
                   "unknown forge provider \"%s\" (gitea, forgejo, github, gitlab)",
                   provider ? provider : "");
        return BD_E_INVAL;
    }
    if (!api_root || !api_root_ok(api_root)) {
        errmsg_out(errmsg, errmsg_len,
                   "%s: API root \"%s\" is not an https:// URL (no user, query or fragment)",
                   provider, api_root ? api_root : "");
        return BD_E_INVAL;
    }
    /* the token must be a header value: no control characters or blanks */
    size_t tl = token ? strlen(token) : 0;
    bool token_ok = tl >= FORGE_TOKEN_MIN;
    for (size_t i = 0; token_ok && i < tl; i++)
        token_ok = (unsigned char)token[i] > 0x20 && (unsigned char)token[i] != 0x7f;
    if (!token_ok) {
        errmsg_out(errmsg, errmsg_len,
                   "%s: the token is empty, shorter than %d bytes, or holds blanks or control "
                   "characters",
                   provider, FORGE_TOKEN_MIN);
        return BD_E_INVAL;
    }
    f = xcalloc(1, sizeof(*f));
    f->ops = ops;
    size_t n = strlen(api_root);
    while (n && api_root[n - 1] == '/')
        n--;
    f->api_root = xstrndup(api_root, n);
    f->opts = forge_opts_default;
    forge_http_new(f, token, ca_file && *ca_file ? ca_file : NULL);
    *ret = f;
    errmsg_out(errmsg, errmsg_len, "%s", "");
    return 0;
}

void forge_close(struct forge *f)
{
    if (!f)
        return;
    forge_http_free(f->http);
    free(f->api_root);
    free(f);
}

void forge_set_opts(struct forge *f, const struct forge_opts *opts)
{
    f->opts = *opts;
    if (f->opts.max_retries < 0)
        f->opts.max_retries = 0;
    if (f->opts.max_wait_s < 0)
        f->opts.max_wait_s = 0;
    if (f->opts.backoff_ms < 0)
        f->opts.backoff_ms = 0;
}

const char *forge_errmsg(const struct forge *f)
{
    return f->errmsg;
}

unsigned long forge_mutations(const struct forge *f)
{
    return f->mutations;
}

time_t forge_retry_at(const struct forge *f)
{
    return f->retry_at;
}

/* ------------------------------------------------------------ wrappers */

/* Names the call ("gitea: add key to 'o/r'") and clears the last error. */
static void begin(struct forge *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void begin(struct forge *f, const char *fmt, ...)
{
    char tmp[sizeof(f->what) + 32];
    va_list ap;
    int n = snprintf(tmp, sizeof(tmp), "%s: ", f->ops->name);
    va_start(ap, fmt);
    vsnprintf(tmp + n, sizeof(tmp) - (size_t)n, fmt, ap);
    va_end(ap);
    copy_cut(f->what, sizeof(f->what), tmp);
    for (char *p = f->what; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    f->errmsg[0] = '\0';
    f->retry_at = 0;
}

static int end(struct forge *f, int r)
{
    if (r == 0)
        f->errmsg[0] = '\0'; /* a retried failure left one */
    else if (!f->errmsg[0])
        forge_set_errmsg(f, "%s: %s", f->what, bd_strerror(r));
    return r;
}

int forge_add_key(struct forge *f, const char *repo, const char *title, const char *pubkey_line,
                  int64_t *ret_id)
{
    begin(f, "add key to '%.100s'", repo);
    if (!title || !*title || !pubkey_line || !*pubkey_line) {
        forge_set_errmsg(f, "%s: the title and the key must not be empty", f->what);
        return BD_E_INVAL;
    }
    fault_point("forge add key");
    int rc = end(f, f->ops->add_key(f, repo, title, pubkey_line, ret_id));
    if (rc == 0)
        fault_point("forge key added"); /* a crash before the caller records the id */
    return rc;
}

int forge_list_keys(struct forge *f, const char *repo, struct forge_key_list *ret)
{
    begin(f, "list keys of '%.100s'", repo);
    return end(f, f->ops->list_keys(f, repo, ret));
}

int forge_delete_key(struct forge *f, const char *repo, int64_t id)
{
    begin(f, "delete key %" PRId64 " of '%.100s'", id, repo);
    if (id < 1) {
        forge_set_errmsg(f, "%s: not a key id", f->what);
        return BD_E_INVAL;
    }
    fault_point("forge delete key");
    return end(f, f->ops->delete_key(f, repo, id));
}
