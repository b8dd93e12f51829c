/*
 * firewall.c - the host firewall (see firewall.h): rendering the desired
 * chains, parsing `iptables -S`, planning one `iptables-restore --noflush`
 * transaction, and running the binaries.
 *
 * Invariants:
 *   - Rendering, parsing and planning are pure (text in, text out); only
 *     fw_exec() and the fw_sync() family run anything.
 *   - A listing is trusted only as far as it is understood: a line that is
 *     not -P/-N/-A (or a '#' comment) fails the sync rather than being
 *     skipped, so a format we do not know never reads as "converged".
 *   - Deletions name a rule by its exact spec, never by its position: a
 *     rule another tool inserts between our listing and our apply shifts
 *     positions but can never be deleted in place of ours, and a rule that
 *     vanished in between makes the whole transaction fail (and the next
 *     pass retry) instead of deleting something else.
 *   - Every string that reaches a rule (bottle, bridges, gateway) has been
 *     validated to a charset with no space, quote or iptables wildcard.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "fault.h"
#include "firewall.h"
#include "manifest.h"
#include "xalloc.h"

extern char **environ;

#define IFNAME_MAX   15
#define STDERR_KEEP  2048
#define RESTORE_MAX  ((size_t)16 << 20)
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

enum { HOOK_INPUT, HOOK_FORWARD, N_HOOKS };

static const char *const hook_chain[N_HOOKS] = {"INPUT", "FORWARD"};

struct names {
    char chain[N_HOOKS][FW_CHAIN_LEN_MAX + 1];
};

/* ------------------------------------------------------------ validation */

static int instance_ok(const char *s)
{
    if (s == NULL || strlen(s) != FW_INSTANCE_LEN)
        return 0;
    for (size_t i = 0; i < FW_INSTANCE_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int ifname_ok(const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len == 0 || len > IFNAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static void chain_names(const char *instance, struct names *nm)
{
    snprintf(nm->chain[HOOK_INPUT], sizeof(nm->chain[0]), FW_CHAIN_PREFIX "%s", instance);
    snprintf(nm->chain[HOOK_FORWARD], sizeof(nm->chain[0]), FW_CHAIN_PREFIX "%s-F", instance);
}

/* A bottle, validated, with its gateway in the canonical form iptables prints. */
struct vbottle {
    const struct fw_bottle *b;
    char gw[INET_ADDRSTRLEN]; /* "" when none */
};

static int cmp_vbottle(const void *a, const void *b)
{
    return strcmp(((const struct vbottle *)a)->b->bottle, ((const struct vbottle *)b)->b->bottle);
}

/* Validates b[0..n) and returns them sorted by name (free the result). */
static int check_bottles(const struct fw_bottle *b, size_t n, struct vbottle **ret, char *err,
                         size_t errlen)
{
    struct vbottle *v = n ? xcalloc(n, sizeof(*v)) : NULL;

    if (n > 0 && b == NULL)
        goto bad_args;
    for (size_t i = 0; i < n; i++) {
        const struct fw_bottle *x = &b[i];
        v[i].b = x;
        if (x->bottle == NULL || !bottle_name_valid(x->bottle, strlen(x->bottle))) {
            snprintf(err, errlen, "firewall: invalid bottle name");
            goto fail;
        }
        if (!ifname_ok(x->int_bridge) || !ifname_ok(x->egr_bridge) ||
            strcmp(x->int_bridge, x->egr_bridge) == 0) {
            snprintf(err, errlen, "firewall: bottle '%s': invalid or equal bridge names",
                     x->bottle);
            goto fail;
        }
        if (x->egr_gateway != NULL) {
            struct in_addr a;
            if (inet_pton(AF_INET, x->egr_gateway, &a) != 1 ||
                inet_ntop(AF_INET, &a, v[i].gw, sizeof(v[i].gw)) == NULL) {
                snprintf(err, errlen, "firewall: bottle '%s': gateway is not an IPv4 address",
                         x->bottle);
                goto fail;
            }
        }
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_vbottle);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(v[i].b->bottle, v[i - 1].b->bottle) == 0) {
            snprintf(err, errlen, "firewall: bottle '%s' given twice", v[i].b->bottle);
            goto fail;
        }
        for (size_t j = 0; j < i; j++) {
            const char *bi[2] = {v[i].b->int_bridge, v[i].b->egr_bridge};
            const char *bj[2] = {v[j].b->int_bridge, v[j].b->egr_bridge};
            for (int k = 0; k < 4; k++) {
                if (strcmp(bi[k / 2], bj[k % 2]) == 0) {
                    snprintf(err, errlen, "firewall: bottles '%s' and '%s' share bridge '%s'",
                             v[j].b->bottle, v[i].b->bottle, bi[k / 2]);
                    goto fail;
                }
            }
        }
    }
    *ret = v;
    return 0;
bad_args:
    snprintf(err, errlen, "firewall: no bottles given");
fail:
    free(v);
    return BD_E_INVAL;
}

/* ------------------------------------------------------------- rendering */

/*
 * The SPEC lines ("SPEC\n", without "-A CHAIN ") of each chain, in the
 * exact form `iptables -S` prints them: -d, -i, -o, -p first, then the
 * matches in the order given, ctstate as RELATED,ESTABLISHED, a /32 on
 * addresses, comments with a space quoted.
 */
static int render_specs(enum fw_family f, const struct vbottle *v, size_t n,
                        struct buf spec[N_HOOKS])
{
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *name = v[i].b->bottle, *in = v[i].b->int_bridge, *eg = v[i].b->egr_bridge;
        struct buf *s = &spec[HOOK_INPUT];
#define C "-m comment --comment \"bottled %s\""
        rc |= buf_appendf(s, "-i %s " C " -j DROP\n", in, name);
        rc |= buf_appendf(s, "-i %s -m conntrack --ctstate RELATED,ESTABLISHED " C " -j RETURN\n",
                          eg, name);
        if (f == FW_IPV4 && v[i].gw[0] != '\0') {
            rc |= buf_appendf(s, "-d %s/32 -i %s -p udp -m udp --dport 53 " C " -j RETURN\n",
                              v[i].gw, eg, name);
            rc |= buf_appendf(s, "-d %s/32 -i %s -p tcp -m tcp --dport 53 " C " -j RETURN\n",
                              v[i].gw, eg, name);
        }
        rc |= buf_appendf(s, "-i %s " C " -j DROP\n", eg, name);
        /* bridged traffic passes FORWARD where br_netfilter is loaded (Docker
         * loads it and sets the FORWARD policy to DROP): the bottle's own
         * containers talk across the internal bridge, nothing leaves it */
        rc |= buf_appendf(&spec[HOOK_FORWARD], "-i %s -o %s " C " -j ACCEPT\n", in, in, name);
        rc |= buf_appendf(&spec[HOOK_FORWARD], "-i %s ! -o %s " C " -j DROP\n", in, in, name);
#undef C
    }
    return rc ? BD_E_TOO_BIG : 0;
}

int fw_render(enum fw_family f, const char *instance, const struct fw_bottle *b, size_t n,
              struct buf *out)
{
    struct vbottle *v = NULL;
    struct buf spec[N_HOOKS];
    struct buf tmp;
    struct names nm;
    char ignored[1];
    int rc;

    if (!instance_ok(instance) || (f != FW_IPV4 && f != FW_IPV6))
        return BD_E_INVAL;
    rc = check_bottles(b, n, &v, ignored, sizeof(ignored));
    if (rc < 0)
        return rc;
    chain_names(instance, &nm);
    buf_init(&tmp, out->max);
    for (int h = 0; h < N_HOOKS; h++)
        buf_init(&spec[h], RESTORE_MAX);
    rc = render_specs(f, v, n, spec);
    for (int h = 0; h < N_HOOKS && rc == 0; h++) {
        const char *p = buf_cstr(&spec[h]);
        while (*p && rc == 0) {
            size_t len = strcspn(p, "\n");
            rc = buf_appendf(&tmp, "-A %s %.*s\n", nm.chain[h], (int)len, p);
            p += len + 1;
        }
    }
    if (rc == 0)
        rc = buf_append(out, tmp.data ? tmp.data : "", tmp.len);
    for (int h = 0; h < N_HOOKS; h++)
        buf_release(&spec[h]);
    buf_release(&tmp);
    free(v);
    return rc;
}

/* --------------------------------------------------------------- parsing */

/*
 * One token of an iptables -S line at *p (before end): a bare word, or a
 * "quoted string" with \" and \\ escapes, unquoted into tok.  Returns 1
 * with a token, 0 at the end, BD_E_PROTO on an unterminated quote.
 */
static int next_token(const char **p, const char *end, struct buf *tok)
{
    const char *s = *p;

    buf_reset(tok);
    while (s < end && *s == ' ')
        s++;
    if (s == end) {
        *p = s;
        return 0;
    }
    if (*s == '"') {
        s++;
        for (;;) {
            if (s == end)
                return BD_E_PROTO;
            if (*s == '"')
                break;
            if (*s == '\\' && s + 1 < end)
                s++;
            if (buf_putc(tok, *s) < 0)
                return BD_E_TOO_BIG;
            s++;
        }
        s++;
    } else {
        const char *w = s;
        while (s < end && *s != ' ')
            s++;
        if (buf_append(tok, w, (size_t)(s - w)) < 0)
            return BD_E_TOO_BIG;
    }
    *p = s;
    return 1;
}

/* The target (-j/-g) of a rule spec into tgt ("" when it has none). */
static int rule_target(const char *spec, const char *end, struct buf *tgt)
{
    struct buf tok;
    int rc, want = 0;

    buf_init(&tok, (size_t)(end - spec) + 1);
    buf_reset(tgt);
    while ((rc = next_token(&spec, end, &tok)) > 0) {
        if (want) {
            buf_reset(tgt);
            if (buf_puts(tgt, buf_cstr(&tok)) < 0) {
                rc = BD_E_TOO_BIG;
                break;
            }
            want = 0;
        } else {
            want = strcmp(buf_cstr(&tok), "-j") == 0 || strcmp(buf_cstr(&tok), "-g") == 0;
        }
    }
    buf_release(&tok);
    return rc < 0 ? rc : 0;
}

/* What a listing says about one of our chains. */
struct seen {
    int exists;         /* "-N CHAIN" */
    struct buf rules;   /* "SPEC\n" of each "-A CHAIN SPEC" */
    size_t refs;        /* rules in other chains whose target is CHAIN */
    int hooked;         /* rule 1 of its hook is exactly "-j CHAIN" */
    struct buf ref_del; /* "-D OTHER SPEC\n" for each of those rules */
};

struct listing {
    struct seen c[N_HOOKS];
};

static void listing_init(struct listing *l)
{
    for (int h = 0; h < N_HOOKS; h++) {
        memset(&l->c[h], 0, sizeof(l->c[h]));
        buf_init(&l->c[h].rules, FW_OUTPUT_MAX);
        buf_init(&l->c[h].ref_del, FW_OUTPUT_MAX);
    }
}

static void listing_release(struct listing *l)
{
    for (int h = 0; h < N_HOOKS; h++) {
        buf_release(&l->c[h].rules);
        buf_release(&l->c[h].ref_del);
    }
}

static int word_is(const char *p, size_t len, const char *w)
{
    return strlen(w) == len && memcmp(p, w, len) == 0;
}

/* spec (up to end) is exactly "-j CHAIN": the jump we insert. */
static int is_plain_jump(const char *spec, const char *end, const char *chain)
{
    size_t len = (size_t)(end - spec), clen = strlen(chain);
    return len == 3 + clen && memcmp(spec, "-j ", 3) == 0 && memcmp(spec + 3, chain, clen) == 0;
}

static int parse_listing(const struct names *nm, const char *text, size_t len, struct listing *l)
{
    const char *p = text, *end = text + len;
    size_t pos[N_HOOKS] = {0, 0};
    struct buf tgt;
    int rc = 0;

    buf_init(&tgt, FW_OUTPUT_MAX);
    while (p < end && rc == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        const char *q = p;
        p = nl ? nl + 1 : end;

        if (eol == q || *q == '#')
            continue;
        if (memchr(q, '\0', (size_t)(eol - q)) != NULL) {
            rc = BD_E_PROTO;
            break;
        }
        /* "-X NAME[ SPEC]" */
        if (eol - q < 4 || q[0] != '-' || q[2] != ' ') {
            rc = BD_E_PROTO;
            break;
        }
        char op = q[1];
        const char *chain = q + 3;
        const char *ce = chain;
        while (ce < eol && *ce != ' ')
            ce++;
        size_t clen = (size_t)(ce - chain);
        const char *spec = ce < eol ? ce + 1 : eol;
        int ours = -1;
        for (int h = 0; h < N_HOOKS; h++)
            if (word_is(chain, clen, nm->chain[h]))
                ours = h;

        if (clen == 0) {
            rc = BD_E_PROTO;
        } else if (op == 'P') {
            /* a built-in chain's policy: not ours */
        } else if (op == 'N') {
            if (ce != eol)
                rc = BD_E_PROTO;
            else if (ours >= 0)
                l->c[ours].exists = 1;
        } else if (op == 'A') {
            int hook = -1;
            for (int h = 0; h < N_HOOKS; h++) {
                if (word_is(chain, clen, hook_chain[h])) {
                    hook = h;
                    pos[h]++;
                }
            }
            if (ours >= 0) {
                rc = buf_append(&l->c[ours].rules, spec, (size_t)(eol - spec));
                if (rc == 0)
                    rc = buf_putc(&l->c[ours].rules, '\n');
                continue;
            }
            rc = rule_target(spec, eol, &tgt);
            for (int h = 0; h < N_HOOKS && rc == 0; h++) {
                if (strcmp(buf_cstr(&tgt), nm->chain[h]) != 0)
                    continue;
                struct seen *s = &l->c[h];
                s->refs++;
                rc = buf_appendf(&s->ref_del, "-D %.*s\n", (int)(eol - chain), chain);
                if (hook == h && pos[h] == 1 && is_plain_jump(spec, eol, nm->chain[h]))
                    s->hooked = 1;
            }
        } else {
            rc = BD_E_PROTO;
        }
    }
    buf_release(&tgt);
    return rc;
}

/* -------------------------------------------------------------- planning */

static int chain_converged(const struct seen *s, const struct buf *want)
{
    return s->exists && s->rules.len == want->len &&
           (want->len == 0 || memcmp(s->rules.data, want->data, want->len) == 0);
}

static int hook_converged(const struct seen *s)
{
    return s->refs == 1 && s->hooked;
}

static int plan(const struct names *nm, const struct buf want[N_HOOKS], int remove,
                const struct listing *l, struct buf *out)
{
    int rc = 0, any = 0;

    if (remove) {
        for (int h = 0; h < N_HOOKS; h++)
            any |= l->c[h].exists || l->c[h].refs > 0;
        if (!any)
            return 0;
        rc |= buf_puts(out, "*filter\n");
        for (int h = 0; h < N_HOOKS; h++)
            rc |= buf_puts(out, buf_cstr(&l->c[h].ref_del));
        for (int h = 0; h < N_HOOKS; h++)
            if (l->c[h].exists)
                rc |= buf_appendf(out, "-F %s\n", nm->chain[h]);
        for (int h = 0; h < N_HOOKS; h++)
            if (l->c[h].exists)
                rc |= buf_appendf(out, "-X %s\n", nm->chain[h]);
        rc |= buf_puts(out, "COMMIT\n");
        return rc ? BD_E_TOO_BIG : 0;
    }

    for (int h = 0; h < N_HOOKS; h++)
        any |= !chain_converged(&l->c[h], &want[h]) || !hook_converged(&l->c[h]);
    if (!any)
        return 0;
    rc |= buf_puts(out, "*filter\n");
    for (int h = 0; h < N_HOOKS; h++) {
        if (chain_converged(&l->c[h], &want[h]))
            continue;
        /* With --noflush, declaring an existing chain flushes it; -F says so. */
        rc |= buf_appendf(out, ":%s - [0:0]\n-F %s\n", nm->chain[h], nm->chain[h]);
        const char *p = buf_cstr(&want[h]);
        while (*p) {
            size_t len = strcspn(p, "\n");
            rc |= buf_appendf(out, "-A %s %.*s\n", nm->chain[h], (int)len, p);
            p += len + 1;
        }
    }
    for (int h = 0; h < N_HOOKS; h++) {
        if (hook_converged(&l->c[h]))
            continue;
        rc |= buf_puts(out, buf_cstr(&l->c[h].ref_del));
        rc |= buf_appendf(out, "-I %s 1 -j %s\n", hook_chain[h], nm->chain[h]);
    }
    rc |= buf_puts(out, "COMMIT\n");
    return rc ? BD_E_TOO_BIG : 0;
}

/* fw_plan() with validated, sorted bottles. */
static int plan_family(enum fw_family f, const char *instance, const struct vbottle *v, size_t n,
                       const char *listing, size_t len, struct buf *restore)
{
    struct buf want[N_HOOKS], tmp;
    struct listing l;
    struct names nm;
    int rc;

    chain_names(instance, &nm);
    listing_init(&l);
    buf_init(&tmp, restore->max);
    for (int h = 0; h < N_HOOKS; h++)
        buf_init(&want[h], RESTORE_MAX);
    rc = render_specs(f, v, n, want);
    if (rc == 0)
        rc = parse_listing(&nm, listing, len, &l);
    if (rc == 0)
        rc = plan(&nm, want, n == 0, &l, &tmp);
    if (rc == 0 && tmp.len > 0)
        rc = buf_append(restore, tmp.data, tmp.len);
    for (int h = 0; h < N_HOOKS; h++)
        buf_release(&want[h]);
    buf_release(&tmp);
    listing_release(&l);
    return rc;
}

int fw_plan(enum fw_family f, const char *instance, const struct fw_bottle *b, size_t n,
            const char *listing, size_t len, struct buf *restore)
{
    struct vbottle *v = NULL;
    char ignored[1];
    int rc;

    if (!instance_ok(instance) || (f != FW_IPV4 && f != FW_IPV6) || (listing == NULL && len))
        return BD_E_INVAL;
    rc = check_bottles(b, n, &v, ignored, sizeof(ignored));
    if (rc == 0)
        rc = plan_family(f, instance, v, n, listing ? listing : "", len, restore);
    free(v);
    return rc;
}

/* ---------------------------------------------------------- bottle names */

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int fw_listing_bottles(const char *instance, const char *listing, size_t len, char ***names,
                       size_t *n)
{
    struct listing l;
    struct names nm;
    struct buf tok;
    int rc;

    if (!instance_ok(instance) || (listing == NULL && len))
        return BD_E_INVAL;
    chain_names(instance, &nm);
    listing_init(&l);
    buf_init(&tok, FW_OUTPUT_MAX);
    rc = parse_listing(&nm, listing ? listing : "", len, &l);
    for (int h = 0; h < N_HOOKS && rc == 0; h++) {
        const char *p = buf_cstr(&l.c[h].rules);
        const char *end = p + l.c[h].rules.len;
        while (p < end && rc == 0) {
            const char *eol = memchr(p, '\n', (size_t)(end - p));
            int comment = 0;
            while ((rc = next_token(&p, eol, &tok)) > 0) {
                const char *t = buf_cstr(&tok);
                if (comment && strncmp(t, "bottled ", 8) == 0 &&
                    bottle_name_valid(t + 8, strlen(t + 8))) {
                    *names = xrealloc(*names, (*n + 1) * sizeof(**names));
                    (*names)[(*n)++] = xstrdup(t + 8);
                }
                comment = strcmp(t, "--comment") == 0;
            }
            p = eol + 1;
        }
    }
    if (rc == 0 && *n > 1) {
        size_t k = 1;
        qsort(*names, *n, sizeof(**names), cmp_cstr);
        for (size_t i = 1; i < *n; i++) {
            if (strcmp((*names)[i], (*names)[k - 1]) == 0)
                free((*names)[i]);
            else
                (*names)[k++] = (*names)[i];
        }
        *n = k;
    }
    buf_release(&tok);
    listing_release(&l);
    return rc;
}

void fw_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* ------------------------------------------------------- running binaries */

/* argv joined with spaces, for messages (our own arguments, no secrets). */
static void describe_argv(const char *const argv[], char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; argv[i] && used + 1 < outlen; i++) {
        int k = snprintf(out + used, outlen - used, "%s%s", i ? " " : "", argv[i]);
        if (k < 0)
            break;
        used += (size_t)k;
    }
}

/* Up to three non-empty stderr lines (not iptables' "Try `...' hint), one line. */
static void summarize_stderr(const char *s, size_t len, char *out, size_t outlen)
{
    const char *p = s, *end = s + len;
    size_t used = 0;
    int lines = 0;

    out[0] = '\0';
    while (p < end && lines < 3 && used + 1 < outlen) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        const char *a = p, *z = eol;
        p = eol + (eol < end);
        while (a < z && (*a == ' ' || *a == '\t'))
            a++;
        while (z > a && (z[-1] == ' ' || z[-1] == '\t' || z[-1] == '\r'))
            z--;
        if (a == z || strncmp(a, "Try `", 5) == 0)
            continue;
        if (lines++ > 0 && used + 2 < outlen)
            out[used++] = ' ';
        for (; a < z && used + 1 < outlen; a++) {
            unsigned char c = (unsigned char)*a;
            out[used++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
        }
        out[used] = '\0';
    }
}

static int find_program(const char *name, char *path, size_t pathlen)
{
    const char *env = getenv("PATH");
    struct buf dirs;
    int rc = BD_E_NOTFOUND;

    if (strchr(name, '/')) {
        if (snprintf(path, pathlen, "%s", name) >= (int)pathlen)
            return BD_E_NOTFOUND;
        return access(path, X_OK) == 0 ? 0 : BD_E_NOTFOUND;
    }
    buf_init(&dirs, 0);
    if (buf_appendf(&dirs, "%s:/usr/sbin:/sbin", env && *env ? env : DEFAULT_PATH) < 0) {
        buf_release(&dirs);
        return BD_E_NOTFOUND;
    }
    const char *p = buf_cstr(&dirs);
    while (*p) {
        size_t len = strcspn(p, ":");
        struct stat st;
        /* An empty entry would mean the current directory: never. */
        if (len > 0 && *p == '/' &&
            snprintf(path, pathlen, "%.*s/%s", (int)len, p, name) < (int)pathlen &&
            stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0) {
            rc = 0;
            break;
        }
        p += len + (p[len] == ':');
    }
    buf_release(&dirs);
    return rc;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Moves fd above 2 so the child's dup2 onto 0..2 never lands on itself. */
static int fd_above_stdio(int fd)
{
    if (fd > 2)
        return fd;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return nfd;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

int fw_exec(const char *const argv[], const char *in, size_t in_len, struct buf *out,
            int timeout_ms, char *err, size_t errlen)
{
    char path[PATH_MAX], cmd[256], errtext[STDERR_KEEP + 1], why[512];
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    size_t errtext_len = 0, in_off = 0;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t pipeset, oldmask, pending, none, deflt;
    int was_pending, status = 0, rc = BD_E_IO, timed_out = 0, too_big = 0, poll_errno = 0;
    pid_t pid = -1;
    long long deadline;

    if (err && errlen)
        err[0] = '\0';
    if (argv == NULL || argv[0] == NULL || out == NULL)
        return BD_E_INVAL;
    describe_argv(argv, cmd, sizeof(cmd));
    rc = find_program(argv[0], path, sizeof(path));
    if (rc < 0) {
        snprintf(err, errlen, "%s: '%s' not found in PATH, /usr/sbin or /sbin", cmd, argv[0]);
        return rc;
    }
    rc = BD_E_IO;
    if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "%s: pipe: %s", cmd, strerror(errno));
        goto out_fds;
    }
    for (int i = 0; i < 2; i++) {
        pin[i] = fd_above_stdio(pin[i]);
        pout[i] = fd_above_stdio(pout[i]);
        perr[i] = fd_above_stdio(perr[i]);
    }
    if (pin[0] < 0 || pin[1] < 0 || pout[0] < 0 || pout[1] < 0 || perr[0] < 0 || perr[1] < 0) {
        snprintf(err, errlen, "%s: fcntl: %s", cmd, strerror(errno));
        goto out_fds;
    }

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigfillset(&deflt);
    sigdelset(&deflt, SIGKILL);
    sigdelset(&deflt, SIGSTOP);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &deflt);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int serr = posix_spawn(&pid, path, &fa, &attr, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (serr != 0) {
        pid = -1;
        snprintf(err, errlen, "%s: cannot run '%s': %s", cmd, path, strerror(serr));
        goto out_fds;
    }
    close_fd(&pin[0]);
    close_fd(&pout[1]);
    close_fd(&perr[1]);
    fcntl(pin[1], F_SETFL, O_NONBLOCK);
    fcntl(pout[0], F_SETFL, O_NONBLOCK);
    fcntl(perr[0], F_SETFL, O_NONBLOCK);
    if (in == NULL || in_len == 0)
        close_fd(&pin[1]);

    /* A child that exits before reading its stdin must not kill us with SIGPIPE. */
    sigemptyset(&pipeset);
    sigaddset(&pipeset, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipeset, &oldmask);
    sigpending(&pending);
    was_pending = sigismember(&pending, SIGPIPE);

    deadline = now_ms() + timeout_ms;
    while (pout[0] >= 0 || perr[0] >= 0) {
        struct pollfd pfd[3];
        int nfd = 0, ipin = -1, iout = -1, ierr = -1;
        long long left = deadline - now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        if (pin[1] >= 0)
            ipin = nfd, pfd[nfd++] = (struct pollfd){.fd = pin[1], .events = POLLOUT};
        if (pout[0] >= 0)
            iout = nfd, pfd[nfd++] = (struct pollfd){.fd = pout[0], .events = POLLIN};
        if (perr[0] >= 0)
            ierr = nfd, pfd[nfd++] = (struct pollfd){.fd = perr[0], .events = POLLIN};
        int pr = poll(pfd, (nfds_t)nfd, (int)(left > INT_MAX ? INT_MAX : left));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0) {
            poll_errno = errno;
            break;
        }
        if (ipin >= 0 && pfd[ipin].revents) {
            ssize_t w = write(pin[1], in + in_off, in_len - in_off);
            if (w > 0)
                in_off += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len)
                close_fd(&pin[1]); /* EPIPE: the exit status tells */
        }
        if (iout >= 0 && pfd[iout].revents) {
            char chunk[8192];
            ssize_t r = read(pout[0], chunk, sizeof(chunk));
            if (r > 0 && buf_append(out, chunk, (size_t)r) < 0) {
                too_big = 1;
                break;
            }
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                close_fd(&pout[0]);
        }
        if (ierr >= 0 && pfd[ierr].revents) {
            char chunk[2048];
            ssize_t r = read(perr[0], chunk, sizeof(chunk));
            if (r > 0) {
                size_t keep = STDERR_KEEP - errtext_len;
                if (keep > (size_t)r)
                    keep = (size_t)r;
                memcpy(errtext + errtext_len, chunk, keep);
                errtext_len += keep;
            }
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                close_fd(&perr[0]);
        }
    }
    close_fd(&pin[1]);

    if (!was_pending) {
        struct timespec zero = {0, 0};
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE))
            while (sigtimedwait(&pipeset, NULL, &zero) < 0 && errno == EINTR)
                ;
    }
    pthread_sigmask(SIG_SETMASK, &oldmask, NULL);

    /* Both outputs closed: the child is exiting; give it what is left of the time. */
    if (!timed_out && !too_big && poll_errno == 0) {
        for (;;) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid || (w < 0 && errno != EINTR))
                break;
            if (now_ms() >= deadline) {
                timed_out = 1;
                break;
            }
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (timed_out || too_big || poll_errno != 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    pid = -1;
    summarize_stderr(errtext, errtext_len, why, sizeof(why));

    if (timed_out) {
        snprintf(err, errlen, "%s timed out after %d ms", cmd, timeout_ms);
        rc = BD_E_UNAVAIL;
    } else if (too_big) {
        snprintf(err, errlen, "%s: output over %zu bytes", cmd, out->max);
        rc = BD_E_TOO_BIG;
    } else if (poll_errno != 0) {
        snprintf(err, errlen, "%s: poll: %s", cmd, strerror(poll_errno));
        rc = BD_E_IO;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        rc = 0;
    } else if (WIFEXITED(status)) {
        snprintf(err, errlen, "%s failed (exit %d)%s%s", cmd, WEXITSTATUS(status),
                 why[0] ? ": " : "", why);
        rc = BD_E_IO;
    } else {
        snprintf(err, errlen, "%s killed by signal %d%s%s", cmd,
                 WIFSIGNALED(status) ? WTERMSIG(status) : 0, why[0] ? ": " : "", why);
        rc = BD_E_IO;
    }
out_fds:
    for (int i = 0; i < 2; i++) {
        close_fd(&pin[i]);
        close_fd(&pout[i]);
        close_fd(&perr[i]);
    }
    return rc;
}

/* --------------------------------------------------------------- syncing */

struct family {
    enum fw_family f;
    const char *list_cmd, *restore_cmd, *fault_what;
};

static const struct family families[] = {
    {FW_IPV4, "iptables", "iptables-restore", "firewall ipv4 apply"},
    {FW_IPV6, "ip6tables", "ip6tables-restore", "firewall ipv6 apply"},
};

#define N_FAMILIES (sizeof(families) / sizeof(families[0]))

static int list_family(const struct family *fam, struct buf *out, struct fw_stats *st, char *err,
                       size_t errlen)
{
    const char *argv[] = {fam->list_cmd, "-w", "-t", "filter", "-S", NULL};
    st->listings++;
    return fw_exec(argv, NULL, 0, out, FW_TIMEOUT_MS, err, errlen);
}

static int sync_all(const char *instance, const struct fw_bottle *b, size_t n, struct fw_stats *st,
                    char *err, size_t errlen)
{
    struct fw_stats dummy;
    struct vbottle *v = NULL;
    char scratch[1];
    struct buf listing[N_FAMILIES], restore[N_FAMILIES];
    int rc, apply_rc = 0;

    if (st == NULL)
        st = &dummy;
    memset(st, 0, sizeof(*st));
    if (err && errlen)
        err[0] = '\0';
    else {
        err = scratch;
        errlen = sizeof(scratch);
    }
    if (!instance_ok(instance)) {
        snprintf(err, errlen, "firewall: instance must be %d lower-case hex digits",
                 FW_INSTANCE_LEN);
        return BD_E_INVAL;
    }
    rc = check_bottles(b, n, &v, err, errlen);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < N_FAMILIES; i++) {
        buf_init(&listing[i], FW_OUTPUT_MAX);
        buf_init(&restore[i], RESTORE_MAX);
    }
    /* Both listings and plans first: a family we cannot read stops the pass before any change. */
    for (size_t i = 0; i < N_FAMILIES && rc == 0; i++) {
        rc = list_family(&families[i], &listing[i], st, err, errlen);
        if (rc == 0) {
            rc = plan_family(families[i].f, instance, v, n, listing[i].data ? listing[i].data : "",
                             listing[i].len, &restore[i]);
            if (rc < 0)
                snprintf(err, errlen, "%s -w -t filter -S: %s", families[i].list_cmd,
                         rc == BD_E_PROTO ? "listing not understood" : bd_strerror(rc));
        }
    }
    /* Each family on its own: one that fails does not keep the other open. */
    for (size_t i = 0; i < N_FAMILIES && rc == 0; i++) {
        const char *argv[] = {families[i].restore_cmd, "-w", "--noflush", NULL};
        char later[512];
        struct buf ignored;
        int one;
        if (restore[i].len == 0)
            continue;
        buf_init(&ignored, FW_OUTPUT_MAX);
        fault_point(families[i].fault_what);
        st->applies++;
        one = fw_exec(argv, restore[i].data, restore[i].len, &ignored, FW_TIMEOUT_MS,
                      apply_rc == 0 ? err : later, apply_rc == 0 ? errlen : sizeof(later));
        if (apply_rc == 0)
            apply_rc = one;
        buf_release(&ignored);
    }
    if (rc == 0)
        rc = apply_rc;
    for (size_t i = 0; i < N_FAMILIES; i++) {
        buf_release(&listing[i]);
        buf_release(&restore[i]);
    }
    free(v);
    return rc;
}

int fw_sync(const char *instance, const struct fw_bottle *b, size_t n, struct fw_stats *st,
            char *err, size_t errlen)
{
    return sync_all(instance, b, n, st, err, errlen);
}

int fw_remove(const char *instance, struct fw_stats *st, char *err, size_t errlen)
{
    return sync_all(instance, NULL, 0, st, err, errlen);
}

int fw_list_bottles(const char *instance, char ***ret_names, size_t *ret_n, char *err,
                    size_t errlen)
{
    struct fw_stats st;
    char scratch[1];
    char **names = NULL;
    size_t n = 0;
    int rc = 0;

    if (err && errlen)
        err[0] = '\0';
    else {
        err = scratch;
        errlen = sizeof(scratch);
    }
    if (!instance_ok(instance)) {
        snprintf(err, errlen, "firewall: instance must be %d lower-case hex digits",
                 FW_INSTANCE_LEN);
        return BD_E_INVAL;
    }
    memset(&st, 0, sizeof(st));
    for (size_t i = 0; i < N_FAMILIES && rc == 0; i++) {
        struct buf listing;
        buf_init(&listing, FW_OUTPUT_MAX);
        rc = list_family(&families[i], &listing, &st, err, errlen);
        if (rc == 0) {
            rc = fw_listing_bottles(instance, listing.data ? listing.data : "", listing.len, &names,
                                    &n);
            if (rc < 0)
                snprintf(err, errlen, "%s -w -t filter -S: %s", families[i].list_cmd,
                         rc == BD_E_PROTO ? "listing not understood" : bd_strerror(rc));
        }
        buf_release(&listing);
    }
    if (rc < 0) {
        fw_names_free(names, n);
        return rc;
    }
    *ret_names = names;
    *ret_n = n;
    return 0;
}
