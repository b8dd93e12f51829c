/*
 * yaml_tree.h - YAML text to a positioned node tree (libyaml underneath).
 *
 * The manifest's front matter is parsed in two steps: this file turns the
 * YAML text into a tree of scalars, sequences and mappings that remembers
 * the line and column of every node, then manifest.c walks the tree through
 * its key tables.  Everything that the YAML itself can do wrong is caught
 * here, with a position, into the caller's diag_list:
 *
 *   - syntax errors (libyaml's problem text and mark);
 *   - explicit tags of any kind (`!!str`, `!foo`), refused: YAML 1.2 core
 *     schema only;
 *   - `<<` merge keys, refused (use `extends`);
 *   - duplicate keys in one mapping (compared as scalar text; non-scalar
 *     keys are refused outright);
 *   - more than one document;
 *   - limits: nesting depth (YAML_MAX_DEPTH), total nodes after alias
 *     expansion (YAML_MAX_NODES, so an alias bomb fails fast without
 *     expanding anything), number of aliases (YAML_MAX_ALIASES), scalar
 *     length (YAML_MAX_SCALAR).
 *
 * Aliases are resolved by pointing at the anchored node (the tree is a DAG;
 * nothing is copied); the node budget counts the anchored subtree's size at
 * every alias, so walking the DAG costs at most YAML_MAX_NODES visits.
 *
 * All nodes and strings live in the caller's arena.
 */
#ifndef BOTTLED_YAML_TREE_H
#define BOTTLED_YAML_TREE_H

#include <stddef.h>

#include "arena.h"
#include "diag.h"

#define YAML_MAX_DEPTH   32
#define YAML_MAX_NODES   20000
#define YAML_MAX_ALIASES 256
#define YAML_MAX_SCALAR  (64 * 1024)

enum ynode_kind {
    YNODE_SCALAR,
    YNODE_SEQ,
    YNODE_MAP,
};

/*
 * What a scalar means under the YAML 1.2 core schema.  Only the text is
 * classified, nothing is converted: str keeps the source text (`08080`,
 * `0x1F`), and the consumer converts with its own range checks.
 */
enum yscalar_type {
    YSCALAR_STR,  /* any quoted or block scalar, or a plain one matching nothing below */
    YSCALAR_NULL, /* plain: empty, ~, null, Null, NULL */
    YSCALAR_BOOL, /* plain: true True TRUE false False FALSE */
    YSCALAR_INT,  /* plain: [-+]?[0-9]+, 0o[0-7]+, 0x[0-9a-fA-F]+ */
    /* plain: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?,
     * [-+]?(.inf|.Inf|.INF), .nan|.NaN|.NAN (INT wins where both match) */
    YSCALAR_FLOAT,
};

struct ynode;

struct ypair {
    struct ynode *key; /* always a scalar */
    struct ynode *value;
};

struct ynode {
    enum ynode_kind kind;
    /*
     * 1-based, of the node's first character in the file (its anchor, if it
     * has one).  An aliased node is shared, so it carries the position of the
     * anchored original, not of the alias.
     */
    int line, col;
    union {
        struct {
            const char *str; /* NUL-terminated; never contains NUL (a "\0" escape is refused) */
            size_t len;
            enum yscalar_type type;
            int plain; /* 1 if written unquoted (plain style) */
            int bval;  /* for YSCALAR_BOOL */
        } scalar;
        struct {
            struct ynode **items;
            size_t n;
        } seq;
        struct {
            struct ypair *pairs; /* in document order */
            size_t n;
        } map;
    } u;
};

/*
 * Parses text[0..len) (need not be NUL-terminated; embedded NUL is an error).
 * line_offset is added to every reported line (the front matter starts on
 * line 2 of the file, so the caller passes 1).  path is used in diagnostics.
 *
 * Returns 0 and sets *ret_root (NULL for an empty document: no text,
 * comments only, or a bare `---`) when the text is acceptable; BD_E_PARSE
 * with diagnostics added otherwise (every problem found, up to the first
 * one parsing cannot go past: a syntax error, a limit, a second document).
 * A document whose root is not a mapping is not an error here (the caller
 * decides).
 */
int yaml_tree_parse(struct arena *a, const char *path, const char *text, size_t len,
                    int line_offset, struct diag_list *diags, struct ynode **ret_root);

/* Looks up key in a mapping node; NULL if absent or node is not a map. */
struct ynode *ynode_map_get(const struct ynode *map, const char *key);

/* "string", "integer", "float", "boolean", "null", "list", "mapping". */
const char *ynode_type_name(const struct ynode *n);

#endif
