/*
 * test_yaml_tree.c - unit tests for reconciler/yaml_tree.c.
 *
 * Each test parses a small YAML text and checks the tree (kinds, scalar
 * types, 1-based positions) or the diagnostics (message and position).
 * Hostile inputs (alias bombs, deep nesting, huge scalars) must fail fast
 * and without expanding anything.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "yaml_tree.h"

struct fixture {
    struct arena a;
    struct diag_list d;
    struct ynode *root;
    int rc;
};

static int setup(void **state)
{
    static struct fixture f;
    arena_init(&f.a);
    diag_list_init(&f.d);
    f.root = NULL;
    f.rc = 0;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    arena_release(&f->a);
    diag_list_release(&f->d);
    return 0;
}

static int parse_n(struct fixture *f, const char *text, size_t len, int line_offset)
{
    diag_list_release(&f->d); /* each parse is checked on its own */
    diag_list_init(&f->d);
    f->root = NULL;
    f->rc = yaml_tree_parse(&f->a, "t.yaml", text, len, line_offset, &f->d, &f->root);
    return f->rc;
}

static int parse(struct fixture *f, const char *text)
{
    return parse_n(f, text, strlen(text), 0);
}

/* The diagnostic at line:col whose message contains needle, or NULL. */
static const struct diag *find_diag(const struct fixture *f, int line, int col, const char *needle)
{
    for (size_t i = 0; i < f->d.n; i++) {
        const struct diag *d = &f->d.v[i];
        if (d->line == line && d->col == col && strstr(d->msg, needle))
            return d;
    }
    return NULL;
}

static void print_diags(const struct fixture *f)
{
    diag_print_text(&f->d, stderr);
}

#define assert_diag(f, line, col, needle)                                                          \
    do {                                                                                           \
        if (!find_diag((f), (line), (col), (needle))) {                                            \
            print_diags(f);                                                                        \
            fail_msg("no diagnostic at %d:%d containing \"%s\"", (line), (col), (needle));         \
        }                                                                                          \
    } while (0)

#define assert_parses(f, text)                                                                     \
    do {                                                                                           \
        if (parse((f), (text)) != 0) {                                                             \
            print_diags(f);                                                                        \
            fail_msg("unexpected parse failure");                                                  \
        }                                                                                          \
    } while (0)

static void assert_pos(const struct ynode *n, int line, int col)
{
    assert_non_null(n);
    assert_int_equal(n->line, line);
    assert_int_equal(n->col, col);
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* ---- trees and positions -------------------------------------------- */

static void test_positions_nested(void **state)
{
    struct fixture *f = *state;
    assert_parses(f, "name: web\n"
                     "ports:\n"
                     "  - 80\n"
                     "  - {host: a, list: [1, two]}\n"
                     "env:\n"
                     "  A: \"x\"\n");
    struct ynode *r = f->root;
    assert_int_equal(r->kind, YNODE_MAP);
    assert_pos(r, 1, 1);
    assert_int_equal(r->u.map.n, 3);
    assert_pos(r->u.map.pairs[0].key, 1, 1);
    assert_pos(r->u.map.pairs[0].value, 1, 7);

    struct ynode *ports = ynode_map_get(r, "ports");
    assert_int_equal(ports->kind, YNODE_SEQ);
    assert_pos(ports, 3, 3);
    assert_int_equal(ports->u.seq.n, 2);
    assert_pos(ports->u.seq.items[0], 3, 5);
    struct ynode *flow = ports->u.seq.items[1];
    assert_int_equal(flow->kind, YNODE_MAP);
    assert_pos(flow, 4, 5);
    assert_pos(flow->u.map.pairs[0].key, 4, 6);
    assert_pos(ynode_map_get(flow, "host"), 4, 12);
    struct ynode *list = ynode_map_get(flow, "list");
    assert_pos(list, 4, 21);
    assert_pos(list->u.seq.items[1], 4, 25);
    assert_string_equal(list->u.seq.items[1]->u.scalar.str, "two");

    struct ynode *env = ynode_map_get(r, "env");
    assert_pos(env, 6, 3);
    assert_pos(ynode_map_get(env, "A"), 6, 6);
}

static void test_line_offset(void **state)
{
    struct fixture *f = *state;
    const char *text = "a: 1\nb: [x\n";
    assert_int_equal(parse_n(f, "a: 1\nb: x\n", 10, 1), 0);
    assert_pos(ynode_map_get(f->root, "b"), 3, 4);

    assert_int_equal(parse_n(f, text, strlen(text), 1), BD_E_PARSE);
    assert_int_equal(f->d.n, 1);
    assert_int_equal(f->d.v[0].line, 4); /* end of input, line 3 of the text */
}

static void test_crlf(void **state)
{
    struct fixture *f = *state;
    assert_parses(f, "a: 1\r\nb:\r\n  - x\r\n  - |\r\n    two\r\n    lines\r\nc: d\r\n");
    struct ynode *b = ynode_map_get(f->root, "b");
    assert_pos(b, 3, 3);
    assert_pos(b->u.seq.items[0], 3, 5);
    /* A block scalar's line breaks are normalised to \n. */
    assert_string_equal(b->u.seq.items[1]->u.scalar.str, "two\nlines\n");
    assert_pos(ynode_map_get(f->root, "c"), 7, 4);
}

static void test_columns_count_characters(void **state)
{
    struct fixture *f = *state;
    assert_parses(f, "\xc3\xa9t\xc3\xa9: x\n");
    assert_pos(f->root->u.map.pairs[0].value, 1, 6);
    assert_int_equal(f->root->u.map.pairs[0].key->u.scalar.len, 5);
}

static void test_utf8_bom(void **state)
{
    struct fixture *f = *state;
    assert_parses(f, "\xef\xbb\xbf"
                     "a: 1\n");
    assert_pos(f->root, 1, 1);
    assert_pos(ynode_map_get(f->root, "a"), 1, 4);
}

static void test_not_nul_terminated(void **state)
{
    struct fixture *f = *state;
    char text[] = {'a', ':', ' ', '1', '2', '3'};
    assert_int_equal(parse_n(f, text, 4, 0), 0);
    struct ynode *v = ynode_map_get(f->root, "a");
    assert_int_equal(v->u.scalar.len, 1);
    assert_string_equal(v->u.scalar.str, "1");
}

static void test_flow_and_block_same_tree(void **state)
{
    struct fixture *f = *state;
    assert_parses(f, "{a: [1, 2], b: {c: d}}");
    struct ynode *flow = f->root;
    assert_parses(f, "a:\n- 1\n- 2\nb:\n  c: d\n");
    struct ynode *block = f->root;
    const struct ynode *roots[] = {flow, block};
    for (int i = 0; i < 2; i++) {
        const struct ynode *r = roots[i];
        assert_int_equal(r->kind, YNODE_MAP);
        struct ynode *a = ynode_map_get(r, "a");
        assert_int_equal(a->kind, YNODE_SEQ);
        assert_int_equal(a->u.seq.n, 2);
        assert_int_equal(a->u.seq.items[1]->u.scalar.type, YSCALAR_INT);
        assert_string_equal(ynode_map_get(ynode_map_get(r, "b"), "c")->u.scalar.str, "d");
    }
}

static void test_empty_documents(void **state)
{
    struct fixture *f = *state;
    const char *empty[] = {"", "# only a comment\n", "---\n", "---\n...\n", "\n\n"};
    for (size_t i = 0; i < sizeof(empty) / sizeof(*empty); i++) {
        assert_parses(f, empty[i]);
        assert_null(f->root);
    }
    assert_parses(f, "~");
    assert_non_null(f->root);
    assert_int_equal(f->root->u.scalar.type, YSCALAR_NULL);
    assert_parses(f, "just a string");
    assert_int_equal(f->root->kind, YNODE_SCALAR);
    assert_parses(f, "- 1\n");
    assert_int_equal(f->root->kind, YNODE_SEQ);
}

/* ---- scalar typing --------------------------------------------------- */

struct typing {
    const char *text; /* plain scalar, value of key v */
    enum yscalar_type type;
};

static const struct typing typings[] = {
    {"", YSCALAR_NULL},         {"~", YSCALAR_NULL},      {"null", YSCALAR_NULL},
    {"Null", YSCALAR_NULL},     {"NULL", YSCALAR_NULL},   {"nULL", YSCALAR_STR},
    {"true", YSCALAR_BOOL},     {"True", YSCALAR_BOOL},   {"TRUE", YSCALAR_BOOL},
    {"false", YSCALAR_BOOL},    {"False", YSCALAR_BOOL},  {"FALSE", YSCALAR_BOOL},
    {"tRUE", YSCALAR_STR},      {"yes", YSCALAR_STR},     {"no", YSCALAR_STR},
    {"on", YSCALAR_STR},        {"off", YSCALAR_STR},     {"y", YSCALAR_STR},
    {"0", YSCALAR_INT},         {"42", YSCALAR_INT},      {"-7", YSCALAR_INT},
    {"+7", YSCALAR_INT},        {"08080", YSCALAR_INT},   {"0o17", YSCALAR_INT},
    {"0o18", YSCALAR_STR},      {"0o", YSCALAR_STR},      {"0x1F", YSCALAR_INT},
    {"0xff", YSCALAR_INT},      {"0x", YSCALAR_STR},      {"0xG", YSCALAR_STR},
    {"-0x1F", YSCALAR_STR},     {"0b101", YSCALAR_STR},   {"1_000", YSCALAR_STR},
    {"1.5", YSCALAR_FLOAT},     {"-1.5", YSCALAR_FLOAT},  {"1.", YSCALAR_FLOAT},
    {".5", YSCALAR_FLOAT},      {"1e3", YSCALAR_FLOAT},   {"1.5E-3", YSCALAR_FLOAT},
    {"+.5e+10", YSCALAR_FLOAT}, {"1e", YSCALAR_STR},      {".", YSCALAR_STR},
    {"-.", YSCALAR_STR},        {"+", YSCALAR_STR},       {"1.2.3", YSCALAR_STR},
    {".inf", YSCALAR_FLOAT},    {"-.Inf", YSCALAR_FLOAT}, {"+.INF", YSCALAR_FLOAT},
    {".iNf", YSCALAR_STR},      {".nan", YSCALAR_FLOAT},  {".NaN", YSCALAR_FLOAT},
    {".NAN", YSCALAR_FLOAT},    {"-.nan", YSCALAR_STR},   {"1:20", YSCALAR_STR},
    {"12 34", YSCALAR_STR},     {"hello", YSCALAR_STR},
};

static void test_scalar_types(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof(typings) / sizeof(*typings); i++) {
        const struct typing *t = &typings[i];
        char *text = arena_printf(&f->a, "v: %s\n", t->text);
        assert_parses(f, text);
        struct ynode *v = ynode_map_get(f->root, "v");
        assert_non_null(v);
        if (v->u.scalar.type != t->type)
            fail_msg("'%s': type %s, want %d", t->text, ynode_type_name(v), (int)t->type);
        assert_true(v->u.scalar.plain);
        /* The source text is kept whatever the type. */
        assert_string_equal(v->u.scalar.str, t->text);
    }
}

static void test_bool_values(void **state)
{
    struct fixture *f = *state;
    assert_parses(f, "t: True\nf: FALSE\n");
    assert_int_equal(ynode_map_get(f->root, "t")->u.scalar.bval, 1);
    assert_int_equal(ynode_map_get(f->root, "f")->u.scalar.bval, 0);
}

static void test_quoted_and_block_are_strings(void **state)
{
    struct fixture *f = *state;
    assert_parses(f, "a: \"1\"\n"
                     "b: 'true'\n"
                     "c: \"\"\n"
                     "d: '~'\n"
                     "e: |\n"
                     "  42\n"
                     "f: >-\n"
                     "  1.5\n"
                     "g: |-\n"
                     "  null\n");
    const char *keys[] = {"a", "b", "c", "d", "e", "f", "g"};
    const char *want[] = {"1", "true", "", "~", "42\n", "1.5", "null"};
    for (size_t i = 0; i < 7; i++) {
        struct ynode *v = ynode_map_get(f->root, keys[i]);
        assert_non_null(v);
        assert_int_equal(v->u.scalar.type, YSCALAR_STR);
        assert_false(v->u.scalar.plain);
        assert_string_equal(v->u.scalar.str, want[i]);
        assert_string_equal(ynode_type_name(v), "string");
    }
}

static void test_block_scalars(void **state)
{
    struct fixture *f = *state;
    assert_parses(f, "lit: |\n  a\n   b\n\n  c\nfold: >\n  a\n  b\n\n  c\nkeep: |+\n  x\n\n");
    assert_string_equal(ynode_map_get(f->root, "lit")->u.scalar.str, "a\n b\n\nc\n");
    assert_string_equal(ynode_map_get(f->root, "fold")->u.scalar.str, "a b\nc\n");
    assert_string_equal(ynode_map_get(f->root, "keep")->u.scalar.str, "x\n\n");
    assert_pos(ynode_map_get(f->root, "fold"), 6, 7);
}

static void test_type_names_and_map_get(void **state)
{
    struct fixture *f = *state;
    assert_parses(f, "s: x\ni: 1\nf: 1.0\nb: true\nn: ~\nl: []\nm: {}\n");
    const char *keys[] = {"s", "i", "f", "b", "n", "l", "m"};
    const char *names[] = {"string", "integer", "float", "boolean", "null", "list", "mapping"};
    for (size_t i = 0; i < 7; i++)
        assert_string_equal(ynode_type_name(ynode_map_get(f->root, keys[i])), names[i]);
    assert_null(ynode_map_get(f->root, "absent"));
    assert_null(ynode_map_get(f->root, ""));
    assert_null(ynode_map_get(ynode_map_get(f->root, "l"), "x"));
    assert_null(ynode_map_get(NULL, "x"));
    assert_int_equal(ynode_map_get(f->root, "l")->u.seq.n, 0);
}

static void test_aliases_share_nodes(void **state)
{
    struct fixture *f = *state;
    assert_parses(f, "base: &b {image: x, ports: [1, 2]}\nother: *b\nname: &n web\nagain: *n\n");
    assert_ptr_equal(ynode_map_get(f->root, "base"), ynode_map_get(f->root, "other"));
    assert_ptr_equal(ynode_map_get(f->root, "name"), ynode_map_get(f->root, "again"));
    /* The alias shares the original, position included. */
    assert_pos(ynode_map_get(f->root, "again"), 3, 7);
    /* Redefining an anchor is allowed; the latest definition wins. */
    assert_parses(f, "a: &x 1\nb: &x 2\nc: *x\n");
    assert_string_equal(ynode_map_get(f->root, "c")->u.scalar.str, "2");
}

/* ---- refusals ---------------------------------------------------------- */

static void test_refuse_tags(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(parse(f, "a: !!str x\n"
                              "b: !foo y\n"
                              "c: !!map {}\n"
                              "d: !!seq\n"
                              "- 1\n"
                              "e: ! z\n"
                              "f: !<tag:x> w\n"
                              "g: &anchor !!int 3\n"),
                     BD_E_PARSE);
    assert_diag(f, 1, 4, "tags are not allowed ('!!str')");
    assert_diag(f, 2, 4, "tags are not allowed ('!foo')");
    assert_diag(f, 3, 4, "tags are not allowed ('!!map')");
    assert_diag(f, 4, 4, "tags are not allowed ('!!seq')");
    assert_diag(f, 6, 4, "tags are not allowed ('!')");
    assert_diag(f, 7, 4, "tags are not allowed ('tag:x')");
    assert_diag(f, 8, 4, "tags are not allowed ('!!int')");
    assert_int_equal(f->d.n, 7);
}

static void test_refuse_merge_keys(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(parse(f, "base: &b {a: 1}\n"
                              "svc:\n"
                              "  <<: *b\n"
                              "  c: 2\n"),
                     BD_E_PARSE);
    assert_diag(f, 3, 3, "merge keys ('<<') are not allowed; use extends");
    assert_int_equal(f->d.n, 1);
    /* A quoted "<<" is an ordinary key. */
    assert_parses(f, "\"<<\": 1\n");
}

static void test_refuse_duplicate_keys(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(parse(f, "foo: 1\n"
                              "bar: 2\n"
                              "\"foo\": 3\n"
                              "nested: {x: 1, y: 2, x: 3}\n"
                              "foo: 4\n"
                              "1: a\n"
                              "01: b\n"),
                     BD_E_PARSE);
    assert_diag(f, 3, 1, "duplicate key 'foo' (first at line 1)");
    assert_diag(f, 5, 1, "duplicate key 'foo' (first at line 1)");
    assert_diag(f, 4, 22, "duplicate key 'x' (first at line 4)");
    assert_int_equal(f->d.n, 3); /* 1 and 01 differ as text */
}

static void test_duplicate_key_through_alias(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(parse(f, "k: &k name\nm:\n  name: 1\n  *k : 2\n"), BD_E_PARSE);
    /* Reported where the alias stands, not where the anchor is. */
    assert_diag(f, 4, 3, "duplicate key 'name' (first at line 3)");
}

static void test_refuse_non_scalar_keys(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(parse(f, "? [a, b]\n: 1\n{x: 1}: 2\n"), BD_E_PARSE);
    assert_diag(f, 1, 3, "mapping keys must be scalars, not a list");
    assert_diag(f, 3, 1, "mapping keys must be scalars, not a mapping");
}

static void test_refuse_multiple_documents(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(parse(f, "a: 1\n---\nb: !!str 2\n"), BD_E_PARSE);
    assert_diag(f, 2, 1, "multiple documents are not allowed");
    assert_int_equal(f->d.n, 1); /* the second document is not read */
    assert_int_equal(parse(f, "---\na: 1\n...\n---\nb: 2\n"), BD_E_PARSE);
    assert_diag(f, 4, 1, "multiple documents are not allowed");
}

static void test_refuse_nul(void **state)
{
    struct fixture *f = *state;
    const char raw[] = "a: 1\nb: x\0y\n";
    assert_int_equal(parse_n(f, raw, sizeof(raw) - 1, 0), BD_E_PARSE);
    assert_diag(f, 2, 5, "yaml contains a NUL byte");
    assert_int_equal(parse(f, "a: \"x\\0y\"\n"), BD_E_PARSE);
    assert_diag(f, 1, 4, "scalar contains a NUL character");
}

static void test_syntax_errors(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(parse(f, "a: b: c\n"), BD_E_PARSE);
    assert_diag(f, 1, 5, "yaml syntax error: mapping values are not allowed");
    assert_int_equal(parse(f, "a: !!str x\nb: [1, 2\n"), BD_E_PARSE);
    /* What came before the syntax error is still reported. */
    assert_diag(f, 1, 4, "tags are not allowed");
    assert_diag(f, 3, 1, "yaml syntax error: did not find expected ',' or ']'");
    assert_int_equal(parse(f, "a: \xff\n"), BD_E_PARSE);
    assert_diag(f, 1, 4, "yaml syntax error: invalid leading UTF-8 octet");
    assert_int_equal(parse(f, "a: \"unterminated\n"), BD_E_PARSE);
    assert_diag(f, 2, 1, "yaml syntax error: found unexpected end of stream");
}

static void test_undefined_alias(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(parse(f, "a: *nope\nb: *also\n"), BD_E_PARSE);
    assert_diag(f, 1, 4, "undefined alias '*nope'");
    assert_diag(f, 2, 4, "undefined alias '*also'");
    /* An alias may not come before its anchor. */
    assert_int_equal(parse(f, "a: *x\nb: &x 1\n"), BD_E_PARSE);
    assert_diag(f, 1, 4, "undefined alias '*x'");
}

static void test_recursive_alias(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(parse(f, "a: &r\n  b: [1, *r]\n"), BD_E_PARSE);
    assert_diag(f, 2, 10, "recursive alias '*r' (anchor at line 1 contains it)");
    assert_int_equal(parse(f, "&top [&inner [*top]]"), BD_E_PARSE);
    assert_diag(f, 1, 15, "recursive alias '*top'");
}

static void test_refuse_long_scalar(void **state)
{
    struct fixture *f = *state;
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "ok: ");
    for (int i = 0; i < YAML_MAX_SCALAR; i++)
        buf_putc(&b, 'x');
    buf_puts(&b, "\nlong: ");
    for (int i = 0; i < YAML_MAX_SCALAR + 1; i++)
        buf_putc(&b, 'y');
    buf_puts(&b, "\n");
    assert_int_equal(parse_n(f, b.data, b.len, 0), BD_E_PARSE);
    assert_diag(f, 2, 7, "scalar is longer than 65536 bytes");
    assert_int_equal(f->d.n, 1);
    buf_release(&b);
}

static void test_depth_limit(void **state)
{
    struct fixture *f = *state;
    struct buf b;
    buf_init(&b, 0);
    for (int i = 0; i < YAML_MAX_DEPTH; i++)
        buf_putc(&b, '[');
    for (int i = 0; i < YAML_MAX_DEPTH; i++)
        buf_putc(&b, ']');
    assert_int_equal(parse_n(f, b.data, b.len, 0), 0);

    buf_reset(&b);
    for (int i = 0; i < YAML_MAX_DEPTH + 1; i++)
        buf_putc(&b, '[');
    for (int i = 0; i < YAML_MAX_DEPTH + 1; i++)
        buf_putc(&b, ']');
    assert_int_equal(parse_n(f, b.data, b.len, 0), BD_E_PARSE);
    assert_diag(f, 1, 33, "nesting deeper than 32 levels");

    /* Block style, and far deeper than the limit: stops at the limit. */
    buf_reset(&b);
    for (int i = 0; i < 10000; i++)
        buf_appendf(&b, "%*sk:\n", i % 2000, "");
    assert_int_equal(parse_n(f, b.data, b.len, 0), BD_E_PARSE);
    assert_int_equal(f->d.n, 1);
    assert_diag(f, 33, 33, "nesting deeper than 32 levels");
    buf_release(&b);
}

static void test_alias_count_limit(void **state)
{
    struct fixture *f = *state;
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, "a: &a x\nb:\n");
    for (int i = 0; i < YAML_MAX_ALIASES; i++)
        buf_puts(&b, "- *a\n");
    assert_int_equal(parse_n(f, b.data, b.len, 0), 0);
    buf_puts(&b, "- *a\n");
    assert_int_equal(parse_n(f, b.data, b.len, 0), BD_E_PARSE);
    assert_diag(f, 3 + YAML_MAX_ALIASES, 3, "more than 256 aliases");
    assert_int_equal(f->d.n, 1);
    buf_release(&b);
}

static void test_node_limit(void **state)
{
    struct fixture *f = *state;
    struct buf b;
    buf_init(&b, 0);
    buf_putc(&b, '[');
    for (int i = 0; i < YAML_MAX_NODES - 1; i++)
        buf_puts(&b, "1,");
    buf_putc(&b, ']');
    assert_int_equal(parse_n(f, b.data, b.len, 0), 0);
    assert_int_equal(f->root->u.seq.n, YAML_MAX_NODES - 1);
    buf_reset(&b);
    buf_putc(&b, '[');
    for (int i = 0; i < YAML_MAX_NODES; i++)
        buf_puts(&b, "1,");
    buf_putc(&b, ']');
    assert_int_equal(parse_n(f, b.data, b.len, 0), BD_E_PARSE);
    assert_diag(f, 1, 2 * YAML_MAX_NODES, "document has more than 20000 nodes");
    buf_release(&b);
}

static void test_alias_budget_counts_subtrees(void **state)
{
    struct fixture *f = *state;
    struct buf b;
    buf_init(&b, 0);
    /* An anchored list of 999 scalars is 1000 nodes; 19 aliases reach 20000. */
    buf_puts(&b, "a: &a [");
    for (int i = 0; i < 999; i++)
        buf_puts(&b, "1,");
    buf_puts(&b, "]\nb:\n");
    /* Nodes so far: the root, a, the list (1000), b, the list for b. */
    for (int i = 0; i < 18; i++)
        buf_puts(&b, "- *a\n");
    assert_int_equal(parse_n(f, b.data, b.len, 0), 0);
    buf_puts(&b, "- *a\n");
    assert_int_equal(parse_n(f, b.data, b.len, 0), BD_E_PARSE);
    assert_diag(f, 21, 3, "alias expansion exceeds 20000 nodes");
    buf_release(&b);
}

static void test_alias_bomb_fails_fast(void **state)
{
    struct fixture *f = *state;
    struct buf b;
    const char *names = "abcdefghi";
    buf_init(&b, 0);
    buf_puts(&b, "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for (int i = 1; i < 9; i++) {
        buf_appendf(&b, "%c: &%c [", names[i], names[i]);
        for (int j = 0; j < 10; j++)
            buf_appendf(&b, "%s*%c", j ? ", " : "", names[i - 1]);
        buf_puts(&b, "]\n");
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(parse_n(f, b.data, b.len, 0), BD_E_PARSE);
    double ms = ms_since(&t0);
    /* 12351 nodes are in when e's first alias would add d's 11111. */
    assert_diag(f, 5, 8, "alias expansion exceeds 20000 nodes");
    assert_int_equal(f->d.n, 1);
    assert_true(ms < 100.0);
    assert_true(f->a.used_total < 64 * 1024); /* nothing was expanded */
    buf_release(&b);
}

static void test_all_problems_reported(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(parse(f, "a: !!str 1\n"
                              "a: 2\n"
                              "<<: {}\n"
                              "c: *missing\n"
                              "d: ok\n"),
                     BD_E_PARSE);
    assert_int_equal(f->d.n, 4);
    assert_int_equal(f->d.n_errors, 4);
    assert_diag(f, 1, 4, "tags are not allowed");
    assert_diag(f, 2, 1, "duplicate key 'a' (first at line 1)");
    assert_diag(f, 3, 1, "merge keys");
    assert_diag(f, 4, 4, "undefined alias");
}

static void test_odd_key_text_is_escaped(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(parse(f, "\"a\\nb'\": 1\n\"a\\nb'\": 2\n"), BD_E_PARSE);
    assert_diag(f, 2, 1, "duplicate key 'a\\x0ab\\x27' (first at line 1)");
    assert_int_equal(parse(f, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: 1\n"
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: 2\n"),
                     BD_E_PARSE);
    assert_diag(f, 2, 1, "duplicate key 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_positions_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_line_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crlf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_columns_count_characters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utf8_bom, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_nul_terminated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow_and_block_same_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_documents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scalar_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bool_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quoted_and_block_are_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_block_scalars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_type_names_and_map_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aliases_share_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_tags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_merge_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_duplicate_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_key_through_alias, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_non_scalar_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_multiple_documents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_nul, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undefined_alias, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recursive_alias, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_long_scalar, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_count_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_budget_counts_subtrees, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_bomb_fails_fast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_problems_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_odd_key_text_is_escaped, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
