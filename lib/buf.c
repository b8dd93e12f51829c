/* buf.c - growable capped buffer and slices (see buf.h for invariants). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "xalloc.h"

struct slice slice_from_cstr(const char *s)
{
    return (struct slice){s, s ? strlen(s) : 0};
}

int slice_eq(struct slice a, struct slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

int slice_eq_cstr(struct slice a, const char *s)
{
    return slice_eq(a, slice_from_cstr(s));
}

static int ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

int slice_ieq_cstr(struct slice a, const char *s)
{
    size_t n = strlen(s);
    if (a.len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((unsigned char)a.ptr[i]) != ascii_lower((unsigned char)s[i]))
            return 0;
    return 1;
}

int slice_has_prefix(struct slice a, const char *prefix)
{
    size_t n = strlen(prefix);
    return a.len >= n && memcmp(a.ptr, prefix, n) == 0;
}

int slice_has_suffix(struct slice a, const char *suffix)
{
    size_t n = strlen(suffix);
    return a.len >= n && memcmp(a.ptr + a.len - n, suffix, n) == 0;
}

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : BUF_MAX_DEFAULT;
}

void buf_release(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static int grow(struct buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return BD_E_TOO_BIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    int r = grow(b, n);
    if (r < 0)
        return r;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_putc(struct buf *b, char c)
{
    return buf_append(b, &c, 1);
}

int buf_vappendf(struct buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return BD_E_INVAL;
    int r = grow(b, (size_t)n);
    if (r < 0)
        return r;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_appendf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = buf_vappendf(b, fmt, ap);
    va_end(ap);
    return r;
}

char *buf_detach(struct buf *b, size_t *ret_len)
{
    char *p = b->data ? b->data : xstrdup("");
    if (ret_len)
        *ret_len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

const char *buf_cstr(const struct buf *b)
{
    return b->data ? b->data : "";
}

int buf_read_file(struct buf *b, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return BD_E_IO;
    int ret = 0;
    char chunk[16384];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ret = BD_E_IO;
            break;
        }
        if (n == 0)
            break;
        ret = buf_append(b, chunk, (size_t)n);
        if (ret < 0)
            break;
    }
    int saved = errno;
    close(fd);
    errno = saved;
    if (ret == 0 && !b->data)
        buf_append(b, "", 0);
    return ret;
}
