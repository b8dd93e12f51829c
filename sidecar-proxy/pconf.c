/*
 * pconf.c - loading and validating one config generation (see pconf.h).
 *
 * Nothing on disk is trusted, not even what the reconciler wrote: the
 * generation is checked in stages and every problem of a stage is reported
 * before giving up; a stage whose input failed an earlier one is skipped.
 *
 *   1. `current` (or the caller) names gen-<id>; the directory is opened
 *      without following a symlink;
 *   2. MANIFEST is parsed line by line, strictly;
 *   3. the directory listing must equal MANIFEST's file list: no symlink,
 *      no other kind of file, nothing unlisted;
 *   4. each listed file is read once (O_NOFOLLOW, fstat regular, size cap)
 *      and its SHA-256 compared; everything later works on those bytes;
 *   5. secrets.json, then routes.json (token_ref needs the secrets), field
 *      by field with the JSON path in every message;
 *   6. ca.pem, ca-key.pem, upstream-ca.pem with OpenSSL.
 *
 * Secret values and the CA key are wiped from every buffer that held them
 * before it is freed, and never formatted into a diagnostic: a message about
 * secrets.json names the secret and the field, never echoes a value, and
 * echoes a key or a name only when it has the shape of one.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "buf.h"
#include "err.h"
#include "hash.h"
#include "host.h"
#include "pconf.h"
#include "urlpath.h"
#include "xalloc.h"

#define ROUTES_MAX   ((size_t)4 << 20)
#define SECRETS_MAX  ((size_t)1 << 20)
#define PEM_MAX      ((size_t)64 << 10)
#define MANIFEST_MAX ((size_t)64 << 10)
#define CURRENT_MAX  ((size_t)256)
#define MAX_FILES    16 /* entries in a generation directory worth reporting */
#define SECRET_MAX   ((size_t)16 << 10)

#define LOWER_DIGIT "abcdefghijklmnopqrstuvwxyz0123456789"
#define UPPER       "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define ALNUM       LOWER_DIGIT UPPER

/* The files a generation may hold, and their caps. */
static const struct gen_file {
    const char *name;
    size_t max;
    int required;
} gen_files[] = {
    {"routes.json", ROUTES_MAX, 1}, {"secrets.json", SECRETS_MAX, 1},     {"ca.pem", PEM_MAX, 1},
    {"ca-key.pem", PEM_MAX, 1},     {"upstream-ca.pem", PEM_MAX * 16, 0},
};
#define N_GEN_FILES       (sizeof(gen_files) / sizeof(gen_files[0]))
#define GEN_FILES_ALLOWED "routes.json, secrets.json, ca.pem, ca-key.pem, upstream-ca.pem"
enum { F_ROUTES, F_SECRETS, F_CA, F_CA_KEY, F_UPSTREAM_CA };

/* ------------------------------------------------------------ small helpers */

/* A printable, bounded copy of a user string for a message (C11 temporaries live to the ';'). */
struct qstr {
    char s[100];
};

static struct qstr qs(const char *in)
{
    struct qstr q;
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && w < sizeof(q.s) - 5; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '\\') {
            q.s[w++] = '\\';
            q.s[w++] = *p == '\\' ? '\\' : '?';
        } else {
            q.s[w++] = (char)*p;
        }
        if (p[1] && w >= sizeof(q.s) - 5) {
            memcpy(q.s + w, "...", 3);
            w += 3;
            break;
        }
    }
    q.s[w] = '\0';
    return q;
}

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

static int gen_name_valid(const char *s, size_t n)
{
    if (n < 5 || n > 4 + 64 || memcmp(s, "gen-", 4))
        return 0;
    for (size_t i = 4; i < n; i++)
        if (!s[i] || !strchr(ALNUM "_-", s[i]))
            return 0;
    return 1;
}

static int is_hex64(const char *s, size_t n)
{
    if (n != SHA256_HEX_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdef", s[i]) || !s[i])
            return 0;
    return 1;
}

/* The value of a hex digit is_hex64() accepted. */
static int hexval(char ch)
{
    return ch <= '9' ? ch - '0' : ch - 'a' + 10;
}

/* ------------------------------------------------------------ JSON walking */

struct vctx {
    struct diag_list *diags;
    const char *file;
    struct arena *a;
    char path[256]; /* JSON path of the node being checked */
    size_t plen;
    int secret_file;          /* do not echo unknown keys that do not look like keys */
    const struct pconf *mask; /* its secret values are masked in every message */
    size_t errors;
};

#define MASK_MIN 3 /* shorter values would garble every message and protect nothing */

/*
 * s with every known secret value (in any letter case: a host is echoed
 * lower-cased) replaced by "[secret NAME]": routes.json
 * never holds a value, but if one strayed there (or into another field of
 * secrets.json) it must not be echoed.  Returns a malloc'd string or NULL
 * when nothing matched.
 */
static char *mask_values(const struct vctx *v, const char *s)
{
    if (!v->mask || !s)
        return NULL;
    struct buf b;
    buf_init(&b, 0);
    int hit = 0;
    for (const char *p = s; *p;) {
        const struct pconf_secret *m = NULL;
        for (size_t i = 0; i < v->mask->n_secrets && !m; i++) {
            const struct pconf_secret *sec = &v->mask->secrets[i];
            if (sec->value && sec->value_len >= MASK_MIN &&
                !strncasecmp(p, sec->value, sec->value_len))
                m = sec;
        }
        if (m) {
            buf_appendf(&b, "[secret %s]", m->name);
            p += m->value_len;
            hit = 1;
        } else {
            buf_putc(&b, *p++);
        }
    }
    if (!hit) {
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b, NULL);
}

/* qs() of s with secret values masked first, so truncation cannot leave a prefix of one. */
static struct qstr qsv(const struct vctx *v, const char *s)
{
    char *masked = mask_values(v, s);
    struct qstr q = qs(masked ? masked : s);
    free(masked);
    return q;
}

static size_t jp_push(struct vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t jp_push(struct vctx *v, const char *fmt, ...)
{
    size_t old = v->plen;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(v->path + v->plen, sizeof(v->path) - v->plen, fmt, ap);
    va_end(ap);
    if (n > 0)
        v->plen +=
            (size_t)n < sizeof(v->path) - v->plen ? (size_t)n : sizeof(v->path) - 1 - v->plen;
    return old;
}

static size_t jp_key(struct vctx *v, const char *key)
{
    return jp_push(v, v->plen ? ".%s" : "%s", key);
}

static size_t jp_idx(struct vctx *v, size_t i)
{
    return jp_push(v, "[%zu]", i);
}

static void jp_pop(struct vctx *v, size_t old)
{
    v->plen = old;
    v->path[old] = '\0';
}

static void jerr_allowed(struct vctx *v, const char *allowed, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void jerr_allowed(struct vctx *v, const char *allowed, const char *fmt, ...)
{
    struct buf b;
    buf_init(&b, 0);
    va_list ap;
    va_start(ap, fmt);
    buf_vappendf(&b, fmt, ap);
    va_end(ap);
    char *masked = mask_values(v, buf_cstr(&b));
    const char *msg = masked ? masked : buf_cstr(&b);
    if (v->plen)
        diag_error(v->diags, v->file, 0, 0, NULL, allowed, "%s: %s", v->path, msg);
    else
        diag_error(v->diags, v->file, 0, 0, NULL, allowed, "%s", msg);
    free(masked);
    buf_release(&b);
    v->errors++;
}

#define jerr(v, ...) jerr_allowed((v), NULL, __VA_ARGS__)

static const char *jtype(const cJSON *x)
{
    if (cJSON_IsObject(x))
        return "an object";
    if (cJSON_IsArray(x))
        return "an array";
    if (cJSON_IsString(x))
        return "a string";
    if (cJSON_IsNumber(x))
        return "a number";
    if (cJSON_IsBool(x))
        return "a boolean";
    if (cJSON_IsNull(x))
        return "null";
    return "an invalid value";
}

struct jkey {
    const char *name;
    const char *allowed; /* the key list, for the message */
};

/*
 * Checks that o is an object holding exactly the keys in keys[] (each
 * once; every one is required, since the writer prints the canonical form
 * with every field).  found[i] receives each key's value.  Returns 0, or -1
 * after reporting.
 */
static int want_object_opt(struct vctx *v, const cJSON *o, const char *const *keys, size_t n,
                           unsigned optional, const char *allowed, const cJSON **found);

static int want_object(struct vctx *v, const cJSON *o, const char *const *keys, size_t n,
                       const char *allowed, const cJSON **found)
{
    return want_object_opt(v, o, keys, n, 0, allowed, found);
}

/* want_object() where keys[i] may be absent when bit i of optional is set. */
static int want_object_opt(struct vctx *v, const cJSON *o, const char *const *keys, size_t n,
                           unsigned optional, const char *allowed, const cJSON **found)
{
    for (size_t i = 0; i < n; i++)
        found[i] = NULL;
    if (!cJSON_IsObject(o)) {
        jerr(v, "must be an object, got %s", jtype(o));
        return -1;
    }
    int bad = 0;
    for (const cJSON *c = o->child; c; c = c->next) {
        size_t i = 0;
        while (i < n && strcmp(keys[i], c->string))
            i++;
        if (i == n) {
            if (v->secret_file && !charset_ok(c->string, "abcdefghijklmnopqrstuvwxyz_",
                                              "abcdefghijklmnopqrstuvwxyz_", 32))
                jerr_allowed(v, allowed, "unknown key (not shown: this file holds secrets)");
            else
                jerr_allowed(v, allowed, "unknown key '%s'", qsv(v, c->string).s);
            bad = 1;
        } else if (found[i]) {
            jerr(v, "duplicate key '%s'", keys[i]);
            bad = 1;
        } else {
            found[i] = c;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!found[i] && !(optional & (1u << i))) {
            jerr(v, "missing key '%s'", keys[i]);
            bad = 1;
        }
    return bad ? -1 : 0;
}

static const char *want_string(struct vctx *v, const cJSON *x)
{
    if (cJSON_IsString(x) && x->valuestring)
        return x->valuestring;
    jerr(v, "must be a string, got %s", jtype(x));
    return NULL;
}

static int want_array(struct vctx *v, const cJSON *x)
{
    if (cJSON_IsArray(x))
        return 0;
    jerr(v, "must be an array, got %s", jtype(x));
    return -1;
}

static int want_int(struct vctx *v, const cJSON *x, int lo, int hi, int *ret)
{
    if (!cJSON_IsNumber(x)) {
        jerr(v, "must be an integer, got %s", jtype(x));
        return -1;
    }
    double d = x->valuedouble;
    if (!(d >= lo && d <= hi) || d != (double)(int)d) {
        jerr(v, "must be an integer from %d to %d", lo, hi);
        return -1;
    }
    *ret = (int)d;
    return 0;
}

static char *adup(struct vctx *v, const char *s)
{
    return arena_strdup(v->a, s);
}

/*
 * cJSON accepts things strict JSON does not and turns "\u0000" into a NUL
 * that silently truncates a string.  This pass refuses raw control
 * characters in strings, NUL bytes anywhere and the \u0000 escape, with a
 * line and column since there is no node to name yet.
 */
static int json_prescan(struct vctx *v, const char *s, size_t n)
{
    int in_str = 0, line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *why = NULL;
        if (ch == 0)
            why = "NUL byte";
        else if (in_str && ch < 0x20)
            why = "control character in a string (escape it)";
        else if (in_str && ch == '\\') {
            if (i + 5 < n && s[i + 1] == 'u' && !memcmp(s + i + 2, "0000", 4))
                why = "\\u0000 in a string";
            i++; /* the escaped character cannot end the string */
        } else if (ch == '"')
            in_str = !in_str;
        if (why) {
            diag_error(v->diags, v->file, line, (int)(i - line_start + 1), NULL, NULL,
                       "invalid JSON: %s", why);
            v->errors++;
            return -1;
        }
        if (ch == '\n') {
            line++;
            line_start = i + 1;
        }
    }
    return 0;
}

static cJSON *json_parse(struct vctx *v, const char *s, size_t n)
{
    if (json_prescan(v, s, n) < 0)
        return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    size_t off = end && end >= s && end <= s + n ? (size_t)(end - s) : 0;
    if (root)
        while (off < n && strchr(" \t\r\n", s[off]))
            off++;
    if (root && off == n)
        return root;
    cJSON_Delete(root);
    int line = 1;
    size_t ls = 0;
    for (size_t i = 0; i < off && i < n; i++)
        if (s[i] == '\n') {
            line++;
            ls = i + 1;
        }
    diag_error(v->diags, v->file, line, (int)(off - ls + 1), NULL, NULL,
               root ? "invalid JSON: trailing data after the document"
                    : "invalid JSON: syntax error");
    v->errors++;
    return NULL;
}

/* ------------------------------------------------------------ value checks */

/* Same flags as the manifest check: the whole path or value must match. */
static int check_regex(struct vctx *v, const char *s)
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
    jerr(v, "invalid regex '%s': %s at offset %zu", qsv(v, s).s, (const char *)msg, (size_t)off);
    return -1;
}

/* A host exactly as host_normalize() writes it. */
static char *check_host(struct vctx *v, const cJSON *x, int allow_wildcard)
{
    const char *s = want_string(v, x);
    if (!s)
        return NULL;
    char *norm = NULL;
    int r = host_normalize(s, strlen(s), allow_wildcard, &norm);
    if (r != HOST_OK) {
        jerr(v, "invalid host '%s': %s", qsv(v, s).s, host_strerror(r));
        return NULL;
    }
    int same = !strcmp(norm, s);
    if (!same)
        jerr(v, "host '%s' is not in normalised form (expected '%s')", qsv(v, s).s, qsv(v, norm).s);
    free(norm);
    return same ? adup(v, s) : NULL;
}

static char *check_ip(struct vctx *v, const cJSON *x)
{
    const char *s = want_string(v, x);
    if (!s)
        return NULL;
    unsigned char tmp[16];
    if (inet_pton(AF_INET, s, tmp) != 1 && inet_pton(AF_INET6, s, tmp) != 1) {
        jerr(v, "invalid IP address '%s'", qsv(v, s).s);
        return NULL;
    }
    return adup(v, s);
}

static int check_cidr(struct vctx *v, const cJSON *x, struct pconf_cidr *out)
{
    const char *s = want_string(v, x);
    if (!s)
        return -1;
    const char *slash = strchr(s, '/');
    char addr[64];
    size_t alen = slash ? (size_t)(slash - s) : 0;
    const char *digits = slash ? slash + 1 : "";
    size_t nd = strlen(digits);
    int ok = slash && alen > 0 && alen < sizeof(addr) && nd >= 1 && nd <= 3 &&
             strspn(digits, "0123456789") == nd && !(nd > 1 && digits[0] == '0');
    struct pconf_cidr c = {0};
    if (ok) {
        memcpy(addr, s, alen);
        addr[alen] = '\0';
        c.prefix = (int)strtol(digits, NULL, 10);
        if (inet_pton(AF_INET, addr, c.addr) == 1)
            c.family = AF_INET;
        else if (inet_pton(AF_INET6, addr, c.addr) == 1)
            c.family = AF_INET6;
        else
            ok = 0;
    }
    if (!ok) {
        jerr(v, "invalid CIDR '%s': expected ADDRESS/PREFIX (IPv4 or IPv6)", qsv(v, s).s);
        return -1;
    }
    int bits = c.family == AF_INET ? 32 : 128;
    if (c.prefix > bits) {
        jerr(v, "invalid CIDR '%s': the prefix must be 0 to %d", qsv(v, s).s, bits);
        return -1;
    }
    for (int b = c.prefix; b < bits; b++)
        if (c.addr[b / 8] & (0x80 >> (b % 8))) {
            jerr(v, "invalid CIDR '%s': host bits are set after /%d", qsv(v, s).s, c.prefix);
            return -1;
        }
    *out = c;
    return 0;
}

/* ------------------------------------------------------------ secrets.json */

static const char *const secret_keys[] = {"name", "value", "hosts"};

static int secret_value_ok(const char *s, size_t n)
{
    if (n == 0 || n > SECRET_MAX || s[0] == ' ' || s[n - 1] == ' ')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return 0;
    }
    return 1;
}

static void parse_secret(struct vctx *v, const cJSON *it, struct pconf *c, struct pconf_secret *out)
{
    const cJSON *f[3];
    if (want_object(v, it, secret_keys, 3, "name, value, hosts", f) < 0 && !f[0])
        return;
    struct pconf_secret s = {0};
    size_t old = jp_key(v, "name");
    const char *name = f[0] ? want_string(v, f[0]) : NULL;
    if (name && !charset_ok(name, UPPER "_", UPPER "0123456789_", 256)) {
        jerr(v, "invalid secret name (not shown): upper-case letters, digits and '_', not "
                "starting with a digit");
        name = NULL;
    }
    for (size_t i = 0; name && i < c->n_secrets; i++)
        if (!strcmp(c->secrets[i].name, name)) {
            jerr(v, "duplicate secret '%s'", name);
            name = NULL;
        }
    jp_pop(v, old);
    if (f[1]) {
        old = jp_key(v, "value");
        if (!cJSON_IsString(f[1]) || !f[1]->valuestring)
            jerr(v, "must be a string, got %s", jtype(f[1]));
        else if (!secret_value_ok(f[1]->valuestring, strlen(f[1]->valuestring)))
            jerr(v,
                 "the value of secret '%s' must be 1 to %zu bytes with no control characters "
                 "and no leading or trailing space (value not shown)",
                 name ? name : "?", SECRET_MAX);
        else {
            s.value_len = strlen(f[1]->valuestring);
            s.value = arena_strndup(v->a, f[1]->valuestring, s.value_len);
        }
        jp_pop(v, old);
    }
    if (f[2]) {
        old = jp_key(v, "hosts");
        size_t n = cJSON_IsArray(f[2]) ? (size_t)cJSON_GetArraySize(f[2]) : 0;
        if (want_array(v, f[2]) == 0 && n == 0)
            jerr(v, "secret '%s' must be bound to at least one host", name ? name : "?");
        s.hosts = arena_alloc(v->a, (n ? n : 1) * sizeof(*s.hosts));
        size_t i = 0;
        for (const cJSON *h = n ? f[2]->child : NULL; h; h = h->next, i++) {
            size_t o2 = jp_idx(v, i);
            char *host = NULL;
            if (cJSON_IsString(h) && h->valuestring && !strcmp(h->valuestring, "*")) {
                s.any_host = 1;
                host = adup(v, "*");
            } else {
                host = check_host(v, h, 1);
            }
            for (size_t j = 0; host && j < s.n_hosts; j++)
                if (!strcmp(s.hosts[j], host)) {
                    jerr(v, "duplicate host '%s'", qsv(v, host).s);
                    host = NULL;
                }
            if (host)
                s.hosts[s.n_hosts++] = host;
            jp_pop(v, o2);
        }
        if (s.any_host && n > 1)
            jerr(v, "'*' (any host) must be the only entry of a binding");
        jp_pop(v, old);
    }
    if (name && s.value && s.n_hosts) {
        s.name = adup(v, name);
        *out = s;
        c->n_secrets++;
        if (s.any_host)
            diag_add(v->diags, DIAG_WARNING, v->file, 0, 0, NULL, NULL,
                     "%s: secret '%s' is bound to any host ('*'): an explicit opt-out, logged on "
                     "every use",
                     v->path, s.name);
    }
}

static const char *const secrets_top_keys[] = {"version", "secrets"};

static void parse_secrets(struct vctx *v, const cJSON *root, struct pconf *c)
{
    const cJSON *f[2];
    want_object(v, root, secrets_top_keys, 2, "version, secrets", f);
    int version;
    if (f[0]) {
        size_t old = jp_key(v, "version");
        want_int(v, f[0], 1, 1, &version); /* only version 1 exists */
        jp_pop(v, old);
    }
    if (!f[1])
        return;
    size_t old = jp_key(v, "secrets");
    if (want_array(v, f[1]) == 0) {
        size_t n = (size_t)cJSON_GetArraySize(f[1]);
        c->secrets = arena_alloc(v->a, (n ? n : 1) * sizeof(*c->secrets));
        size_t i = 0;
        for (const cJSON *it = f[1]->child; it; it = it->next, i++) {
            size_t o2 = jp_idx(v, i);
            parse_secret(v, it, c, &c->secrets[c->n_secrets]);
            jp_pop(v, o2);
        }
    }
    jp_pop(v, old);
}

/* ------------------------------------------------------------ routes.json */

struct detector {
    const char *name;
    unsigned bit;
};

static const struct detector out_detectors[] = {{"known_secrets", PCONF_DLP_KNOWN_SECRETS},
                                                {"token_patterns", PCONF_DLP_TOKEN_PATTERNS}};
static const struct detector in_detectors[] = {
    {"naive_injection_detection", PCONF_DLP_NAIVE_INJECTION}};

static const char *const dlp_side_keys[] = {"action", "detectors"};

static void parse_dlp_side(struct vctx *v, const cJSON *x, const struct detector *names,
                           size_t n_names, const char *allowed, unsigned *bits,
                           enum pconf_action *action)
{
    const cJSON *f[2];
    if (want_object(v, x, dlp_side_keys, 2, "action, detectors", f) < 0 && !f[0] && !f[1])
        return;
    int act = -1;
    if (f[0]) {
        size_t old = jp_key(v, "action");
        const char *s = want_string(v, f[0]);
        if (s && !strcmp(s, "off"))
            act = PCONF_ACTION_OFF;
        else if (s && !strcmp(s, "audit"))
            act = PCONF_ACTION_AUDIT;
        else if (s && !strcmp(s, "block"))
            act = PCONF_ACTION_BLOCK;
        else if (s)
            jerr_allowed(v, "off, audit, block", "unknown action '%s'", qsv(v, s).s);
        jp_pop(v, old);
    }
    unsigned b = 0;
    int list_ok = 0;
    if (f[1]) {
        size_t old = jp_key(v, "detectors");
        if (want_array(v, f[1]) == 0) {
            list_ok = 1;
            size_t i = 0;
            for (const cJSON *it = f[1]->child; it; it = it->next, i++) {
                size_t o2 = jp_idx(v, i);
                const char *s = want_string(v, it);
                unsigned bit = 0;
                for (size_t j = 0; s && j < n_names; j++)
                    if (!strcmp(names[j].name, s))
                        bit = names[j].bit;
                if (s && !bit)
                    jerr_allowed(v, allowed, "unknown detector '%s'", qsv(v, s).s);
                else if (bit & b)
                    jerr(v, "duplicate detector '%s'", s);
                if (!s || !bit)
                    list_ok = 0;
                b |= bit;
                jp_pop(v, o2);
            }
        }
        jp_pop(v, old);
    }
    if (act >= 0 && list_ok && (act == PCONF_ACTION_OFF) != (b == 0))
        jerr(v, "action '%s' needs %s detectors list",
             act == PCONF_ACTION_OFF     ? "off"
             : act == PCONF_ACTION_AUDIT ? "audit"
                                         : "block",
             act == PCONF_ACTION_OFF ? "an empty" : "a non-empty");
    *bits = b;
    if (act >= 0)
        *action = (enum pconf_action)act;
}

static const char *const path_keys[] = {"type", "value"};
static const char *const header_keys[] = {"name", "type", "value"};
static const char *const match_keys[] = {"headers", "methods", "paths"};

static int token_char(int ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+.^_`|~-", ch));
}

static void parse_match(struct vctx *v, const cJSON *x, struct pconf_match *m)
{
    const cJSON *f[3];
    want_object(v, x, match_keys, 3, "headers, methods, paths", f);
    size_t old;
    if (f[0]) { /* headers */
        old = jp_key(v, "headers");
        if (want_array(v, f[0]) == 0) {
            size_t n = (size_t)cJSON_GetArraySize(f[0]);
            m->headers = arena_alloc(v->a, (n ? n : 1) * sizeof(*m->headers));
            size_t i = 0;
            for (const cJSON *it = f[0]->child; it; it = it->next, i++) {
                size_t o2 = jp_idx(v, i);
                const cJSON *h[3];
                struct pconf_header hd = {NULL, NULL, PCONF_HEADER_EXACT};
                int ok = want_object(v, it, header_keys, 3, "name, type, value", h) == 0;
                if (ok) {
                    size_t o3 = jp_key(v, "name");
                    const char *s = want_string(v, h[0]);
                    int good = s && *s;
                    for (const char *p = s; good && *p; p++)
                        good = token_char((unsigned char)*p) && !isupper((unsigned char)*p);
                    if (s && !good)
                        jerr(v, "invalid header name '%s': a lower-case HTTP token", qsv(v, s).s);
                    ok = good;
                    hd.name = good ? adup(v, s) : NULL;
                    jp_pop(v, o3);
                    o3 = jp_key(v, "type");
                    s = want_string(v, h[1]);
                    if (s && !strcmp(s, "regex"))
                        hd.type = PCONF_HEADER_REGEX;
                    else if (s && strcmp(s, "exact"))
                        jerr_allowed(v, "exact, regex", "unknown header match type '%s'",
                                     qsv(v, s).s);
                    ok &= s && (!strcmp(s, "regex") || !strcmp(s, "exact"));
                    jp_pop(v, o3);
                    o3 = jp_key(v, "value");
                    s = want_string(v, h[2]);
                    if (s && ok && hd.type == PCONF_HEADER_REGEX && check_regex(v, s) < 0)
                        s = NULL;
                    ok &= s != NULL;
                    hd.value = s ? adup(v, s) : NULL;
                    jp_pop(v, o3);
                }
                if (ok)
                    m->headers[m->n_headers++] = hd;
                jp_pop(v, o2);
            }
        }
        jp_pop(v, old);
    }
    if (f[1]) { /* methods */
        old = jp_key(v, "methods");
        if (want_array(v, f[1]) == 0) {
            size_t n = (size_t)cJSON_GetArraySize(f[1]);
            m->methods = arena_alloc(v->a, (n ? n : 1) * sizeof(*m->methods));
            size_t i = 0;
            for (const cJSON *it = f[1]->child; it; it = it->next, i++) {
                size_t o2 = jp_idx(v, i);
                const char *s = want_string(v, it);
                if (s && !charset_ok(s, UPPER, UPPER "-", 32)) {
                    jerr(v, "invalid method '%s': upper-case letters and '-'", qsv(v, s).s);
                    s = NULL;
                }
                for (size_t j = 0; s && j < m->n_methods; j++)
                    if (!strcmp(m->methods[j], s)) {
                        jerr(v, "duplicate method '%s'", s);
                        s = NULL;
                    }
                if (s)
                    m->methods[m->n_methods++] = adup(v, s);
                jp_pop(v, o2);
            }
        }
        jp_pop(v, old);
    }
    if (f[2]) { /* paths */
        old = jp_key(v, "paths");
        if (want_array(v, f[2]) == 0) {
            size_t n = (size_t)cJSON_GetArraySize(f[2]);
            m->paths = arena_alloc(v->a, (n ? n : 1) * sizeof(*m->paths));
            size_t i = 0;
            for (const cJSON *it = f[2]->child; it; it = it->next, i++) {
                size_t o2 = jp_idx(v, i);
                const cJSON *p[2];
                struct pconf_path pp = {PCONF_PATH_PREFIX, NULL};
                if (want_object(v, it, path_keys, 2, "type, value", p) == 0) {
                    size_t o3 = jp_key(v, "type");
                    const char *t = want_string(v, p[0]);
                    int ok = 1;
                    if (t && !strcmp(t, "prefix"))
                        pp.type = PCONF_PATH_PREFIX;
                    else if (t && !strcmp(t, "exact"))
                        pp.type = PCONF_PATH_EXACT;
                    else if (t && !strcmp(t, "regex"))
                        pp.type = PCONF_PATH_REGEX;
                    else {
                        if (t)
                            jerr_allowed(v, "prefix, exact, regex", "unknown path type '%s'",
                                         qsv(v, t).s);
                        ok = 0;
                    }
                    jp_pop(v, o3);
                    o3 = jp_key(v, "value");
                    const char *s = want_string(v, p[1]);
                    if (s && ok && pp.type == PCONF_PATH_REGEX) {
                        if (check_regex(v, s) == 0)
                            pp.value = adup(v, s);
                    } else if (s && ok) {
                        const char *why = urlpath_config_problem(s);
                        if (why)
                            jerr(v, "path '%s' %s", qsv(v, s).s, why);
                        else
                            pp.value = adup(v, s);
                    }
                    jp_pop(v, o3);
                }
                if (pp.value)
                    m->paths[m->n_paths++] = pp;
                jp_pop(v, o2);
            }
        }
        jp_pop(v, old);
    }
}

/* Does the secret's binding cover the route host (manifest.md, Secrets)? */
static int binding_covers(const struct pconf_secret *s, const char *host)
{
    return host_binding_covers((const char *const *)s->hosts, s->n_hosts, host);
}

static const char *const auth_keys[] = {"scheme", "token_ref"};

static void parse_auth(struct vctx *v, const cJSON *x, const struct pconf *c, int secrets_ok,
                       struct pconf_route *r)
{
    if (cJSON_IsNull(x))
        return;
    const cJSON *f[2];
    if (want_object(v, x, auth_keys, 2, "scheme, token_ref", f) < 0 && !f[0] && !f[1])
        return;
    const char *scheme = NULL, *ref = NULL;
    if (f[0]) {
        size_t old = jp_key(v, "scheme");
        scheme = want_string(v, f[0]);
        if (scheme && strcmp(scheme, "Bearer") && strcmp(scheme, "token")) {
            jerr_allowed(v, "Bearer, token", "unknown auth scheme '%s'", qsv(v, scheme).s);
            scheme = NULL;
        }
        jp_pop(v, old);
    }
    if (f[1]) {
        size_t old = jp_key(v, "token_ref");
        ref = want_string(v, f[1]);
        if (ref && !charset_ok(ref, UPPER "_", UPPER "0123456789_", 256)) {
            jerr(v,
                 "invalid secret name '%s': upper-case letters, digits and '_', not starting "
                 "with a digit",
                 qsv(v, ref).s);
            ref = NULL;
        }
        const struct pconf_secret *sec = NULL;
        for (size_t i = 0; ref && i < c->n_secrets; i++)
            if (!strcmp(c->secrets[i].name, ref))
                sec = &c->secrets[i];
        if (ref && secrets_ok && !sec)
            jerr(v, "secret '%s' is not in secrets.json", ref);
        else if (sec && r->host && !binding_covers(sec, r->host))
            jerr(v,
                 !strncmp(r->host, "*.", 2)
                     ? "secret '%s' may not be used for host '%s': a wildcard route needs the "
                       "binding to name that same wildcard"
                     : "secret '%s' may not be used for host '%s': outside its host binding",
                 ref, r->host);
        else if (sec)
            r->secret = sec;
        jp_pop(v, old);
    }
    r->auth_scheme = scheme ? adup(v, scheme) : NULL;
    r->token_ref = ref ? adup(v, ref) : NULL;
}

static const char *const route_keys[] = {"auth",    "dlp",   "git_fetch", "host",
                                         "matches", "ports", "role"};
static const char *const dlp_keys[] = {"inbound", "outbound"};

static int parse_route(struct vctx *v, const cJSON *x, const struct pconf *c, int secrets_ok,
                       struct pconf_route *r)
{
    size_t before = v->errors;
    const cJSON *f[7];
    want_object(v, x, route_keys, 7, "auth, dlp, git_fetch, host, matches, ports, role", f);
    size_t old;
    if (f[3]) {
        old = jp_key(v, "host");
        r->host = check_host(v, f[3], 1);
        jp_pop(v, old);
    }
    if (f[0]) {
        old = jp_key(v, "auth");
        parse_auth(v, f[0], c, secrets_ok, r);
        jp_pop(v, old);
    }
    if (f[1]) {
        old = jp_key(v, "dlp");
        const cJSON *d[2];
        want_object(v, f[1], dlp_keys, 2, "inbound, outbound", d);
        if (d[0]) {
            size_t o2 = jp_key(v, "inbound");
            parse_dlp_side(v, d[0], in_detectors, 1, "naive_injection_detection", &r->dlp_in,
                           &r->dlp_in_action);
            jp_pop(v, o2);
        }
        if (d[1]) {
            size_t o2 = jp_key(v, "outbound");
            parse_dlp_side(v, d[1], out_detectors, 2, "known_secrets, token_patterns", &r->dlp_out,
                           &r->dlp_out_action);
            jp_pop(v, o2);
        }
        jp_pop(v, old);
    }
    if (f[2]) {
        old = jp_key(v, "git_fetch");
        if (cJSON_IsBool(f[2]))
            r->git_fetch = cJSON_IsTrue(f[2]);
        else
            jerr(v, "must be a boolean, got %s", jtype(f[2]));
        jp_pop(v, old);
    }
    if (f[4]) {
        old = jp_key(v, "matches");
        if (want_array(v, f[4]) == 0) {
            size_t n = (size_t)cJSON_GetArraySize(f[4]);
            r->matches = arena_alloc(v->a, (n ? n : 1) * sizeof(*r->matches));
            size_t i = 0;
            for (const cJSON *it = f[4]->child; it; it = it->next, i++) {
                size_t o2 = jp_idx(v, i);
                parse_match(v, it, &r->matches[r->n_matches++]);
                jp_pop(v, o2);
            }
        }
        jp_pop(v, old);
    }
    if (f[5]) {
        old = jp_key(v, "ports");
        if (want_array(v, f[5]) == 0) {
            size_t n = (size_t)cJSON_GetArraySize(f[5]);
            if (n == 0)
                jerr(v, "must not be empty");
            r->ports = arena_alloc(v->a, (n ? n : 1) * sizeof(*r->ports));
            size_t i = 0;
            for (const cJSON *it = f[5]->child; it; it = it->next, i++) {
                size_t o2 = jp_idx(v, i);
                int p = 0;
                if (want_int(v, it, 1, 65535, &p) == 0) {
                    int dup = 0;
                    for (size_t j = 0; j < r->n_ports; j++)
                        dup |= r->ports[j] == p;
                    if (dup)
                        jerr(v, "duplicate port %d", p);
                    else
                        r->ports[r->n_ports++] = p;
                    if (p == 80 && f[0] && !cJSON_IsNull(f[0]))
                        jerr(v, "port 80 (plain HTTP) is refused on a route with auth: the "
                                "credential would travel in clear text");
                }
                jp_pop(v, o2);
            }
        }
        jp_pop(v, old);
    }
    if (f[6]) {
        old = jp_key(v, "role");
        if (!cJSON_IsNull(f[6])) {
            const char *s = want_string(v, f[6]);
            if (s && !charset_ok(s, ALNUM, ALNUM "._-", 64))
                jerr(v, "invalid role '%s': 1-64 characters of letters, digits, '.', '_', '-'",
                     qsv(v, s).s);
            else if (s)
                r->role = adup(v, s);
        }
        jp_pop(v, old);
    }
    return v->errors == before ? 0 : -1;
}

static const char *const tunnel_keys[] = {"host", "port", "token_sha256"};

/* One "tunnels" entry: the only raw, un-bumped tunnel the proxy opens (pconf.h). */
static void parse_tunnel(struct vctx *v, const cJSON *x, struct pconf *c)
{
    const cJSON *f[3];
    size_t before = v->errors, old;
    struct pconf_tunnel t;
    memset(&t, 0, sizeof(t));
    want_object(v, x, tunnel_keys, 3, "host, port, token_sha256", f);
    if (f[0]) {
        old = jp_key(v, "host");
        t.host = check_host(v, f[0], 0);
        jp_pop(v, old);
    }
    if (f[1]) {
        old = jp_key(v, "port");
        want_int(v, f[1], 1, 65535, &t.port);
        jp_pop(v, old);
    }
    if (f[2]) {
        old = jp_key(v, "token_sha256");
        const char *s = want_string(v, f[2]);
        if (s && !is_hex64(s, strlen(s)))
            jerr(v, "must be 64 lower-case hex digits (the SHA-256 of the tunnel token)");
        else if (s)
            for (size_t i = 0; i < sizeof(t.token_sha256); i++)
                t.token_sha256[i] = (unsigned char)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
        jp_pop(v, old);
    }
    if (v->errors != before)
        return;
    for (size_t j = 0; j < c->n_tunnels; j++)
        if (!strcmp(c->tunnels[j].host, t.host) && c->tunnels[j].port == t.port) {
            jerr(v, "duplicate tunnel %s:%d; one entry per host and port", t.host, t.port);
            return;
        }
    c->tunnels[c->n_tunnels++] = t;
}

static const char *const routes_top_keys[] = {"allow_private", "bottle",  "dns",    "hosts",
                                              "routes",        "version", "tunnels"};
#define ROUTES_TOP_OPTIONAL (1u << 6) /* "tunnels" */
static const char *const static_host_keys[] = {"name", "ip"};

static void parse_routes(struct vctx *v, const cJSON *root, struct pconf *c, int secrets_ok)
{
    const cJSON *f[7];
    want_object_opt(v, root, routes_top_keys, 7, ROUTES_TOP_OPTIONAL,
                    "version, bottle, routes, dns, hosts, allow_private, tunnels", f);
    size_t old;
    if (f[6]) {
        old = jp_key(v, "tunnels");
        if (want_array(v, f[6]) == 0) {
            size_t n = (size_t)cJSON_GetArraySize(f[6]);
            c->tunnels = arena_alloc(v->a, (n ? n : 1) * sizeof(*c->tunnels));
            size_t i = 0;
            for (const cJSON *it = f[6]->child; it; it = it->next, i++) {
                size_t o2 = jp_idx(v, i);
                parse_tunnel(v, it, c);
                jp_pop(v, o2);
            }
        }
        jp_pop(v, old);
    }
    if (f[5]) {
        int version;
        old = jp_key(v, "version");
        want_int(v, f[5], 1, 1, &version);
        jp_pop(v, old);
    }
    if (f[1]) {
        old = jp_key(v, "bottle");
        const char *s = want_string(v, f[1]);
        size_t n = s ? strlen(s) : 0;
        if (s && (!charset_ok(s, LOWER_DIGIT, LOWER_DIGIT "-", 40) || s[n - 1] == '-'))
            jerr(v,
                 "invalid bottle name '%s': 1-40 characters of a-z, 0-9 and '-', starting and "
                 "ending with a letter or digit",
                 qsv(v, s).s);
        else if (s)
            c->bottle = adup(v, s);
        jp_pop(v, old);
    }
    if (f[4]) {
        old = jp_key(v, "routes");
        if (want_array(v, f[4]) == 0) {
            size_t n = (size_t)cJSON_GetArraySize(f[4]);
            c->routes = arena_alloc(v->a, (n ? n : 1) * sizeof(*c->routes));
            size_t i = 0;
            for (const cJSON *it = f[4]->child; it; it = it->next, i++) {
                size_t o2 = jp_idx(v, i);
                struct pconf_route *r = &c->routes[c->n_routes];
                memset(r, 0, sizeof(*r));
                if (parse_route(v, it, c, secrets_ok, r) == 0) {
                    int dup = 0;
                    for (size_t j = 0; j < c->n_routes; j++)
                        dup |= !strcmp(c->routes[j].host, r->host);
                    if (dup)
                        jerr(v, "duplicate route host '%s'; one route per host", r->host);
                    else
                        c->n_routes++;
                }
                jp_pop(v, o2);
            }
        }
        jp_pop(v, old);
    }
    if (f[2]) {
        old = jp_key(v, "dns");
        if (!cJSON_IsNull(f[2]))
            c->dns_server = check_ip(v, f[2]);
        jp_pop(v, old);
    }
    if (f[3]) {
        old = jp_key(v, "hosts");
        if (want_array(v, f[3]) == 0) {
            size_t n = (size_t)cJSON_GetArraySize(f[3]);
            c->hosts = arena_alloc(v->a, (n ? n : 1) * sizeof(*c->hosts));
            size_t i = 0;
            for (const cJSON *it = f[3]->child; it; it = it->next, i++) {
                size_t o2 = jp_idx(v, i);
                const cJSON *h[2];
                if (want_object(v, it, static_host_keys, 2, "name, ip", h) == 0) {
                    size_t o3 = jp_key(v, "name");
                    char *name = check_host(v, h[0], 0);
                    for (size_t j = 0; name && j < c->n_hosts; j++)
                        if (!strcmp(c->hosts[j].name, name)) {
                            jerr(v, "duplicate static host '%s'", name);
                            name = NULL;
                        }
                    jp_pop(v, o3);
                    o3 = jp_key(v, "ip");
                    char *ip = check_ip(v, h[1]);
                    jp_pop(v, o3);
                    if (name && ip)
                        c->hosts[c->n_hosts++] = (struct pconf_static_host){name, ip};
                }
                jp_pop(v, o2);
            }
        }
        jp_pop(v, old);
    }
    if (f[0]) {
        old = jp_key(v, "allow_private");
        if (want_array(v, f[0]) == 0) {
            size_t n = (size_t)cJSON_GetArraySize(f[0]);
            c->allow_private = arena_alloc(v->a, (n ? n : 1) * sizeof(*c->allow_private));
            size_t i = 0;
            for (const cJSON *it = f[0]->child; it; it = it->next, i++) {
                size_t o2 = jp_idx(v, i);
                if (check_cidr(v, it, &c->allow_private[c->n_allow_private]) == 0)
                    c->n_allow_private++;
                jp_pop(v, o2);
            }
        }
        jp_pop(v, old);
    }
}

/* cJSON_Delete does not wipe; secrets.json's strings are wiped first. */
static void json_wipe(cJSON *x)
{
    for (; x; x = x->next) {
        if (x->valuestring)
            OPENSSL_cleanse(x->valuestring, strlen(x->valuestring));
        json_wipe(x->child); /* depth is bounded by cJSON's nesting limit */
    }
}

static void json_wipe_delete(cJSON *x)
{
    json_wipe(x);
    cJSON_Delete(x);
}

static struct pconf *pconf_new(void)
{
    struct pconf *c = xcalloc(1, sizeof(*c));
    c->refs = 1;
    arena_init(&c->arena);
    return c;
}

static void pconf_free(struct pconf *c)
{
    for (size_t i = 0; i < c->n_secrets; i++)
        if (c->secrets[i].value)
            OPENSSL_cleanse(c->secrets[i].value, c->secrets[i].value_len);
    if (c->ca_key_pem)
        OPENSSL_cleanse(c->ca_key_pem, strlen(c->ca_key_pem));
    arena_release(&c->arena);
    free(c);
}

/* Validates both files into c; returns the number of errors. */
static size_t parse_json_into(struct pconf *c, const char *routes_path, const char *routes,
                              size_t routes_len, const char *secrets_path, const char *secrets,
                              size_t secrets_len, struct diag_list *diags)
{
    struct vctx sv = {
        .diags = diags, .file = secrets_path, .a = &c->arena, .secret_file = 1, .mask = c};
    cJSON *sroot = json_parse(&sv, secrets, secrets_len);
    if (sroot)
        parse_secrets(&sv, sroot, c);
    json_wipe_delete(sroot);

    struct vctx rv = {.diags = diags, .file = routes_path, .a = &c->arena, .mask = c};
    cJSON *rroot = json_parse(&rv, routes, routes_len);
    if (rroot)
        parse_routes(&rv, rroot, c, sv.errors == 0);
    cJSON_Delete(rroot);
    return sv.errors + rv.errors;
}

int pconf_parse_json(const char *routes_path, const char *routes, size_t routes_len,
                     const char *secrets_path, const char *secrets, size_t secrets_len,
                     struct diag_list *diags, struct pconf **ret)
{
    struct pconf *c = pconf_new();
    if (parse_json_into(c, routes_path, routes, routes_len, secrets_path, secrets, secrets_len,
                        diags)) {
        pconf_free(c);
        return BD_E_PARSE;
    }
    *ret = c;
    return 0;
}

/* ------------------------------------------------------------ files */

/* File bytes, allocated once at their final size so no copy of a secret is left behind. */
struct blob {
    char *data; /* NUL-terminated */
    size_t len;
};

static void blob_wipe(struct blob *b)
{
    if (b->data) {
        OPENSSL_cleanse(b->data, b->len);
        free(b->data);
    }
    b->data = NULL;
    b->len = 0;
}

struct loader {
    struct diag_list *diags;
    const char *gen_path;
    int io_failed;
    char config_hash[SHA256_HEX_LEN + 1];
    int listed[N_GEN_FILES];
    char digest[N_GEN_FILES][SHA256_HEX_LEN + 1];
    struct blob files[N_GEN_FILES];
};

/*
 * Reads dirfd/name (not following a symlink) into *out.  Returns 0, or -1
 * after reporting against path; missing is the message for ENOENT.
 */
static int read_at(struct loader *l, int dirfd, const char *name, const char *path, size_t max,
                   const char *missing, struct blob *out)
{
    int ret = -1;
    char *data = NULL;
    size_t size = 0, got = 0;
    struct stat st;
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        if (errno == ELOOP)
            diag_error(l->diags, path, 0, 0, NULL, NULL,
                       "is a symbolic link; a generation holds only regular files");
        else if (errno == ENOENT)
            diag_error(l->diags, path, 0, 0, NULL, NULL, "%s", missing);
        else {
            diag_error(l->diags, path, 0, 0, NULL, NULL, "cannot open: %s", strerror(errno));
            l->io_failed = 1;
        }
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        diag_error(l->diags, path, 0, 0, NULL, NULL, "cannot stat: %s", strerror(errno));
        l->io_failed = 1;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        diag_error(l->diags, path, 0, 0, NULL, NULL,
                   "is not a regular file; a generation holds only regular files");
        goto out;
    }
    if (st.st_size < 0 || (size_t)st.st_size > max) {
        diag_error(l->diags, path, 0, 0, NULL, NULL, "is larger than the %zu byte limit", max);
        goto out;
    }
    size = (size_t)st.st_size;
    data = xmalloc(size + 2);
    for (;;) { /* one byte more than fstat said, to see a file that grows under us */
        ssize_t n = read(fd, data + got, size + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            diag_error(l->diags, path, 0, 0, NULL, NULL, "cannot read: %s", strerror(errno));
            l->io_failed = 1;
            goto out;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (got > size)
            break;
    }
    if (got != size) {
        diag_error(l->diags, path, 0, 0, NULL, NULL, "changed while it was being read");
        goto out;
    }
    data[size] = '\0';
    out->data = data;
    out->len = size;
    data = NULL;
    ret = 0;
out:
    if (data) {
        OPENSSL_cleanse(data, size + 2);
        free(data);
    }
    if (fd >= 0)
        close(fd);
    return ret;
}

static int gen_file_index(const char *name, size_t n)
{
    for (size_t i = 0; i < N_GEN_FILES; i++)
        if (strlen(gen_files[i].name) == n && !memcmp(gen_files[i].name, name, n))
            return (int)i;
    return -1;
}

/*
 * MANIFEST, line by line:
 *   bottled-proxy-config 1
 *   config-hash <64 lower-case hex>
 *   file <64 lower-case hex> <name>      (one per file, any order)
 * every line ending in '\n', nothing else (no blank lines, no CR).
 */
static int parse_manifest(struct loader *l, const struct blob *m, const char *path)
{
    size_t before = l->diags->n_errors;
    const char *p = m->data, *end = m->data + m->len;
    int line = 0, have_hash = 0;
    if (m->len == 0 || end[-1] != '\n')
        diag_error(l->diags, path, 0, 0, NULL, NULL,
                   m->len ? "the last line does not end with a newline" : "is empty");
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        if (line == 1) {
            if (n != 22 || memcmp(p, "bottled-proxy-config 1", 22))
                diag_error(l->diags, path, 1, 0, NULL, NULL,
                           n > 21 && !memcmp(p, "bottled-proxy-config ", 21)
                               ? "unsupported MANIFEST version (this proxy reads version 1)"
                               : "the first line must be 'bottled-proxy-config 1'");
        } else if (line == 2) {
            if (n == 12 + SHA256_HEX_LEN && !memcmp(p, "config-hash ", 12) &&
                is_hex64(p + 12, SHA256_HEX_LEN)) {
                memcpy(l->config_hash, p + 12, SHA256_HEX_LEN);
                l->config_hash[SHA256_HEX_LEN] = '\0';
                have_hash = 1;
            } else {
                diag_error(l->diags, path, 2, 0, NULL, NULL,
                           "the second line must be 'config-hash <64 lower-case hex digits>'");
            }
        } else if (n > 5 + SHA256_HEX_LEN + 1 && !memcmp(p, "file ", 5) &&
                   is_hex64(p + 5, SHA256_HEX_LEN) && p[5 + SHA256_HEX_LEN] == ' ') {
            const char *name = p + 5 + SHA256_HEX_LEN + 1;
            size_t nn = n - (5 + SHA256_HEX_LEN + 1);
            int i = gen_file_index(name, nn);
            char *shown = xstrndup(name, nn);
            if (i < 0)
                diag_error(l->diags, path, line, 0, NULL, GEN_FILES_ALLOWED, "unknown file '%s'",
                           qs(shown).s);
            else if (l->listed[i])
                diag_error(l->diags, path, line, 0, NULL, NULL, "'%s' is listed twice",
                           gen_files[i].name);
            else {
                l->listed[i] = 1;
                memcpy(l->digest[i], p + 5, SHA256_HEX_LEN);
                l->digest[i][SHA256_HEX_LEN] = '\0';
            }
            free(shown);
        } else {
            diag_error(l->diags, path, line, 0, NULL, NULL,
                       "expected 'file <64 lower-case hex digits> <name>'");
        }
        p += n + 1;
    }
    if (line < 2 && !have_hash)
        diag_error(l->diags, path, 0, 0, NULL, NULL, "has no 'config-hash' line");
    for (size_t i = 0; i < N_GEN_FILES; i++)
        if (gen_files[i].required && !l->listed[i])
            diag_error(l->diags, path, 0, 0, NULL, NULL, "does not list '%s' (required)",
                       gen_files[i].name);
    return l->diags->n_errors == before ? 0 : -1;
}

/* Everything in the directory but MANIFEST must be a regular file MANIFEST lists. */
static void check_listing(struct loader *l, int genfd)
{
    int fd = dup(genfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        diag_error(l->diags, l->gen_path, 0, 0, NULL, NULL, "cannot list: %s", strerror(errno));
        l->io_failed = 1;
        if (fd >= 0)
            close(fd);
        return;
    }
    struct dirent *e;
    size_t reported = 0;
    while ((e = readdir(d)) && reported < MAX_FILES) {
        const char *name = e->d_name;
        if (!strcmp(name, ".") || !strcmp(name, "..") || !strcmp(name, "MANIFEST"))
            continue;
        int i = gen_file_index(name, strlen(name));
        if (i >= 0 && l->listed[i])
            continue; /* read_at() checks its type */
        struct stat st;
        char *path = xasprintf("%s/%s", l->gen_path, qs(name).s);
        if (fstatat(genfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            diag_error(l->diags, path, 0, 0, NULL, NULL, "cannot stat: %s", strerror(errno));
        else if (S_ISLNK(st.st_mode))
            diag_error(l->diags, path, 0, 0, NULL, NULL,
                       "is a symbolic link; a generation holds only regular files");
        else if (!S_ISREG(st.st_mode))
            diag_error(l->diags, path, 0, 0, NULL, NULL,
                       "is not a regular file; a generation holds only regular files");
        else
            diag_error(l->diags, path, 0, 0, NULL, NULL,
                       "is not listed in MANIFEST (every file must be)");
        free(path);
        reported++;
    }
    closedir(d);
}

/* ------------------------------------------------------------ PEM */

static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1; /* an encrypted key is refused, never prompted for */
}

static X509 *check_ca_cert(struct diag_list *diags, const struct blob *b, const char *path)
{
    BIO *bio = BIO_new_mem_buf(b->data, (int)b->len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    if (!x) {
        diag_error(diags, path, 0, 0, NULL, NULL, "not a PEM certificate");
        goto out;
    }
    X509 *extra = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (extra) {
        diag_error(diags, path, 0, 0, NULL, NULL, "holds more than one certificate");
        X509_free(extra);
    }
    uint32_t fl = X509_get_extension_flags(x);
    if (fl & EXFLAG_INVALID)
        diag_error(diags, path, 0, 0, NULL, NULL, "the certificate has invalid extensions");
    else if (!(fl & EXFLAG_BCONS) || !(fl & EXFLAG_CA))
        diag_error(diags, path, 0, 0, NULL, NULL,
                   "not a CA certificate (basicConstraints CA:TRUE is missing)");
    else if (!(X509_get_key_usage(x) & KU_KEY_CERT_SIGN))
        diag_error(diags, path, 0, 0, NULL, NULL,
                   "the CA certificate's keyUsage does not allow certificate signing");
    if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0)
        diag_error(diags, path, 0, 0, NULL, NULL, "the CA certificate has expired");
    if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
        diag_add(diags, DIAG_WARNING, path, 0, 0, NULL, NULL,
                 "the CA certificate is not valid yet (clock skew?)");
out:
    BIO_free(bio);
    ERR_clear_error();
    return x;
}

static void check_ca_key(struct diag_list *diags, const struct blob *b, const char *path, X509 *ca)
{
    BIO *bio = BIO_new_mem_buf(b->data, (int)b->len);
    EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL) : NULL;
    if (!k)
        diag_error(diags, path, 0, 0, NULL, NULL, "not an unencrypted PEM private key");
    else if (ca && X509_check_private_key(ca, k) != 1)
        diag_error(diags, path, 0, 0, NULL, NULL,
                   "the private key does not match the certificate in ca.pem");
    EVP_PKEY_free(k);
    BIO_free(bio);
    ERR_clear_error();
}

static void check_bundle(struct diag_list *diags, const struct blob *b, const char *path)
{
    BIO *bio = BIO_new_mem_buf(b->data, (int)b->len);
    size_t n = 0;
    X509 *x;
    while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        X509_free(x);
        n++;
    }
    unsigned long e = ERR_peek_last_error();
    if (!n)
        diag_error(diags, path, 0, 0, NULL, NULL, "holds no PEM certificate");
    else if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE)
        diag_error(diags, path, 0, 0, NULL, NULL, "certificate %zu cannot be read", n + 1);
    BIO_free(bio);
    ERR_clear_error();
}

/* ------------------------------------------------------------ load */

int pconf_load(const char *cfg_dir, const char *gen, struct diag_list *diags, struct pconf **ret)
{
    struct loader l = {.diags = diags};
    size_t before = diags->n_errors;
    int cfgfd = -1, genfd = -1;
    char *gen_name = NULL, *gen_path = NULL, *path = NULL, *rpath = NULL, *spath = NULL;
    struct blob cur = {0}, manifest = {0};
    struct pconf *c = NULL;
    X509 *ca = NULL;
    int rc = BD_E_PARSE;

    cfgfd = open(cfg_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cfgfd < 0) {
        diag_error(diags, cfg_dir, 0, 0, NULL, NULL, "cannot open the config directory: %s",
                   strerror(errno));
        l.io_failed = 1;
        goto out;
    }
    if (!gen) {
        path = xasprintf("%s/current", cfg_dir);
        if (read_at(&l, cfgfd, "current", path, CURRENT_MAX,
                    "does not exist (no generation is current)", &cur) < 0)
            goto out;
        if (cur.len < 2 || cur.data[cur.len - 1] != '\n' ||
            !gen_name_valid(cur.data, cur.len - 1)) {
            char *shown = xstrndup(cur.data, cur.len && cur.data[cur.len - 1] == '\n' ? cur.len - 1
                                                                                      : cur.len);
            diag_error(diags, path, 0, 0, NULL, NULL,
                       "must hold one line 'gen-<id>' (id: 1 to 64 of A-Z a-z 0-9 _ -), got '%s'",
                       qs(shown).s);
            free(shown);
            goto out;
        }
        gen_name = xstrndup(cur.data, cur.len - 1);
    } else {
        if (!gen_name_valid(gen, strlen(gen))) {
            diag_error(diags, cfg_dir, 0, 0, NULL, NULL,
                       "'%s' is not a generation name 'gen-<id>' (id: 1 to 64 of A-Z a-z 0-9 _ -)",
                       qs(gen).s);
            goto out;
        }
        gen_name = xstrdup(gen);
    }
    gen_path = xasprintf("%s/%s", cfg_dir, gen_name);
    l.gen_path = gen_path;
    genfd = openat(cfgfd, gen_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (genfd < 0) {
        int e = errno;
        struct stat st;
        if (e == ELOOP ||
            (e == ENOTDIR && fstatat(cfgfd, gen_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
             S_ISLNK(st.st_mode)))
            diag_error(diags, gen_path, 0, 0, NULL, NULL,
                       "is a symbolic link; a generation is a real directory");
        else if (e == ENOENT || e == ENOTDIR)
            diag_error(diags, gen_path, 0, 0, NULL, NULL, "the generation directory %s",
                       e == ENOENT ? "does not exist" : "is not a directory");
        else {
            diag_error(diags, gen_path, 0, 0, NULL, NULL, "cannot open: %s", strerror(e));
            l.io_failed = 1;
        }
        goto out;
    }

    free(path);
    path = xasprintf("%s/MANIFEST", gen_path);
    if (read_at(&l, genfd, "MANIFEST", path, MANIFEST_MAX, "does not exist", &manifest) < 0)
        goto out;
    /* Past a recognisable first line, every problem is worth reporting: go on. */
    if (parse_manifest(&l, &manifest, path) < 0 && !l.config_hash[0])
        goto out;
    check_listing(&l, genfd);
    for (size_t i = 0; i < N_GEN_FILES; i++) {
        if (!l.listed[i])
            continue;
        free(path);
        path = xasprintf("%s/%s", gen_path, gen_files[i].name);
        if (read_at(&l, genfd, gen_files[i].name, path, gen_files[i].max,
                    "is listed in MANIFEST but does not exist", &l.files[i]) < 0)
            continue;
        char hex[SHA256_HEX_LEN + 1];
        sha256_hex(l.files[i].data, l.files[i].len, hex);
        if (strcmp(hex, l.digest[i])) {
            /* The actual digest of a file holding secrets is not printed. */
            diag_error(diags, path, 0, 0, NULL, NULL,
                       "SHA-256 does not match the digest in MANIFEST");
            blob_wipe(&l.files[i]);
        }
    }

    /* Only bytes whose digest checked out are parsed. */
    c = pconf_new();
    if (l.files[F_ROUTES].data && l.files[F_SECRETS].data) {
        rpath = xasprintf("%s/routes.json", gen_path);
        spath = xasprintf("%s/secrets.json", gen_path);
        parse_json_into(c, rpath, l.files[F_ROUTES].data, l.files[F_ROUTES].len, spath,
                        l.files[F_SECRETS].data, l.files[F_SECRETS].len, diags);
    }
    if (l.files[F_CA].data) {
        free(path);
        path = xasprintf("%s/ca.pem", gen_path);
        ca = check_ca_cert(diags, &l.files[F_CA], path);
    }
    if (l.files[F_CA_KEY].data) {
        free(path);
        path = xasprintf("%s/ca-key.pem", gen_path);
        check_ca_key(diags, &l.files[F_CA_KEY], path, ca);
    }
    if (l.files[F_UPSTREAM_CA].data) {
        free(path);
        path = xasprintf("%s/upstream-ca.pem", gen_path);
        check_bundle(diags, &l.files[F_UPSTREAM_CA], path);
    }
    if (diags->n_errors != before)
        goto out;

    memcpy(c->config_hash, l.config_hash, sizeof(c->config_hash));
    c->generation = arena_strdup(&c->arena, gen_name);
    c->ca_cert_pem = arena_strndup(&c->arena, l.files[F_CA].data, l.files[F_CA].len);
    c->ca_key_pem = arena_strndup(&c->arena, l.files[F_CA_KEY].data, l.files[F_CA_KEY].len);
    if (l.listed[F_UPSTREAM_CA])
        c->upstream_ca_pem =
            arena_strndup(&c->arena, l.files[F_UPSTREAM_CA].data, l.files[F_UPSTREAM_CA].len);
    *ret = c;
    c = NULL;
    rc = 0;
out:
    if (c)
        pconf_free(c);
    X509_free(ca);
    for (size_t i = 0; i < N_GEN_FILES; i++)
        blob_wipe(&l.files[i]);
    blob_wipe(&cur);
    blob_wipe(&manifest);
    if (genfd >= 0)
        close(genfd);
    if (cfgfd >= 0)
        close(cfgfd);
    free(gen_name);
    free(gen_path);
    free(path);
    free(rpath);
    free(spath);
    if (rc && l.io_failed)
        rc = BD_E_IO;
    return rc;
}

struct pconf *pconf_ref(struct pconf *c)
{
    c->refs++;
    return c;
}

void pconf_unref(struct pconf *c)
{
    if (c && --c->refs == 0)
        pconf_free(c);
}
