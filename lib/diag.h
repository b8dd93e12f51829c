/*
 * diag.h - positioned diagnostics collected by parsers and validators.
 *
 * Parsers never print and never stop at the first problem: they append to a
 * caller-supplied diag_list and go on.  The top layer sorts and prints the
 * list once, as text
 *
 *     path:line:col: bottle 'x': message (allowed: a, b, c)
 *
 * or as JSON.  line/col are 1-based; 0 means "whole file" and is omitted
 * from the text form.  A diagnostic never contains a secret value: callers
 * pass masked text (detect_mask()) wherever a value may be a credential.
 *
 * Ownership: the list owns copies of every string it is given.
 */
#ifndef BOTTLED_DIAG_H
#define BOTTLED_DIAG_H

#include <stddef.h>
#include <stdio.h>

enum diag_level {
    DIAG_ERROR,
    DIAG_WARNING,
};

struct diag {
    enum diag_level level;
    char *path;    /* file the problem is in; never NULL */
    int line, col; /* 1-based; 0 when not tied to a position */
    char *bottle;  /* bottle name, or NULL before one is known */
    char *msg;     /* what is wrong, lowercase start */
    char *allowed; /* "a, b, c" or NULL */
    size_t seq;    /* insertion order, keeps sorting stable */
};

struct diag_list {
    struct diag *v;
    size_t n, cap;
    size_t n_errors;
};

void diag_list_init(struct diag_list *l);
void diag_list_release(struct diag_list *l);

void diag_add(struct diag_list *l, enum diag_level level, const char *path, int line, int col,
              const char *bottle, const char *allowed, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

/* Shorthand for the common case. */
#define diag_error(l, path, line, col, bottle, allowed, ...)                                       \
    diag_add((l), DIAG_ERROR, (path), (line), (col), (bottle), (allowed), __VA_ARGS__)

/* Sorts by path, line, column, then insertion order; drops exact duplicates. */
void diag_list_sort(struct diag_list *l);

/* Number of diagnostics for path (all paths when path is NULL) at level. */
size_t diag_count(const struct diag_list *l, const char *path, enum diag_level level);

/* Appends every diagnostic of src to dst. */
void diag_list_extend(struct diag_list *dst, const struct diag_list *src);

/* One text line per diagnostic, in list order. */
void diag_print_text(const struct diag_list *l, FILE *out);
/* Formats one diagnostic as text (no newline) into a malloc'd string. */
char *diag_format(const struct diag *d);

#endif
