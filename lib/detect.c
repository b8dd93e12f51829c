/*
 * detect.c - the credential matcher behind detect.h.
 *
 * The rules text (lib/detectors.rules, embedded as detectors_rules_text) is
 * parsed once, on first use, under pthread_once.  A malformed rule is a
 * build-time bug, not an input error: every bad line is printed to stderr
 * and the process aborts, and the unit tests load the rules so a bad edit
 * never ships.
 *
 * Engine.  Every rule's prefix, its "[...]" groups expanded, is a pattern
 * of one Aho-Corasick automaton (ac.h) built with the rules.  A scan is one
 * pass of that automaton; only where a prefix ends does a rule get looked
 * at:
 *   - a prefix starting with a letter or digit must not continue a word:
 *     the byte before it must not be [A-Za-z0-9], unless that byte ends an
 *     escape that commonly separates a token from what precedes it in
 *     transported text: "%HH" (URL encoding, "token%3Dghp_..."), a JSON or
 *     C escape "\n" "\r" "\t" "\b" "\f", or "\uHHHH".  Without this rule
 *     "sk-" would fire inside "task-..." and "AKIA" inside base64 blobs;
 *     without the escape exceptions a token on the second line of a JSON
 *     string would be missed.
 *   - the run of charset characters after it is taken greedily (trailing
 *     dots dropped for charsets with '.') and its length must lie in
 *     [min, max], so the character after the match is never in the charset;
 *   - charset "pem": the prefix "-----BEGIN" is followed by a label of
 *     [min, max] characters of [A-Z0-9 ] that starts with ' ' and ends with
 *     "PRIVATE KEY", then "-----";
 *   - the validator, if any, confirms (jwt) or grades (crc32_base62) it.
 * Among the candidates, the leftmost wins, and at one offset the rule
 * listed first.
 *
 * Cost.  Hits arrive in order of the prefix's end, so the offsets where
 * charset runs start never decrease; the end of the current run is cached
 * per charset, which makes all run measuring together linear in the input
 * (a text of "sk-sk-sk-..." is not quadratic).  PEM labels and validators
 * look at a bounded window, except jwt, which reads its own match once.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ac.h"
#include "detect.h"
#include "xalloc.h"

extern const char detectors_rules_text[];

#define MAX_ID_LEN       64
#define MAX_PREFIX_LEN   64
#define MAX_EXPANSIONS   64
#define MAX_COUNT        65535 /* min and max */
#define UNBOUNDED        SIZE_MAX
#define JWT_MAX_HEADER   1024 /* decoded header bytes looked at */
#define CANDIDATES_STACK 32

enum charset {
    CS_ALNUM,
    CS_ALNUM_,
    CS_B64URL,
    CS_B64URL_PAD,
    CS_B64,
    CS_HEX,
    CS_UPPER_DIGIT,
    CS_ANY_TOKEN,
    CS_PATH,
    CS_PEM, /* the label of a PEM header: [A-Z0-9 ] */
    CS_COUNT
};

static const char *const charset_names[CS_COUNT] = {
    [CS_ALNUM] = "alnum",
    [CS_ALNUM_] = "alnum_",
    [CS_B64URL] = "b64url",
    [CS_B64URL_PAD] = "b64url_pad",
    [CS_B64] = "b64",
    [CS_HEX] = "hex",
    [CS_UPPER_DIGIT] = "upper_digit",
    [CS_ANY_TOKEN] = "any_token",
    [CS_PATH] = "path",
    [CS_PEM] = "pem",
};

enum validator { V_NONE, V_CRC32_BASE62, V_JWT, V_COUNT };

static const char *const validator_names[V_COUNT] = {
    [V_NONE] = "-",
    [V_CRC32_BASE62] = "crc32_base62",
    [V_JWT] = "jwt",
};

struct rule {
    char *id;
    size_t prefix_len; /* every expansion has this length */
    enum charset cs;
    size_t min, max; /* max is UNBOUNDED for '*' */
    enum validator v;
};

static struct rule *rules;
static size_t nrules;
static size_t max_prefix_len;
static struct ac *anchors; /* pattern id: rule index * 2 + word_start */
static unsigned char cs_table[CS_COUNT][256];
static uint32_t crc_table[256];
static pthread_once_t rules_once = PTHREAD_ONCE_INIT;

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int is_xdigit(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static void build_tables(void)
{
    for (int c = 0; c < 256; c++) {
        int alnum = is_alnum((unsigned char)c);
        int b64url = alnum || c == '-' || c == '_';
        cs_table[CS_ALNUM][c] = alnum;
        cs_table[CS_ALNUM_][c] = alnum || c == '_';
        cs_table[CS_B64URL][c] = b64url;
        cs_table[CS_B64URL_PAD][c] = b64url || c == '=';
        cs_table[CS_B64][c] = alnum || c == '+' || c == '/' || c == '=';
        cs_table[CS_HEX][c] = is_xdigit((unsigned char)c);
        cs_table[CS_UPPER_DIGIT][c] = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        cs_table[CS_ANY_TOKEN][c] = b64url || c == '.';
        cs_table[CS_PATH][c] = b64url || c == '/';
        cs_table[CS_PEM][c] = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ';
    }
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* ---- parsing the rules ---------------------------------------------- */

struct field {
    const char *p;
    size_t len;
};

static int field_eq(struct field f, const char *s)
{
    return strlen(s) == f.len && memcmp(f.p, s, f.len) == 0;
}

/* Decimal 0..MAX_COUNT; -1 when not a number. */
static long parse_count(struct field f)
{
    long v = 0;
    if (f.len == 0 || f.len > 5)
        return -1;
    for (size_t i = 0; i < f.len; i++) {
        if (f.p[i] < '0' || f.p[i] > '9')
            return -1;
        v = v * 10 + (f.p[i] - '0');
    }
    return v <= MAX_COUNT ? v : -1;
}

static int rule_error(size_t line, const char *msg)
{
    fprintf(stderr, "detectors.rules:%zu: %s\n", line, msg);
    return 1;
}

/* One prefix position: the set of bytes it accepts, in file order. */
struct ppos {
    char set[96];
    size_t n;
};

/*
 * Parses the prefix into positions, checks it, and (when add is set) adds
 * every expansion to the anchor automaton for rule ri.
 */
static int parse_prefix(struct rule *r, size_t ri, struct field f, size_t line, int add)
{
    struct ppos pos[MAX_PREFIX_LEN];
    size_t np = 0, combos = 1;

    for (size_t i = 0; i < f.len; i++) {
        unsigned char c = (unsigned char)f.p[i];
        if (np == MAX_PREFIX_LEN)
            return rule_error(line, "prefix too long");
        if (c == ']')
            return rule_error(line, "']' without '[' in prefix");
        if (c != '[') {
            if (c < 0x21 || c > 0x7e)
                return rule_error(line, "prefix must be printable ASCII");
            pos[np].set[0] = (char)c;
            pos[np++].n = 1;
            continue;
        }
        size_t j = i + 1, n = 0;
        for (; j < f.len && f.p[j] != ']'; j++) {
            unsigned char g = (unsigned char)f.p[j];
            if (g == '[' || g < 0x21 || g > 0x7e)
                return rule_error(line, "bad character in [...] group");
            if (memchr(pos[np].set, g, n))
                return rule_error(line, "repeated character in [...] group");
            pos[np].set[n++] = (char)g;
        }
        if (j == f.len)
            return rule_error(line, "unterminated [...] group in prefix");
        if (n == 0)
            return rule_error(line, "empty [...] group in prefix");
        pos[np++].n = n;
        combos *= n;
        if (combos > MAX_EXPANSIONS)
            return rule_error(line, "[...] groups expand to more than 64 prefixes");
        i = j;
    }
    if (np < 3)
        return rule_error(line, "prefix shorter than 3 characters");
    r->prefix_len = np;
    if (!add)
        return 0;
    for (size_t k = 0; k < combos; k++) {
        char lit[MAX_PREFIX_LEN];
        size_t rest = k;
        for (size_t p = np; p-- > 0;) {
            lit[p] = pos[p].set[rest % pos[p].n];
            rest /= pos[p].n;
        }
        uint32_t id = (uint32_t)(ri * 2 + (is_alnum((unsigned char)lit[0]) ? 1 : 0));
        if (ac_add(anchors, lit, np, id) != 0)
            return rule_error(line, "prefix refused by the automaton");
    }
    return 0;
}

/* Parses one rule line's six fields into r; returns the number of errors. */
static int parse_rule(struct rule *r, size_t ri, const struct field *fv, size_t line)
{
    int errors = 0;
    struct field id = fv[0];
    int id_ok = id.len > 0 && id.len <= MAX_ID_LEN && id.p[0] >= 'a' && id.p[0] <= 'z';
    for (size_t i = 0; id_ok && i < id.len; i++) {
        char c = id.p[i];
        id_ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    }
    if (!id_ok)
        errors += rule_error(line, "id must match [a-z][a-z0-9_]* (at most 64 characters)");
    for (size_t i = 0; i < ri; i++) {
        if (field_eq(id, rules[i].id))
            errors += rule_error(line, "duplicate rule id");
    }
    r->id = xstrndup(id.p, id.len);

    r->cs = CS_COUNT;
    for (int c = 0; c < CS_COUNT; c++) {
        if (field_eq(fv[2], charset_names[c]))
            r->cs = (enum charset)c;
    }
    if (r->cs == CS_COUNT)
        errors += rule_error(line, "unknown charset (alnum, alnum_, b64url, b64url_pad, b64, hex, "
                                   "upper_digit, any_token, path, pem)");
    if (r->cs == CS_PEM && !field_eq(fv[1], "-----BEGIN"))
        errors += rule_error(line, "charset pem needs the prefix -----BEGIN");

    long min = parse_count(fv[3]);
    long max = field_eq(fv[4], "*") ? -2 : parse_count(fv[4]);
    if (min < 1)
        errors += rule_error(line, "min must be a number from 1 to 65535");
    if (max == -1 || (max >= 0 && max < min))
        errors += rule_error(line, "max must be '*' or a number from min to 65535");
    r->min = min < 0 ? 0 : (size_t)min;
    r->max = max == -2 ? UNBOUNDED : max < 0 ? 0 : (size_t)max;

    r->v = V_COUNT;
    for (int v = 0; v < V_COUNT; v++) {
        if (field_eq(fv[5], validator_names[v]))
            r->v = (enum validator)v;
    }
    if (r->v == V_COUNT)
        errors += rule_error(line, "unknown validator (-, crc32_base62, jwt)");
    if (r->v == V_CRC32_BASE62 && (r->min < 7 || !cs_table[r->cs]['0'] || !cs_table[r->cs]['z']))
        errors += rule_error(line, "crc32_base62 needs an alphanumeric run of at least 7");

    /* Expand the prefix only when the line is otherwise sound. */
    errors += parse_prefix(r, ri, fv[1], line, errors == 0);
    return errors;
}

static void load_rules(void)
{
    const char *p = detectors_rules_text;
    size_t cap = 0, line = 0;
    int errors = 0;

    build_tables();
    anchors = ac_new(0);
    while (*p) {
        const char *eol = strchr(p, '\n');
        const char *end = eol ? eol : p + strlen(p);
        struct field fv[6];
        size_t nf = 0;

        line++;
        for (const char *q = p; q < end;) {
            if (*q == ' ' || *q == '\t' || *q == '\r') {
                q++;
                continue;
            }
            if (*q == '#') /* a comment runs to the end of the line */
                break;
            const char *start = q;
            while (q < end && *q != ' ' && *q != '\t' && *q != '\r')
                q++;
            if (nf < 6)
                fv[nf] = (struct field){start, (size_t)(q - start)};
            nf++;
        }
        p = eol ? eol + 1 : end;
        if (nf == 0)
            continue;
        if (nf != 6) {
            errors += rule_error(
                line, "expected 6 fields: <id> <prefix> <charset> <min> <max> <validator>");
            continue;
        }
        if (nrules == cap) {
            cap = cap ? cap * 2 : 16;
            rules = xrealloc(rules, cap * sizeof(*rules));
        }
        errors += parse_rule(&rules[nrules], nrules, fv, line);
        if (rules[nrules].prefix_len > max_prefix_len)
            max_prefix_len = rules[nrules].prefix_len;
        nrules++;
    }
    if (nrules == 0)
        errors += rule_error(line, "no rules");
    if (!errors && ac_compile(anchors) != 0)
        errors += rule_error(line, "the prefixes do not fit the automaton");
    if (errors) {
        fprintf(stderr, "detectors.rules: %d error(s) in the embedded rules; this is a build bug\n",
                errors);
        abort();
    }
}

static void ensure_loaded(void)
{
    pthread_once(&rules_once, load_rules);
}

size_t detect_rule_count(void)
{
    ensure_loaded();
    return nrules;
}

const char *detect_rule_id(size_t i)
{
    ensure_loaded();
    return i < nrules ? rules[i].id : NULL;
}

/* ---- checking one anchor hit ----------------------------------------- */

/* May a token start at s[i], judging by what comes before it? */
static int word_boundary_before(const unsigned char *s, size_t i)
{
    if (i == 0 || !is_alnum(s[i - 1]))
        return 1;
    if (i >= 2 && s[i - 2] == '\\' && strchr("nrtbf", s[i - 1]))
        return 1;
    if (i >= 3 && s[i - 3] == '%' && is_xdigit(s[i - 2]) && is_xdigit(s[i - 1]))
        return 1;
    if (i >= 6 && s[i - 6] == '\\' && s[i - 5] == 'u' && is_xdigit(s[i - 4]) &&
        is_xdigit(s[i - 3]) && is_xdigit(s[i - 2]) && is_xdigit(s[i - 1]))
        return 1;
    return 0;
}

/* Length of the PEM header match whose label starts at s[j], or 0. */
static size_t pem_at(const struct rule *r, const unsigned char *s, size_t n, size_t j)
{
    static const char tail[] = "PRIVATE KEY";
    const size_t tail_len = sizeof(tail) - 1;
    size_t k = 0;

    while (j + k < n && k <= r->max && cs_table[CS_PEM][s[j + k]])
        k++;
    if (k < r->min || k > r->max || k < tail_len + 1 || s[j] != ' ')
        return 0;
    if (memcmp(s + j + k - tail_len, tail, tail_len) != 0)
        return 0;
    if (n - (j + k) < 5 || memcmp(s + j + k, "-----", 5) != 0)
        return 0;
    return k + 5;
}

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++)
        c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static int base62_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 36;
    return -1;
}

/* body[0..n): the last 6 characters are base62(crc32(the rest)), 0-9A-Za-z. */
static int crc32_base62_ok(const unsigned char *body, size_t n)
{
    uint64_t v = 0;
    if (n < 7)
        return 0;
    for (size_t i = n - 6; i < n; i++) {
        int d = base62_digit(body[i]);
        if (d < 0)
            return 0;
        v = v * 62 + (uint64_t)d;
    }
    return v == crc32_of(body, n - 6);
}

static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/*
 * s[0..n) is the charset run of a jwt candidate, prefix included.
 * Returns the length of the JWT it starts with: header '.' payload '.'
 * signature, the signature possibly empty (an unsecured JWT); a dot after
 * it ends a sentence, but a dot and more base64url is a fourth part (a JWE
 * or not a token at all) and no match.  The header must decode to a JSON
 * object with an "alg" member and the payload must start like an object.
 */
static size_t jwt_len(const unsigned char *s, size_t n)
{
    size_t d1 = 0, d2, end;
    unsigned char hdr[JWT_MAX_HEADER];
    size_t hl = 0;
    uint32_t acc = 0;
    int bits = 0;

    while (d1 < n && s[d1] != '.')
        d1++;
    if (d1 == n || d1 < 4)
        return 0;
    for (d2 = d1 + 1; d2 < n && s[d2] != '.'; d2++)
        ;
    if (d2 == n || d2 - d1 - 1 < 4)
        return 0;
    for (end = d2 + 1; end < n && s[end] != '.'; end++)
        ;
    if (end + 1 < n && s[end] == '.' && s[end + 1] != '.')
        return 0;
    for (size_t i = 0; i < d1 && hl < sizeof(hdr); i++) {
        acc = acc << 6 | (uint32_t)b64url_val(s[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            hdr[hl++] = (unsigned char)(acc >> bits);
        }
    }
    size_t k = 0;
    while (k < hl && (hdr[k] == ' ' || hdr[k] == '\t' || hdr[k] == '\r' || hdr[k] == '\n'))
        k++;
    if (k == hl || hdr[k] != '{' || !memmem(hdr, hl, "\"alg\"", 5))
        return 0;
    /* "eyJ" is '{"' encoded: the payload is a JSON object too. */
    if (s[d1 + 1] != 'e' || s[d1 + 2] != 'y' || s[d1 + 3] != 'J')
        return 0;
    return end;
}

struct scan_ctx {
    const unsigned char *s;
    size_t n;
    size_t run_from[CS_COUNT], run_end[CS_COUNT]; /* cached maximal runs */
    int first_only;
    int have_best;
    struct detect_match best;
    size_t best_rule;
    /* all mode: candidates */
    struct cand {
        size_t rule, off, len;
        int verified;
    } * cand, stack[CANDIDATES_STACK];
    size_t ncand, capcand;
};

/* End of the run of charset cs starting at j (monotonic j: amortised O(1)). */
static size_t run_end(struct scan_ctx *c, enum charset cs, size_t j)
{
    if (c->run_from[cs] != SIZE_MAX && c->run_from[cs] <= j && j <= c->run_end[cs])
        return c->run_end[cs];
    const unsigned char *t = cs_table[cs];
    size_t e = j;
    while (e < c->n && t[c->s[e]])
        e++;
    c->run_from[cs] = j;
    c->run_end[cs] = e;
    return e;
}

/* The match of rule ri whose prefix ends at j, as *ret_len; 0 if none. */
static int check_hit(struct scan_ctx *c, size_t ri, size_t i, size_t j, size_t *ret_len,
                     int *ret_verified)
{
    const struct rule *r = &rules[ri];
    size_t k;

    *ret_verified = 0;
    if (r->cs == CS_PEM) {
        k = pem_at(r, c->s, c->n, j);
        if (!k)
            return 0;
        *ret_len = r->prefix_len + k;
        return 1;
    }
    k = run_end(c, r->cs, j) - j;
    if (r->cs == CS_ANY_TOKEN && r->v != V_JWT) { /* jwt_len() sorts out its dots */
        while (k > 0 && c->s[j + k - 1] == '.')
            k--;
    }
    if (k < r->min || k > r->max)
        return 0;
    switch (r->v) {
    case V_NONE:
        break;
    case V_CRC32_BASE62:
        *ret_verified = crc32_base62_ok(c->s + j, k);
        break;
    case V_JWT: {
        size_t len = jwt_len(c->s + i, r->prefix_len + k);
        if (!len || len - r->prefix_len < r->min)
            return 0;
        k = len - r->prefix_len;
        *ret_verified = 1;
        break;
    }
    case V_COUNT:
        return 0;
    }
    *ret_len = r->prefix_len + k;
    return 1;
}

static int on_anchor(void *ctx, uint32_t id, size_t plen, size_t end)
{
    struct scan_ctx *c = ctx;
    size_t ri = id / 2, i = end - plen, len;
    int verified;

    /* No later hit can start at or before the best one found so far. */
    if (c->first_only && c->have_best && end > c->best.off + max_prefix_len)
        return 1;
    if ((id & 1) && !word_boundary_before(c->s, i))
        return 0;
    if (!check_hit(c, ri, i, end, &len, &verified))
        return 0;
    if (c->first_only) {
        if (!c->have_best || i < c->best.off || (i == c->best.off && ri < c->best_rule)) {
            c->best = (struct detect_match){rules[ri].id, i, len, verified};
            c->best_rule = ri;
            c->have_best = 1;
        }
        return 0;
    }
    if (c->ncand == c->capcand) {
        size_t ncap = c->capcand * 2;
        if (c->cand == c->stack) {
            c->cand = xmalloc(ncap * sizeof(*c->cand));
            memcpy(c->cand, c->stack, sizeof(c->stack));
        } else {
            c->cand = xrealloc(c->cand, ncap * sizeof(*c->cand));
        }
        c->capcand = ncap;
    }
    c->cand[c->ncand++] = (struct cand){ri, i, len, verified};
    return 0;
}

static void ctx_init(struct scan_ctx *c, const char *s, size_t n, int first_only)
{
    memset(c, 0, offsetof(struct scan_ctx, stack));
    c->s = (const unsigned char *)s;
    c->n = n;
    for (int k = 0; k < CS_COUNT; k++)
        c->run_from[k] = SIZE_MAX;
    c->first_only = first_only;
    c->cand = c->stack;
    c->ncand = 0;
    c->capcand = CANDIDATES_STACK;
}

int detect_scan(const char *s, size_t n, struct detect_match *ret)
{
    struct scan_ctx c;

    ensure_loaded();
    if (!s)
        return 0;
    ctx_init(&c, s, n, 1);
    ac_scan(anchors, s, n, on_anchor, &c);
    if (!c.have_best)
        return 0;
    if (ret)
        *ret = c.best;
    return 1;
}

static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return x->rule < y->rule ? -1 : x->rule > y->rule;
}

size_t detect_scan_all(const char *s, size_t n, struct detect_match *out, size_t max)
{
    struct scan_ctx c;
    size_t count = 0, next = 0;

    ensure_loaded();
    if (!s)
        return 0;
    ctx_init(&c, s, n, 0);
    ac_scan(anchors, s, n, on_anchor, &c);
    qsort(c.cand, c.ncand, sizeof(*c.cand), cand_cmp);
    for (size_t k = 0; k < c.ncand; k++) {
        const struct cand *d = &c.cand[k];
        if (d->off < next)
            continue; /* overlaps the previous match */
        if (count < max)
            out[count] = (struct detect_match){rules[d->rule].id, d->off, d->len, d->verified};
        count++;
        next = d->off + d->len;
    }
    if (c.cand != c.stack)
        free(c.cand);
    return count;
}

char *detect_mask(const char *s, size_t n, const struct detect_match *m)
{
    size_t off = 0, len = s ? n : 0;
    char head[5];
    size_t show;

    if (s && m && m->off <= n && m->len <= n - m->off) {
        off = m->off;
        len = m->len;
    }
    /* Short values give away proportionally less: a quarter, at most 4. */
    show = len / 4 < 4 ? len / 4 : 4;
    for (size_t i = 0; i < show; i++) {
        unsigned char c = (unsigned char)s[off + i];
        head[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    head[show] = '\0';
    return xasprintf("%s... (%zu chars)", head, len);
}
