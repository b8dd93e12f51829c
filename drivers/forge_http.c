/*
 * forge_http.c - the HTTPS transport of the forge backends: one libcurl
 * easy handle per forge, retries with backoff that honour Retry-After and
 * the rate-limit headers, and the pure parsers those need.
 *
 * A call's life:
 *
 *   wait out a known exhausted rate limit (or fail when it is too long)
 *     -> send -> 2xx/4xx: done
 *             -> 429, 5xx, 403-that-is-a-rate-limit: wait (Retry-After,
 *                else the reset time, else backoff) and send again, at
 *                most max_retries times; a wait over max_wait_s is not
 *                waited: the answer goes back with refused_wait set
 *             -> no answer (network errors, timeouts; not certificate
 *                errors): GET and DELETE are sent again (they are
 *                idempotent); a POST only when it never left (no
 *                connection), since the forge may have created the key
 *
 * A 2xx that says the rate limit is used up (remaining 0) makes the next
 * request of this handle wait until the reset: that is what keeps a long
 * paginated list inside GitHub's and GitLab's rules.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "build_config.h"
#include "err.h"
#include "fault.h"
#include "forge.h"
#include "forge_http.h"
#include "xalloc.h"

#define HDR_MAX    1024 /* one kept header value */
#define LINK_MAX   8192 /* all Link lines of one answer */
#define CONNECT_S  10L
#define MSG_SCRUB  4096 /* a forge message before it is cut to FORGE_MSG_MAX */
#define BACKOFF_SH 20   /* backoff doubles at most this often */

struct forge_http {
    CURL *curl;
    struct curl_slist *hdrs; /* the auth line (with the token) and the backend's */
    char *token;
    size_t token_len;
    char *ca_file;
    time_t not_before; /* a 2xx said the rate limit is used up until then */
    /* the answer being received */
    struct buf *body;
    bool too_big;
    struct buf h_link, h_retry, h_remaining, h_reset, h_total, h_next;
    bool next_seen;
};

/* ------------------------------------------------------------ pure parts */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_tchar(char c)
{
    return isalnum((unsigned char)c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

int forge_parse_link_next(const char *link, char **ret_url)
{
    const char *p = link;

    for (;;) {
        while (is_ows(*p) || *p == ',')
            p++;
        if (!*p)
            return BD_E_NOTFOUND;
        if (*p != '<')
            return BD_E_PARSE;
        const char *uri = p + 1, *end = strchr(uri, '>');
        if (!end)
            return BD_E_PARSE;
        p = end + 1;
        bool next = false;
        for (;;) {
            while (is_ows(*p))
                p++;
            if (*p != ';')
                break;
            p++;
            while (is_ows(*p))
                p++;
            const char *name = p;
            while (is_tchar(*p))
                p++;
            size_t name_len = (size_t)(p - name);
            if (!name_len)
                return BD_E_PARSE;
            while (is_ows(*p))
                p++;
            char val[256];
            size_t vl = 0;
            if (*p == '=') {
                p++;
                while (is_ows(*p))
                    p++;
                if (*p == '"') {
                    for (p++; *p && *p != '"'; p++) {
                        if (*p == '\\' && p[1])
                            p++;
                        if (vl + 1 < sizeof(val))
                            val[vl++] = *p;
                    }
                    if (*p != '"')
                        return BD_E_PARSE;
                    p++;
                } else {
                    while (is_tchar(*p)) {
                        if (vl + 1 < sizeof(val))
                            val[vl++] = *p;
                        p++;
                    }
                }
            }
            val[vl] = '\0';
            if (name_len == 3 && strncasecmp(name, "rel", 3) == 0) {
                /* rel is a space-separated list of relation types */
                for (char *t = val; *t;) {
                    while (*t == ' ' || *t == '\t')
                        t++;
                    char *te = t;
                    while (*te && *te != ' ' && *te != '\t')
                        te++;
                    if (te - t == 4 && strncasecmp(t, "next", 4) == 0)
                        next = true;
                    t = te;
                }
            }
        }
        if (*p && *p != ',')
            return BD_E_PARSE;
        if (next) {
            if (end == uri)
                return BD_E_PARSE;
            *ret_url = xstrndup(uri, (size_t)(end - uri));
            return 0;
        }
    }
}

static const char *const day_short[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const day_long[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                       "Thursday", "Friday", "Saturday"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Consumes one of words (exact case, as HTTP-date requires); its index or -1. */
static int take_word(const char **p, const char *const *words, int n)
{
    for (int i = 0; i < n; i++) {
        size_t l = strlen(words[i]);
        if (strncmp(*p, words[i], l) == 0 && !isalpha((unsigned char)(*p)[l])) {
            *p += l;
            return i;
        }
    }
    return -1;
}

static bool take_char(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

/* Exactly n digits. */
static bool take_digits(const char **p, int n, int *ret)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *ret = v;
    return true;
}

static bool take_time(const char **p, struct tm *tm)
{
    return take_digits(p, 2, &tm->tm_hour) && take_char(p, ':') && take_digits(p, 2, &tm->tm_min) &&
           take_char(p, ':') && take_digits(p, 2, &tm->tm_sec);
}

/* An HTTP-date (RFC 9110 5.6.7) in any of its three forms. */
static int parse_http_date(const char *p, time_t *ret)
{
    struct tm tm;
    int mon;

    memset(&tm, 0, sizeof(tm));
    if (take_word(&p, day_long, 7) >= 0) {
        /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
        int yy;
        if (!take_char(&p, ',') || !take_char(&p, ' ') || !take_digits(&p, 2, &tm.tm_mday) ||
            !take_char(&p, '-') || (mon = take_word(&p, months, 12)) < 0 || !take_char(&p, '-') ||
            !take_digits(&p, 2, &yy) || !take_char(&p, ' ') || !take_time(&p, &tm) ||
            strcmp(p, " GMT") != 0)
            return BD_E_PARSE;
        /* RFC 9110: a two-digit year more than 50 years ahead is in the past
         * century; for the years a forge can mean, that is this split. */
        tm.tm_year = yy < 70 ? 100 + yy : yy;
    } else if (take_word(&p, day_short, 7) >= 0) {
        if (take_char(&p, ',')) {
            /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
            int y;
            if (!take_char(&p, ' ') || !take_digits(&p, 2, &tm.tm_mday) || !take_char(&p, ' ') ||
                (mon = take_word(&p, months, 12)) < 0 || !take_char(&p, ' ') ||
                !take_digits(&p, 4, &y) || !take_char(&p, ' ') || !take_time(&p, &tm) ||
                strcmp(p, " GMT") != 0)
                return BD_E_PARSE;
            tm.tm_year = y - 1900;
        } else {
            /* asctime: Sun Nov  6 08:49:37 1994 */
            int y;
            if (!take_char(&p, ' ') || (mon = take_word(&p, months, 12)) < 0 || !take_char(&p, ' '))
                return BD_E_PARSE;
            if (*p == ' ') {
                p++;
                if (!take_digits(&p, 1, &tm.tm_mday))
                    return BD_E_PARSE;
            } else if (!take_digits(&p, 2, &tm.tm_mday)) {
                return BD_E_PARSE;
            }
            if (!take_char(&p, ' ') || !take_time(&p, &tm) || !take_char(&p, ' ') ||
                !take_digits(&p, 4, &y) || *p)
                return BD_E_PARSE;
            tm.tm_year = y - 1900;
        }
    } else {
        return BD_E_PARSE;
    }
    tm.tm_mon = mon;
    if (tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return BD_E_PARSE;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return BD_E_PARSE;
    *ret = t;
    return 0;
}

/* A header value without surrounding blanks, in buf (size n); NULL if too long. */
static const char *trimmed(const char *s, char *buf, size_t n)
{
    while (is_ows(*s))
        s++;
    size_t l = strlen(s);
    while (l && is_ows(s[l - 1]))
        l--;
    if (l >= n)
        return NULL;
    memcpy(buf, s, l);
    buf[l] = '\0';
    return buf;
}

/* Non-negative decimal seconds (at most 12 digits). */
static int parse_uint(const char *s, long *ret)
{
    long v = 0;
    size_t i = 0;
    for (; isdigit((unsigned char)s[i]); i++) {
        if (i == 12)
            return BD_E_PARSE;
        v = v * 10 + (s[i] - '0');
    }
    if (i == 0 || s[i])
        return BD_E_PARSE;
    *ret = v;
    return 0;
}

int forge_parse_retry_after(const char *s, time_t now, long *ret_s)
{
    char b[64];
    long v;
    time_t t;

    if (!s || !(s = trimmed(s, b, sizeof(b))))
        return BD_E_PARSE;
    if (isdigit((unsigned char)*s)) {
        if (parse_uint(s, &v) < 0)
            return BD_E_PARSE;
        *ret_s = v;
        return 0;
    }
    if (parse_http_date(s, &t) < 0)
        return BD_E_PARSE;
    *ret_s = t > now ? (long)(t - now) : 0;
    return 0;
}

bool forge_rl_exhausted(const struct forge_rl *rl)
{
    char b[32];
    long v;
    const char *s = rl->remaining ? trimmed(rl->remaining, b, sizeof(b)) : NULL;
    return s && parse_uint(s, &v) == 0 && v == 0;
}

/* Seconds until the rate limit's reset (epoch seconds), at least 1; -1 if unknown. */
static long reset_wait(const struct forge_rl *rl, time_t now)
{
    char b[32];
    long v;
    const char *s = rl->reset ? trimmed(rl->reset, b, sizeof(b)) : NULL;
    if (!s || parse_uint(s, &v) < 0)
        return -1;
    return v > now ? (long)(v - now) : 1;
}

int forge_retry_wait(long status, const struct forge_rl *rl, time_t now, int attempt,
                     long backoff_ms, long *ret_ms)
{
    bool exhausted = forge_rl_exhausted(rl);
    long s;

    if (!(status == 429 || status == 500 || status == 502 || status == 503 || status == 504 ||
          (status == 403 && (exhausted || rl->retry_after))))
        return 0;
    if (rl->retry_after && forge_parse_retry_after(rl->retry_after, now, &s) == 0)
        *ret_ms = s * 1000;
    else if (exhausted && (s = reset_wait(rl, now)) >= 0)
        *ret_ms = s * 1000;
    else
        *ret_ms = backoff_ms << (attempt < BACKOFF_SH ? attempt : BACKOFF_SH);
    return 1;
}

/* scheme, host and port of an absolute URL; 0 or BD_E_INVAL. */
static int origin_of(const char *url, char **scheme, char **host, char **port)
{
    CURLU *u = curl_url();
    char *user = NULL;
    int r = BD_E_INVAL;

    *scheme = *host = *port = NULL;
    if (!u)
        abort();
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        goto out;
    /* user info would make libcurl send credentials of its own */
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
        goto out;
    if (curl_url_get(u, CURLUPART_SCHEME, scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, port, CURLU_DEFAULT_PORT) != CURLUE_OK)
        goto out;
    r = 0;
out:
    if (r < 0) {
        curl_free(*scheme);
        curl_free(*host);
        curl_free(*port);
        *scheme = *host = *port = NULL;
    }
    curl_free(user);
    curl_url_cleanup(u);
    return r;
}

bool forge_same_origin(const char *a, const char *b)
{
    char *s1, *h1, *p1, *s2, *h2, *p2;
    bool same = false;

    if (origin_of(a, &s1, &h1, &p1) < 0)
        return false;
    if (origin_of(b, &s2, &h2, &p2) == 0) {
        same = strcasecmp(s1, s2) == 0 && strcasecmp(h1, h2) == 0 && strcmp(p1, p2) == 0;
        curl_free(s2);
        curl_free(h2);
        curl_free(p2);
    }
    curl_free(s1);
    curl_free(h1);
    curl_free(p1);
    return same;
}

static void put_printable(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        buf_putc(b, c >= 0x20 && c < 0x7f ? (char)c : '?');
    }
}

static void put_sep(struct buf *b, const char *sep)
{
    if (b->len)
        buf_puts(b, sep);
}

/* GitLab's {"field":["msg",...]} (or {"field":"msg"}), flattened. */
static void put_fields(struct buf *b, const cJSON *obj)
{
    const cJSON *it, *m;
    cJSON_ArrayForEach(it, obj)
    {
        put_sep(b, "; ");
        if (it->string) {
            put_printable(b, it->string, strlen(it->string));
            buf_putc(b, ' ');
        }
        if (cJSON_IsString(it)) {
            put_printable(b, it->valuestring, strlen(it->valuestring));
        } else if (cJSON_IsArray(it)) {
            bool first = true;
            cJSON_ArrayForEach(m, it)
            {
                if (!cJSON_IsString(m))
                    continue;
                if (!first)
                    buf_puts(b, ", ");
                put_printable(b, m->valuestring, strlen(m->valuestring));
                first = false;
            }
        }
    }
}

void forge_error_message(const char *body, size_t len, char *out, size_t max)
{
    struct buf b;
    cJSON *root = NULL;

    if (!max)
        return;
    out[0] = '\0';
    if (!body || !len)
        return;
    buf_init(&b, 0);
    root = cJSON_ParseWithLength(body, len);
    if (cJSON_IsObject(root)) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "message");
        const cJSON *errs = cJSON_GetObjectItemCaseSensitive(root, "errors");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
        const cJSON *ed = cJSON_GetObjectItemCaseSensitive(root, "error_description");
        const cJSON *it;
        if (cJSON_IsString(m))
            put_printable(&b, m->valuestring, strlen(m->valuestring));
        else if (cJSON_IsObject(m))
            put_fields(&b, m);
        else if (cJSON_IsArray(m))
            cJSON_ArrayForEach(it, m)
            {
                if (cJSON_IsString(it)) {
                    put_sep(&b, "; ");
                    put_printable(&b, it->valuestring, strlen(it->valuestring));
                }
            }
        /* GitHub: {"message":"Validation Failed","errors":[{"message":...}]} */
        if (cJSON_IsArray(errs)) {
            cJSON_ArrayForEach(it, errs)
            {
                const cJSON *em =
                    cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "message") : it;
                const cJSON *code =
                    cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "code") : NULL;
                if (!cJSON_IsString(em))
                    em = code;
                if (cJSON_IsString(em)) {
                    put_sep(&b, ": ");
                    put_printable(&b, em->valuestring, strlen(em->valuestring));
                }
            }
        }
        if (!b.len && cJSON_IsString(e)) {
            put_printable(&b, e->valuestring, strlen(e->valuestring));
            if (cJSON_IsString(ed)) {
                buf_puts(&b, ": ");
                put_printable(&b, ed->valuestring, strlen(ed->valuestring));
            }
        }
    } else if (!root) {
        /* not JSON (a proxy's page): its first line */
        size_t n = 0;
        while (n < len && body[n] != '\n' && body[n] != '\r')
            n++;
        put_printable(&b, body, n < 512 ? n : 512);
    }
    snprintf(out, max, "%s", buf_cstr(&b));
    cJSON_Delete(root);
    buf_release(&b);
}

/* ------------------------------------------------------------ handle */

static void wipe_slist(struct curl_slist *l)
{
    for (; l; l = l->next)
        OPENSSL_cleanse(l->data, strlen(l->data));
}

int forge_http_new(struct forge *f, const char *token, const char *ca_file)
{
    struct forge_http *h = xcalloc(1, sizeof(*h));
    struct buf line;

    /* refcounted and thread-safe in libcurl >= 7.84; paired in forge_http_free */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    h->curl = curl_easy_init();
    if (!h->curl)
        abort();
    h->token_len = strlen(token);
    h->token = xmemdup0(token, h->token_len);
    h->ca_file = ca_file ? xstrdup(ca_file) : NULL;
    buf_init(&h->h_link, LINK_MAX);
    buf_init(&h->h_retry, HDR_MAX);
    buf_init(&h->h_remaining, HDR_MAX);
    buf_init(&h->h_reset, HDR_MAX);
    buf_init(&h->h_total, HDR_MAX);
    buf_init(&h->h_next, HDR_MAX);

    buf_init(&line, 0);
    buf_puts(&line, f->ops->auth_header);
    buf_append(&line, token, h->token_len);
    h->hdrs = curl_slist_append(h->hdrs, buf_cstr(&line));
    OPENSSL_cleanse(line.data, line.len);
    buf_release(&line);
    for (const char *const *l = f->ops->headers; l && *l; l++)
        h->hdrs = curl_slist_append(h->hdrs, *l);
    /* harmless on bodiless requests, and it keeps one list for all */
    h->hdrs = curl_slist_append(h->hdrs, "Content-Type: application/json");
    h->hdrs = curl_slist_append(h->hdrs, "Expect:");
    if (!h->hdrs)
        abort();
    f->http = h;
    return 0;
}

void forge_http_free(struct forge_http *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    wipe_slist(h->hdrs);
    curl_slist_free_all(h->hdrs);
    OPENSSL_cleanse(h->token, h->token_len);
    free(h->token);
    free(h->ca_file);
    buf_release(&h->h_link);
    buf_release(&h->h_retry);
    buf_release(&h->h_remaining);
    buf_release(&h->h_reset);
    buf_release(&h->h_total);
    buf_release(&h->h_next);
    free(h);
    curl_global_cleanup();
}

void forge_http_scrub(const struct forge_http *h, char *msg, size_t size)
{
    /* forge_open() refuses tokens shorter than FORGE_TOKEN_MIN, so "***"
     * is shorter than what it replaces */
    if (!h || h->token_len < FORGE_TOKEN_MIN || !size)
        return;
    const char *tok = h->token;
    size_t tl = h->token_len;
    char *p;
    while ((p = memmem(msg, strlen(msg), tok, tl)) != NULL) {
        memcpy(p, "***", 3);
        memmove(p + 3, p + tl, strlen(p + tl) + 1);
    }
    /* a message cut inside the token leaves the token's start at its end */
    size_t ml = strlen(msg);
    for (size_t k = tl - 1 < ml ? tl - 1 : ml; k >= FORGE_TOKEN_MIN; k--) {
        if (memcmp(msg + ml - k, tok, k) == 0) {
            memcpy(msg + ml - k, "***", 4);
            break;
        }
    }
}

/* ------------------------------------------------------------ one request */

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct forge_http *h = ud;
    size_t n = size * nmemb;
    if (buf_append(h->body, p, n) < 0) {
        h->too_big = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    return n;
}

static void keep_header(struct buf *b, const char *v, size_t vl, bool append)
{
    while (vl && is_ows(*v))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || is_ows(v[vl - 1])))
        vl--;
    if (!append)
        buf_reset(b);
    else if (b->len && buf_puts(b, ", ") < 0)
        return;
    if (buf_append(b, v, vl) < 0 && !append)
        buf_reset(b); /* over the cap: as if absent */
}

static void reset_headers(struct forge_http *h)
{
    buf_reset(&h->h_link);
    buf_reset(&h->h_retry);
    buf_reset(&h->h_remaining);
    buf_reset(&h->h_reset);
    buf_reset(&h->h_total);
    buf_reset(&h->h_next);
    h->next_seen = false;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct forge_http *h = ud;
    size_t n = size * nmemb;
    const struct {
        const char *name;
        struct buf *b;
        bool append;
    } want[] = {
        {"Link:", &h->h_link, true},
        {"Retry-After:", &h->h_retry, false},
        {"X-RateLimit-Remaining:", &h->h_remaining, false},
        {"RateLimit-Remaining:", &h->h_remaining, false},
        {"X-RateLimit-Reset:", &h->h_reset, false},
        {"RateLimit-Reset:", &h->h_reset, false},
        {"X-Total-Count:", &h->h_total, false},
        {"X-Next-Page:", &h->h_next, false},
    };

    /* a new status line: headers of an earlier (interim) answer are void */
    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        reset_headers(h);
        return n;
    }
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        size_t l = strlen(want[i].name);
        if (n >= l && strncasecmp(p, want[i].name, l) == 0) {
            keep_header(want[i].b, p + l, n - l, want[i].append);
            if (want[i].b == &h->h_next)
                h->next_seen = true;
        }
    }
    return n;
}

static const char *url_path(const char *url)
{
    const char *s = strstr(url, "://");
    s = s ? strchr(s + 3, '/') : NULL;
    return s ? s : "/";
}

/* Failures worth another try: the network, not a certificate or a setting. */
static bool transient(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

/* Sends once.  0 and *ret_status, or BD_E_UNAVAIL (*ret_sent_maybe says
 * whether the request may have reached the forge, *ret_transient whether
 * another try may help) or BD_E_TOO_BIG. */
static int send_once(struct forge *f, const char *method, const char *url, const char *json_body,
                     struct buf *body, long *ret_status, bool *ret_sent_maybe, bool *ret_transient)
{
    struct forge_http *h = f->http;
    CURL *c = h->curl;
    long timeout = f->opts.timeout_s > 0 ? f->opts.timeout_s : 30;

    reset_headers(h);
    h->body = body;
    h->too_big = false;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (h->ca_file) {
        curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
        curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    }
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, timeout < CONNECT_S ? timeout : CONNECT_S);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "bottled/" BOTTLED_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->hdrs);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
        if (json_body) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(json_body));
        }
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    if (strcmp(method, "GET") != 0) {
        char what[200];
        snprintf(what, sizeof(what), "forge %s %.180s", method, url_path(url));
        fault_point(what);
        f->mutations++;
    }

    CURLcode cc = curl_easy_perform(c);
    h->body = NULL;
    if (cc != CURLE_OK) {
        if (h->too_big) {
            forge_set_errmsg(f, "%s: answer larger than %zu bytes", f->what, body->max);
            return BD_E_TOO_BIG;
        }
        *ret_sent_maybe = !(cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
                            cc == CURLE_COULDNT_RESOLVE_PROXY);
        *ret_transient = transient(cc);
        forge_set_errmsg(f, "%s: %s: %s", f->what, f->api_root, curl_easy_strerror(cc));
        return BD_E_UNAVAIL;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, ret_status);
    return 0;
}

static void wait_ms(struct forge *f, long ms)
{
    if (ms <= 0)
        return;
    if (f->opts.sleep_ms) {
        f->opts.sleep_ms(f->opts.sleep_ud, ms);
        return;
    }
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static char *hdr_or_null(const struct buf *b, bool seen)
{
    return b->len || seen ? xstrdup(buf_cstr(b)) : NULL;
}

int forge_http_request(struct forge *f, const char *method, const char *url, const char *json_body,
                       struct forge_resp *ret)
{
    struct forge_http *h = f->http;
    struct forge_resp r;
    int attempt, rc;
    long max_wait_ms = (long)(f->opts.max_wait_s > 0 ? f->opts.max_wait_s : 0) * 1000;
    bool idempotent = strcmp(method, "POST") != 0;

    memset(&r, 0, sizeof(r));
    if (!forge_same_origin(f->api_root, url)) {
        forge_set_errmsg(f, "%s: refusing a URL outside the API root %s", f->what, f->api_root);
        return BD_E_PROTO;
    }
    for (attempt = 0;; attempt++) {
        time_t now = time(NULL);
        if (h->not_before > now) {
            long w = (long)(h->not_before - now);
            if (w * 1000 > max_wait_ms) {
                f->retry_at = h->not_before;
                forge_set_errmsg(f,
                                 "%s: rate limit used up; the forge resets it in %ld s, "
                                 "more than the %d s allowed to wait",
                                 f->what, w, f->opts.max_wait_s);
                return BD_E_UNAVAIL;
            }
            wait_ms(f, w * 1000);
        }
        h->not_before = 0;

        bool sent_maybe = true, again = false;
        buf_init(&r.body, FORGE_RESP_MAX);
        rc = send_once(f, method, url, json_body, &r.body, &r.status, &sent_maybe, &again);
        if (rc < 0) {
            buf_release(&r.body);
            if (rc == BD_E_UNAVAIL && again && (idempotent || !sent_maybe) &&
                attempt < f->opts.max_retries) {
                long ms = f->opts.backoff_ms << (attempt < BACKOFF_SH ? attempt : BACKOFF_SH);
                if (ms <= max_wait_ms) {
                    wait_ms(f, ms);
                    continue;
                }
            }
            return rc;
        }

        const struct forge_rl rl = {
            .retry_after = h->h_retry.len ? buf_cstr(&h->h_retry) : NULL,
            .remaining = h->h_remaining.len ? buf_cstr(&h->h_remaining) : NULL,
            .reset = h->h_reset.len ? buf_cstr(&h->h_reset) : NULL,
        };
        now = time(NULL);
        bool exhausted = forge_rl_exhausted(&rl);
        if (exhausted) {
            long s = reset_wait(&rl, now);
            if (s > 0)
                h->not_before = now + s;
        }
        long ms;
        if (!forge_retry_wait(r.status, &rl, now, attempt, f->opts.backoff_ms, &ms))
            break;
        r.rate_limited = r.status == 429 || r.status == 403;
        if (attempt >= f->opts.max_retries)
            break;
        if (ms > max_wait_ms) {
            r.refused_wait = (ms + 999) / 1000;
            f->retry_at = now + r.refused_wait;
            break;
        }
        h->not_before = 0; /* the wait below covers it */
        wait_ms(f, ms);
        buf_release(&r.body);
    }
    r.attempts = attempt + 1;
    r.link = hdr_or_null(&h->h_link, false);
    r.total_count = hdr_or_null(&h->h_total, false);
    r.next_page = hdr_or_null(&h->h_next, h->next_seen);
    *ret = r;
    return 0;
}

void forge_resp_release(struct forge_resp *r)
{
    buf_release(&r->body);
    free(r->link);
    free(r->total_count);
    free(r->next_page);
    memset(r, 0, sizeof(*r));
}

char *forge_url(const struct forge *f, const char *path)
{
    return xasprintf("%s%s", f->api_root, path);
}

int forge_http_fail(struct forge *f, const struct forge_resp *r)
{
    char msg[MSG_SCRUB], wait[96] = "";
    const char *sep = "";
    long st = r->status;

    forge_error_message(r->body.data, r->body.len, msg, sizeof(msg));
    forge_http_scrub(f->http, msg, sizeof(msg));
    if (strlen(msg) > FORGE_MSG_MAX)
        memcpy(msg + FORGE_MSG_MAX - 3, "...", 4);
    if (*msg)
        sep = ": ";
    if (r->refused_wait)
        snprintf(wait, sizeof(wait), ": the forge asks to wait %ld s, more than the %d s allowed",
                 r->refused_wait, f->opts.max_wait_s);
    else
        snprintf(wait, sizeof(wait), " after %d attempt(s)", r->attempts);

    if (r->rate_limited && (st == 429 || st == 403)) {
        forge_set_errmsg(f, "%s: rate limited (HTTP %ld)%s%s%s", f->what, st, wait, sep, msg);
        return BD_E_UNAVAIL;
    }
    switch (st) {
    case 401:
        forge_set_errmsg(f, "%s: token rejected (HTTP 401)%s%s", f->what, sep, msg);
        return BD_E_PERM;
    case 403:
        forge_set_errmsg(f,
                         "%s: forbidden (HTTP 403): the token lacks admin rights on the "
                         "repository%s%s",
                         f->what, sep, msg);
        return BD_E_PERM;
    case 404:
        forge_set_errmsg(f,
                         "%s: not found (HTTP 404): no such repository, or the token cannot "
                         "see it%s%s",
                         f->what, sep, msg);
        return BD_E_NOTFOUND;
    case 400:
    case 422:
        forge_set_errmsg(f, "%s: rejected (HTTP %ld)%s%s", f->what, st, sep, msg);
        return strcasestr(msg, "already") ? BD_E_EXISTS : BD_E_INVAL;
    default:
        break;
    }
    if (st >= 500 && st <= 599) {
        forge_set_errmsg(f, "%s: forge error (HTTP %ld)%s%s%s", f->what, st, wait, sep, msg);
        return BD_E_UNAVAIL;
    }
    if (st >= 300 && st <= 399) {
        forge_set_errmsg(f, "%s: unexpected redirect (HTTP %ld); is the API root %s right?",
                         f->what, st, f->api_root);
        return BD_E_PROTO;
    }
    forge_set_errmsg(f, "%s: unexpected answer (HTTP %ld)%s%s", f->what, st, sep, msg);
    return BD_E_PROTO;
}
