/*
 * dlp.c - see dlp.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "dlp.h"
#include "err.h"
#include "xalloc.h"

#define INFLATE_PIECE 16384
#define ONESHOT_SLACK ((size_t)64 << 10)
#define STREAM_SLACK  ((size_t)1 << 20)
#define PEND_MAX      ((size_t)16 << 20)
#define SSE_EVENT_MAX ((size_t)64 << 10) /* an event longer than this is cut like text */
#define CUT_STEPS     64                 /* safe_cut's walk back */

/* ---- known secrets ---------------------------------------------------- */

struct secret_set *dlp_secrets_build(const struct pconf *conf, size_t *ret_window,
                                     size_t *ret_short)
{
    struct secret_set *set = secret_set_new();
    size_t longest = 0, shorts = 0;
    for (size_t i = 0; i < conf->n_secrets; i++) {
        const struct pconf_secret *s = &conf->secrets[i];
        int r = secret_set_add(set, s->name, s->value, s->value_len);
        if (r == BD_E_LIMIT)
            shorts++;
        else if (r == 0 && s->value_len > longest)
            longest = s->value_len;
    }
    secret_set_compile(set);
    /* The longest encoding is percent-escaping every byte: 3 per byte;
     * base64 redaction also takes one character on either side. */
    *ret_window = longest ? 3 * longest + 4 : 0;
    if (ret_short)
        *ret_short = shorts;
    return set;
}

/* ---- codings ---------------------------------------------------------- */

static struct slice trim(struct slice s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

static int eq_ci(struct slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(s.ptr, lit, n) == 0;
}

enum dlp_coding dlp_coding_of(struct slice value)
{
    struct slice v = trim(value);
    if (v.len == 0 || eq_ci(v, "identity"))
        return DLP_CODING_IDENTITY;
    if (eq_ci(v, "gzip") || eq_ci(v, "x-gzip"))
        return DLP_CODING_GZIP;
    if (eq_ci(v, "deflate"))
        return DLP_CODING_DEFLATE;
    return DLP_CODING_OTHER;
}

struct dlp_inflater {
    z_stream z;
    enum dlp_coding coding;
    int started, ended;
    int held; /* deflate: the first byte, until the second tells zlib from raw */
    unsigned char head[2];
    unsigned ratio;
    size_t slack;
    uint64_t total_in, total_out;
};

/* Deflate as sent in the wild is the zlib format or, wrongly, raw deflate. */
static int looks_zlib(const unsigned char *p, size_t n)
{
    if (n == 0)
        return 1;
    if ((p[0] & 0x0f) != 8)
        return 0;
    return n < 2 || ((unsigned)p[0] * 256u + p[1]) % 31u == 0;
}

static int inflater_start(struct dlp_inflater *z, const unsigned char *head, size_t n)
{
    int bits = z->coding == DLP_CODING_GZIP ? 15 + 32 : looks_zlib(head, n) ? 15 : -15;
    if (inflateInit2(&z->z, bits) != Z_OK)
        return DLP_E_CORRUPT;
    z->started = 1;
    return 0;
}

static int inflater_bytes(struct dlp_inflater *z, const char *in, size_t n, struct buf *out,
                          size_t max_out);

static int inflater_run(struct dlp_inflater *z, const char *in, size_t n, struct buf *out,
                        size_t max_out)
{
    if (n == 0)
        return 0;
    if (z->ended) {
        if (z->coding != DLP_CODING_GZIP)
            return DLP_E_CORRUPT; /* bytes after the end of the stream */
        inflateReset(&z->z);      /* the next gzip member, in a later piece */
        z->ended = 0;
    }
    z->total_in += n;
    if (!z->started) {
        /* Deflate: zlib or raw is told by the first two bytes, whatever
         * pieces they come in; the first is held until the second. */
        if (z->coding != DLP_CODING_GZIP && !z->held && n < 2) {
            z->head[0] = (unsigned char)in[0];
            z->held = 1;
            return 0;
        }
        if (z->held)
            z->head[1] = (unsigned char)in[0];
        if (inflater_start(z, z->held ? z->head : (const unsigned char *)in,
                           z->held || n > 1 ? 2 : n) < 0)
            return DLP_E_CORRUPT;
        if (z->held) {
            int r = inflater_bytes(z, (const char *)z->head, 1, out, max_out);
            if (r < 0)
                return r;
        }
    }
    return inflater_bytes(z, in, n, out, max_out);
}

static int inflater_bytes(struct dlp_inflater *z, const char *in, size_t n, struct buf *out,
                          size_t max_out)
{
    unsigned char tmp[INFLATE_PIECE];
    if (z->ended)
        return DLP_E_CORRUPT; /* the held byte ended the stream */
    z->z.next_in = (unsigned char *)(uintptr_t)in;
    z->z.avail_in = (uInt)n;
    /* Until the input is used up and inflate has no output left to give:
     * a full tmp may leave some of a match still to be written. */
    while (z->z.avail_in > 0 || z->z.avail_out == 0) {
        z->z.next_out = tmp;
        z->z.avail_out = sizeof(tmp);
        int r = inflate(&z->z, Z_NO_FLUSH);
        size_t got = sizeof(tmp) - z->z.avail_out;
        z->total_out += got;
        if (z->total_out > (uint64_t)z->ratio * z->total_in + z->slack)
            return DLP_E_RATIO;
        if (out->len + got > max_out)
            return DLP_E_SIZE;
        if (got && buf_append(out, tmp, got) < 0)
            return DLP_E_SIZE;
        if (r == Z_STREAM_END) {
            if (z->z.avail_in == 0) {
                z->ended = 1;
                break;
            }
            if (z->coding != DLP_CODING_GZIP)
                return DLP_E_CORRUPT;
            inflateReset(&z->z); /* the next gzip member */
            continue;
        }
        if (r == Z_BUF_ERROR && got == 0)
            break;
        if (r != Z_OK)
            return DLP_E_CORRUPT;
    }
    return 0;
}

struct dlp_inflater *dlp_inflater_new(enum dlp_coding coding, unsigned ratio)
{
    struct dlp_inflater *z = xcalloc(1, sizeof(*z));
    z->coding = coding;
    z->ratio = ratio;
    z->slack = STREAM_SLACK;
    return z;
}

int dlp_inflater_feed(struct dlp_inflater *z, const char *in, size_t n, struct buf *out)
{
    int r = inflater_run(z, in, n, out, SIZE_MAX);
    return r == DLP_E_SIZE ? DLP_E_RATIO : r;
}

void dlp_inflater_free(struct dlp_inflater *z)
{
    if (!z)
        return;
    if (z->started)
        inflateEnd(&z->z);
    free(z);
}

int dlp_inflate_all(enum dlp_coding coding, const char *in, size_t n, size_t max_out,
                    unsigned ratio, struct buf *out)
{
    struct dlp_inflater z;
    memset(&z, 0, sizeof(z));
    z.coding = coding;
    z.ratio = ratio;
    z.slack = ONESHOT_SLACK;
    /* The ratio is over the whole input: count it up front. */
    int r = inflater_run(&z, in, n, out, max_out);
    if (r == 0 && !z.ended)
        r = DLP_E_CORRUPT; /* truncated */
    if (z.started)
        inflateEnd(&z.z);
    return r;
}

char *dlp_accept_encoding(struct slice v)
{
    struct buf b;
    buf_init(&b, v.len + 16);
    size_t i = 0;
    while (i <= v.len) {
        size_t j = i;
        while (j < v.len && v.ptr[j] != ',')
            j++;
        struct slice m = trim((struct slice){v.ptr + i, j - i});
        size_t k = 0;
        while (k < m.len && m.ptr[k] != ';' && m.ptr[k] != ' ' && m.ptr[k] != '\t')
            k++;
        struct slice name = {m.ptr, k};
        if (eq_ci(name, "gzip") || eq_ci(name, "x-gzip") || eq_ci(name, "deflate") ||
            eq_ci(name, "identity")) {
            if (b.len)
                buf_puts(&b, ", ");
            buf_append(&b, m.ptr, m.len);
        }
        i = j + 1;
    }
    if (b.len == 0)
        buf_puts(&b, "identity");
    return buf_detach(&b, NULL);
}

int dlp_textual(struct slice ctype, int *sse)
{
    *sse = 0;
    struct slice t = trim(ctype);
    size_t k = 0;
    while (k < t.len && t.ptr[k] != ';')
        k++;
    struct slice m = trim((struct slice){t.ptr, k});
    if (m.len == 0)
        return 1; /* no type: the agent may read it as text */
    if (eq_ci(m, "text/event-stream")) {
        *sse = 1;
        return 1;
    }
    if (m.len >= 5 && strncasecmp(m.ptr, "text/", 5) == 0)
        return 1;
    static const char *const app[] = {
        "application/json",         "application/xml",        "application/javascript",
        "application/x-javascript", "application/ecmascript", "application/ld+json",
        "application/x-ndjson",     "application/xhtml+xml",  "application/x-www-form-urlencoded",
    };
    for (size_t i = 0; i < sizeof(app) / sizeof(app[0]); i++)
        if (eq_ci(m, app[i]))
            return 1;
    if ((m.len > 5 && strncasecmp(m.ptr + m.len - 5, "+json", 5) == 0) ||
        (m.len > 4 && strncasecmp(m.ptr + m.len - 4, "+xml", 4) == 0))
        return 1;
    return 0;
}

/* ---- injection -------------------------------------------------------- */

const char *dlp_injection(const char *s, size_t n)
{
    struct injection_match m;
    return injection_scan(s, n, &m) ? m.detector : NULL;
}

/* ---- the stream scanner ----------------------------------------------- */

void dlp_stream_init(struct dlp_stream *s, const struct secret_set *secrets, size_t window,
                     int scan_injection, int sse)
{
    memset(s, 0, sizeof(*s));
    s->secrets = secrets && secret_set_count(secrets) ? secrets : NULL;
    s->window = s->secrets ? window : 0;
    s->scan_injection = scan_injection;
    s->sse = sse;
    buf_init(&s->pend, PEND_MAX);
    buf_init(&s->scan, PEND_MAX + DLP_OVERLAP);
}

void dlp_stream_release(struct dlp_stream *s)
{
    buf_release(&s->pend);
    buf_release(&s->scan);
    s->tail_len = 0;
    s->tail_open_back = 0;
}

int dlp_stream_push(struct dlp_stream *s, const char *p, size_t n)
{
    return buf_append(&s->pend, p, n);
}

/* The end of the last complete SSE event in p[0..n), or 0. */
static size_t sse_boundary(const char *p, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        if (p[i] != '\n')
            continue;
        if (i >= 1 && p[i - 1] == '\n')
            return i + 1;
        if (i >= 2 && p[i - 1] == '\r' && p[i - 2] == '\n')
            return i + 1;
    }
    return 0;
}

/*
 * Moves cut back until no span that redaction would replace crosses it
 * (secret_set_span_across: overlapping and touching occurrences merged,
 * with the character a base64 occurrence owns on either side).  The cut
 * only moves back, so it stays `window` bytes before the end and every
 * occurrence that starts before it is complete in p and seen here; moving
 * it forward past one could split the next, not yet complete.  A span that
 * began before the scanned stretch moves the cut to the stretch's start,
 * and the next step looks further back (CUT_STEPS bounds the walk over a
 * long run of touching occurrences: then nothing is cut).
 */
static size_t safe_cut(const struct dlp_stream *s, const char *p, size_t len, size_t cut)
{
    for (int steps = 0; cut > 0; steps++) {
        if (steps == CUT_STEPS)
            return 0;
        size_t from = cut > s->window ? cut - s->window : 0;
        size_t lim = cut + s->window < len ? cut + s->window : len, start;
        if (!secret_set_span_across(s->secrets, p + from, lim - from, cut - from, &start))
            break;
        cut = from + start;
    }
    return cut;
}

int dlp_stream_take(struct dlp_stream *s, int final, struct buf *out, const char **hit,
                    size_t *n_redacted)
{
    const char *p = s->pend.data ? s->pend.data : "";
    size_t len = s->pend.len, cut;
    *hit = NULL;
    if (final) {
        cut = len;
    } else if (s->sse) {
        cut = sse_boundary(p, len);
        if (cut == 0 && len > SSE_EVENT_MAX)
            cut = len > s->window ? len - s->window : 0;
    } else {
        cut = len > s->window ? len - s->window : 0;
    }
    if (!final && s->secrets && cut > 0)
        cut = safe_cut(s, p, len, cut);
    if (cut == 0)
        return 0;
    /* Injection: the piece with the overlap before it; a detection that
     * lies wholly in the overlap was reported with the previous piece.  The
     * overlap's comment state (inside an HTML comment or not) is carried
     * from the scan before, so a comment word is judged as in the whole
     * text.  (Without the injection scan there is no overlap to keep.) */
    if (s->scan_injection) {
        buf_reset(&s->scan);
        if (buf_append(&s->scan, s->tail, s->tail_len) < 0 || buf_append(&s->scan, p, cut) < 0)
            return BD_E_TOO_BIG;
        size_t keep = s->scan.len < DLP_OVERLAP ? s->scan.len : DLP_OVERLAP;
        size_t open_back = 0; /* at scan.len - keep: where the next scan starts */
        size_t at = 0, mark = s->scan.len - keep;
        struct injection_match m;
        size_t open = s->tail_open_back;
        while (at < s->scan.len) {
            int found = injection_scan_from(s->scan.data + at, s->scan.len - at, open,
                                            mark > at ? mark - at : 0, &open_back, &m);
            if (mark < at)
                open_back = 0; /* rescanned after a detection: state unknown there */
            if (!found)
                break;
            if (at + m.off + m.len > s->tail_len) {
                *hit = m.detector;
                break;
            }
            at += m.off + (m.len ? m.len : 1);
            open = 0;
        }
        memcpy(s->tail, s->scan.data + s->scan.len - keep, keep);
        s->tail_len = keep;
        s->tail_open_back = open_back;
    }
    int r = 0;
    if (s->secrets) {
        size_t cnt = 0;
        r = s->same_length ? secret_set_redact_same_length(s->secrets, p, cut, out, &cnt)
                           : secret_set_redact(s->secrets, p, cut, out, &cnt);
        *n_redacted += cnt;
    } else {
        r = buf_append(out, p, cut);
    }
    if (cut < len)
        memmove(s->pend.data, s->pend.data + cut, len - cut);
    s->pend.len = len - cut;
    s->pend.data[s->pend.len] = '\0';
    return r < 0 ? BD_E_TOO_BIG : 0;
}
