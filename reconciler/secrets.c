/*
 * secrets.c - the secret store: the secrets file, `--secret-env`, host
 * bindings (see secrets.h).
 *
 * Every message here is built from validated names and host entries only.
 * The text right of the first '=' on a line is the value and never reaches
 * a format string; the text left of it is quoted only once it has been
 * validated as a name or a host, because a user who forgot the '=' may have
 * written a value there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "buf.h"
#include "err.h"
#include "host.h"
#include "secrets.h"
#include "xalloc.h"

#define ENV_ORIGIN "--secret-env"

int secret_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > SECRET_NAME_MAX || (name[0] >= '0' && name[0] <= '9'))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

/* The rules of proxy-secrets.schema.json: the value becomes a header value. */
static int value_ok(const char *s, size_t n)
{
    if (n == 0 || n > SECRET_VALUE_MAX || s[0] == ' ' || s[n - 1] == ' ')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return 0;
    }
    return 1;
}

static void secret_release(struct secret *s)
{
    if (s->value)
        OPENSSL_cleanse(s->value, s->value_len);
    free(s->value);
    free(s->name);
    for (size_t i = 0; i < s->n_hosts; i++)
        free(s->hosts[i]);
    free(s->hosts);
    free(s->origin);
    memset(s, 0, sizeof(*s));
}

void secret_store_free(struct secret_store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        secret_release(&s->v[i]);
    free(s->v);
    free(s);
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static struct slice trim(const char *p, size_t n)
{
    while (n && is_blank(*p))
        p++, n--;
    while (n && is_blank(p[n - 1]))
        n--;
    return (struct slice){p, n};
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Parses "NAME@entry,entry" (the text left of '=') into out->name and the
 * binding.  Errors go to diags at path:line; returns 0 or -1 (out holds
 * whatever was parsed and is released by the caller).
 */
static int parse_head(struct slice head, const char *path, int line, struct diag_list *diags,
                      struct secret *out)
{
    const char *at = memchr(head.ptr, '@', head.len);
    struct slice name = trim(head.ptr, at ? (size_t)(at - head.ptr) : head.len);
    if (!secret_name_ok(name.ptr, name.len)) {
        diag_error(diags, path, line, 0, NULL, NULL,
                   "invalid secret name (not shown): upper-case letters, digits and '_', not "
                   "starting with a digit, at most %d bytes",
                   SECRET_NAME_MAX);
        return -1;
    }
    out->name = xstrndup(name.ptr, name.len);
    if (!at) {
        diag_error(diags, path, line, 0, NULL, NULL,
                   "secret '%s' has no host binding: write %s@HOST[,HOST...] ('@*' allows any "
                   "host, logged)",
                   out->name, out->name);
        return -1;
    }
    const char *p = at + 1, *end = head.ptr + head.len;
    int rc = 0;
    size_t cap = 4;
    out->hosts = xcalloc(cap, sizeof(*out->hosts));
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        struct slice e = trim(p, (comma ? comma : end) - p);
        char *host = NULL;
        if (!e.len) {
            diag_error(diags, path, line, 0, NULL, NULL, "secret '%s': empty entry in host binding",
                       out->name);
            rc = -1;
        } else if (slice_eq_cstr(e, "*")) {
            out->any_host = 1;
            host = xstrdup("*");
        } else {
            int herr = host_normalize(e.ptr, e.len, 1, &host);
            if (herr != HOST_OK) {
                diag_error(diags, path, line, 0, NULL, NULL,
                           "secret '%s': invalid host '%.*s' in binding: %s", out->name,
                           (int)(e.len > 253 ? 253 : e.len), e.ptr, host_strerror(herr));
                rc = -1;
            }
        }
        int dup = 0;
        for (size_t i = 0; host && i < out->n_hosts; i++)
            dup |= !strcmp(out->hosts[i], host);
        if (host && !dup) {
            if (out->n_hosts == cap)
                out->hosts = xrealloc(out->hosts, (cap *= 2) * sizeof(*out->hosts));
            out->hosts[out->n_hosts++] = host;
        } else {
            free(host);
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    if (out->any_host && out->n_hosts > 1) {
        diag_error(diags, path, line, 0, NULL, NULL,
                   "secret '%s': '*' (any host) must be the only entry of a binding", out->name);
        rc = -1;
    }
    qsort(out->hosts, out->n_hosts, sizeof(*out->hosts), cmp_str);
    return rc;
}

static void store_add(struct secret_store *s, size_t *cap, struct secret *sec)
{
    if (s->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        s->v = xrealloc(s->v, *cap * sizeof(*s->v));
    }
    s->v[s->n++] = *sec;
    memset(sec, 0, sizeof(*sec));
}

/* One line of the file (no newline).  Returns 0 or -1 after adding errors. */
static int parse_line(const char *p, size_t n, const char *path, int line, struct diag_list *diags,
                      struct secret *out)
{
    const char *eq = memchr(p, '=', n);
    if (!eq) {
        diag_error(diags, path, line, 0, NULL, NULL,
                   "expected NAME@HOST[,HOST...]=VALUE (line not shown)");
        return -1;
    }
    if (parse_head((struct slice){p, (size_t)(eq - p)}, path, line, diags, out) < 0)
        return -1;
    const char *v = eq + 1;
    size_t vn = n - (size_t)(v - p);
    if (!value_ok(v, vn)) {
        diag_error(diags, path, line, 0, NULL, NULL,
                   "the value of secret '%s' must be 1 to %d bytes with no control characters "
                   "and no leading or trailing space (value not shown)",
                   out->name, SECRET_VALUE_MAX);
        return -1;
    }
    out->value = xmemdup0(v, vn);
    out->value_len = vn;
    out->origin = xasprintf("%s:%d", path, line);
    return 0;
}

/*
 * Opens and reads the secrets file into a buffer allocated once (so no
 * copy of a value is left behind by a reallocation); the caller wipes it.
 * Returns 0 with *ret_data NULL when the file is absent and may be.
 */
static int read_secrets_file(const char *path, int must_exist, struct diag_list *diags,
                             char **ret_data, size_t *ret_len)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    int rc = 0;
    char *data = NULL;
    size_t cap = 0;
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT && !must_exist) {
            *ret_data = NULL;
            *ret_len = 0;
            return 0;
        }
        if (e == ELOOP) {
            diag_error(diags, path, 0, 0, NULL, NULL,
                       "the secrets file is a symbolic link: refused (use the real path)");
            return BD_E_INVAL;
        }
        diag_error(diags, path, 0, 0, NULL, NULL, "cannot open the secrets file: %s", strerror(e));
        return e == ENOENT ? BD_E_NOTFOUND : BD_E_IO;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        diag_error(diags, path, 0, 0, NULL, NULL, "cannot stat the secrets file: %s",
                   strerror(errno));
        rc = BD_E_IO;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        diag_error(diags, path, 0, 0, NULL, NULL, "the secrets file is not a regular file");
        rc = BD_E_INVAL;
        goto out;
    }
    if (st.st_uid != geteuid()) {
        diag_error(diags, path, 0, 0, NULL, NULL,
                   "the secrets file is owned by uid %ld, not by the running user (uid %ld)",
                   (long)st.st_uid, (long)geteuid());
        rc = BD_E_INVAL;
    }
    mode_t mode = st.st_mode & 07777;
    if (mode != 0600 && mode != 0400) {
        diag_error(diags, path, 0, 0, NULL, NULL,
                   "the secrets file has mode %04o; it must be 0600 or 0400 (chmod 600 '%s')",
                   (unsigned)mode, path);
        rc = BD_E_INVAL;
    }
    if (rc)
        goto out;
    if ((uint64_t)st.st_size > SECRETS_FILE_MAX) {
        diag_error(diags, path, 0, 0, NULL, NULL, "the secrets file is over %zu bytes",
                   SECRETS_FILE_MAX);
        rc = BD_E_TOO_BIG;
        goto out;
    }
    size_t len = 0;
    cap = (size_t)st.st_size + 1;
    data = xmalloc(cap + 1);
    for (;;) {
        ssize_t r = read(fd, data + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            diag_error(diags, path, 0, 0, NULL, NULL, "cannot read the secrets file: %s",
                       strerror(errno));
            rc = BD_E_IO;
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == cap) {
            diag_error(diags, path, 0, 0, NULL, NULL,
                       "the secrets file grew while it was read; try again");
            rc = BD_E_IO;
            goto out;
        }
    }
    data[len] = '\0';
    *ret_data = data;
    *ret_len = len;
    data = NULL;
out:
    if (data) {
        OPENSSL_cleanse(data, cap + 1);
        free(data);
    }
    close(fd);
    return rc;
}

static void parse_file(const char *data, size_t len, const char *path, struct diag_list *diags,
                       struct secret_store *s, size_t *cap, int *failed)
{
    int line = 0;
    for (size_t pos = 0; pos < len;) {
        const char *p = data + pos;
        const char *nl = memchr(p, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - p) : len - pos;
        pos += n + (nl ? 1 : 0);
        line++;
        if (n && p[n - 1] == '\r')
            n--;
        struct slice t = trim(p, n);
        if (!t.len || t.ptr[0] == '#')
            continue;
        /* Trailing blanks belong to the value, which then is refused. */
        size_t lead = (size_t)(t.ptr - p);
        struct secret sec = {0};
        if (parse_line(p + lead, n - lead, path, line, diags, &sec) < 0)
            *failed = 1;
        else
            store_add(s, cap, &sec);
        secret_release(&sec);
    }
}

static void parse_env_spec(const char *spec, struct diag_list *diags, struct secret_store *s,
                           size_t *cap, int *failed)
{
    struct secret sec = {0};
    if (strchr(spec, '=')) {
        diag_error(diags, ENV_ORIGIN, 0, 0, NULL, NULL,
                   "expected NAME@HOST[,HOST...]: the value comes from the environment variable "
                   "NAME, never from the command line (argument not shown)");
        *failed = 1;
        return;
    }
    if (parse_head(slice_from_cstr(spec), ENV_ORIGIN, 0, diags, &sec) < 0) {
        *failed = 1;
        goto out;
    }
    const char *v = getenv(sec.name);
    if (!v) {
        diag_error(diags, ENV_ORIGIN, 0, 0, NULL, NULL, "environment variable '%s' is not set",
                   sec.name);
        *failed = 1;
        goto out;
    }
    size_t vn = strlen(v);
    if (!value_ok(v, vn)) {
        diag_error(diags, ENV_ORIGIN, 0, 0, NULL, NULL,
                   "the value of environment variable '%s' must be 1 to %d bytes with no control "
                   "characters and no leading or trailing space (value not shown)",
                   sec.name, SECRET_VALUE_MAX);
        *failed = 1;
        goto out;
    }
    sec.value = xmemdup0(v, vn);
    sec.value_len = vn;
    sec.origin = xstrdup(ENV_ORIGIN);
    store_add(s, cap, &sec);
out:
    secret_release(&sec);
}

/* Splits "FILE:LINE" back into path and line for a positioned diagnostic. */
static void origin_pos(const char *origin, char **ret_path, int *ret_line)
{
    const char *colon = strrchr(origin, ':');
    char *end = NULL;
    long l = colon ? strtol(colon + 1, &end, 10) : 0;
    if (colon && end && !*end && l > 0 && l < 1000000000) {
        *ret_path = xstrndup(origin, (size_t)(colon - origin));
        *ret_line = (int)l;
    } else {
        *ret_path = xstrdup(origin);
        *ret_line = 0;
    }
}

int secret_store_load(const char *path, int must_exist, const char *const *env_specs,
                      size_t n_env_specs, struct diag_list *diags, struct secret_store **ret)
{
    struct secret_store *s = xcalloc(1, sizeof(*s));
    size_t cap = 0;
    int failed = 0;
    char *data = NULL;
    size_t len = 0;
    int rc = path ? read_secrets_file(path, must_exist, diags, &data, &len) : 0;
    if (rc)
        goto out;
    if (data) {
        parse_file(data, len, path, diags, s, &cap, &failed);
        OPENSSL_cleanse(data, len);
        free(data);
    }
    for (size_t i = 0; i < n_env_specs; i++)
        parse_env_spec(env_specs[i], diags, s, &cap, &failed);

    for (size_t i = 0; i < s->n; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(s->v[i].name, s->v[j].name)) {
                char *p;
                int line;
                origin_pos(s->v[i].origin, &p, &line);
                diag_error(diags, p, line, 0, NULL, NULL,
                           "secret '%s' is defined twice (first at %s)", s->v[i].name,
                           s->v[j].origin);
                free(p);
                failed = 1;
                break;
            }
    if (failed) {
        rc = BD_E_PARSE;
        goto out;
    }
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].any_host) {
            char *p;
            int line;
            origin_pos(s->v[i].origin, &p, &line);
            diag_add(diags, DIAG_WARNING, p, line, 0, NULL, NULL,
                     "secret '%s' is bound to any host ('*'): an explicit opt-out, logged",
                     s->v[i].name);
            free(p);
        }
    *ret = s;
    s = NULL;
out:
    secret_store_free(s);
    return rc;
}

/* Does the binding cover the host (manifest.md, Secrets)? */
static int binding_covers(const struct secret *s, const char *host)
{
    return host_binding_covers((const char *const *)s->hosts, s->n_hosts, host);
}

static const struct secret *find(const struct secret_store *s, const char *name)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (!strcmp(s->v[i].name, name))
            return &s->v[i];
    return NULL;
}

int secret_store_lookup(const struct secret_store *s, const char *name, const char *route_host,
                        const struct secret **ret)
{
    const struct secret *sec = find(s, name);
    if (!sec)
        return BD_E_NOTFOUND;
    if (!binding_covers(sec, route_host))
        return BD_E_INVAL;
    *ret = sec;
    return 0;
}

char *secret_lookup_message(const struct secret_store *s, int err, const char *name,
                            const char *route_host)
{
    const struct secret *sec = find(s, name);
    if (err == BD_E_NOTFOUND || !sec)
        return xasprintf("secret '%s' (for host '%s') is not in the secret store (the secrets "
                         "file or --secret-env)",
                         name, route_host);
    struct buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < sec->n_hosts; i++)
        buf_appendf(&b, "%s%s", i ? "," : "", sec->hosts[i]);
    char *binding = buf_detach(&b, NULL);
    char *m = !strncmp(route_host, "*.", 2)
                  ? xasprintf("secret '%s' may not be used for host '%s': a wildcard route needs "
                              "the binding to name that same wildcard (bound to %s at %s)",
                              name, route_host, binding, sec->origin)
                  : xasprintf("secret '%s' may not be used for host '%s': outside its host "
                              "binding (bound to %s at %s)",
                              name, route_host, binding, sec->origin);
    free(binding);
    return m;
}
