/*
 * detect.c - the plain credential matcher behind detect.h.
 *
 * The rules text (lib/detectors.rules, embedded as detectors_rules_text) is
 * parsed once, on first use, under pthread_once.  A malformed rule is a
 * build-time bug, not an input error: every bad line is printed to stderr
 * and the process aborts, and the unit tests load the rules so a bad edit
 * never ships.
 *
 * Matching, for each offset from left to right and each rule in file order
 * (so the leftmost match wins, and at one offset the first rule listed):
 *   - the prefix matches literally (its one "[...]" group matches one of
 *     the listed characters);
 *   - the run of charset characters after it is taken greedily and its
 *     length must lie in [min, max], so the character after the match is
 *     never in the charset;
 *   - a prefix starting with a letter or digit must not continue a word:
 *     the byte before it must not be [A-Za-z0-9], unless that byte ends an
 *     escape that commonly separates a token from what precedes it in
 *     transported text: "%HH" (URL encoding, "token%3Dghp_..."), a JSON or
 *     C escape "\n" "\r" "\t" "\b" "\f", or "\uHHHH".  Without this rule
 *     "sk-" would fire inside "task-..." and "AKIA" inside base64 blobs;
 *     without the escape exceptions a token on the second line of a JSON
 *     string would be missed.
 *   - charset "pem": the prefix "-----BEGIN" is followed by a label of
 *     [min, max] characters of [A-Z0-9 ] that starts with ' ' and ends with
 *     "PRIVATE KEY", then "-----".
 * Every prefix position is bounded and bounded runs stop at max + 1, so a
 * scan costs O(n * rules * (prefix + max)), except that an unbounded run
 * is followed to its end once, and only when it is a match.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detect.h"
#include "xalloc.h"

extern const char detectors_rules_text[];

#define MAX_ID_LEN     64
#define MAX_PREFIX_LEN 64
#define MAX_COUNT      65535 /* min and max */
#define UNBOUNDED      SIZE_MAX

enum charset {
    CS_ALNUM,
    CS_ALNUM_,
    CS_B64URL,
    CS_B64,
    CS_HEX,
    CS_UPPER_DIGIT,
    CS_ANY_TOKEN,
    CS_PEM, /* the label of a PEM header: [A-Z0-9 ] */
    CS_COUNT
};

static const char *const charset_names[CS_COUNT] = {
    [CS_ALNUM] = "alnum",
    [CS_ALNUM_] = "alnum_",
    [CS_B64URL] = "b64url",
    [CS_B64] = "b64",
    [CS_HEX] = "hex",
    [CS_UPPER_DIGIT] = "upper_digit",
    [CS_ANY_TOKEN] = "any_token",
    [CS_PEM] = "pem",
};

struct rule {
    char *id;
    /* The prefix, with the alternation group collapsed to one position. */
    char prefix[MAX_PREFIX_LEN + 1];
    size_t prefix_len;
    size_t group_at;          /* SIZE_MAX when there is no group */
    unsigned char group[256]; /* membership of the group's characters */
    int word_start;           /* prefix starts with [A-Za-z0-9] */
    enum charset cs;
    size_t min, max; /* max is UNBOUNDED for '*' */
};

static struct rule *rules;
static size_t nrules;
static unsigned char cs_table[CS_COUNT][256];
static unsigned char first_byte[256]; /* some rule's prefix can start here */
static pthread_once_t rules_once = PTHREAD_ONCE_INIT;

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int is_xdigit(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static void build_charsets(void)
{
    for (int c = 0; c < 256; c++) {
        int alnum = is_alnum((unsigned char)c);
        cs_table[CS_ALNUM][c] = alnum;
        cs_table[CS_ALNUM_][c] = alnum || c == '_';
        cs_table[CS_B64URL][c] = alnum || c == '-' || c == '_';
        cs_table[CS_B64][c] = alnum || c == '+' || c == '/' || c == '=';
        cs_table[CS_HEX][c] = is_xdigit((unsigned char)c);
        cs_table[CS_UPPER_DIGIT][c] = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        cs_table[CS_ANY_TOKEN][c] = alnum || c == '-' || c == '_' || c == '.';
        cs_table[CS_PEM][c] = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ';
    }
}

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

static int parse_prefix(struct rule *r, struct field f, size_t line)
{
    r->prefix_len = 0;
    r->group_at = SIZE_MAX;
    memset(r->group, 0, sizeof(r->group));
    for (size_t i = 0; i < f.len; i++) {
        unsigned char c = (unsigned char)f.p[i];
        if (r->prefix_len == MAX_PREFIX_LEN)
            return rule_error(line, "prefix too long");
        if (c == ']')
            return rule_error(line, "']' without '[' in prefix");
        if (c != '[') {
            if (c < 0x21 || c > 0x7e)
                return rule_error(line, "prefix must be printable ASCII");
            r->prefix[r->prefix_len++] = (char)c;
            continue;
        }
        if (r->group_at != SIZE_MAX)
            return rule_error(line, "more than one [...] group in prefix");
        size_t j = i + 1, n = 0;
        for (; j < f.len && f.p[j] != ']'; j++) {
            unsigned char g = (unsigned char)f.p[j];
            if (g == '[' || g < 0x21 || g > 0x7e)
                return rule_error(line, "bad character in [...] group");
            r->group[g] = 1;
            n++;
        }
        if (j == f.len)
            return rule_error(line, "unterminated [...] group in prefix");
        if (n == 0)
            return rule_error(line, "empty [...] group in prefix");
        r->group_at = r->prefix_len;
        r->prefix[r->prefix_len++] = '\0'; /* placeholder, never compared */
        i = j;
    }
    r->prefix[r->prefix_len] = '\0';
    if (r->prefix_len < 3)
        return rule_error(line, "prefix shorter than 3 characters");
    if (r->group_at == 0) {
        r->word_start = 0;
        for (int c = 0; c < 256; c++)
            r->word_start |= r->group[c] && is_alnum((unsigned char)c);
    } else {
        r->word_start = is_alnum((unsigned char)r->prefix[0]);
    }
    return 0;
}

/* Parses one rule line's five fields into r; returns the number of errors. */
static int parse_rule(struct rule *r, const struct field *fv, size_t line)
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
    for (size_t i = 0; i < nrules; i++) {
        if (field_eq(id, rules[i].id))
            errors += rule_error(line, "duplicate rule id");
    }
    r->id = xstrndup(id.p, id.len);

    errors += parse_prefix(r, fv[1], line);

    r->cs = CS_COUNT;
    for (int c = 0; c < CS_COUNT; c++) {
        if (field_eq(fv[2], charset_names[c]))
            r->cs = (enum charset)c;
    }
    if (r->cs == CS_COUNT)
        errors += rule_error(
            line, "unknown charset (alnum, alnum_, b64url, b64, hex, upper_digit, any_token, pem)");
    if (r->cs == CS_PEM && !(r->prefix_len == 10 && memcmp(r->prefix, "-----BEGIN", 10) == 0))
        errors += rule_error(line, "charset pem needs the prefix -----BEGIN");

    long min = parse_count(fv[3]);
    long max = field_eq(fv[4], "*") ? -2 : parse_count(fv[4]);
    if (min < 1)
        errors += rule_error(line, "min must be a number from 1 to 65535");
    if (max == -1 || (max >= 0 && max < min))
        errors += rule_error(line, "max must be '*' or a number from min to 65535");
    r->min = min < 0 ? 0 : (size_t)min;
    r->max = max == -2 ? UNBOUNDED : max < 0 ? 0 : (size_t)max;
    return errors;
}

static void load_rules(void)
{
    const char *p = detectors_rules_text;
    size_t cap = 0, line = 0;
    int errors = 0;

    build_charsets();
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
        if (nf != 5) {
            errors += rule_error(line, "expected 5 fields: <id> <prefix> <charset> <min> <max>");
            continue;
        }
        if (nrules == cap) {
            cap = cap ? cap * 2 : 16;
            rules = xrealloc(rules, cap * sizeof(*rules));
        }
        errors += parse_rule(&rules[nrules], fv, line);
        nrules++;
    }
    if (nrules == 0)
        errors += rule_error(line, "no rules");
    if (errors) {
        fprintf(stderr, "detectors.rules: %d error(s) in the embedded rules; this is a build bug\n",
                errors);
        abort();
    }
    for (size_t i = 0; i < nrules; i++) {
        const struct rule *r = &rules[i];
        for (int c = 0; c < 256; c++) {
            if (r->group_at == 0 ? r->group[c] : c == (unsigned char)r->prefix[0])
                first_byte[c] = 1;
        }
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

static int prefix_at(const struct rule *r, const unsigned char *s, size_t n, size_t i)
{
    if (n - i < r->prefix_len)
        return 0;
    for (size_t k = 0; k < r->prefix_len; k++) {
        if (k == r->group_at ? !r->group[s[i + k]] : s[i + k] != (unsigned char)r->prefix[k])
            return 0;
    }
    return 1;
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

/* Length of r's match at s[i], or 0. */
static size_t match_at(const struct rule *r, const unsigned char *s, size_t n, size_t i)
{
    if (!prefix_at(r, s, n, i))
        return 0;
    size_t j = i + r->prefix_len;
    if (r->cs == CS_PEM) {
        size_t k = pem_at(r, s, n, j);
        return k ? r->prefix_len + k : 0;
    }
    const unsigned char *cs = cs_table[r->cs];
    size_t k = 0;
    while (j + k < n && cs[s[j + k]] && (r->max == UNBOUNDED || k <= r->max))
        k++;
    if (k < r->min || k > r->max)
        return 0;
    return r->prefix_len + k;
}

int detect_scan(const char *s, size_t n, struct detect_match *ret)
{
    const unsigned char *u = (const unsigned char *)s;

    ensure_loaded();
    if (!s)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!first_byte[u[i]])
            continue;
        int boundary = word_boundary_before(u, i);
        for (size_t r = 0; r < nrules; r++) {
            if (rules[r].word_start && !boundary)
                continue;
            size_t len = match_at(&rules[r], u, n, i);
            if (len) {
                if (ret)
                    *ret = (struct detect_match){rules[r].id, i, len};
                return 1;
            }
        }
    }
    return 0;
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
