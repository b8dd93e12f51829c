/*
 * pathnorm.c - request path normalisation (see pathnorm.h for the rules).
 *
 * One left-to-right pass over the path, segment by segment, writing the
 * output as "/seg" pieces.  A "." segment writes nothing, a ".." segment
 * truncates the output back to the previous '/', so the output never holds
 * a dot-segment and the pass stays linear.  A segment is decoded into the
 * output first and inspected there afterwards: what it decodes to (a dot,
 * a dot with parameters, an npm scoped name) is only known at its end.
 */
#include <string.h>

#include "err.h"
#include "pathnorm.h"
#include "urlpath.h"

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* pchar minus '%': what may stay raw in a path segment. */
static int is_pchar_raw(unsigned char c)
{
    return is_unreserved(c) || strchr("!$&'()*+,;=:@", c) != NULL;
}

static int is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* Decoded byte of the escape at p (p[0] == '%', n bytes left), or -1. */
static int escape_at(const char *p, size_t n)
{
    int hi, lo;

    if (n < 3 || (hi = hex_digit((unsigned char)p[1])) < 0 ||
        (lo = hex_digit((unsigned char)p[2])) < 0)
        return -1;
    return hi << 4 | lo;
}

static int put_escaped(struct buf *b, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    char e[3] = {'%', hex[c >> 4], hex[c & 0xf]};

    return buf_append(b, e, sizeof(e));
}

/* The segment text "@scope%2fname" with unreserved scope and name, the name
 * not starting with '.' (so it never decodes to a dot-segment upstream). */
static int is_npm_scoped(const char *s, size_t n)
{
    size_t i = 1, scope_end;

    if (n < 1 || s[0] != '@')
        return 0;
    while (i < n && is_unreserved((unsigned char)s[i]))
        i++;
    scope_end = i;
    if (scope_end == 1 || n - scope_end < 4 || s[i] != '%' || s[i + 1] != '2' ||
        (s[i + 2] != 'f' && s[i + 2] != 'F'))
        return 0;
    i += 3;
    if (s[i] == '.')
        return 0;
    for (; i < n; i++)
        if (!is_unreserved((unsigned char)s[i]))
            return 0;
    return 1;
}

static int is_dot(const char *s, size_t n)
{
    return (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.');
}

/* The query is forwarded untouched; only the refusals that apply to the
 * whole target are checked. */
static int check_query(const char *q, size_t n, const char **reason)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)q[i];
        if (is_ctl(c) || c == ' ') {
            *reason = "control character in request target";
            return BD_E_INVAL;
        }
        if (c == '#') {
            *reason = "fragment in request target";
            return BD_E_INVAL;
        }
        if (c == '%') {
            int d = escape_at(q + i, n - i);
            if (d < 0) {
                *reason = "invalid percent-escape";
                return BD_E_INVAL;
            }
            if (d == 0) {
                *reason = "%00 in request target";
                return BD_E_INVAL;
            }
            i += 2;
        }
    }
    return 0;
}

/*
 * Appends "/" + the decoded segment s[0..n) to out.  Sets *ret_slashes to
 * the number of kept "%2f" escapes.
 */
static int decode_segment(const char *s, size_t n, struct buf *out, int *ret_slashes,
                          const char **reason)
{
    int slashes = 0, r;

    if ((r = buf_putc(out, '/')) < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            int d = escape_at(s + i, n - i);
            if (d < 0) {
                *reason = "invalid percent-escape";
                return BD_E_INVAL;
            }
            if (d == 0) {
                *reason = "%00 in request target";
                return BD_E_INVAL;
            }
            if (is_ctl((unsigned char)d)) {
                *reason = "encoded control character in path";
                return BD_E_INVAL;
            }
            if (d == '\\') {
                *reason = "backslash in path";
                return BD_E_INVAL;
            }
            if (d == '/') {
                slashes++;
                r = buf_append(out, s + i, 3); /* as sent: npm's "%2f" */
            } else if (is_unreserved((unsigned char)d)) {
                r = buf_putc(out, (char)d);
            } else {
                r = put_escaped(out, (unsigned char)d);
            }
            i += 2;
        } else if (is_ctl(c) || c == ' ') {
            *reason = "control character in request target";
            return BD_E_INVAL;
        } else if (c == '\\') {
            *reason = "backslash in path";
            return BD_E_INVAL;
        } else if (c == '#') {
            *reason = "fragment in request target";
            return BD_E_INVAL;
        } else if (is_pchar_raw(c)) {
            r = buf_putc(out, (char)c);
        } else {
            r = put_escaped(out, c);
        }
        if (r < 0)
            return r;
    }
    *ret_slashes = slashes;
    return 0;
}

int path_normalize(const char *target, size_t len, struct buf *ret_path, struct slice *ret_query,
                   const char **ret_reason)
{
    const char *reason = NULL, *q;
    size_t plen, pos;
    int trailing = 0, r;
    struct buf out;

    buf_init(&out, ret_path->max);
    if (len == 0 || target[0] != '/') {
        reason = "request target is not an absolute path";
        r = BD_E_INVAL;
        goto out;
    }
    q = memchr(target, '?', len);
    plen = q ? (size_t)(q - target) : len;
    if (q && (r = check_query(q + 1, len - plen - 1, &reason)) < 0)
        goto out;

    pos = 1;
    for (;;) {
        const char *seg = target + pos, *slash = memchr(seg, '/', plen - pos);
        size_t n = slash ? (size_t)(slash - seg) : plen - pos;
        int last = slash == NULL, slashes = 0;
        size_t start = out.len;

        trailing = 0;
        if (n == 0) {
            /* "//" collapses; an empty last segment is the trailing '/' */
            trailing = last;
        } else {
            if ((r = decode_segment(seg, n, &out, &slashes, &reason)) < 0)
                goto out;
            const char *text = out.data + start + 1;
            size_t tn = out.len - start - 1;
            const char *semi = memchr(text, ';', tn);
            if (is_dot(text, tn) && tn != n) {
                /* the issue's rule: a segment that only decodes to a dot is
                 * an attack on a decoding upstream, not a path */
                reason = "percent-encoded dot-segment in path";
                r = BD_E_INVAL;
                goto out;
            }
            if (is_dot(text, tn)) {
                out.len = start;
                if (tn == 2) {
                    const char *prev;
                    if (start == 0) {
                        reason = "'..' above the root";
                        r = BD_E_INVAL;
                        goto out;
                    }
                    /* only the popped segment is scanned: linear overall */
                    prev = memrchr(out.data, '/', start);
                    out.len = (size_t)(prev - out.data);
                }
                out.data[out.len] = '\0';
                trailing = last;
            } else if (semi && is_dot(text, (size_t)(semi - text))) {
                reason = "dot-segment with parameters in path";
                r = BD_E_INVAL;
                goto out;
            } else if (slashes && !is_npm_scoped(text, tn)) {
                reason = "encoded '/' in path";
                r = BD_E_INVAL;
                goto out;
            }
        }
        if (last)
            break;
        pos += n + 1;
    }
    if ((trailing || out.len == 0) && (r = buf_putc(&out, '/')) < 0)
        goto out;

    buf_release(ret_path);
    *ret_path = out;
    buf_init(&out, 0);
    ret_query->ptr = q ? q + 1 : NULL;
    ret_query->len = q ? len - plen - 1 : 0;
    r = 0;
out:
    if (r == BD_E_TOO_BIG)
        reason = "path too long";
    if (r < 0 && ret_reason)
        *ret_reason = reason;
    buf_release(&out);
    return r;
}
