/*
 * buf.h - the one owning, growable byte buffer, and the non-owning slice.
 *
 * Invariants of struct buf:
 *   - len <= cap, and len <= max;
 *   - data is NULL until the first append; afterwards data[len] == '\0', so
 *     a buf holding text can be passed to C string APIs (the terminator is
 *     not counted in len and embedded NULs are allowed);
 *   - max is the hard cap set at init: an append that would exceed it fails
 *     with BD_E_TOO_BIG and leaves the buffer unchanged.
 * A slice {ptr, len} borrows bytes owned elsewhere and is never assumed to
 * be NUL-terminated.
 */
#ifndef BOTTLED_BUF_H
#define BOTTLED_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct slice {
    const char *ptr;
    size_t len;
};

#define SLICE_LIT(s) ((struct slice){(s), sizeof(s) - 1})

struct slice slice_from_cstr(const char *s);
int slice_eq(struct slice a, struct slice b);
int slice_eq_cstr(struct slice a, const char *s);
/* The same, ASCII letters compared without case (header names, schemes). */
int slice_ieq_cstr(struct slice a, const char *s);
int slice_has_prefix(struct slice a, const char *prefix);
int slice_has_suffix(struct slice a, const char *suffix);

struct buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
};

#define BUF_MAX_DEFAULT ((size_t)64 << 20)

void buf_init(struct buf *b, size_t max);
void buf_release(struct buf *b);
void buf_reset(struct buf *b);
/* Returns 0 or BD_E_TOO_BIG. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vappendf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Hands the bytes to the caller (never NULL, NUL-terminated); b is reset. */
char *buf_detach(struct buf *b, size_t *ret_len);
/* A C string view of the contents ("" when empty). */
const char *buf_cstr(const struct buf *b);

/*
 * Reads a whole file into b, failing with BD_E_TOO_BIG if it is larger
 * than b->max and BD_E_IO (errno set) if it cannot be read.
 */
int buf_read_file(struct buf *b, const char *path);

#endif
