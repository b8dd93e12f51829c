/*
 * xalloc.h - allocation that never returns NULL.
 *
 * Allocation failure aborts the process (redis' rule): every size that a
 * user or a peer controls is capped before it reaches an allocator, so an
 * out-of-memory here is a bug or a dying machine, not an input error.
 */
#ifndef BOTTLED_XALLOC_H
#define BOTTLED_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* Copies at most n bytes of s and NUL-terminates; s need not be terminated. */
char *xstrndup(const char *s, size_t n);
/* Like xstrndup but copies exactly n bytes (embedded NULs kept). */
char *xmemdup0(const void *p, size_t n);
/* Formatted allocation; aborts on failure. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
