/*
 * extends.c - `extends` merge rules and resolution across a directory.
 *
 * Merge (bottle_merge), parent first, child on top (manifest.md,
 * "Inheritance"):
 *   - scalars and agent.* fields: the child replaces the parent's value;
 *     agent.resources and agent.command are replaced whole;
 *   - env: merged by key, the child wins;
 *   - skills: union, parent order first, no duplicates;
 *   - egress.routes: merged by host; a child route replaces the parent's
 *     route with the same host whole;
 *   - git-gate.user: overlaid field by field;
 *   - git-gate.repos: merged by repo name, replaced whole;
 *   - name, abstract and the Markdown body are the child's own and never
 *     inherited (the body is the bottle's prompt).
 * Merging never writes into the parent: shared parents stay immutable, and
 * every array the result needs is allocated fresh in the arena.
 *
 * Resolution (extends_resolve) is a depth-first walk over the parent graph:
 * a missing or duplicated parent, a parent with errors and a cycle are all
 * errors at the child's `extends` entry; a cycle is reported on every
 * bottle in it, naming the whole cycle.
 */
#include <string.h>

#include "buf.h"
#include "extends.h"
#include "xalloc.h"

#define GROW_COPY(a, arr, n, extra)                                                                \
    do {                                                                                           \
        void *fresh_ = arena_alloc((a), ((n) + (extra)) * sizeof(*(arr)));                         \
        if (n)                                                                                     \
            memcpy(fresh_, (arr), (n) * sizeof(*(arr)));                                           \
        (arr) = fresh_;                                                                            \
    } while (0)

void bottle_merge(struct arena *a, struct bottle *dst, const struct bottle *src)
{
    if (src->image)
        dst->image = src->image;
    if (src->has_command) {
        dst->has_command = 1;
        dst->command = src->command;
        dst->n_command = src->n_command;
    }
    if (src->user)
        dst->user = src->user;
    if (src->workdir)
        dst->workdir = src->workdir;
    if (src->has_resources) {
        dst->has_resources = 1;
        dst->resources = src->resources;
    }
    if (src->agent_provider)
        dst->agent_provider = src->agent_provider;
    if (src->has_egress_mode) {
        dst->has_egress_mode = 1;
        dst->egress_mode = src->egress_mode;
    }
    dst->supervise |= src->supervise;

    if (src->n_env) {
        GROW_COPY(a, dst->env, dst->n_env, src->n_env);
        for (size_t i = 0; i < src->n_env; i++) {
            size_t j = 0;
            while (j < dst->n_env && strcmp(dst->env[j].name, src->env[i].name))
                j++;
            dst->env[j] = src->env[i];
            if (j == dst->n_env)
                dst->n_env++;
        }
    }
    if (src->n_skills) {
        GROW_COPY(a, dst->skills, dst->n_skills, src->n_skills);
        for (size_t i = 0; i < src->n_skills; i++) {
            size_t j = 0;
            while (j < dst->n_skills && strcmp(dst->skills[j].name, src->skills[i].name))
                j++;
            if (j == dst->n_skills)
                dst->skills[dst->n_skills++] = src->skills[i];
        }
    }
    if (src->n_routes) {
        GROW_COPY(a, dst->routes, dst->n_routes, src->n_routes);
        for (size_t i = 0; i < src->n_routes; i++) {
            size_t j = 0;
            while (j < dst->n_routes && strcmp(dst->routes[j].host, src->routes[i].host))
                j++;
            dst->routes[j] = src->routes[i];
            if (j == dst->n_routes)
                dst->n_routes++;
        }
    }
    if (src->has_gate_user) {
        dst->has_gate_user = 1;
        if (src->gate_user_name)
            dst->gate_user_name = src->gate_user_name;
        if (src->gate_user_email)
            dst->gate_user_email = src->gate_user_email;
    }
    if (src->n_repos) {
        GROW_COPY(a, dst->repos, dst->n_repos, src->n_repos);
        for (size_t i = 0; i < src->n_repos; i++) {
            size_t j = 0;
            while (j < dst->n_repos && strcmp(dst->repos[j].name, src->repos[i].name))
                j++;
            dst->repos[j] = src->repos[i];
            if (j == dst->n_repos)
                dst->n_repos++;
        }
    }
}

enum visit { UNSEEN, VISITING, DONE };

struct resolver {
    struct arena *a;
    struct bottle **decls;
    const int *dup;
    size_t n;
    struct diag_list *diags;
    struct bottle **out;
    enum visit *state;
    int *cycle_reported;
    size_t *stack;
    size_t depth;
};

static long find(const struct resolver *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->decls[i]->name, name))
            return (long)i;
    return -1;
}

static const struct mpos *edge_pos(const struct bottle *b, const char *parent)
{
    for (size_t i = 0; i < b->n_extends; i++)
        if (!strcmp(b->extends[i], parent))
            return &b->extends_pos[i];
    return NULL;
}

/* Reports the cycle stack[from..depth) + back to stack[from] on every member. */
static void report_cycle(struct resolver *r, size_t from)
{
    struct buf b;
    buf_init(&b, 0);
    for (size_t k = from; k < r->depth; k++)
        buf_appendf(&b, "%s -> ", r->decls[r->stack[k]]->name);
    buf_puts(&b, r->decls[r->stack[from]]->name);
    for (size_t k = from; k < r->depth; k++) {
        const struct bottle *m = r->decls[r->stack[k]];
        const char *next = r->decls[r->stack[k + 1 < r->depth ? k + 1 : from]]->name;
        const struct mpos *p = edge_pos(m, next);
        diag_error(r->diags, m->path, p ? p->line : 0, p ? p->col : 0, m->name, NULL,
                   "extends cycle: %s", buf_cstr(&b));
        r->cycle_reported[r->stack[k]] = 1;
    }
    buf_release(&b);
}

static struct bottle *resolve(struct resolver *r, size_t i)
{
    if (r->state[i] == DONE)
        return r->out[i];
    struct bottle *d = r->decls[i];
    r->state[i] = VISITING;
    r->stack[r->depth++] = i;

    struct bottle *res = arena_alloc(r->a, sizeof(*res));
    res->resources = (struct m_resources){-1, -1, -1};
    int ok = !d->failed;
    for (size_t e = 0; ok && e < d->n_extends; e++) {
        const char *pname = d->extends[e];
        const struct mpos *pos = &d->extends_pos[e];
        long j = find(r, pname);
        if (j < 0) {
            diag_error(r->diags, d->path, pos->line, pos->col, d->name, NULL,
                       "extends unknown bottle '%s'", pname);
            ok = 0;
            continue;
        }
        if (r->dup[j]) {
            diag_error(r->diags, d->path, pos->line, pos->col, d->name, NULL,
                       "extends '%s', which more than one file declares", pname);
            ok = 0;
            continue;
        }
        if ((size_t)j == i) {
            diag_error(r->diags, d->path, pos->line, pos->col, d->name, NULL,
                       "extends cycle: %s -> %s", d->name, d->name);
            r->cycle_reported[i] = 1;
            ok = 0;
            continue;
        }
        if (r->state[j] == VISITING) {
            size_t from = 0;
            while (r->stack[from] != (size_t)j)
                from++;
            report_cycle(r, from);
            ok = 0;
            continue;
        }
        struct bottle *p = resolve(r, (size_t)j);
        if (!p) {
            if (!r->cycle_reported[i])
                diag_error(r->diags, d->path, pos->line, pos->col, d->name, NULL,
                           "cannot extend '%s': it has errors (see %s)", pname, r->decls[j]->path);
            ok = 0;
            continue;
        }
        bottle_merge(r->a, res, p);
    }
    if (ok && !r->cycle_reported[i]) {
        bottle_merge(r->a, res, d);
        res->path = d->path;
        res->name = d->name;
        res->name_pos = d->name_pos;
        res->abstract = d->abstract;
        res->extends = d->extends;
        res->extends_pos = d->extends_pos;
        res->n_extends = d->n_extends;
        res->body = d->body;
    } else {
        res = NULL;
    }
    r->depth--;
    r->state[i] = DONE;
    r->out[i] = res;
    return res;
}

void extends_resolve(struct arena *a, struct bottle **decls, const int *dup, size_t n,
                     struct diag_list *diags, struct bottle **ret_resolved)
{
    struct resolver r = {
        .a = a,
        .decls = decls,
        .dup = dup,
        .n = n,
        .diags = diags,
        .out = ret_resolved,
        .state = xcalloc(n, sizeof(enum visit)),
        .cycle_reported = xcalloc(n, sizeof(int)),
        .stack = xcalloc(n + 1, sizeof(size_t)),
    };
    for (size_t i = 0; i < n; i++) {
        if (dup[i]) {
            ret_resolved[i] = NULL;
            r.state[i] = DONE;
        }
    }
    for (size_t i = 0; i < n; i++)
        resolve(&r, i);
    free(r.state);
    free(r.cycle_reported);
    free(r.stack);
}
