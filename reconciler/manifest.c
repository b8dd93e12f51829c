/*
 * manifest.c - one manifest file to a typed struct bottle.
 *
 * The YAML node tree (yaml_tree.h) is walked through key tables: each
 * mapping the spec defines has a table of {name, setter, required}; a key
 * not in the table is an error listing the allowed ones, a required key
 * that is missing is an error at the mapping, and each setter checks the
 * value's type and the spec's rule for it.  Every problem becomes a
 * diagnostic and the walk goes on, so one run reports everything.
 *
 * Invariant: no diagnostic formats a value that may be a credential.
 * Every string scalar is run through the credential detectors first; a
 * match is reported masked (detect_mask) and the value is not echoed by
 * any later message, because the setter gives up on it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <curl/curl.h>
#include <openssl/evp.h>
#include <pcre2.h>

#include "buf.h"
#include "detect.h"
#include "err.h"
#include "host.h"
#include "manifest.h"
#include "urlpath.h"
#include "xalloc.h"

struct pctx {
    struct arena *a;
    struct diag_list *diags;
    const char *path;
    const char *bottle;
    int failed;
};

typedef void (*setter_fn)(struct pctx *c, const struct ynode *v, void *obj);

struct key_def {
    const char *name;
    setter_fn set;
    int required;
};

#define NKEYS(t) (sizeof(t) / sizeof((t)[0]))

static void err_at(struct pctx *c, const struct ynode *n, const char *allowed, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void err_at(struct pctx *c, const struct ynode *n, const char *allowed, const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    va_end(ap);
    diag_add(c->diags, DIAG_ERROR, c->path, n ? n->line : 0, n ? n->col : 0, c->bottle, allowed,
             "%s", msg);
    free(msg);
    c->failed = 1;
}

static struct mpos pos_of(struct pctx *c, const struct ynode *n)
{
    return (struct mpos){c->path, n->line, n->col};
}

static char *join_allowed(struct arena *a, const struct key_def *keys, size_t n)
{
    struct buf b;
    buf_init(&b, 0);
    for (size_t i = 0; i < n; i++)
        buf_appendf(&b, "%s%s", i ? ", " : "", keys[i].name);
    char *s = arena_strdup(a, buf_cstr(&b));
    buf_release(&b);
    return s;
}

/*
 * Walks a mapping through a key table.  `what` names the mapping in
 * messages ("agent", "route", ...), NULL for the top level.
 */
static void walk_map(struct pctx *c, const struct ynode *n, const char *what,
                     const struct key_def *keys, size_t nkeys, void *obj)
{
    if (n->kind != YNODE_MAP) {
        err_at(c, n, NULL, "%s must be a mapping, got %s", what ? what : "front matter",
               ynode_type_name(n));
        return;
    }
    for (size_t i = 0; i < n->u.map.n; i++) {
        const struct ynode *k = n->u.map.pairs[i].key;
        const struct key_def *def = NULL;
        for (size_t j = 0; j < nkeys; j++)
            if (!strcmp(keys[j].name, k->u.scalar.str))
                def = &keys[j];
        if (!def) {
            if (what)
                err_at(c, k, join_allowed(c->a, keys, nkeys), "unknown key '%s' in %s",
                       k->u.scalar.str, what);
            else
                err_at(c, k, join_allowed(c->a, keys, nkeys), "unknown key '%s'", k->u.scalar.str);
            continue;
        }
        if (def->set)
            def->set(c, n->u.map.pairs[i].value, obj);
    }
    for (size_t j = 0; j < nkeys; j++)
        if (keys[j].required && !ynode_map_get(n, keys[j].name))
            err_at(c, n, NULL, "missing required key '%s'%s%s", keys[j].name, what ? " in " : "",
                   what ? what : "");
}

/* ------------------------------------------------------------------ scalars */

/* Refuses a value that looks like a credential, without echoing it. */
static int looks_secret(struct pctx *c, const struct ynode *n)
{
    struct detect_match m;
    if (!detect_scan(n->u.scalar.str, n->u.scalar.len, &m))
        return 0;
    char *masked = detect_mask(n->u.scalar.str, n->u.scalar.len, &m);
    err_at(c, n, NULL,
           "value looks like a credential (%s: %s); manifests must name secrets, not hold them",
           m.detector, masked);
    free(masked);
    return 1;
}

static int is_scalar(struct pctx *c, const struct ynode *n, const char *what, const char *expect)
{
    if (n->kind == YNODE_SCALAR)
        return 1;
    err_at(c, n, NULL, "%s must be %s, got %s", what, expect, ynode_type_name(n));
    return 0;
}

/* A string (YAML core type str).  NULL after an error. */
static const char *want_str(struct pctx *c, const struct ynode *n, const char *what)
{
    if (!is_scalar(c, n, what, "a string"))
        return NULL;
    if (n->u.scalar.type != YSCALAR_STR) {
        err_at(c, n, NULL, "%s must be a string, got %s (quote it)", what, ynode_type_name(n));
        return NULL;
    }
    if (memchr(n->u.scalar.str, '\0', n->u.scalar.len)) {
        err_at(c, n, NULL, "%s must not contain NUL characters", what);
        return NULL;
    }
    if (looks_secret(c, n))
        return NULL;
    return n->u.scalar.str;
}

/* A string, or a number kept as its source text (env values, argv, users). */
static const char *want_text(struct pctx *c, const struct ynode *n, const char *what)
{
    if (n->kind == YNODE_SCALAR &&
        (n->u.scalar.type == YSCALAR_INT || n->u.scalar.type == YSCALAR_FLOAT))
        return looks_secret(c, n) ? NULL : n->u.scalar.str;
    return want_str(c, n, what);
}

static int want_bool(struct pctx *c, const struct ynode *n, const char *what, int *ret)
{
    if (!is_scalar(c, n, what, "true or false"))
        return -1;
    if (n->u.scalar.type != YSCALAR_BOOL) {
        err_at(c, n, "true, false", "%s must be a boolean, got %s '%s'", what, ynode_type_name(n),
               n->u.scalar.type == YSCALAR_STR &&
                       detect_scan(n->u.scalar.str, n->u.scalar.len, NULL)
                   ? "(masked)"
                   : n->u.scalar.str);
        return -1;
    }
    *ret = n->u.scalar.bval;
    return 0;
}

/* Parses a core-schema integer scalar (decimal, 0o, 0x) into [min, max]. */
static int want_int(struct pctx *c, const struct ynode *n, const char *what, int64_t min,
                    int64_t max, int64_t *ret)
{
    if (!is_scalar(c, n, what, "an integer"))
        return -1;
    if (n->u.scalar.type != YSCALAR_INT) {
        err_at(c, n, NULL, "%s must be an integer, got %s", what, ynode_type_name(n));
        return -1;
    }
    const char *s = n->u.scalar.str;
    int neg = 0, base = 10;
    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
        base = s[1] == 'x' ? 16 : 8;
        s += 2;
    }
    int64_t v = 0;
    for (; *s; s++) {
        int d = isdigit((unsigned char)*s) ? *s - '0' : tolower((unsigned char)*s) - 'a' + 10;
        if (v > (INT64_MAX - d) / base) {
            v = INT64_MAX;
            break;
        }
        v = v * base + d;
    }
    if (neg)
        v = -v;
    if (v < min || v > max) {
        err_at(c, n, NULL, "%s must be between %lld and %lld, got %s", what, (long long)min,
               (long long)max, n->u.scalar.str);
        return -1;
    }
    *ret = v;
    return 0;
}

static const struct ynode *want_seq(struct pctx *c, const struct ynode *n, const char *what)
{
    if (n->kind == YNODE_SEQ)
        return n;
    err_at(c, n, NULL, "%s must be a list, got %s", what, ynode_type_name(n));
    return NULL;
}

/* Checks s against a small character-class pattern: first char class, rest class, max len. */
static int charset_ok(const char *s, const char *first, const char *rest, size_t maxlen)
{
    size_t n = strlen(s);
    if (n == 0 || n > maxlen || !strchr(first, s[0]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!strchr(rest, s[i]))
            return 0;
    return 1;
}

#define LOWER_DIGIT "abcdefghijklmnopqrstuvwxyz0123456789"
#define UPPER       "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define ALNUM       LOWER_DIGIT UPPER

int bottle_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > BOTTLE_NAME_MAX || s[0] == '-' || s[len - 1] == '-')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!s[i] || !strchr(LOWER_DIGIT "-", s[i]))
            return 0;
    return 1;
}

static int secret_name_valid(const char *s)
{
    return charset_ok(s, UPPER "_", UPPER "0123456789_", 256);
}

/* ------------------------------------------------------------------ top */

static void set_name(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    const char *s = want_str(c, v, "name");
    if (!s)
        return;
    if (!bottle_name_valid(s, strlen(s))) {
        err_at(c, v, NULL,
               "invalid bottle name '%s': 1-40 characters of a-z, 0-9 and '-', starting and "
               "ending with a letter or digit",
               s);
        return;
    }
    b->name = s;
    b->name_pos = pos_of(c, v);
}

static void set_abstract(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    want_bool(c, v, "abstract", &b->abstract);
}

static void add_extends(struct pctx *c, struct bottle *b, const struct ynode *v)
{
    const char *s = want_str(c, v, "extends");
    if (!s)
        return;
    if (!bottle_name_valid(s, strlen(s))) {
        err_at(c, v, NULL, "extends names an invalid bottle name '%s'", s);
        return;
    }
    b->extends[b->n_extends] = s;
    b->extends_pos[b->n_extends++] = pos_of(c, v);
}

static void set_extends(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    size_t n = v->kind == YNODE_SEQ ? v->u.seq.n : 1;
    b->extends = arena_alloc(c->a, n * sizeof(*b->extends));
    b->extends_pos = arena_alloc(c->a, n * sizeof(*b->extends_pos));
    if (v->kind != YNODE_SEQ) {
        add_extends(c, b, v);
        return;
    }
    for (size_t i = 0; i < n; i++)
        add_extends(c, b, v->u.seq.items[i]);
}

static void set_agent_provider(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    const char *s = want_str(c, v, "agent_provider");
    if (!s)
        return;
    if (!charset_ok(s, LOWER_DIGIT, LOWER_DIGIT "._-", 63)) {
        err_at(c, v, NULL,
               "invalid agent_provider '%s': 1-63 characters of a-z, 0-9, '.', '_', '-'", s);
        return;
    }
    b->agent_provider = s;
}

static void set_supervise(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    if (want_bool(c, v, "supervise", &b->supervise) == 0 && b->supervise)
        err_at(c, v, NULL,
               "supervise is not implemented in this version: blocked requests cannot be held "
               "for approval");
}

/* ------------------------------------------------------------------ agent */

static void set_image(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    const char *s = want_str(c, v, "agent.image");
    if (!s)
        return;
    if (!charset_ok(s, ALNUM, ALNUM "._:/@-", 512)) {
        err_at(c, v, NULL, "invalid image reference '%s'", s);
        return;
    }
    b->image = s;
}

static void set_command(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    if (!want_seq(c, v, "agent.command"))
        return;
    if (v->u.seq.n == 0) {
        err_at(c, v, NULL, "agent.command must not be empty (leave it out for the image default)");
        return;
    }
    b->command = arena_alloc(c->a, v->u.seq.n * sizeof(*b->command));
    for (size_t i = 0; i < v->u.seq.n; i++) {
        const char *s = want_text(c, v->u.seq.items[i], "agent.command item");
        if (!s)
            return;
        b->command[b->n_command++] = s;
    }
    b->has_command = 1;
}

static void set_user(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    const char *s = want_text(c, v, "agent.user");
    if (!s)
        return;
    const char *cls = ALNUM "_.-";
    const char *colon = strchr(s, ':');
    int ok = colon ? colon != s && colon[1] && !strchr(colon + 1, ':') : 1;
    for (const char *p = s; ok && *p; p++)
        ok = p == colon || strchr(cls, *p) != NULL;
    if (!ok || strlen(s) > 64) {
        err_at(c, v, NULL, "invalid agent.user '%s' (expected user or user:group, names or ids)",
               s);
        return;
    }
    b->user = s;
}

/* An absolute, normalised path: no empty, "." or ".." segments. */
static int abs_path_ok(const char *s)
{
    if (s[0] != '/' || s[1] == '\0')
        return 0;
    const char *p = s + 1;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        p += n + (e ? 1 : 0);
        if (e && !*p)
            return 0;
    }
    for (p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

static void set_workdir(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    const char *s = want_str(c, v, "agent.workdir");
    if (!s)
        return;
    if (!abs_path_ok(s)) {
        err_at(c, v, NULL,
               "agent.workdir '%s' must be an absolute, normalised path other than '/' (no '.', "
               "'..', '//' or trailing '/')",
               s);
        return;
    }
    b->workdir = s;
}

static void set_memory(struct pctx *c, const struct ynode *v, void *obj)
{
    struct m_resources *r = obj;
    if (!is_scalar(c, v, "agent.resources.memory", "a size like \"2g\""))
        return;
    const char *s = v->u.scalar.str;
    if (v->u.scalar.type != YSCALAR_STR && v->u.scalar.type != YSCALAR_INT) {
        err_at(c, v, NULL, "agent.resources.memory must be a size like \"2g\", got %s",
               ynode_type_name(v));
        return;
    }
    size_t n = strlen(s), digits = 0;
    uint64_t val = 0;
    int overflow = 0;
    while (digits < n && isdigit((unsigned char)s[digits])) {
        if (val > (UINT64_MAX - 9) / 10)
            overflow = 1;
        val = val * 10 + (uint64_t)(s[digits++] - '0');
    }
    uint64_t mult = 1;
    if (digits && digits + 1 == n) {
        switch (tolower((unsigned char)s[digits])) {
        case 'b':
            mult = 1;
            break;
        case 'k':
            mult = 1ull << 10;
            break;
        case 'm':
            mult = 1ull << 20;
            break;
        case 'g':
            mult = 1ull << 30;
            break;
        default:
            digits = 0;
        }
    } else if (digits != n) {
        digits = 0;
    }
    if (!digits || overflow || val > (uint64_t)INT64_MAX / mult) {
        err_at(c, v, "b, k, m, g", "invalid memory size '%s' (a number with an optional unit)", s);
        return;
    }
    val *= mult;
    if (val < (6ull << 20)) {
        err_at(c, v, NULL, "memory '%s' is below the engines' minimum of 6m", s);
        return;
    }
    r->memory_bytes = (int64_t)val;
}

static void set_cpus(struct pctx *c, const struct ynode *v, void *obj)
{
    struct m_resources *r = obj;
    if (!is_scalar(c, v, "agent.resources.cpus", "a number"))
        return;
    if (v->u.scalar.type != YSCALAR_INT && v->u.scalar.type != YSCALAR_FLOAT) {
        err_at(c, v, NULL, "agent.resources.cpus must be a number like 1.5, got %s",
               ynode_type_name(v));
        return;
    }
    /* Exact decimal arithmetic on the source text: 1.5 -> 1500 millicores. */
    const char *s = v->u.scalar.str;
    int64_t whole = 0, frac = 0;
    int fdigits = 0, ok = 1;
    const char *p = s;
    if (*p == '+')
        p++;
    if (!isdigit((unsigned char)*p) && *p != '.')
        ok = 0;
    for (; ok && isdigit((unsigned char)*p); p++)
        whole = whole < 1000000 ? whole * 10 + (*p - '0') : whole;
    if (ok && *p == '.')
        for (p++; isdigit((unsigned char)*p); p++, fdigits++) {
            if (fdigits >= 3) {
                if (*p != '0')
                    ok = 0;
                continue;
            }
            frac = frac * 10 + (*p - '0');
        }
    if (*p)
        ok = 0;
    while (ok && fdigits < 3) {
        frac *= 10;
        fdigits++;
    }
    int64_t milli = whole * 1000 + frac;
    if (!ok || milli <= 0 || milli > 1024 * 1000) {
        err_at(c, v, NULL,
               "agent.resources.cpus must be a positive number of CPUs up to 1024 in steps of "
               "0.001, got %s",
               s);
        return;
    }
    r->cpus_millicores = milli;
}

static void set_pids(struct pctx *c, const struct ynode *v, void *obj)
{
    struct m_resources *r = obj;
    int64_t val;
    if (want_int(c, v, "agent.resources.pids", 16, 4194304, &val) == 0)
        r->pids = val;
}

static const struct key_def resources_keys[] = {
    {"memory", set_memory, 0},
    {"cpus", set_cpus, 0},
    {"pids", set_pids, 0},
};

static void set_resources(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    b->resources = (struct m_resources){-1, -1, -1};
    walk_map(c, v, "agent.resources", resources_keys, NKEYS(resources_keys), &b->resources);
    b->has_resources = 1;
}

static const struct key_def agent_keys[] = {
    {"image", set_image, 0},     {"command", set_command, 0},     {"user", set_user, 0},
    {"workdir", set_workdir, 0}, {"resources", set_resources, 0},
};

static void set_agent(struct pctx *c, const struct ynode *v, void *obj)
{
    walk_map(c, v, "agent", agent_keys, NKEYS(agent_keys), obj);
}

/* ------------------------------------------------------------------ env */

static const char *const reserved_env_icase[] = {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"};
static const char *const reserved_env[] = {
    "SSL_CERT_FILE",  "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE",
    "GIT_SSL_CAINFO", "CURL_CA_BUNDLE",      "GIT_CONFIG_SYSTEM",
};
static const char *const yaml11_bools[] = {"y", "n", "yes", "no", "on", "off", "true", "false"};

static int env_reserved(const char *name)
{
    for (size_t i = 0; i < NKEYS(reserved_env_icase); i++)
        if (!strcasecmp(name, reserved_env_icase[i]))
            return 1;
    for (size_t i = 0; i < NKEYS(reserved_env); i++)
        if (!strcmp(name, reserved_env[i]))
            return 1;
    return !strncmp(name, "BOTTLE_", 7);
}

static void set_env(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    if (v->kind != YNODE_MAP) {
        err_at(c, v, NULL, "env must be a mapping of names to strings, got %s", ynode_type_name(v));
        return;
    }
    b->env = arena_alloc(c->a, v->u.map.n * sizeof(*b->env));
    for (size_t i = 0; i < v->u.map.n; i++) {
        const struct ynode *k = v->u.map.pairs[i].key, *val = v->u.map.pairs[i].value;
        const char *name = k->u.scalar.str;
        if (!charset_ok(name, UPPER "abcdefghijklmnopqrstuvwxyz_", ALNUM "_", 256)) {
            err_at(c, k, NULL, "invalid environment variable name '%s'", name);
            continue;
        }
        if (env_reserved(name)) {
            err_at(c, k, NULL, "env '%s' is set by bottled itself and cannot be overridden", name);
            continue;
        }
        if (val->kind == YNODE_SCALAR && val->u.scalar.plain) {
            if (val->u.scalar.type == YSCALAR_NULL) {
                err_at(c, val, NULL, "env '%s' has no value; quote it ('') for an empty string",
                       name);
                continue;
            }
            int is_bool = 0;
            for (size_t j = 0; j < NKEYS(yaml11_bools); j++)
                is_bool |= !strcasecmp(val->u.scalar.str, yaml11_bools[j]);
            if (is_bool) {
                err_at(c, val, NULL,
                       "env '%s': unquoted '%s' reads as a boolean in some YAML versions; quote "
                       "it",
                       name, val->u.scalar.str);
                continue;
            }
        }
        char what[300];
        snprintf(what, sizeof(what), "env '%s'", name);
        const char *s = want_text(c, val, what);
        if (!s)
            continue;
        b->env[b->n_env++] = (struct m_env){name, s};
    }
}

/* ------------------------------------------------------------------ skills */

static void set_skills(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    if (!want_seq(c, v, "skills"))
        return;
    b->skills = arena_alloc(c->a, v->u.seq.n * sizeof(*b->skills));
    for (size_t i = 0; i < v->u.seq.n; i++) {
        const struct ynode *it = v->u.seq.items[i];
        const char *s = want_str(c, it, "skill name");
        if (!s)
            continue;
        if (!charset_ok(s, LOWER_DIGIT, LOWER_DIGIT "._-", 128)) {
            err_at(c, it, NULL,
                   "invalid skill name '%s': a-z, 0-9, '.', '_', '-', starting with a letter or "
                   "digit",
                   s);
            continue;
        }
        int dup = 0;
        for (size_t j = 0; j < b->n_skills; j++)
            dup |= !strcmp(b->skills[j].name, s);
        if (dup) {
            err_at(c, it, NULL, "duplicate skill '%s'", s);
            continue;
        }
        b->skills[b->n_skills++] = (struct m_skill){.name = s, .pos = pos_of(c, it)};
    }
}

/* ------------------------------------------------------------------ routes */

struct route_ctx {
    struct m_route *r;
    const struct ynode *port80; /* position of a listed port 80, for the auth rule */
    const struct ynode *auth;
};

static void set_route_host(struct pctx *c, const struct ynode *v, void *obj)
{
    struct route_ctx *rc = obj;
    const char *s = want_str(c, v, "route host");
    if (!s)
        return;
    char *norm = NULL;
    int r = host_normalize(s, strlen(s), 1, &norm);
    if (r != HOST_OK) {
        err_at(c, v, NULL, "invalid route host '%s': %s", s, host_strerror(r));
        return;
    }
    rc->r->host = arena_strdup(c->a, norm);
    rc->r->pos = pos_of(c, v);
    free(norm);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void set_route_ports(struct pctx *c, const struct ynode *v, void *obj)
{
    struct route_ctx *rc = obj;
    if (!want_seq(c, v, "ports"))
        return;
    if (v->u.seq.n == 0) {
        err_at(c, v, NULL, "ports must not be empty (leave it out for the default [443])");
        return;
    }
    int *ports = arena_alloc(c->a, v->u.seq.n * sizeof(*ports));
    size_t n = 0;
    int bad = 0;
    for (size_t i = 0; i < v->u.seq.n; i++) {
        int64_t p;
        if (want_int(c, v->u.seq.items[i], "port", 1, 65535, &p) < 0) {
            bad = 1;
            continue;
        }
        if (p == 80 && !rc->port80)
            rc->port80 = v->u.seq.items[i];
        ports[n++] = (int)p;
    }
    if (bad)
        return;
    qsort(ports, n, sizeof(*ports), cmp_int);
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (!w || ports[w - 1] != ports[i])
            ports[w++] = ports[i];
    rc->r->ports = ports;
    rc->r->n_ports = w;
}

static void set_route_role(struct pctx *c, const struct ynode *v, void *obj)
{
    struct route_ctx *rc = obj;
    const char *s = want_str(c, v, "role");
    if (!s)
        return;
    if (!charset_ok(s, ALNUM, ALNUM "._-", 64)) {
        err_at(c, v, NULL, "invalid role '%s': 1-64 characters of letters, digits, '.', '_', '-'",
               s);
        return;
    }
    rc->r->role = s;
}

static void set_auth_scheme(struct pctx *c, const struct ynode *v, void *obj)
{
    struct m_route *r = obj;
    const char *s = want_str(c, v, "auth.scheme");
    if (!s)
        return;
    if (strcmp(s, "Bearer") && strcmp(s, "token")) {
        err_at(c, v, "Bearer, token", "unknown auth scheme '%s'", s);
        return;
    }
    r->auth_scheme = s;
}

static void set_secret_ref(struct pctx *c, const struct ynode *v, const char *what,
                           const char **out)
{
    const char *s = want_str(c, v, what);
    if (!s)
        return;
    if (!secret_name_valid(s)) {
        err_at(c, v, NULL,
               "invalid secret name '%s' in %s: upper-case letters, digits and '_', not starting "
               "with a digit",
               s, what);
        return;
    }
    *out = s;
}

static void set_auth_token_ref(struct pctx *c, const struct ynode *v, void *obj)
{
    struct m_route *r = obj;
    set_secret_ref(c, v, "auth.token_ref", &r->token_ref);
}

static const struct key_def auth_keys[] = {
    {"scheme", set_auth_scheme, 1},
    {"token_ref", set_auth_token_ref, 1},
};

static void set_route_auth(struct pctx *c, const struct ynode *v, void *obj)
{
    struct route_ctx *rc = obj;
    struct m_route tmp = {0};
    int before = c->failed;
    c->failed = 0;
    walk_map(c, v, "auth", auth_keys, NKEYS(auth_keys), &tmp);
    if (!c->failed) {
        rc->r->auth_scheme = tmp.auth_scheme;
        rc->r->token_ref = tmp.token_ref;
    }
    c->failed |= before;
    rc->auth = v;
}

/* matches */

static int regex_check(struct pctx *c, const struct ynode *v, const char *s)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED,
                                   PCRE2_ANCHORED | PCRE2_ENDANCHORED, &code, &off, NULL);
    if (re) {
        pcre2_code_free(re);
        return 0;
    }
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof(msg));
    err_at(c, v, NULL, "invalid regex '%s': %s at offset %zu", s, (const char *)msg, (size_t)off);
    return -1;
}

static void add_path(struct pctx *c, const struct ynode *it, struct m_match *m)
{
    if (it->kind != YNODE_MAP) {
        err_at(c, it, NULL, "paths item must be a mapping {type, value}, got %s",
               ynode_type_name(it));
        return;
    }
    static const struct key_def path_keys[] = {{"type", NULL, 0}, {"value", NULL, 1}};
    int before = c->failed;
    c->failed = 0;
    walk_map(c, it, "path", path_keys, NKEYS(path_keys), NULL);
    const struct ynode *tn = ynode_map_get(it, "type"), *vn = ynode_map_get(it, "value");
    struct m_path mp = {PATH_PREFIX, NULL};
    if (tn) {
        const char *t = want_str(c, tn, "path type");
        if (t && !strcmp(t, "prefix"))
            mp.type = PATH_PREFIX;
        else if (t && !strcmp(t, "exact"))
            mp.type = PATH_EXACT;
        else if (t && !strcmp(t, "regex"))
            mp.type = PATH_REGEX;
        else if (t)
            err_at(c, tn, "prefix, exact, regex", "unknown path type '%s'", t);
    }
    if (vn && !c->failed) {
        const char *s = want_str(c, vn, "path value");
        if (s && mp.type == PATH_REGEX) {
            if (regex_check(c, vn, s) == 0)
                mp.value = s;
        } else if (s) {
            const char *why = urlpath_config_problem(s);
            if (why)
                err_at(c, vn, NULL, "path '%s' %s", s, why);
            else
                mp.value = s;
        }
    }
    if (!c->failed && mp.value)
        m->paths[m->n_paths++] = mp;
    c->failed |= before;
}

static void add_method(struct pctx *c, const struct ynode *it, struct m_match *m)
{
    const char *s = want_str(c, it, "method");
    if (!s)
        return;
    int upper = charset_ok(s, UPPER, UPPER "-", 32);
    if (!upper) {
        int letters = charset_ok(s, UPPER "abcdefghijklmnopqrstuvwxyz",
                                 UPPER "abcdefghijklmnopqrstuvwxyz-", 32);
        if (letters)
            err_at(c, it, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
                   "method '%s' must be upper-case (HTTP methods are case-sensitive)", s);
        else
            err_at(c, it, "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS", "invalid method '%s'", s);
        return;
    }
    for (size_t i = 0; i < m->n_methods; i++)
        if (!strcmp(m->methods[i], s))
            return;
    m->methods[m->n_methods++] = s;
}

static int token_char(int ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+.^_`|~-", ch));
}

static void add_header(struct pctx *c, const struct ynode *it, struct m_match *m)
{
    if (it->kind != YNODE_MAP) {
        err_at(c, it, NULL, "headers item must be a mapping {name, value, type}, got %s",
               ynode_type_name(it));
        return;
    }
    static const struct key_def header_keys[] = {
        {"name", NULL, 1}, {"value", NULL, 1}, {"type", NULL, 0}};
    int before = c->failed;
    c->failed = 0;
    walk_map(c, it, "header", header_keys, NKEYS(header_keys), NULL);
    struct m_header h = {NULL, NULL, HEADER_EXACT};
    const struct ynode *nn = ynode_map_get(it, "name"), *vn = ynode_map_get(it, "value"),
                       *tn = ynode_map_get(it, "type");
    if (tn) {
        const char *t = want_str(c, tn, "header type");
        if (t && !strcmp(t, "regex"))
            h.type = HEADER_REGEX;
        else if (t && strcmp(t, "exact"))
            err_at(c, tn, "exact, regex", "unknown header match type '%s'", t);
    }
    if (nn) {
        const char *s = want_str(c, nn, "header name");
        int ok = s && *s;
        for (const char *p = s; ok && *p; p++)
            ok = token_char((unsigned char)*p);
        if (s && !ok)
            err_at(c, nn, NULL, "invalid header name '%s'", s);
        else if (s) {
            char *low = arena_strdup(c->a, s);
            for (char *p = low; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            h.name = low;
        }
    }
    if (vn) {
        const char *s = want_text(c, vn, "header value");
        if (s && h.type == HEADER_REGEX && regex_check(c, vn, s) < 0)
            s = NULL;
        h.value = s;
    }
    if (!c->failed && h.name && h.value)
        m->headers[m->n_headers++] = h;
    c->failed |= before;
}

static void add_match(struct pctx *c, const struct ynode *it, struct m_match *m)
{
    if (it->kind != YNODE_MAP) {
        err_at(c, it, NULL, "matches item must be a mapping {paths, methods, headers}, got %s",
               ynode_type_name(it));
        return;
    }
    static const struct key_def match_keys[] = {
        {"paths", NULL, 0}, {"methods", NULL, 0}, {"headers", NULL, 0}};
    walk_map(c, it, "matches entry", match_keys, NKEYS(match_keys), NULL);
    const struct ynode *p = ynode_map_get(it, "paths"), *me = ynode_map_get(it, "methods"),
                       *h = ynode_map_get(it, "headers");
    if (!p && !me && !h) {
        err_at(c, it, NULL, "a matches entry needs at least one of paths, methods, headers");
        return;
    }
    if (p && want_seq(c, p, "paths")) {
        m->paths = arena_alloc(c->a, p->u.seq.n * sizeof(*m->paths));
        for (size_t i = 0; i < p->u.seq.n; i++)
            add_path(c, p->u.seq.items[i], m);
    }
    if (me && want_seq(c, me, "methods")) {
        m->methods = arena_alloc(c->a, me->u.seq.n * sizeof(*m->methods));
        for (size_t i = 0; i < me->u.seq.n; i++)
            add_method(c, me->u.seq.items[i], m);
    }
    if (h && want_seq(c, h, "headers")) {
        m->headers = arena_alloc(c->a, h->u.seq.n * sizeof(*m->headers));
        for (size_t i = 0; i < h->u.seq.n; i++)
            add_header(c, h->u.seq.items[i], m);
    }
}

static void set_route_matches(struct pctx *c, const struct ynode *v, void *obj)
{
    struct route_ctx *rc = obj;
    if (!want_seq(c, v, "matches"))
        return;
    rc->r->matches = arena_alloc(c->a, v->u.seq.n * sizeof(*rc->r->matches));
    for (size_t i = 0; i < v->u.seq.n; i++)
        add_match(c, v->u.seq.items[i], &rc->r->matches[rc->r->n_matches++]);
}

struct detector_name {
    const char *name;
    unsigned bit;
};

static void set_dlp_list(struct pctx *c, const struct ynode *v, const char *what,
                         const struct detector_name *names, size_t n_names, unsigned all,
                         const char *allowed, struct dlp_setting *out)
{
    if (v->kind == YNODE_SCALAR) {
        int on;
        if (want_bool(c, v, what, &on) == 0)
            *out = (struct dlp_setting){1, on ? all : 0};
        return;
    }
    if (v->kind != YNODE_SEQ) {
        err_at(c, v, NULL, "%s must be false or a list of detectors, got %s", what,
               ynode_type_name(v));
        return;
    }
    unsigned bits = 0;
    for (size_t i = 0; i < v->u.seq.n; i++) {
        const struct ynode *it = v->u.seq.items[i];
        const char *s = want_str(c, it, "detector");
        if (!s)
            continue;
        unsigned bit = 0;
        for (size_t j = 0; j < n_names; j++)
            if (!strcmp(names[j].name, s))
                bit = names[j].bit;
        if (!bit)
            err_at(c, it, allowed, "unknown detector '%s' in %s", s, what);
        bits |= bit;
    }
    *out = (struct dlp_setting){1, bits};
}

static void set_dlp_out(struct pctx *c, const struct ynode *v, void *obj)
{
    static const struct detector_name names[] = {{"token_patterns", DLP_TOKEN_PATTERNS},
                                                 {"known_secrets", DLP_KNOWN_SECRETS}};
    struct m_route *r = obj;
    set_dlp_list(c, v, "dlp.outbound_detectors", names, NKEYS(names),
                 DLP_TOKEN_PATTERNS | DLP_KNOWN_SECRETS, "token_patterns, known_secrets",
                 &r->dlp_out);
}

static void set_dlp_in(struct pctx *c, const struct ynode *v, void *obj)
{
    static const struct detector_name names[] = {
        {"naive_injection_detection", DLP_NAIVE_INJECTION}};
    struct m_route *r = obj;
    set_dlp_list(c, v, "dlp.inbound_detectors", names, NKEYS(names), DLP_NAIVE_INJECTION,
                 "naive_injection_detection", &r->dlp_in);
}

static const struct key_def dlp_keys[] = {
    {"outbound_detectors", set_dlp_out, 0},
    {"inbound_detectors", set_dlp_in, 0},
};

static void set_route_dlp(struct pctx *c, const struct ynode *v, void *obj)
{
    struct route_ctx *rc = obj;
    walk_map(c, v, "dlp", dlp_keys, NKEYS(dlp_keys), rc->r);
}

static void set_git_fetch(struct pctx *c, const struct ynode *v, void *obj)
{
    struct m_route *r = obj;
    want_bool(c, v, "git.fetch", &r->git_fetch);
}

static const struct key_def git_keys[] = {{"fetch", set_git_fetch, 0}};

static void set_route_git(struct pctx *c, const struct ynode *v, void *obj)
{
    struct route_ctx *rc = obj;
    walk_map(c, v, "git", git_keys, NKEYS(git_keys), rc->r);
}

static const struct key_def route_keys[] = {
    {"host", set_route_host, 1}, {"ports", set_route_ports, 0},     {"role", set_route_role, 0},
    {"auth", set_route_auth, 0}, {"matches", set_route_matches, 0}, {"dlp", set_route_dlp, 0},
    {"git", set_route_git, 0},
};

static void set_routes(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    if (!want_seq(c, v, "egress.routes"))
        return;
    b->routes = arena_alloc(c->a, v->u.seq.n * sizeof(*b->routes));
    for (size_t i = 0; i < v->u.seq.n; i++) {
        const struct ynode *it = v->u.seq.items[i];
        struct m_route r = {0};
        struct route_ctx rc = {&r, NULL, NULL};
        int before = c->failed;
        c->failed = 0;
        walk_map(c, it, "route", route_keys, NKEYS(route_keys), &rc);
        if (rc.port80 && rc.auth)
            err_at(c, rc.port80, NULL,
                   "port 80 (plain HTTP) is refused on a route with auth: the credential would "
                   "travel in clear text");
        if (r.host) {
            for (size_t j = 0; j < b->n_routes; j++)
                if (!strcmp(b->routes[j].host, r.host)) {
                    err_at(c, ynode_map_get(it, "host"), NULL,
                           "duplicate route host '%s' (first at line %d); one route per host",
                           r.host, b->routes[j].pos.line);
                    r.host = NULL;
                    break;
                }
        }
        if (!c->failed && r.host)
            b->routes[b->n_routes++] = r;
        c->failed |= before;
    }
}

static void set_egress_mode(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    const char *s = want_str(c, v, "egress.mode");
    if (!s)
        return;
    if (!strcmp(s, "proxy"))
        b->egress_mode = EGRESS_PROXY;
    else if (!strcmp(s, "transparent"))
        b->egress_mode = EGRESS_TRANSPARENT;
    else {
        err_at(c, v, "proxy, transparent", "unknown egress mode '%s'", s);
        return;
    }
    b->has_egress_mode = 1;
}

static const struct key_def egress_keys[] = {
    {"mode", set_egress_mode, 0},
    {"routes", set_routes, 0},
};

static void set_egress(struct pctx *c, const struct ynode *v, void *obj)
{
    walk_map(c, v, "egress", egress_keys, NKEYS(egress_keys), obj);
}

/* ------------------------------------------------------------------ git-gate */

static void set_user_name(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    const char *s = want_str(c, v, "git-gate.user.name");
    if (s && (!*s || strpbrk(s, "\n\r<>"))) {
        err_at(c, v, NULL, "git-gate.user.name must be a non-empty single line without '<' or '>'");
        return;
    }
    if (s)
        b->gate_user_name = s;
}

static void set_user_email(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    const char *s = want_str(c, v, "git-gate.user.email");
    if (!s)
        return;
    const char *at = strchr(s, '@');
    if (!at || at == s || !at[1] || strchr(at + 1, '@') || strpbrk(s, " \t\r\n<>")) {
        err_at(c, v, NULL, "invalid email address '%s'", s);
        return;
    }
    b->gate_user_email = s;
}

static const struct key_def user_keys[] = {
    {"name", set_user_name, 0},
    {"email", set_user_email, 0},
};

static void set_gate_user(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    walk_map(c, v, "git-gate.user", user_keys, NKEYS(user_keys), b);
    b->has_gate_user = 1;
}

/* Parses ssh://user@host[:port]/path into r.  Returns 0 or -1 (error reported). */
static int parse_repo_url(struct pctx *c, const struct ynode *v, const char *s, struct m_repo *r)
{
    if (strncmp(s, "ssh://", 6) != 0) {
        if (!strncmp(s, "https://", 8) || !strncmp(s, "http://", 7))
            err_at(c, v, NULL,
                   "repo url '%s' must use ssh:// (the gate pushes over SSH): "
                   "ssh://user@host[:port]/path",
                   s);
        else if (strchr(s, ':') && !strstr(s, "://"))
            err_at(c, v, NULL,
                   "scp-style repo url '%s' is not supported; write ssh://user@host[:port]/path",
                   s);
        else
            err_at(c, v, NULL, "invalid repo url '%s': expected ssh://user@host[:port]/path", s);
        return -1;
    }
    const char *auth = s + 6, *slash = strchr(auth, '/');
    const char *at = memchr(auth, '@', slash ? (size_t)(slash - auth) : strlen(auth));
    if (!slash || !at || at == auth) {
        err_at(c, v, NULL, "invalid repo url '%s': expected ssh://user@host[:port]/path", s);
        return -1;
    }
    char *user = arena_strndup(c->a, auth, (size_t)(at - auth));
    if (!charset_ok(user, ALNUM "_", ALNUM "._-", 64)) {
        err_at(c, v, NULL, "invalid user in repo url '%s'", s);
        return -1;
    }
    const char *hs = at + 1, *colon = memchr(hs, ':', (size_t)(slash - hs));
    if (*hs == '[') {
        err_at(c, v, NULL, "invalid repo url '%s': IP literals are not allowed", s);
        return -1;
    }
    const char *he = colon ? colon : slash;
    int port = 22;
    if (colon) {
        size_t plen = (size_t)(slash - colon - 1);
        int ok = plen > 0 && plen <= 5;
        long p = 0;
        for (size_t i = 0; ok && i < plen; i++) {
            ok = isdigit((unsigned char)colon[1 + i]);
            p = p * 10 + (colon[1 + i] - '0');
        }
        if (!ok || p < 1 || p > 65535) {
            err_at(c, v, NULL, "invalid repo url '%s': the port must be a number from 1 to 65535",
                   s);
            return -1;
        }
        port = (int)p;
    }
    char *norm = NULL;
    int hr = host_normalize(hs, (size_t)(he - hs), 0, &norm);
    if (hr != HOST_OK) {
        err_at(c, v, NULL, "invalid host in repo url '%s': %s", s, host_strerror(hr));
        return -1;
    }
    r->host = arena_strdup(c->a, norm);
    free(norm);
    const char *path = slash;
    if (!path[1] || strpbrk(path, "?#\\ \t\r\n") || strstr(path, "//") || strstr(path, "/../") ||
        strstr(path, "/./") || !strcmp(path + strlen(path) - 3, "/.."))
        goto badpath;
    r->user = user;
    r->port = port;
    r->path = path;
    size_t n = strlen(path + 1);
    if (n > 4 && !strcmp(path + 1 + n - 4, ".git"))
        n -= 4;
    while (n && path[n] == '/')
        n--;
    r->repository = arena_strndup(c->a, path + 1, n);
    if (!*r->repository)
        goto badpath;
    return 0;
badpath:
    err_at(c, v, NULL, "invalid path in repo url '%s'", s);
    return -1;
}

static void set_repo_url(struct pctx *c, const struct ynode *v, void *obj)
{
    struct m_repo *r = obj;
    const char *s = want_str(c, v, "repo url");
    if (s && parse_repo_url(c, v, s, r) == 0)
        r->url = s;
}

static int b64_decode(struct arena *a, const char *s, unsigned char **ret, size_t *ret_len)
{
    size_t n = strlen(s);
    if (n == 0 || n % 4 || n > 16384)
        return -1;
    unsigned char *out = arena_alloc(a, n);
    int len = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
    if (len < 0)
        return -1;
    if (n >= 1 && s[n - 1] == '=')
        len--;
    if (n >= 2 && s[n - 2] == '=')
        len--;
    *ret = out;
    *ret_len = (size_t)len;
    return 0;
}

static void set_repo_host_key(struct pctx *c, const struct ynode *v, void *obj)
{
    static const char *const types[] = {"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                                        "ecdsa-sha2-nistp521", "ssh-rsa"};
    struct m_repo *r = obj;
    const char *s = want_str(c, v, "host_key");
    if (!s)
        return;
    const char *sp = strchr(s, ' ');
    const char *type = NULL;
    for (size_t i = 0; sp && i < NKEYS(types); i++)
        if (strlen(types[i]) == (size_t)(sp - s) && !strncmp(s, types[i], (size_t)(sp - s)))
            type = types[i];
    if (!type) {
        err_at(c, v,
               "ssh-ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, "
               "ecdsa-sha2-nistp521, ssh-rsa",
               "host_key must be a public key line '<type> <base64>'");
        return;
    }
    const char *b64 = sp + 1, *end = strchr(b64, ' ');
    char *blob64 = arena_strndup(c->a, b64, end ? (size_t)(end - b64) : strlen(b64));
    unsigned char *blob;
    size_t blen;
    size_t tlen = strlen(type);
    if (b64_decode(c->a, blob64, &blob, &blen) < 0 || blen < 4 + tlen ||
        ((size_t)blob[0] << 24 | (size_t)blob[1] << 16 | (size_t)blob[2] << 8 | blob[3]) != tlen ||
        memcmp(blob + 4, type, tlen) != 0) {
        err_at(c, v, NULL, "host_key is not a valid %s public key", type);
        return;
    }
    r->host_key = arena_printf(c->a, "%s %s", type, blob64);
}

static void set_key_path(struct pctx *c, const struct ynode *v, void *obj)
{
    struct m_key *k = obj;
    const char *s = want_str(c, v, "key path");
    if (!s)
        return;
    if (!*s || s[0] == '/') {
        err_at(c, v, NULL, "key path '%s' must be relative to the keys directory", s);
        return;
    }
    for (const char *p = s; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            err_at(c, v, NULL, "key path '%s' must not contain '..'", s);
            return;
        }
        p += n + (e ? 1 : 0);
    }
    k->path = s;
}

static void set_key_token_env(struct pctx *c, const struct ynode *v, void *obj)
{
    struct m_key *k = obj;
    set_secret_ref(c, v, "forge_token_env", &k->forge_token_env);
}

static void set_key_api_url(struct pctx *c, const struct ynode *v, void *obj)
{
    struct m_key *k = obj;
    const char *s = want_str(c, v, "api_url");
    if (!s)
        return;
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *user = NULL, *pass = NULL, *query = NULL, *frag = NULL;
    int ok = curl_url_set(u, CURLUPART_URL, s, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
             !strcmp(scheme, "https") && curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
             *host;
    int creds = curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
                curl_url_get(u, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK;
    int extra = curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
                curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK;
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(pass);
    curl_free(query);
    curl_free(frag);
    curl_url_cleanup(u);
    if (!ok || creds || extra) {
        err_at(c, v, NULL,
               "invalid api_url '%s': expected https://host[:port]/path with no credentials, "
               "query or fragment",
               s);
        return;
    }
    size_t n = strlen(s);
    while (n > 8 && s[n - 1] == '/')
        n--;
    k->api_url = arena_strndup(c->a, s, n);
}

static const struct key_def static_key_keys[] = {
    {"provider", NULL, 1},
    {"path", set_key_path, 1},
};

static const struct key_def forge_key_keys[] = {
    {"provider", NULL, 1},
    {"forge_token_env", set_key_token_env, 1},
    {"api_url", set_key_api_url, 0},
};

const char *key_provider_name(enum key_provider p)
{
    switch (p) {
    case KEY_STATIC:
        return "static";
    case KEY_GITEA:
        return "gitea";
    case KEY_GITHUB:
        return "github";
    case KEY_GITLAB:
        return "gitlab";
    }
    return "?";
}

static void set_repo_key(struct pctx *c, const struct ynode *v, void *obj)
{
    struct m_repo *r = obj;
    if (v->kind != YNODE_MAP) {
        err_at(c, v, NULL, "key must be a mapping with a provider, got %s", ynode_type_name(v));
        return;
    }
    const struct ynode *pn = ynode_map_get(v, "provider");
    if (!pn) {
        err_at(c, v, NULL, "missing required key 'provider' in key");
        return;
    }
    const char *p = want_str(c, pn, "key provider");
    if (!p)
        return;
    int found = 0;
    for (int i = KEY_STATIC; i <= KEY_GITLAB; i++)
        if (!strcmp(p, key_provider_name((enum key_provider)i))) {
            r->key.provider = (enum key_provider)i;
            found = 1;
        }
    if (!found) {
        err_at(c, pn, "static, gitea, github, gitlab", "unknown key provider '%s'", p);
        return;
    }
    char what[64];
    snprintf(what, sizeof(what), "%s key", p);
    if (r->key.provider == KEY_STATIC)
        walk_map(c, v, what, static_key_keys, NKEYS(static_key_keys), &r->key);
    else
        walk_map(c, v, what, forge_key_keys, NKEYS(forge_key_keys), &r->key);
}

static const struct key_def repo_keys[] = {
    {"url", set_repo_url, 1},
    {"key", set_repo_key, 1},
    {"host_key", set_repo_host_key, 0},
};

static void set_repos(struct pctx *c, const struct ynode *v, void *obj)
{
    struct bottle *b = obj;
    if (v->kind != YNODE_MAP) {
        err_at(c, v, NULL, "git-gate.repos must be a mapping of repo names, got %s",
               ynode_type_name(v));
        return;
    }
    b->repos = arena_alloc(c->a, v->u.map.n * sizeof(*b->repos));
    for (size_t i = 0; i < v->u.map.n; i++) {
        const struct ynode *k = v->u.map.pairs[i].key;
        const char *name = k->u.scalar.str;
        if (!charset_ok(name, ALNUM "._-", ALNUM "._-", 128) || !strcmp(name, ".") ||
            !strcmp(name, "..")) {
            err_at(c, k, NULL, "invalid repo name '%s': letters, digits, '.', '_', '-'", name);
            continue;
        }
        struct m_repo r = {.name = name, .pos = pos_of(c, k)};
        int before = c->failed;
        c->failed = 0;
        walk_map(c, v->u.map.pairs[i].value, "repo", repo_keys, NKEYS(repo_keys), &r);
        if (!c->failed && r.url && (r.key.provider == KEY_GITHUB || r.key.provider == KEY_GITEA)) {
            const char *slash = strchr(r.repository, '/');
            if (!slash || strchr(slash + 1, '/'))
                err_at(c, ynode_map_get(v->u.map.pairs[i].value, "url"), NULL,
                       "a %s repository path must be owner/name, got '%s'",
                       key_provider_name(r.key.provider), r.repository);
        }
        if (!c->failed && r.key.provider == KEY_GITLAB && !strchr(r.repository, '/'))
            err_at(c, ynode_map_get(v->u.map.pairs[i].value, "url"), NULL,
                   "a gitlab repository path must be group/name, got '%s'", r.repository);
        if (!c->failed)
            b->repos[b->n_repos++] = r;
        c->failed |= before;
    }
}

static const struct key_def gate_keys[] = {
    {"user", set_gate_user, 0},
    {"repos", set_repos, 0},
};

static void set_gate(struct pctx *c, const struct ynode *v, void *obj)
{
    walk_map(c, v, "git-gate", gate_keys, NKEYS(gate_keys), obj);
}

static const struct key_def top_keys[] = {
    {"name", set_name, 0},
    {"abstract", set_abstract, 0},
    {"extends", set_extends, 0},
    {"agent", set_agent, 0},
    {"agent_provider", set_agent_provider, 0},
    {"env", set_env, 0},
    {"skills", set_skills, 0},
    {"egress", set_egress, 0},
    {"git-gate", set_gate, 0},
    {"supervise", set_supervise, 0},
};

/* ------------------------------------------------------------------ entry points */

static int utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned ch = *p;
        size_t len = ch < 0x80         ? 1
                     : (ch >> 5) == 6  ? 2
                     : (ch >> 4) == 14 ? 3
                     : (ch >> 3) == 30 ? 4
                                       : 0;
        if (!len || (size_t)(end - p) < len || (len == 2 && ch < 0xC2) || (len == 4 && ch > 0xF4))
            return 0;
        for (size_t i = 1; i < len; i++)
            if ((p[i] & 0xC0) != 0x80)
                return 0;
        if (len == 3 && ((ch == 0xE0 && p[1] < 0xA0) || (ch == 0xED && p[1] >= 0xA0)))
            return 0;
        if (len == 4 && ((ch == 0xF0 && p[1] < 0x90) || (ch == 0xF4 && p[1] >= 0x90)))
            return 0;
        p += len;
    }
    return 1;
}

static const char *crlf_to_lf(struct arena *a, const char *s, size_t n)
{
    char *out = arena_alloc(a, n + 1);
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '\r' && i + 1 < n && s[i + 1] == '\n'))
            out[w++] = s[i];
    out[w] = '\0';
    return out;
}

int manifest_parse(struct arena *a, const char *path, const char *stem, const char *text,
                   size_t len, struct diag_list *diags, struct bottle **ret)
{
    struct bottle *b = arena_alloc(a, sizeof(*b));
    b->path = arena_strdup(a, path);
    b->name = arena_strdup(a, stem);
    b->name_pos = (struct mpos){b->path, 0, 0};
    b->resources = (struct m_resources){-1, -1, -1};
    b->body = "";
    struct pctx c = {a, diags, b->path, b->name, 0};
    *ret = b;

    if (len > MANIFEST_MAX_BYTES) {
        err_at(&c, NULL, NULL, "file is larger than the 1 MiB limit for manifests");
        goto out;
    }
    if (!utf8_valid(text, len) || memchr(text, '\0', len)) {
        err_at(&c, NULL, NULL, "file is not valid UTF-8 text");
        goto out;
    }
    const char *yaml, *body;
    size_t yaml_len, body_len;
    if (frontmatter_split(b->path, text, len, b->name, diags, &yaml, &yaml_len, &body, &body_len) <
        0) {
        c.failed = 1;
        goto out;
    }
    b->body = crlf_to_lf(a, body, body_len);

    struct ynode *root = NULL;
    size_t before = diags->n;
    if (yaml_tree_parse(a, b->path, yaml, yaml_len, 1, diags, &root) < 0) {
        /* The YAML layer does not know the bottle's name: add it. */
        for (size_t i = before; i < diags->n; i++)
            if (!diags->v[i].bottle)
                diags->v[i].bottle = xstrdup(b->name);
        c.failed = 1;
        goto out;
    }
    if (!root)
        goto out;
    if (root->kind != YNODE_MAP) {
        err_at(&c, root, NULL, "front matter must be a mapping of keys, got %s",
               ynode_type_name(root));
        goto out;
    }
    /* Name first, so that every later message names the bottle. */
    const struct ynode *nn = ynode_map_get(root, "name");
    if (nn && nn->kind == YNODE_SCALAR && nn->u.scalar.type == YSCALAR_STR &&
        bottle_name_valid(nn->u.scalar.str, nn->u.scalar.len))
        c.bottle = nn->u.scalar.str;
    walk_map(&c, root, NULL, top_keys, NKEYS(top_keys), b);
    if (!nn && !bottle_name_valid(stem, strlen(stem)))
        err_at(&c, NULL, NULL,
               "file name '%s' is not a valid bottle name; rename the file or set name: "
               "(1-40 characters of a-z, 0-9 and '-')",
               stem);
out:
    b->failed = c.failed;
    return c.failed ? BD_E_PARSE : 0;
}

int manifest_parse_file(struct arena *a, const char *path, const char *stem,
                        struct diag_list *diags, struct bottle **ret)
{
    struct buf buf;
    buf_init(&buf, MANIFEST_MAX_BYTES + 1);
    int r = buf_read_file(&buf, path);
    if (r == BD_E_TOO_BIG) {
        /* Let manifest_parse report it uniformly. */
        r = manifest_parse(a, path, stem, "", MANIFEST_MAX_BYTES + 1, diags, ret);
        goto out;
    }
    if (r < 0) {
        struct bottle *b = arena_alloc(a, sizeof(*b));
        b->path = arena_strdup(a, path);
        b->name = arena_strdup(a, stem);
        b->body = "";
        b->failed = 1;
        diag_error(diags, path, 0, 0, stem, NULL, "cannot read file: %s", strerror(errno));
        *ret = b;
        goto out;
    }
    r = manifest_parse(a, path, stem, buf.data, buf.len, diags, ret);
out:
    buf_release(&buf);
    return r;
}
