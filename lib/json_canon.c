/*
 * json_canon.c - canonical (hashable) and pretty JSON text of a cJSON tree.
 *
 * The text is built in a struct buf capped at CANON_MAX; the trees printed
 * here are built by this program (specs, state), so hitting the cap, a Raw
 * or Invalid node, or nesting deeper than CANON_MAX_DEPTH is a bug and
 * aborts rather than returning half a document.
 *
 * Choices that make equal values give equal bytes:
 *   - object members are sorted by the bytes of their keys (memcmp, a
 *     prefix before its extensions); duplicate keys, which cJSON allows,
 *     keep their original relative order;
 *   - numbers: integral values within +-2^53 print as integers (-0 as 0),
 *     others with "%.17g", which round-trips every double; NaN and
 *     infinities, which JSON cannot express, print as null (as cJSON does);
 *   - strings escape only '"', '\\' and bytes below 0x20 (\b \f \n \r \t
 *     or \u00xx with lowercase hex); other bytes, invalid UTF-8 included,
 *     are copied as they are; a NULL string prints as "".
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json_canon.h"
#include "xalloc.h"

#define CANON_MAX       BUF_MAX_DEFAULT
#define CANON_MAX_DEPTH 10000

static void put(struct buf *b, const void *p, size_t n)
{
    if (buf_append(b, p, n) != 0) {
        fprintf(stderr, "json_canon_print: output over %zu bytes\n", (size_t)CANON_MAX);
        abort();
    }
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_number(struct buf *b, double d)
{
    char tmp[64];
    int n;

    if (!isfinite(d)) {
        puts_(b, "null");
        return;
    }
    if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(long long)d)
        n = snprintf(tmp, sizeof(tmp), "%lld", (long long)d);
    else
        n = snprintf(tmp, sizeof(tmp), "%.17g", d);
    /* A program that sets LC_NUMERIC must not change the hash. */
    for (int i = 0; i < n; i++) {
        if (tmp[i] == ',')
            tmp[i] = '.';
    }
    put(b, tmp, (size_t)n);
}

static void put_string(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s;

    put(b, "\"", 1);
    for (const char *p = s; p && *p; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t esc_len = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(b, run, (size_t)(p - run));
        run = p + 1;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            esc_len = 6;
            break;
        }
        put(b, esc, esc_len);
    }
    if (s)
        puts_(b, run);
    put(b, "\"", 1);
}

struct member {
    const cJSON *item;
    size_t index; /* original position, to keep duplicates stable */
};

static int member_cmp(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    const char *kx = x->item->string ? x->item->string : "";
    const char *ky = y->item->string ? y->item->string : "";
    size_t lx = strlen(kx), ly = strlen(ky);
    int c = memcmp(kx, ky, lx < ly ? lx : ly);

    if (c)
        return c;
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static void newline_indent(struct buf *b, int pretty, int depth)
{
    if (!pretty)
        return;
    put(b, "\n", 1);
    for (int i = 0; i < depth; i++)
        put(b, "  ", 2);
}

static void put_value(struct buf *b, const cJSON *v, int pretty, int depth);

static void put_array(struct buf *b, const cJSON *v, int pretty, int depth)
{
    const cJSON *c = v->child;

    if (!c) {
        puts_(b, "[]");
        return;
    }
    put(b, "[", 1);
    for (; c; c = c->next) {
        newline_indent(b, pretty, depth + 1);
        put_value(b, c, pretty, depth + 1);
        if (c->next)
            put(b, ",", 1);
    }
    newline_indent(b, pretty, depth);
    put(b, "]", 1);
}

static void put_object(struct buf *b, const cJSON *v, int pretty, int depth)
{
    struct member *m;
    size_t n = 0;

    for (const cJSON *c = v->child; c; c = c->next)
        n++;
    if (n == 0) {
        puts_(b, "{}");
        return;
    }
    m = xcalloc(n, sizeof(*m));
    n = 0;
    for (const cJSON *c = v->child; c; c = c->next) {
        m[n].item = c;
        m[n].index = n;
        n++;
    }
    qsort(m, n, sizeof(*m), member_cmp);
    put(b, "{", 1);
    for (size_t i = 0; i < n; i++) {
        newline_indent(b, pretty, depth + 1);
        put_string(b, m[i].item->string ? m[i].item->string : "");
        puts_(b, pretty ? ": " : ":");
        put_value(b, m[i].item, pretty, depth + 1);
        if (i + 1 < n)
            put(b, ",", 1);
    }
    newline_indent(b, pretty, depth);
    put(b, "}", 1);
    free(m);
}

static void put_value(struct buf *b, const cJSON *v, int pretty, int depth)
{
    if (depth > CANON_MAX_DEPTH) {
        fprintf(stderr, "json_canon_print: nesting deeper than %d\n", CANON_MAX_DEPTH);
        abort();
    }
    switch (v->type & 0xff) {
    case cJSON_False:
        puts_(b, "false");
        return;
    case cJSON_True:
        puts_(b, "true");
        return;
    case cJSON_NULL:
        puts_(b, "null");
        return;
    case cJSON_Number:
        put_number(b, v->valuedouble);
        return;
    case cJSON_String:
        put_string(b, v->valuestring);
        return;
    case cJSON_Array:
        put_array(b, v, pretty, depth);
        return;
    case cJSON_Object:
        put_object(b, v, pretty, depth);
        return;
    default:
        fprintf(stderr, "json_canon_print: cannot print cJSON type 0x%x\n", v->type);
        abort();
    }
}

char *json_canon_print(const cJSON *v, int pretty)
{
    struct buf b;

    if (!v) {
        fprintf(stderr, "json_canon_print: NULL tree\n");
        abort();
    }
    buf_init(&b, CANON_MAX);
    put_value(&b, v, pretty, 0);
    if (pretty)
        put(&b, "\n", 1);
    return buf_detach(&b, NULL);
}
