/*
 * test_detect_corpus.c - replays the detector corpus in tests/data/detect/.
 *
 * The corpus is data: tokens.tsv (credential rules, detect_scan_all()),
 * secrets.tsv (known_secrets, lib/secretscan.h) and injection.tsv
 * (naive_injection_detection, lib/injection.h); each file's header says its
 * line format.  Every line is checked and every failing line is reported
 * as file:line before the test fails, so one run lists them all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "detect.h"
#include "injection.h"
#include "secretscan.h"
#include "urlpath.h"
#include "xalloc.h"

#define CORPUS_DIR TEST_DATA_DIR "/detect"
#define MAX_FIELDS 3

struct line {
    const char *file;
    size_t no;
    char *f[MAX_FIELDS]; /* tab-separated fields, NUL-terminated */
    size_t nf;
};

static int failures;

static void report(const struct line *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void report(const struct line *l, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%zu: ", l->file, l->no);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    failures++;
}

/* Decodes the corpus escapes into b; 0, or -1 on a bad escape. */
static int unescape(const char *s, struct buf *b)
{
    buf_reset(b);
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        if (c != '\\') {
            buf_putc(b, c);
            continue;
        }
        c = s[++i];
        if (c == '\\')
            buf_putc(b, '\\');
        else if (c == 't')
            buf_putc(b, '\t');
        else if (c == 'n')
            buf_putc(b, '\n');
        else if (c == 'r')
            buf_putc(b, '\r');
        else if (c == 'x' && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
            buf_putc(b, (char)(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2])));
            i += 2;
        } else
            return -1;
    }
    return 0;
}

typedef void (*line_fn)(const struct line *l, const char *input, size_t n, void *ctx);

/* Calls fn for every data line of file (comments and blank lines skipped). */
static size_t replay(const char *name, line_fn fn, void *ctx)
{
    char *path = xasprintf("%s/%s", CORPUS_DIR, name);
    struct buf text, in;
    size_t count = 0;

    buf_init(&text, 1 << 22);
    buf_init(&in, 1 << 20);
    if (buf_read_file(&text, path) != 0)
        fail_msg("cannot read %s", path);
    char *p = text.data;
    struct line l = {name, 0, {0}, 0};
    while (p && *p) {
        char *eol = strchr(p, '\n');
        if (eol)
            *eol = '\0';
        l.no++;
        if (*p && *p != '#') {
            l.nf = 0;
            for (char *q = p; q && l.nf < MAX_FIELDS;) {
                l.f[l.nf++] = q;
                char *tab = l.nf < MAX_FIELDS ? strchr(q, '\t') : NULL;
                if (tab)
                    *tab = '\0';
                q = tab ? tab + 1 : NULL;
            }
            if (l.nf != MAX_FIELDS)
                report(&l, "expected 3 tab-separated fields");
            else if (unescape(l.f[2], &in) != 0)
                report(&l, "bad escape in input");
            else {
                fn(&l, in.data ? in.data : "", in.len, ctx);
                count++;
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    buf_release(&text);
    buf_release(&in);
    free(path);
    return count;
}

/* ---- tokens.tsv ---------------------------------------------------------- */

struct token_ctx {
    unsigned char *has_match, *has_nomatch; /* per rule */
};

static size_t rule_index(const char *id)
{
    for (size_t i = 0; i < detect_rule_count(); i++) {
        if (strcmp(detect_rule_id(i), id) == 0)
            return i;
    }
    return SIZE_MAX;
}

static void token_line(const struct line *l, const char *s, size_t n, void *vctx)
{
    struct token_ctx *c = vctx;
    struct detect_match m[16];
    size_t k = detect_scan_all(s, n, m, 16);
    const char *verdict = l->f[0], *id = l->f[1];
    size_t ri = rule_index(id);

    if (strcmp(verdict, "no-match") == 0) {
        if (ri != SIZE_MAX)
            c->has_nomatch[ri] = 1;
        if (k)
            report(l, "expected no match, got %s at %zu", m[0].detector, m[0].off);
        return;
    }
    if (strcmp(verdict, "match") != 0 && strcmp(verdict, "unverified") != 0) {
        report(l, "unknown verdict '%s'", verdict);
        return;
    }
    if (ri == SIZE_MAX) {
        report(l, "unknown rule '%s'", id);
        return;
    }
    c->has_match[ri] = 1;
    for (size_t i = 0; i < k && i < 16; i++) {
        if (strcmp(m[i].detector, id) != 0)
            continue;
        int want_verified = strcmp(verdict, "match") == 0;
        /* Rules without a validator report verified = 0 on a match. */
        if (want_verified && !m[i].verified &&
            (strcmp(id, "github_token") == 0 || strcmp(id, "npm_token") == 0))
            report(l, "%s matched but its checksum did not verify", id);
        if (!want_verified && m[i].verified)
            report(l, "%s verified, expected a failing checksum", id);
        return;
    }
    report(l, "expected %s, got %s", id, k ? m[0].detector : "nothing");
}

static void test_tokens(void **state)
{
    (void)state;
    size_t nr = detect_rule_count();
    struct token_ctx c = {xcalloc(nr, 1), xcalloc(nr, 1)};

    failures = 0;
    size_t lines = replay("tokens.tsv", token_line, &c);
    for (size_t i = 0; i < nr; i++) {
        if (!c.has_match[i] || !c.has_nomatch[i]) {
            fprintf(stderr, "tokens.tsv: rule '%s' needs a match and a no-match line\n",
                    detect_rule_id(i));
            failures++;
        }
    }
    free(c.has_match);
    free(c.has_nomatch);
    assert_true(lines >= 2 * nr);
    assert_int_equal(failures, 0);
}

/* ---- secrets.tsv --------------------------------------------------------- */

struct secret_ctx {
    struct secret_set *set;
    int compiled;
    struct buf out;
};

static void secret_line(const struct line *l, const char *s, size_t n, void *vctx)
{
    struct secret_ctx *c = vctx;
    const char *verdict = l->f[0];

    if (strcmp(verdict, "secret") == 0) {
        if (c->compiled) {
            report(l, "secret after the first case");
            return;
        }
        int err = secret_set_add(c->set, l->f[1], s, n);
        if (err && !(err == -7 && n < SECRET_MIN_LEN)) /* BD_E_LIMIT: short, skipped */
            report(l, "secret_set_add failed: %d", err);
        return;
    }
    if (!c->compiled) {
        assert_int_equal(secret_set_compile(c->set), 0);
        c->compiled = 1;
    }
    struct secret_match m[8];
    size_t k = secret_set_scan(c->set, s, n, m, 8);
    if (strcmp(verdict, "no-match") == 0) {
        if (k)
            report(l, "expected no match, got %s:%s at %zu", m[0].name,
                   secret_encoding_name(m[0].enc), m[0].off);
    } else if (strcmp(verdict, "match") == 0) {
        int found = 0;
        for (size_t i = 0; i < k && i < 8; i++) {
            char *got = xasprintf("%s:%s", m[i].name, secret_encoding_name(m[i].enc));
            found |= strcmp(got, l->f[1]) == 0;
            free(got);
        }
        if (!found)
            report(l, "expected %s, got %s:%s", l->f[1], k ? m[0].name : "nothing",
                   k ? secret_encoding_name(m[0].enc) : "-");
    } else if (strcmp(verdict, "redact") == 0) {
        struct buf want;
        buf_init(&want, 1 << 20);
        buf_reset(&c->out);
        unescape(l->f[1], &want);
        if (secret_set_redact(c->set, s, n, &c->out, NULL) != 0)
            report(l, "redaction failed");
        else if (want.len != c->out.len || memcmp(want.data, c->out.data, want.len) != 0)
            report(l, "redacted to '%s'", buf_cstr(&c->out));
        buf_release(&want);
    } else {
        report(l, "unknown verdict '%s'", verdict);
    }
}

static void test_secrets(void **state)
{
    (void)state;
    struct secret_ctx c = {secret_set_new(), 0, {0}};

    buf_init(&c.out, 1 << 20);
    failures = 0;
    size_t lines = replay("secrets.tsv", secret_line, &c);
    assert_true(lines > 10);
    assert_int_equal(failures, 0);
    buf_release(&c.out);
    secret_set_free(c.set);
}

/* ---- injection.tsv ------------------------------------------------------- */

static void injection_line(const struct line *l, const char *s, size_t n, void *ctx)
{
    struct injection_match m;
    int got = injection_scan(s, n, &m);
    (void)ctx;

    if (strcmp(l->f[0], "no-match") == 0) {
        if (got)
            report(l, "expected no match, got %s at %zu", m.detector, m.off);
    } else if (strcmp(l->f[0], "match") == 0) {
        if (!got || strcmp(m.detector, l->f[1]) != 0)
            report(l, "expected %s, got %s", l->f[1], got ? m.detector : "nothing");
        else if (m.off > n || m.len > n - m.off)
            report(l, "match outside the input");
    } else {
        report(l, "unknown verdict '%s'", l->f[0]);
    }
}

static void test_injection(void **state)
{
    (void)state;
    failures = 0;
    size_t lines = replay("injection.tsv", injection_line, NULL);
    assert_true(lines > 10);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
