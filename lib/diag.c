/* diag.c - positioned diagnostics (see diag.h). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "detect.h"
#include "diag.h"
#include "xalloc.h"

void diag_list_init(struct diag_list *l)
{
    memset(l, 0, sizeof(*l));
}

static void diag_free(struct diag *d)
{
    free(d->path);
    free(d->bottle);
    free(d->msg);
    free(d->allowed);
}

void diag_list_release(struct diag_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        diag_free(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/*
 * The last line of defence for "no diagnostic ever prints a secret": any
 * span of a diagnostic's text (message, bottle name, path, allowed list)
 * that the credential detectors match is replaced by its masked form,
 * whatever echoed it (an unknown key, a bad value, a name or file name
 * shaped like a token ...).
 */
static char *mask_secrets(char *msg)
{
    struct detect_match m;
    size_t len = strlen(msg);
    if (!detect_scan(msg, len, &m))
        return msg;
    struct buf b;
    buf_init(&b, 0);
    const char *p = msg;
    size_t left = len;
    while (detect_scan(p, left, &m)) {
        char *masked = detect_mask(p, left, &m);
        buf_append(&b, p, m.off);
        buf_puts(&b, masked);
        free(masked);
        p += m.off + m.len;
        left -= m.off + m.len;
    }
    buf_append(&b, p, left);
    free(msg);
    return buf_detach(&b, NULL);
}

static struct diag *push(struct diag_list *l)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    struct diag *d = &l->v[l->n];
    memset(d, 0, sizeof(*d));
    d->seq = l->n++;
    return d;
}

void diag_add(struct diag_list *l, enum diag_level level, const char *path, int line, int col,
              const char *bottle, const char *allowed, const char *fmt, ...)
{
    struct diag *d = push(l);
    d->level = level;
    d->path = mask_secrets(xstrdup(path ? path : "-"));
    d->line = line > 0 ? line : 0;
    d->col = line > 0 && col > 0 ? col : 0;
    d->bottle = bottle ? mask_secrets(xstrdup(bottle)) : NULL;
    d->allowed = allowed ? mask_secrets(xstrdup(allowed)) : NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&d->msg, fmt, ap) < 0)
        abort();
    va_end(ap);
    d->msg = mask_secrets(d->msg);
    if (level == DIAG_ERROR)
        l->n_errors++;
}

static int strcmp0(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "");
}

static int cmp(const void *pa, const void *pb)
{
    const struct diag *a = pa, *b = pb;
    int c = strcmp(a->path, b->path);
    if (c)
        return c;
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    if (a->col != b->col)
        return a->col < b->col ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int same(const struct diag *a, const struct diag *b)
{
    return a->level == b->level && a->line == b->line && a->col == b->col &&
           !strcmp(a->path, b->path) && !strcmp0(a->bottle, b->bottle) && !strcmp(a->msg, b->msg) &&
           !strcmp0(a->allowed, b->allowed);
}

void diag_list_sort(struct diag_list *l)
{
    if (l->n < 2)
        return;
    qsort(l->v, l->n, sizeof(*l->v), cmp);
    size_t w = 1;
    for (size_t r = 1; r < l->n; r++) {
        if (same(&l->v[w - 1], &l->v[r])) {
            if (l->v[r].level == DIAG_ERROR)
                l->n_errors--;
            diag_free(&l->v[r]);
            continue;
        }
        l->v[w++] = l->v[r];
    }
    l->n = w;
}

size_t diag_count(const struct diag_list *l, const char *path, enum diag_level level)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].level == level && (!path || !strcmp(l->v[i].path, path)))
            n++;
    return n;
}

void diag_list_extend(struct diag_list *dst, const struct diag_list *src)
{
    for (size_t i = 0; i < src->n; i++) {
        const struct diag *s = &src->v[i];
        diag_add(dst, s->level, s->path, s->line, s->col, s->bottle, s->allowed, "%s", s->msg);
    }
}

char *diag_format(const struct diag *d)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, d->path);
    if (d->line > 0) {
        buf_appendf(&b, ":%d", d->line);
        if (d->col > 0)
            buf_appendf(&b, ":%d", d->col);
    }
    buf_puts(&b, ": ");
    if (d->level == DIAG_WARNING)
        buf_puts(&b, "warning: ");
    if (d->bottle)
        buf_appendf(&b, "bottle '%s': ", d->bottle);
    buf_puts(&b, d->msg);
    if (d->allowed)
        buf_appendf(&b, " (allowed: %s)", d->allowed);
    return buf_detach(&b, NULL);
}

void diag_print_text(const struct diag_list *l, FILE *out)
{
    for (size_t i = 0; i < l->n; i++) {
        char *s = diag_format(&l->v[i]);
        fprintf(out, "%s\n", s);
        free(s);
    }
}
