/*
 * fuzz_yaml_tree.c - arbitrary bytes into yaml_tree_parse().
 *
 * Beyond "no crash, no leak, no sanitizer report", it checks the contract
 * of yaml_tree.h on every input: a failure always comes with a diagnostic
 * whose message starts lowercase; a success yields a tree whose positions
 * are 1-based and after line_offset, whose keys are scalars, whose strings
 * match their lengths, and whose DAG walk stays within YAML_MAX_NODES
 * visits and YAML_MAX_DEPTH levels (so a consumer can walk it naively).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "yaml_tree.h"

#define LINE_OFFSET 1

static void check(int ok)
{
    if (!ok)
        abort();
}

static void walk(const struct ynode *n, int depth, size_t *visits)
{
    check(++*visits <= YAML_MAX_NODES);
    check(n->line > LINE_OFFSET && n->col >= 1);
    check(ynode_type_name(n) != NULL);
    switch (n->kind) {
    case YNODE_SCALAR:
        check(n->u.scalar.str != NULL);
        check(strlen(n->u.scalar.str) == n->u.scalar.len);
        check(n->u.scalar.len <= YAML_MAX_SCALAR);
        check(n->u.scalar.plain || n->u.scalar.type == YSCALAR_STR);
        break;
    case YNODE_SEQ:
        check(depth < YAML_MAX_DEPTH);
        for (size_t i = 0; i < n->u.seq.n; i++)
            walk(n->u.seq.items[i], depth + 1, visits);
        break;
    case YNODE_MAP:
        check(depth < YAML_MAX_DEPTH);
        for (size_t i = 0; i < n->u.map.n; i++) {
            const struct ynode *k = n->u.map.pairs[i].key;
            check(k->kind == YNODE_SCALAR);
            /* No duplicates, so each key finds its own value. */
            if (!memchr(k->u.scalar.str, '\0', k->u.scalar.len))
                check(ynode_map_get(n, k->u.scalar.str) == n->u.map.pairs[i].value);
            walk(k, depth + 1, visits);
            walk(n->u.map.pairs[i].value, depth + 1, visits);
        }
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena a;
    struct diag_list d;
    struct ynode *root = NULL;

    arena_init(&a);
    diag_list_init(&d);
    int rc = yaml_tree_parse(&a, "fuzz.yaml", (const char *)data, size, LINE_OFFSET, &d, &root);
    if (rc == 0) {
        size_t visits = 0;
        check(d.n_errors == 0);
        if (root)
            walk(root, 0, &visits);
    } else {
        check(d.n_errors > 0);
    }
    for (size_t i = 0; i < d.n; i++) {
        const char *m = d.v[i].msg;
        check(m[0] != '\0' && !(m[0] >= 'A' && m[0] <= 'Z'));
        check(!strchr(m, '\n'));
        check(d.v[i].line == 0 || d.v[i].line > LINE_OFFSET);
    }
    diag_list_release(&d);
    arena_release(&a);
    return 0;
}
