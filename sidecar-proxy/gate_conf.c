/*
 * gate_conf.c - the git gate's config.json (gate.h).
 *
 * The reconciler writes it; we still check every field strictly because
 * several of them end up in an ssh config file and, through ProxyCommand
 * and GIT_SSH_COMMAND, in a shell command line: each is limited to a
 * character set that needs no quoting there.  Unknown keys are errors.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "gate.h"
#include "xalloc.h"

static int in_set(const char *s, const char *extra)
{
    for (const char *p = s; *p; p++) {
        char ch = *p;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
            continue;
        if (!strchr(extra, ch))
            return 0;
    }
    return 1;
}

int gate_safe_path(const char *s)
{
    return *s && in_set(s, "/._+-");
}

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 100 && s[0] != '.' && s[0] != '-' && in_set(s, "._-") && !strstr(s, "..");
}

/* host name or IPv4, or a bracket-less IPv6 literal: letters, digits, . - : _ */
static int valid_host(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 253 && s[0] != '-' && in_set(s, ".-:_");
}

/* ssh://[user@]host[:port]/path with only unreserved-ish bytes. */
static int valid_url(const char *s)
{
    size_t n = strlen(s);
    if (n > 1024 || strncmp(s, "ssh://", 6) != 0 || !in_set(s + 6, "._-~/@:[]%+=,"))
        return 0;
    const char *path = strchr(s + 6, '/');
    return path && path > s + 6 && path[1] != '\0';
}

/* 1 if url's authority is [user@]host[:port] with this host (any case) and port (22 if none). */
static int url_names(const char *url, const char *host, unsigned port)
{
    const char *a = url + 6, *end = strchr(a, '/'), *at = memchr(a, '@', (size_t)(end - a));
    if (at)
        a = at + 1;
    const char *hend = end, *colon = NULL;
    if (*a == '[') {
        const char *rb = memchr(a, ']', (size_t)(end - a));
        if (!rb)
            return 0;
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
        if (rb + 1 != end && !colon)
            return 0;
        hend = rb + 1;
        a++;
        hend--;
    } else {
        colon = memchr(a, ':', (size_t)(end - a));
        if (colon)
            hend = colon;
    }
    unsigned p = 22;
    if (colon) {
        char *e;
        unsigned long v = strtoul(colon + 1, &e, 10);
        if (e != end || colon + 1 == end || v < 1 || v > 65535)
            return 0;
        p = (unsigned)v;
    }
    return strlen(host) == (size_t)(hend - a) && !strncasecmp(a, host, (size_t)(hend - a)) &&
           p == port;
}

/* "TYPE BASE64": TYPE like ssh-ed25519 or ecdsa-sha2-nistp256, no comment. */
static int valid_host_key(const char *s)
{
    if (!*s)
        return 1;
    const char *sp = strchr(s, ' ');
    if (!sp || sp == s || strlen(s) > 4096)
        return 0;
    char *type = xstrndup(s, (size_t)(sp - s));
    int ok = in_set(type, "-@.") && sp[1] != '\0' && in_set(sp + 1, "+/=");
    free(type);
    return ok;
}

static int valid_proxy(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || strlen(s) > 300 || !in_set(s, ".-:_[]"))
        return 0;
    char *end;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    return colon[1] != '\0' && *end == '\0' && errno == 0 && p >= 1 && p <= 65535;
}

static int fail(char **ret_err, const char *key)
{
    *ret_err = xasprintf("'%s' must be a whole number of bytes, 1..2^40", key);
    return BD_E_INVAL;
}

static int want_keys(const cJSON *o, const char *const *keys, size_t n, const char *where,
                     char **ret_err)
{
    for (const cJSON *k = o->child; k; k = k->next) {
        size_t i;
        for (i = 0; i < n; i++)
            if (!strcmp(k->string, keys[i]))
                break;
        if (i == n) {
            *ret_err = xasprintf("%s: unknown key '%s'", where, k->string);
            return BD_E_INVAL;
        }
    }
    return 0;
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(x) && x->valuestring ? x->valuestring : NULL;
}

/* An optional positive integer byte count; 0 when absent. */
static int bytes_of(const cJSON *o, const char *key, uint64_t *ret, char **ret_err)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    *ret = 0;
    if (!x)
        return 0;
    if (!cJSON_IsNumber(x) || x->valuedouble < 1 || x->valuedouble > (double)((uint64_t)1 << 40) ||
        x->valuedouble != (double)(uint64_t)x->valuedouble)
        return fail(ret_err, key);
    *ret = (uint64_t)x->valuedouble;
    return 0;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return xstrdup(".");
    if (slash == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

static char *self_exe(void)
{
    char b[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", b, sizeof(b) - 1);
    if (n <= 0)
        return NULL;
    return xstrndup(b, (size_t)n);
}

int gate_conf_load(const char *path, const char *root, struct gate_conf *ret, char **ret_err)
{
    static const char *const top_keys[] = {"proxy", "repos", "max_blob_bytes", "max_push_bytes"};
    static const char *const repo_keys[] = {"name", "url", "host", "port", "host_key"};
    struct gate_conf c = {0};
    struct buf b;
    cJSON *doc = NULL;
    int r;

    *ret_err = NULL;
    buf_init(&b, GATE_CONFIG_MAX_SIZE);
    r = buf_read_file(&b, path);
    if (r == BD_E_TOO_BIG) {
        *ret_err = xasprintf("%s: over %zu bytes", path, (size_t)GATE_CONFIG_MAX_SIZE);
        goto out;
    }
    if (r < 0) {
        *ret_err = xasprintf("%s: %s", path, strerror(errno));
        goto out;
    }
    r = BD_E_INVAL;
    doc = cJSON_ParseWithLength(b.data ? b.data : "", b.len);
    if (!cJSON_IsObject(doc)) {
        *ret_err = xasprintf("%s: not a JSON object", path);
        goto out;
    }
    if ((r = want_keys(doc, top_keys, sizeof(top_keys) / sizeof(*top_keys), path, ret_err)) < 0)
        goto out;
    r = BD_E_INVAL;
    const char *proxy = str_of(doc, "proxy");
    if (!proxy || !valid_proxy(proxy)) {
        *ret_err = xasprintf("%s: 'proxy' must be HOST:PORT", path);
        goto out;
    }
    if ((r = bytes_of(doc, "max_blob_bytes", &c.max_blob, ret_err)) < 0 ||
        (r = bytes_of(doc, "max_push_bytes", &c.max_push, ret_err)) < 0)
        goto out;
    r = BD_E_INVAL;
    const cJSON *repos = cJSON_GetObjectItemCaseSensitive(doc, "repos");
    int n = cJSON_GetArraySize(repos);
    if (!cJSON_IsArray(repos) || n > GATE_MAX_REPOS) {
        *ret_err =
            xasprintf("%s: 'repos' must be an array of at most %d repos", path, GATE_MAX_REPOS);
        goto out;
    }
    c.repos = xcalloc((size_t)n + 1, sizeof(*c.repos));
    for (const cJSON *o = repos->child; o; o = o->next) {
        char where[64];
        snprintf(where, sizeof(where), "repos[%zu]", c.n_repos);
        if (!cJSON_IsObject(o)) {
            *ret_err = xasprintf("%s: %s is not an object", path, where);
            goto out;
        }
        if ((r = want_keys(o, repo_keys, sizeof(repo_keys) / sizeof(*repo_keys), where, ret_err)) <
            0)
            goto out;
        r = BD_E_INVAL;
        const char *name = str_of(o, "name"), *url = str_of(o, "url"), *host = str_of(o, "host"),
                   *key = str_of(o, "host_key");
        const cJSON *port = cJSON_GetObjectItemCaseSensitive(o, "port");
        if (!name || !valid_name(name)) {
            *ret_err = xasprintf("%s: %s.name must be letters, digits, '.', '_', '-'", path, where);
            goto out;
        }
        if (gate_conf_repo(&c, name, strlen(name))) {
            *ret_err = xasprintf("%s: repo '%s' given twice", path, name);
            goto out;
        }
        if (!url || !valid_url(url)) {
            *ret_err = xasprintf("%s: %s.url must be ssh://[user@]host[:port]/path", path, where);
            goto out;
        }
        if (!host || !valid_host(host)) {
            *ret_err = xasprintf("%s: %s.host is not a host name or address", path, where);
            goto out;
        }
        if (!cJSON_IsNumber(port) || port->valuedouble < 1 || port->valuedouble > 65535 ||
            port->valuedouble != (double)(int)port->valuedouble) {
            *ret_err = xasprintf("%s: %s.port must be 1..65535", path, where);
            goto out;
        }
        if (!url_names(url, host, (unsigned)port->valuedouble)) {
            /* ssh checks the host key of, and the tunnel is opened to, the URL's host and port */
            *ret_err = xasprintf("%s: %s.url's host and port are not %s.host and %s.port", path,
                                 where, where, where);
            goto out;
        }
        if (!key || !valid_host_key(key)) {
            *ret_err = xasprintf("%s: %s.host_key must be \"TYPE BASE64\" or \"\"", path, where);
            goto out;
        }
        struct gate_repo *g = &c.repos[c.n_repos++];
        g->name = xstrdup(name);
        g->url = xstrdup(url);
        g->host = xstrdup(host);
        g->port = (unsigned)port->valuedouble;
        g->host_key = xstrdup(key);
    }
    c.proxy = xstrdup(proxy);
    c.path = xstrdup(path);
    c.dir = dir_of(path);
    c.root = xstrdup(root);
    c.state = xasprintf("%s/.gate", root);
    c.self = self_exe();
    if (!c.max_blob)
        c.max_blob = GATE_MAX_BLOB;
    if (!c.max_push)
        c.max_push = GATE_MAX_PUSH;
    if (!c.self || !gate_safe_path(c.self) || !gate_safe_path(c.path) || !gate_safe_path(c.root)) {
        *ret_err = xasprintf("%s", "the executable, the config directory and the root must be "
                                   "paths of letters, digits and /._+-");
        goto out;
    }
    r = 0;
    *ret = c;
    c = (struct gate_conf){0};
out:
    gate_conf_release(&c);
    cJSON_Delete(doc);
    buf_release(&b);
    return r;
}

void gate_conf_release(struct gate_conf *c)
{
    for (size_t i = 0; i < c->n_repos; i++) {
        free(c->repos[i].name);
        free(c->repos[i].url);
        free(c->repos[i].host);
        free(c->repos[i].host_key);
    }
    free(c->repos);
    free(c->path);
    free(c->dir);
    free(c->root);
    free(c->state);
    free(c->self);
    free(c->proxy);
    *c = (struct gate_conf){0};
}

const struct gate_repo *gate_conf_repo(const struct gate_conf *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->n_repos; i++)
        if (strlen(c->repos[i].name) == len && !memcmp(c->repos[i].name, name, len))
            return &c->repos[i];
    return NULL;
}

void gate_vlog(int indent, const char *fmt, va_list ap)
{
    fprintf(stderr, "gate: %*s", indent, "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void gate_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gate_vlog(0, fmt, ap);
    va_end(ap);
}
