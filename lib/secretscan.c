/*
 * secretscan.c - known-secret scanning and redaction (see secretscan.h).
 *
 * Every encoding of every value is one pattern in the pats[] table, which
 * says whose secret it is, in which encoding, and (base64) whether the
 * characters just outside it carry bits of the value.
 *
 * Scanning samples the text: patterns are long (SECRET_MIN_LEN bytes and
 * more), so with L the shortest pattern and Q = 4, every occurrence holds
 * one of the positions 0, S, 2S, ... (S = L - Q + 1) within its first S
 * bytes, at a Q-byte window that lies wholly inside it.  The index maps
 * each pattern's Q-grams at offsets 0..S-1 to (pattern, offset); the scan
 * looks up the Q bytes at every S-th position, and each entry with those
 * bytes proposes a start that is verified with memcmp.  An occurrence is
 * found exactly once (from its first sampled position), overlapping ones
 * included, at about 1/S of the lookups of a byte-at-a-time automaton.
 *
 * Base64 alignment: in the encoding of (k unknown bytes) + value, output
 * character j covers bits [6j, 6j + 6) of the input, so it depends on the
 * value alone when 8k <= 6j and 6j + 6 <= 8(k + len).  The indexed window
 * is those characters; the one before it is partial when 8k is not a
 * multiple of 6, the one after it when 8(k + len) is not.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "secretscan.h"
#include "xalloc.h"

#define QGRAM             4
#define MAX_PATTERN_BYTES ((size_t)1 << 22) /* all patterns together */

struct pat {
    uint32_t secret;
    enum secret_encoding enc;
    unsigned char lead_partial, trail_partial;
    unsigned char *p; /* the encoded form */
    size_t len;
};

struct qent {
    uint32_t gram, pat, off;
};

struct secret_set {
    char **names;
    size_t nsecrets, capsecrets;
    struct pat *pats;
    size_t npats, cappats, total;
    int compiled;
    /* the sampled Q-gram index (see the top of this file) */
    size_t stride;
    uint32_t qbits;
    uint32_t *qstart; /* bucket b holds qents[qstart[b] .. qstart[b + 1]) */
    struct qent *qents;
};

static uint32_t load_gram(const unsigned char *p)
{
    uint32_t g;
    memcpy(&g, p, sizeof(g));
    return g;
}

static uint32_t gram_bucket(uint32_t g, uint32_t bits)
{
    return (uint32_t)(g * 0x9E3779B1u) >> (32 - bits);
}

static const char *const enc_names[SECRET_ENC_COUNT] = {
    [SECRET_RAW] = "raw",
    [SECRET_BASE64] = "base64",
    [SECRET_BASE64URL] = "base64url",
    [SECRET_HEX_LOWER] = "hex",
    [SECRET_HEX_UPPER] = "HEX",
    [SECRET_PERCENT] = "percent",
    [SECRET_PERCENT_LOWER] = "percent_lower",
    [SECRET_PERCENT_RESERVED] = "percent_reserved",
};

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const char *secret_encoding_name(enum secret_encoding e)
{
    return (unsigned)e < SECRET_ENC_COUNT ? enc_names[e] : "unknown";
}

struct secret_set *secret_set_new(void)
{
    return xcalloc(1, sizeof(struct secret_set));
}

/* An encoded form being built, and the forms already added for this value. */
struct enc_buf {
    unsigned char *p;
    size_t len;
};

static int name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > SECRET_MAX_NAME_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (name[i] < 0x21 || name[i] > 0x7e)
            return 0;
    }
    return 1;
}

static void add_pattern(struct secret_set *set, struct enc_buf *seen, size_t *nseen,
                        const unsigned char *p, size_t len, enum secret_encoding enc, int lead,
                        int trail)
{
    for (size_t i = 0; i < *nseen; i++) {
        if (seen[i].len == len && memcmp(seen[i].p, p, len) == 0)
            return;
    }
    if (set->npats == set->cappats) {
        set->cappats = set->cappats ? set->cappats * 2 : 32;
        set->pats = xrealloc(set->pats, set->cappats * sizeof(*set->pats));
    }
    set->pats[set->npats] = (struct pat){
        (uint32_t)set->nsecrets,           enc, (unsigned char)lead, (unsigned char)trail,
        (unsigned char *)xmemdup0(p, len), len};
    set->npats++;
    set->total += len;
    seen[*nseen].p = (unsigned char *)xmemdup0(p, len);
    seen[*nseen].len = len;
    (*nseen)++;
}

/* The value-only window of base64(k zero bytes + v) into out; its length. */
static size_t b64_window(const unsigned char *v, size_t len, size_t k, const char *alpha,
                         unsigned char *out, int *ret_lead, int *ret_trail)
{
    size_t total = k + len, nbits = 8 * total;
    size_t first = (8 * k + 5) / 6, last = nbits / 6; /* chars [first, last) */
    size_t o = 0;

    for (size_t j = first; j < last; j++) {
        uint32_t acc = 0;
        size_t bit = 6 * j;
        /* The 6 bits starting at bit: from input bytes bit/8 and bit/8 + 1. */
        for (size_t b = bit / 8; b <= (bit + 5) / 8; b++)
            acc = acc << 8 | (b < k ? 0u : v[b - k]);
        size_t span_end = ((bit + 5) / 8 + 1) * 8; /* bit just past the bytes read */
        acc >>= span_end - (bit + 6);
        out[o++] = (unsigned char)alpha[acc & 63];
    }
    *ret_lead = (8 * k) % 6 != 0;
    *ret_trail = nbits % 6 != 0;
    return o;
}

static int unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int secret_set_add(struct secret_set *set, const char *name, const void *value, size_t len)
{
    const unsigned char *v = value;
    static const char lower[] = "0123456789abcdef", upper[] = "0123456789ABCDEF";
    struct enc_buf seen[16];
    size_t nseen = 0;
    unsigned char *tmp;
    int lead, trail;

    if (set->compiled || !name_ok(name))
        return BD_E_INVAL;
    if (len > SECRET_MAX_LEN || set->nsecrets == SECRET_MAX_COUNT)
        return BD_E_TOO_BIG;
    if (len < SECRET_MIN_LEN || !value)
        return BD_E_LIMIT;

    tmp = xmalloc(3 * len + 4);
    add_pattern(set, seen, &nseen, v, len, SECRET_RAW, 0, 0);
    for (size_t k = 0; k < 3; k++) {
        size_t n = b64_window(v, len, k, b64_std, tmp, &lead, &trail);
        add_pattern(set, seen, &nseen, tmp, n, SECRET_BASE64, lead, trail);
        n = b64_window(v, len, k, b64_url, tmp, &lead, &trail);
        add_pattern(set, seen, &nseen, tmp, n, SECRET_BASE64URL, lead, trail);
    }
    for (int up = 0; up < 2; up++) {
        const char *d = up ? upper : lower;
        for (size_t i = 0; i < len; i++) {
            tmp[2 * i] = (unsigned char)d[v[i] >> 4];
            tmp[2 * i + 1] = (unsigned char)d[v[i] & 15];
        }
        add_pattern(set, seen, &nseen, tmp, 2 * len, up ? SECRET_HEX_UPPER : SECRET_HEX_LOWER, 0,
                    0);
        for (size_t i = 0; i < len; i++) {
            tmp[3 * i] = '%';
            tmp[3 * i + 1] = (unsigned char)d[v[i] >> 4];
            tmp[3 * i + 2] = (unsigned char)d[v[i] & 15];
        }
        add_pattern(set, seen, &nseen, tmp, 3 * len, up ? SECRET_PERCENT : SECRET_PERCENT_LOWER, 0,
                    0);
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (unreserved(v[i])) {
            tmp[o++] = v[i];
        } else {
            tmp[o++] = '%';
            tmp[o++] = (unsigned char)upper[v[i] >> 4];
            tmp[o++] = (unsigned char)upper[v[i] & 15];
        }
    }
    add_pattern(set, seen, &nseen, tmp, o, SECRET_PERCENT_RESERVED, 0, 0);

    explicit_bzero(tmp, 3 * len + 4);
    free(tmp);
    for (size_t i = 0; i < nseen; i++) {
        explicit_bzero(seen[i].p, seen[i].len);
        free(seen[i].p);
    }
    if (set->nsecrets == set->capsecrets) {
        set->capsecrets = set->capsecrets ? set->capsecrets * 2 : 8;
        set->names = xrealloc(set->names, set->capsecrets * sizeof(*set->names));
    }
    set->names[set->nsecrets++] = xstrdup(name);
    return 0;
}

int secret_set_compile(struct secret_set *set)
{
    if (set->compiled)
        return BD_E_INVAL;
    /* SECRET_MAX_COUNT x 12 encodings x 3 x SECRET_MAX_LEN may not fit. */
    if (set->total >= MAX_PATTERN_BYTES)
        return BD_E_TOO_BIG;
    size_t shortest = SIZE_MAX;
    for (size_t i = 0; i < set->npats; i++)
        if (set->pats[i].len < shortest)
            shortest = set->pats[i].len;
    /* a pattern is at least the base64 window of a SECRET_MIN_LEN value,
     * 10 characters, so the stride is at least 7 */
    if (set->npats && shortest < QGRAM)
        return BD_E_INTERNAL;
    set->compiled = 1;
    if (!set->npats)
        return 0;
    set->stride = shortest - QGRAM + 1;
    size_t n = set->npats * set->stride;
    set->qbits = 6;
    while (((size_t)1 << set->qbits) < 2 * n)
        set->qbits++;
    size_t nb = (size_t)1 << set->qbits;
    set->qstart = xcalloc(nb + 1, sizeof(*set->qstart));
    set->qents = xmalloc(n * sizeof(*set->qents));
    for (size_t i = 0; i < set->npats; i++)
        for (size_t j = 0; j < set->stride; j++)
            set->qstart[gram_bucket(load_gram(set->pats[i].p + j), set->qbits) + 1]++;
    for (size_t b = 0; b < nb; b++)
        set->qstart[b + 1] += set->qstart[b];
    uint32_t *fill = xmalloc(nb * sizeof(*fill));
    memcpy(fill, set->qstart, nb * sizeof(*fill));
    for (size_t i = 0; i < set->npats; i++) {
        for (size_t j = 0; j < set->stride; j++) {
            uint32_t g = load_gram(set->pats[i].p + j);
            set->qents[fill[gram_bucket(g, set->qbits)]++] =
                (struct qent){g, (uint32_t)i, (uint32_t)j};
        }
    }
    free(fill);
    return 0;
}

size_t secret_set_count(const struct secret_set *set)
{
    return set->nsecrets;
}

struct hit {
    size_t off, len;
    uint32_t pat;
};

struct hits {
    struct hit *v;
    size_t n, cap;
};

static void push_hit(struct hits *h, size_t off, size_t len, uint32_t pat)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
    }
    h->v[h->n++] = (struct hit){off, len, pat};
}

static int hit_cmp(const void *a, const void *b)
{
    const struct hit *x = a, *y = b;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1; /* longest first */
    return x->pat < y->pat ? -1 : x->pat > y->pat;
}

static void collect(const struct secret_set *set, const char *s, size_t n, struct hits *h)
{
    memset(h, 0, sizeof(*h));
    if (!set || !set->compiled || !set->npats || !s)
        return;
    const unsigned char *u = (const unsigned char *)s;
    const size_t stride = set->stride;
    const uint32_t bits = set->qbits;
    for (size_t i = 0; i + QGRAM <= n; i += stride) {
        uint32_t g = load_gram(u + i), b = gram_bucket(g, bits);
        for (uint32_t e = set->qstart[b]; e < set->qstart[b + 1]; e++) {
            const struct qent *q = &set->qents[e];
            if (q->gram != g || q->off > i)
                continue;
            const struct pat *p = &set->pats[q->pat];
            size_t start = i - q->off;
            if (p->len <= n - start && memcmp(u + start, p->p, p->len) == 0)
                push_hit(h, start, p->len, q->pat);
        }
    }
    if (h->n > 1)
        qsort(h->v, h->n, sizeof(*h->v), hit_cmp);
}

size_t secret_set_scan(const struct secret_set *set, const char *s, size_t n,
                       struct secret_match *out, size_t max)
{
    struct hits h;
    size_t count = 0, next = 0;

    collect(set, s, n, &h);
    for (size_t i = 0; i < h.n; i++) {
        if (h.v[i].off < next)
            continue;
        const struct pat *p = &set->pats[h.v[i].pat];
        if (count < max)
            out[count] =
                (struct secret_match){set->names[p->secret], p->enc, h.v[i].off, h.v[i].len};
        count++;
        next = h.v[i].off + h.v[i].len;
    }
    free(h.v);
    return count;
}

static int in_alphabet(enum secret_encoding enc, unsigned char c)
{
    const char *alpha = enc == SECRET_BASE64 ? b64_std : b64_url;
    return c != 0 && memchr(alpha, c, 64) != NULL;
}

/*
 * Calls fn for each span secret_set_redact() would replace, in order:
 * [start, end) and the pattern of its leftmost occurrence.  Stops early
 * when fn returns nonzero and returns that value.
 */
typedef int (*span_fn)(void *ctx, size_t start, size_t end, const struct pat *p);

static int for_each_span(const struct secret_set *set, const char *s, size_t n, span_fn fn,
                         void *ctx)
{
    struct hits h;
    size_t pos = 0;
    int r = 0;

    collect(set, s, n, &h);
    for (size_t i = 0; i < h.n && !r;) {
        const struct pat *p = &set->pats[h.v[i].pat];
        size_t start = h.v[i].off, end = h.v[i].off + h.v[i].len;
        /* Widen over partial base64 characters, then swallow overlaps. */
        if (p->lead_partial && start > 0 && in_alphabet(p->enc, (unsigned char)s[start - 1]))
            start--;
        if (p->trail_partial && end < n && in_alphabet(p->enc, (unsigned char)s[end]))
            end++;
        if (start < pos)
            start = pos;
        size_t j = i + 1;
        for (; j < h.n && h.v[j].off <= end; j++) {
            const struct pat *q = &set->pats[h.v[j].pat];
            size_t e = h.v[j].off + h.v[j].len;
            if (q->trail_partial && e < n && in_alphabet(q->enc, (unsigned char)s[e]))
                e++;
            if (e > end)
                end = e;
        }
        r = fn(ctx, start, end, p);
        pos = end;
        i = j;
    }
    free(h.v);
    return r;
}

struct redact_ctx {
    const struct secret_set *set;
    const char *s;
    struct buf *out;
    size_t pos, count;
    int same_length;
};

static int redact_span(void *ctx, size_t start, size_t end, const struct pat *p)
{
    struct redact_ctx *rc = ctx;
    int err = buf_append(rc->out, rc->s + rc->pos, start - rc->pos);
    if (!err && !rc->same_length)
        err = buf_appendf(rc->out, "[REDACTED:%s]", rc->set->names[p->secret]);
    if (!err && rc->same_length) {
        /* "[REDACTED:name]" padded with '*', else "[REDACTED]...", else '*'s */
        char mark[SECRET_MAX_NAME_LEN + 16];
        size_t len = end - start, m;
        int k = snprintf(mark, sizeof(mark), "[REDACTED:%s]", rc->set->names[p->secret]);
        m = (size_t)k;
        if (m > len) {
            memcpy(mark, "[REDACTED]", 10);
            m = 10 <= len ? 10 : 0;
        }
        err = buf_append(rc->out, mark, m);
        for (size_t i = m; !err && i < len; i++)
            err = buf_append(rc->out, "*", 1);
    }
    rc->count++;
    rc->pos = end;
    return err;
}

static int redact(const struct secret_set *set, const char *s, size_t n, struct buf *out,
                  size_t *ret_count, int same_length)
{
    struct redact_ctx rc = {set, s, out, 0, 0, same_length};
    int err = for_each_span(set, s, n, redact_span, &rc);
    if (!err)
        err = buf_append(out, s + rc.pos, n - rc.pos);
    if (!err && ret_count)
        *ret_count = rc.count;
    return err;
}

int secret_set_redact_same_length(const struct secret_set *set, const char *s, size_t n,
                                  struct buf *out, size_t *ret_count)
{
    return redact(set, s, n, out, ret_count, 1);
}

int secret_set_redact(const struct secret_set *set, const char *s, size_t n, struct buf *out,
                      size_t *ret_count)
{
    return redact(set, s, n, out, ret_count, 0);
}

struct cross_ctx {
    size_t cut, start;
};

static int cross_span(void *ctx, size_t start, size_t end, const struct pat *p)
{
    struct cross_ctx *cc = ctx;
    (void)p;
    if (start >= cc->cut)
        return 1; /* spans come in order: none later crosses */
    if (end > cc->cut) {
        cc->start = start;
        return 2;
    }
    return 0;
}

int secret_set_span_across(const struct secret_set *set, const char *s, size_t n, size_t cut,
                           size_t *ret_start)
{
    struct cross_ctx cc = {cut, 0};
    if (for_each_span(set, s, n, cross_span, &cc) != 2)
        return 0;
    *ret_start = cc.start;
    return 1;
}

size_t secret_set_pattern(const struct secret_set *set, size_t i, const unsigned char **ret_p,
                          size_t *ret_len)
{
    if (i < set->npats) {
        *ret_p = set->pats[i].p;
        *ret_len = set->pats[i].len;
    }
    return set->npats;
}

void secret_set_free(struct secret_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->npats; i++) {
        explicit_bzero(set->pats[i].p, set->pats[i].len);
        free(set->pats[i].p);
    }
    free(set->qstart);
    free(set->qents);
    for (size_t i = 0; i < set->nsecrets; i++)
        free(set->names[i]);
    free(set->names);
    free(set->pats);
    free(set);
}
