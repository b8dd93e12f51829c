/*
 * arena.h - bump allocator for objects that die together.
 *
 * One manifest parse (node tree, typed structs, strings) lives in one
 * arena and is freed with one arena_release().  Allocations are 16-byte
 * aligned and zeroed.  Nothing in an arena is freed individually.
 */
#ifndef BOTTLED_ARENA_H
#define BOTTLED_ARENA_H

#include <stddef.h>

struct arena_block;

struct arena {
    struct arena_block *head;
    size_t used_total; /* bytes handed out, for limits and tests */
};

void arena_init(struct arena *a);
void arena_release(struct arena *a);
/* Zeroed memory; never NULL (aborts on exhaustion). */
void *arena_alloc(struct arena *a, size_t n);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
