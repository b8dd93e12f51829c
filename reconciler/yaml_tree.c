/*
 * yaml_tree.c - YAML text to a positioned node tree (see yaml_tree.h).
 *
 * libyaml's event API drives a small explicit stack: one frame per open
 * sequence or mapping, never deeper than YAML_MAX_DEPTH, so nothing here
 * recurses on user input.  Children collect in malloc'd frame arrays and
 * are copied into the arena when their collection ends.
 *
 * Invariants that keep hostile input cheap:
 *   - p->nodes counts nodes as if every alias were expanded: a new node
 *     adds 1, an alias adds the anchored subtree's expanded size (known
 *     because an anchor can only be used once its node has ended).  The
 *     step that would cross YAML_MAX_NODES stops the parse, so an alias bomb
 *     fails at its first oversized alias, and no input gets more than
 *     YAML_MAX_NODES + YAML_MAX_ALIASES events past us.
 *   - an anchor is usable only once its node is complete; an alias to an
 *     open ancestor is refused as recursive instead of building a cycle.
 *   - the limits (depth, node budget, alias count), a libyaml error and a
 *     second document stop the parse; every other problem is reported and
 *     parsing goes on, so one run reports all of them.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "buf.h"
#include "err.h"
#include "xalloc.h"
#include "yaml_tree.h"

/* Longest user text quoted into a diagnostic before it is cut with "...". */
#define SHOW_MAX 40

#define CORE_TAG_PREFIX "tag:yaml.org,2002:"

struct anchor {
    const char *name;
    struct ynode *node;
    size_t start_nodes; /* p->nodes before the node was counted */
    size_t size;        /* expanded node count of the subtree, once complete */
    int complete;
    int line; /* reported line of the anchored node */
};

/* A mapping entry while its mapping is open; the key's own position is kept
 * because an aliased key's node carries the anchor's position. */
struct pending_pair {
    struct ynode *key;
    struct ynode *value;
    int line, col;
};

struct frame {
    struct ynode *node;
    struct ynode **items;       /* sequences */
    struct pending_pair *pairs; /* mappings */
    size_t n, cap;
    struct ynode *key; /* mapping: key waiting for its value */
    int key_line, key_col;
    long anchor; /* index into p->anchors, or -1 */
};

struct yparse {
    struct arena *a;
    const char *path;
    const char *text;
    size_t len;
    int line_offset;
    struct diag_list *diags;

    struct frame stack[YAML_MAX_DEPTH];
    int depth;
    struct anchor *anchors;
    size_t n_anchors, cap_anchors;
    size_t nodes;   /* expanded node count so far */
    size_t aliases; /* alias events so far */
    int documents;
    struct ynode *root;
    int stop; /* a fatal problem was reported; read no further */
};

static int to_line(const struct yparse *p, size_t line0)
{
    long long l = (long long)line0 + 1 + p->line_offset;
    return l > INT_MAX ? INT_MAX : l < 1 ? 1 : (int)l;
}

static int to_col(size_t col0)
{
    return col0 >= INT_MAX ? INT_MAX : (int)col0 + 1;
}

static void report_at(struct yparse *p, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report_at(struct yparse *p, int line, int col, const char *fmt, ...)
{
    struct buf b;
    va_list ap;

    buf_init(&b, 0);
    va_start(ap, fmt);
    buf_vappendf(&b, fmt, ap);
    va_end(ap);
    diag_error(p->diags, p->path, line, col, NULL, NULL, "%s", buf_cstr(&b));
    buf_release(&b);
}

#define report(p, mark, ...)                                                                       \
    report_at((p), to_line((p), (mark).line), to_col((mark).column), __VA_ARGS__)

/*
 * User text made safe for a one-line message: control bytes and quotes
 * escaped, long text cut.  Lives in the arena like everything else.
 */
static const char *show(struct yparse *p, const char *s, size_t n)
{
    struct buf b;
    const char *r;

    buf_init(&b, 0);
    for (size_t i = 0; i < n && i < SHOW_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\')
            buf_appendf(&b, "\\x%02x", c);
        else
            buf_putc(&b, (char)c);
    }
    if (n > SHOW_MAX)
        buf_puts(&b, "...");
    r = arena_strndup(p->a, buf_cstr(&b), b.len);
    buf_release(&b);
    return r;
}

/* The tag as the user would have written it: `!!str`, `!foo`, `!`. */
static const char *show_tag(struct yparse *p, const char *tag)
{
    size_t n = strlen(CORE_TAG_PREFIX);
    if (!strncmp(tag, CORE_TAG_PREFIX, n)) {
        const char *rest = show(p, tag + n, strlen(tag + n));
        return arena_printf(p->a, "!!%s", rest);
    }
    return show(p, tag, strlen(tag));
}

/* Line and column of byte offset off, for problems libyaml reports by offset. */
static void offset_pos(const struct yparse *p, size_t off, int *ret_line, int *ret_col)
{
    size_t line0 = 0, col0 = 0;

    if (off > p->len)
        off = p->len;
    for (size_t i = 0; i < off; i++) {
        unsigned char c = (unsigned char)p->text[i];
        if (c == '\n' || (c == '\r' && (i + 1 >= p->len || p->text[i + 1] != '\n'))) {
            line0++;
            col0 = 0;
        } else if ((c & 0xc0) != 0x80) {
            col0++; /* libyaml counts characters, not bytes */
        }
    }
    *ret_line = to_line(p, line0);
    *ret_col = to_col(col0);
}

/* ---- core schema ---------------------------------------------------- */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int all_of(const char *s, size_t n, const char *set)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr(set, s[i]))
            return 0;
    return 1;
}

static int eq(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && !memcmp(s, lit, n);
}

static int is_int(const char *s, size_t n)
{
    if (n > 2 && s[0] == '0' && s[1] == 'o')
        return all_of(s + 2, n - 2, "01234567");
    if (n > 2 && s[0] == '0' && s[1] == 'x')
        return all_of(s + 2, n - 2, "0123456789abcdefABCDEF");
    if (n > 0 && (s[0] == '-' || s[0] == '+'))
        s++, n--;
    return all_of(s, n, "0123456789");
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static int is_float_number(const char *s, size_t n)
{
    size_t i = 0, digits = 0;

    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && is_digit(s[i]))
            i++, digits++;
        if (!digits)
            return 0;
    } else {
        while (i < n && is_digit(s[i]))
            i++, digits++;
        if (!digits)
            return 0;
        if (i < n && s[i] == '.') {
            i++;
            while (i < n && is_digit(s[i]))
                i++;
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t exp = 0;
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            i++;
        while (i < n && is_digit(s[i]))
            i++, exp++;
        if (!exp)
            return 0;
    }
    return i == n;
}

static int is_float(const char *s, size_t n)
{
    const char *t = s;
    size_t m = n;

    if (eq(s, n, ".nan") || eq(s, n, ".NaN") || eq(s, n, ".NAN"))
        return 1;
    if (m > 0 && (t[0] == '-' || t[0] == '+'))
        t++, m--;
    if (eq(t, m, ".inf") || eq(t, m, ".Inf") || eq(t, m, ".INF"))
        return 1;
    return is_float_number(s, n);
}

static void classify(struct ynode *y)
{
    const char *s = y->u.scalar.str;
    size_t n = y->u.scalar.len;

    y->u.scalar.type = YSCALAR_STR;
    if (!y->u.scalar.plain)
        return;
    if (n == 0 || eq(s, n, "~") || eq(s, n, "null") || eq(s, n, "Null") || eq(s, n, "NULL")) {
        y->u.scalar.type = YSCALAR_NULL;
    } else if (eq(s, n, "true") || eq(s, n, "True") || eq(s, n, "TRUE")) {
        y->u.scalar.type = YSCALAR_BOOL;
        y->u.scalar.bval = 1;
    } else if (eq(s, n, "false") || eq(s, n, "False") || eq(s, n, "FALSE")) {
        y->u.scalar.type = YSCALAR_BOOL;
        y->u.scalar.bval = 0;
    } else if (is_int(s, n)) {
        y->u.scalar.type = YSCALAR_INT;
    } else if (is_float(s, n)) {
        y->u.scalar.type = YSCALAR_FLOAT;
    }
}

/* ---- tree building -------------------------------------------------- */

static struct ynode *new_node(struct yparse *p, enum ynode_kind kind, yaml_mark_t m)
{
    struct ynode *y = arena_alloc(p->a, sizeof(*y));
    y->kind = kind;
    y->line = to_line(p, m.line);
    y->col = to_col(m.column);
    return y;
}

/* Stand-in for a node that could not be built, so the parent stays whole. */
static struct ynode *placeholder(struct yparse *p, yaml_mark_t m)
{
    struct ynode *y = new_node(p, YNODE_SCALAR, m);
    y->u.scalar.str = "";
    y->u.scalar.type = YSCALAR_NULL;
    return y;
}

/* Counts n more nodes; returns -1 (and stops) once the budget is spent. */
static int spend(struct yparse *p, size_t n, int alias, yaml_mark_t m)
{
    if (n > YAML_MAX_NODES - p->nodes) {
        if (alias)
            report(p, m, "alias expansion exceeds %d nodes", YAML_MAX_NODES);
        else
            report(p, m, "document has more than %d nodes", YAML_MAX_NODES);
        p->stop = 1;
        return -1;
    }
    p->nodes += n;
    return 0;
}

static int refuse_tag(struct yparse *p, const yaml_char_t *tag, yaml_mark_t m)
{
    if (!tag)
        return 0;
    report(p, m, "tags are not allowed ('%s')", show_tag(p, (const char *)tag));
    return -1;
}

static long add_anchor(struct yparse *p, const yaml_char_t *name, struct ynode *y,
                       size_t start_nodes, int complete)
{
    if (!name)
        return -1;
    if (p->n_anchors == p->cap_anchors) {
        p->cap_anchors = p->cap_anchors ? p->cap_anchors * 2 : 16;
        p->anchors = xrealloc(p->anchors, p->cap_anchors * sizeof(*p->anchors));
    }
    struct anchor *an = &p->anchors[p->n_anchors];
    an->name = arena_strdup(p->a, (const char *)name);
    an->node = y;
    an->start_nodes = start_nodes;
    an->size = complete ? 1 : 0;
    an->complete = complete;
    an->line = y->line;
    return (long)p->n_anchors++;
}

/* The latest definition wins, as YAML says anchors may be redefined. */
static struct anchor *find_anchor(struct yparse *p, const char *name)
{
    for (size_t i = p->n_anchors; i > 0; i--)
        if (!strcmp(p->anchors[i - 1].name, name))
            return &p->anchors[i - 1];
    return NULL;
}

static void attach(struct yparse *p, struct ynode *y, yaml_mark_t m)
{
    if (p->depth == 0) {
        p->root = y;
        return;
    }
    struct frame *f = &p->stack[p->depth - 1];
    if (f->node->kind == YNODE_SEQ) {
        if (f->n == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 8;
            f->items = xrealloc(f->items, f->cap * sizeof(*f->items));
        }
        f->items[f->n++] = y;
        return;
    }
    if (!f->key) {
        int line = to_line(p, m.line), col = to_col(m.column);
        if (y->kind != YNODE_SCALAR)
            report_at(p, line, col, "mapping keys must be scalars, not a %s", ynode_type_name(y));
        else if (y->u.scalar.plain && eq(y->u.scalar.str, y->u.scalar.len, "<<"))
            report_at(p, line, col, "merge keys ('<<') are not allowed; use extends");
        f->key = y;
        f->key_line = line;
        f->key_col = col;
        return;
    }
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->pairs = xrealloc(f->pairs, f->cap * sizeof(*f->pairs));
    }
    f->pairs[f->n++] = (struct pending_pair){f->key, y, f->key_line, f->key_col};
    f->key = NULL;
}

static void on_scalar(struct yparse *p, const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    struct ynode *y = new_node(p, YNODE_SCALAR, ev->start_mark);
    size_t start = p->nodes;

    if (spend(p, 1, 0, ev->start_mark) < 0)
        return;
    refuse_tag(p, ev->data.scalar.tag, ev->start_mark);
    y->u.scalar.plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (n > YAML_MAX_SCALAR) {
        report(p, ev->start_mark, "scalar is longer than %d bytes", YAML_MAX_SCALAR);
        n = 0;
    } else if (memchr(v, '\0', n)) {
        /* Only an escape ("\0") gets here; raw NULs were refused up front. */
        report(p, ev->start_mark, "scalar contains a NUL character");
        n = 0;
    }
    y->u.scalar.str = arena_strndup(p->a, v, n);
    y->u.scalar.len = n;
    classify(y);
    add_anchor(p, ev->data.scalar.anchor, y, start, 1);
    attach(p, y, ev->start_mark);
}

static void on_start(struct yparse *p, const yaml_event_t *ev, enum ynode_kind kind)
{
    const yaml_char_t *tag, *anchor;
    size_t start = p->nodes;

    if (kind == YNODE_SEQ) {
        tag = ev->data.sequence_start.tag;
        anchor = ev->data.sequence_start.anchor;
    } else {
        tag = ev->data.mapping_start.tag;
        anchor = ev->data.mapping_start.anchor;
    }
    if (p->depth == YAML_MAX_DEPTH) {
        report(p, ev->start_mark, "nesting deeper than %d levels", YAML_MAX_DEPTH);
        p->stop = 1;
        return;
    }
    if (spend(p, 1, 0, ev->start_mark) < 0)
        return;
    refuse_tag(p, tag, ev->start_mark);

    struct ynode *y = new_node(p, kind, ev->start_mark);
    attach(p, y, ev->start_mark);
    struct frame *f = &p->stack[p->depth++];
    memset(f, 0, sizeof(*f));
    f->node = y;
    f->anchor = add_anchor(p, anchor, y, start, 0);
}

static int cmp_pair_key(const void *pa, const void *pb)
{
    const struct pending_pair *a = *(const struct pending_pair *const *)pa;
    const struct pending_pair *b = *(const struct pending_pair *const *)pb;
    size_t an = a->key->u.scalar.len, bn = b->key->u.scalar.len;
    int c = memcmp(a->key->u.scalar.str, b->key->u.scalar.str, an < bn ? an : bn);

    if (c)
        return c;
    if (an != bn)
        return an < bn ? -1 : 1;
    return a < b ? -1 : a > b; /* document order within equal keys */
}

/* Sorting keeps a 20000-key mapping from costing 20000^2 comparisons. */
static void check_duplicates(struct yparse *p, struct frame *f)
{
    struct pending_pair **v = xmalloc((f->n ? f->n : 1) * sizeof(*v));
    size_t n = 0;

    for (size_t i = 0; i < f->n; i++)
        if (f->pairs[i].key->kind == YNODE_SCALAR)
            v[n++] = &f->pairs[i];
    qsort(v, n, sizeof(*v), cmp_pair_key);
    for (size_t i = 1, first = 0; i < n; i++) {
        const struct ynode *k = v[i]->key, *fk = v[first]->key;
        if (k->u.scalar.len == fk->u.scalar.len &&
            !memcmp(k->u.scalar.str, fk->u.scalar.str, k->u.scalar.len))
            report_at(p, v[i]->line, v[i]->col, "duplicate key '%s' (first at line %d)",
                      show(p, k->u.scalar.str, k->u.scalar.len), v[first]->line);
        else
            first = i;
    }
    free(v);
}

static void on_end(struct yparse *p)
{
    struct frame *f = &p->stack[--p->depth];
    struct ynode *y = f->node;

    if (y->kind == YNODE_SEQ) {
        y->u.seq.items = arena_alloc(p->a, (f->n ? f->n : 1) * sizeof(*y->u.seq.items));
        if (f->n)
            memcpy(y->u.seq.items, f->items, f->n * sizeof(*f->items));
        y->u.seq.n = f->n;
    } else {
        check_duplicates(p, f);
        y->u.map.pairs = arena_alloc(p->a, (f->n ? f->n : 1) * sizeof(*y->u.map.pairs));
        for (size_t i = 0; i < f->n; i++)
            y->u.map.pairs[i] = (struct ypair){f->pairs[i].key, f->pairs[i].value};
        y->u.map.n = f->n;
    }
    if (f->anchor >= 0) {
        struct anchor *an = &p->anchors[f->anchor];
        an->size = p->nodes - an->start_nodes;
        an->complete = 1;
    }
    free(f->items);
    free(f->pairs);
    memset(f, 0, sizeof(*f));
}

static void on_alias(struct yparse *p, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    struct anchor *an = find_anchor(p, name);

    if (++p->aliases > YAML_MAX_ALIASES) {
        report(p, ev->start_mark, "more than %d aliases", YAML_MAX_ALIASES);
        p->stop = 1;
        return;
    }
    if (!an) {
        report(p, ev->start_mark, "undefined alias '*%s'", show(p, name, strlen(name)));
        attach(p, placeholder(p, ev->start_mark), ev->start_mark);
        return;
    }
    if (!an->complete) {
        report(p, ev->start_mark, "recursive alias '*%s' (anchor at line %d contains it)",
               show(p, name, strlen(name)), an->line);
        attach(p, placeholder(p, ev->start_mark), ev->start_mark);
        return;
    }
    if (spend(p, an->size, 1, ev->start_mark) < 0)
        return;
    attach(p, an->node, ev->start_mark);
}

static void on_event(struct yparse *p, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++p->documents > 1) {
            report(p, ev->start_mark, "multiple documents are not allowed");
            p->stop = 1;
        }
        break;
    case YAML_SCALAR_EVENT:
        on_scalar(p, ev);
        break;
    case YAML_SEQUENCE_START_EVENT:
        on_start(p, ev, YNODE_SEQ);
        break;
    case YAML_MAPPING_START_EVENT:
        on_start(p, ev, YNODE_MAP);
        break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        on_end(p);
        break;
    case YAML_ALIAS_EVENT:
        on_alias(p, ev);
        break;
    default: /* stream start/end, document end, no event */
        break;
    }
}

static void report_libyaml(struct yparse *p, const yaml_parser_t *yp)
{
    int line, col;
    const char *problem = yp->problem ? yp->problem : "unknown problem";

    if (yp->error == YAML_MEMORY_ERROR)
        abort(); /* allocation failure aborts, as everywhere else */
    if (yp->error == YAML_READER_ERROR) {
        offset_pos(p, yp->problem_offset, &line, &col);
    } else {
        line = to_line(p, yp->problem_mark.line);
        col = to_col(yp->problem_mark.column);
    }
    if (yp->context)
        report_at(p, line, col, "yaml syntax error: %s (%s at line %d)", problem, yp->context,
                  to_line(p, yp->context_mark.line));
    else
        report_at(p, line, col, "yaml syntax error: %s", problem);
}

int yaml_tree_parse(struct arena *a, const char *path, const char *text, size_t len,
                    int line_offset, struct diag_list *diags, struct ynode **ret_root)
{
    struct yparse p = {
        .a = a,
        .path = path,
        .text = text,
        .len = len,
        .line_offset = line_offset,
        .diags = diags,
    };
    size_t errors_before = diags->n_errors;
    yaml_parser_t yp;
    const char *nul;

    /* libyaml skips a UTF-8 BOM but counts it as a column of line 1. */
    if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3)) {
        text += 3;
        len -= 3;
        p.text = text;
        p.len = len;
    }
    nul = len ? memchr(text, '\0', len) : NULL;
    if (nul) {
        int line, col;
        offset_pos(&p, (size_t)(nul - text), &line, &col);
        report_at(&p, line, col, "yaml contains a NUL byte");
        return BD_E_PARSE;
    }

    if (!yaml_parser_initialize(&yp))
        abort();
    /* Never guess UTF-16 from a BOM: positions are reported against UTF-8. */
    yaml_parser_set_encoding(&yp, YAML_UTF8_ENCODING);
    yaml_parser_set_input_string(&yp, (const unsigned char *)(len ? text : ""), len);

    while (!p.stop) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&yp, &ev)) {
            report_libyaml(&p, &yp);
            break;
        }
        int done = ev.type == YAML_STREAM_END_EVENT;
        on_event(&p, &ev);
        yaml_event_delete(&ev);
        if (done)
            break;
    }

    while (p.depth > 0) {
        struct frame *f = &p.stack[--p.depth];
        free(f->items);
        free(f->pairs);
    }
    free(p.anchors);
    yaml_parser_delete(&yp);

    if (diags->n_errors != errors_before)
        return BD_E_PARSE;
    /* A bare `---` yields one empty plain scalar: that is an empty document. */
    if (p.root && p.root->kind == YNODE_SCALAR && p.root->u.scalar.plain &&
        p.root->u.scalar.len == 0)
        p.root = NULL;
    *ret_root = p.root;
    return 0;
}

struct ynode *ynode_map_get(const struct ynode *map, const char *key)
{
    size_t n = strlen(key);

    if (!map || map->kind != YNODE_MAP)
        return NULL;
    for (size_t i = 0; i < map->u.map.n; i++) {
        const struct ynode *k = map->u.map.pairs[i].key;
        if (k->kind == YNODE_SCALAR && k->u.scalar.len == n && !memcmp(k->u.scalar.str, key, n))
            return map->u.map.pairs[i].value;
    }
    return NULL;
}

const char *ynode_type_name(const struct ynode *n)
{
    if (!n)
        return "null";
    switch (n->kind) {
    case YNODE_SEQ:
        return "list";
    case YNODE_MAP:
        return "mapping";
    case YNODE_SCALAR:
        break;
    }
    switch (n->u.scalar.type) {
    case YSCALAR_NULL:
        return "null";
    case YSCALAR_BOOL:
        return "boolean";
    case YSCALAR_INT:
        return "integer";
    case YSCALAR_FLOAT:
        return "float";
    case YSCALAR_STR:
        break;
    }
    return "string";
}
