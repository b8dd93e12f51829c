/*
 * plan.c - desired bottles against one engine snapshot (see plan.h).
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "json_canon.h"
#include "plan.h"
#include "xalloc.h"

/* ---- lookups ----------------------------------------------------------- */

int plan_is_ours(const struct engine_kvs *labels, const char *instance)
{
    const char *m = engine_kvs_get(labels, LABEL_MANAGED);
    const char *i = engine_kvs_get(labels, LABEL_INSTANCE);
    return instance && m && !strcmp(m, "true") && i && !strcmp(i, instance);
}

const struct engine_network *plan_find_network(const struct engine_network_list *l,
                                               const char *name)
{
    for (size_t i = 0; l && i < l->n; i++)
        if (l->v[i].name && !strcmp(l->v[i].name, name))
            return &l->v[i];
    return NULL;
}

const struct engine_container *plan_find_container(const struct engine_container_list *l,
                                                   const char *name)
{
    for (size_t i = 0; l && i < l->n; i++)
        if (l->v[i].name && !strcmp(l->v[i].name, name))
            return &l->v[i];
    return NULL;
}

static const struct engine_volume *find_volume(const struct engine_volume_list *l, const char *name)
{
    for (size_t i = 0; l && i < l->n; i++)
        if (l->v[i].name && !strcmp(l->v[i].name, name))
            return &l->v[i];
    return NULL;
}

const char *plan_act_name(enum plan_act a)
{
    switch (a) {
    case PLAN_CREATE:
        return "create";
    case PLAN_RECREATE:
        return "recreate";
    case PLAN_START:
        return "start";
    case PLAN_DELIVER:
        return "deliver";
    case PLAN_DELETE:
        return "delete";
    case PLAN_KEYS:
        return "keys";
    }
    return "?";
}

const char *plan_status_name(enum plan_status s)
{
    switch (s) {
    case PLAN_UP_TO_DATE:
        return "up-to-date";
    case PLAN_CHANGES:
        return "changes";
    case PLAN_ORPHAN:
        return "orphan";
    case PLAN_FAILED:
        return "failed";
    case PLAN_CONFLICT:
        return "conflict";
    case PLAN_REFUSED:
        return "refused";
    }
    return "?";
}

/* ---- building ---------------------------------------------------------- */

struct builder {
    struct plan *p;
    size_t cap_bottles;
    size_t cap_actions; /* of the last bottle */
};

static struct plan_bottle *add_bottle(struct builder *b, const char *name)
{
    struct plan *p = b->p;
    if (p->n_bottles == b->cap_bottles) {
        b->cap_bottles = b->cap_bottles ? 2 * b->cap_bottles : 8;
        p->bottles = xrealloc(p->bottles, b->cap_bottles * sizeof(*p->bottles));
    }
    struct plan_bottle *pb = &p->bottles[p->n_bottles++];
    memset(pb, 0, sizeof(*pb));
    pb->name = arena_strdup(&p->arena, name);
    b->cap_actions = 0;
    return pb;
}

static void add_action(struct builder *b, struct plan_bottle *pb, enum plan_act act,
                       const char *role, const char *resource, const char *cause)
{
    if (pb->n_actions == b->cap_actions) {
        b->cap_actions = b->cap_actions ? 2 * b->cap_actions : 8;
        pb->actions = xrealloc(pb->actions, b->cap_actions * sizeof(*pb->actions));
    }
    pb->actions[pb->n_actions++] = (struct plan_action){
        act,
        arena_strdup(&b->p->arena, role ? role : "?"),
        arena_strdup(&b->p->arena, resource ? resource : "?"),
        arena_strdup(&b->p->arena, cause),
    };
}

static void add_guard(struct plan *p, size_t *cap, const char *guard, const char *reason)
{
    if (p->n_guards == *cap) {
        *cap = *cap ? 2 * *cap : 4;
        p->guards = xrealloc(p->guards, *cap * sizeof(*p->guards));
    }
    p->guards[p->n_guards++] =
        (struct plan_guard){arena_strdup(&p->arena, guard), arena_strdup(&p->arena, reason)};
}

/* ---- one owned resource of any kind (orphans, stale names) -------------- */

enum kind_rank {
    RANK_CONTAINER,
    RANK_VOLUME,
    RANK_NETWORK,
};

struct owned {
    const char *bottle;
    const char *role;
    const char *name;
    enum kind_rank kind;
    int role_rank;
};

/* Delete order of roles within a kind. */
static int role_rank(enum kind_rank k, const char *role)
{
    static const char *const containers[] = {"agent", "gate", "netns", "proxy"};
    static const char *const volumes[] = {"cfg", "work"};
    static const char *const networks[] = {"egr", "int"};
    const char *const *v = k == RANK_CONTAINER ? containers : k == RANK_VOLUME ? volumes : networks;
    size_t n = k == RANK_CONTAINER ? 4 : 2;
    for (size_t i = 0; role && i < n; i++)
        if (!strcmp(v[i], role))
            return (int)i;
    return 100;
}

static int cmp_owned(const void *a, const void *b)
{
    const struct owned *x = a, *y = b;
    int c = strcmp(x->bottle, y->bottle);
    if (c)
        return c;
    if (x->kind != y->kind)
        return (int)x->kind - (int)y->kind;
    if (x->role_rank != y->role_rank)
        return x->role_rank - y->role_rank;
    return strcmp(x->name, y->name);
}

struct owned_list {
    struct owned *v;
    size_t n, cap;
};

static void owned_add(struct owned_list *l, const struct engine_kvs *labels, const char *name,
                      enum kind_rank k)
{
    const char *bottle = engine_kvs_get(labels, LABEL_BOTTLE);
    if (!bottle || !name)
        return; /* ours but not attributable to a bottle: never touched */
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    const char *role = engine_kvs_get(labels, LABEL_ROLE);
    l->v[l->n++] = (struct owned){bottle, role, name, k, role_rank(k, role)};
}

/* ---- one desired bottle ------------------------------------------------ */

static enum kind_rank kind_of(enum desired_kind k)
{
    return k == DESIRED_NETWORK ? RANK_NETWORK : k == DESIRED_VOLUME ? RANK_VOLUME : RANK_CONTAINER;
}

static const struct engine_kvs *actual_labels(const struct plan_in *in,
                                              const struct desired_resource *r, const void **obj)
{
    if (r->kind == DESIRED_NETWORK) {
        const struct engine_network *n = plan_find_network(in->networks, r->name);
        *obj = n;
        return n ? &n->labels : NULL;
    }
    if (r->kind == DESIRED_VOLUME) {
        const struct engine_volume *v = find_volume(in->volumes, r->name);
        *obj = v;
        return v ? &v->labels : NULL;
    }
    const struct engine_container *c = plan_find_container(in->containers, r->name);
    *obj = c;
    return c ? &c->labels : NULL;
}

static const char *kind_word(enum desired_kind k)
{
    return k == DESIRED_NETWORK ? "network" : k == DESIRED_VOLUME ? "volume" : "container";
}

/* Why labels do not make this resource ours for (bottle, role); NULL if they do. */
static char *not_ours(struct arena *a, const struct plan_in *in, const struct engine_kvs *labels,
                      const char *bottle, const char *role)
{
    const char *m = engine_kvs_get(labels, LABEL_MANAGED);
    const char *i = engine_kvs_get(labels, LABEL_INSTANCE);
    if (!m || strcmp(m, "true"))
        return arena_strdup(a, "not managed by bottled");
    if (!i)
        return arena_strdup(a, "managed by bottled without an instance label");
    if (!in->instance || strcmp(i, in->instance))
        return arena_printf(a, "owned by bottled instance %s", i);
    const char *lb = engine_kvs_get(labels, LABEL_BOTTLE);
    const char *lr = engine_kvs_get(labels, LABEL_ROLE);
    if (!lb || strcmp(lb, bottle) || !lr || strcmp(lr, role))
        return arena_printf(a, "labelled for bottle '%s' role '%s'", lb ? lb : "", lr ? lr : "");
    return NULL;
}

/* 1 if name is the 64-hex name of an anonymous volume. */
static int anonymous_volume(const char *name)
{
    if (!name || strlen(name) != 64)
        return 0;
    return strspn(name, "0123456789abcdef") == 64;
}

/* Attached networks and mounts of container c against the desired spec. */
static char *container_drift(struct arena *a, const struct engine_container_spec *want,
                             const struct engine_container *c)
{
    for (size_t j = 0; j < c->n_networks; j++) {
        const char *n = c->networks[j].network;
        int found = 0;
        for (size_t k = 0; n && k < want->n_endpoints; k++)
            found |= want->endpoints[k].network && !strcmp(want->endpoints[k].network, n);
        if (n && !found)
            return arena_printf(a, "drift: extra network attached (%s)", n);
    }
    for (size_t k = 0; k < want->n_endpoints; k++) {
        int found = 0;
        for (size_t j = 0; j < c->n_networks; j++)
            found |= c->networks[j].network &&
                     !strcmp(c->networks[j].network, want->endpoints[k].network);
        if (!found)
            return arena_printf(a, "drift: network missing (%s)", want->endpoints[k].network);
    }
    for (size_t k = 0; k < want->n_mounts; k++) {
        int found = 0;
        for (size_t j = 0; j < c->n_mounts; j++)
            found |= c->mounts[j].name && c->mounts[j].destination &&
                     !strcmp(c->mounts[j].name, want->mounts[k].volume) &&
                     !strcmp(c->mounts[j].destination, want->mounts[k].target);
        if (!found)
            return arena_printf(a, "drift: mount missing (%s at %s)", want->mounts[k].volume,
                                want->mounts[k].target);
    }
    for (size_t j = 0; j < c->n_mounts; j++) {
        const struct engine_mount *m = &c->mounts[j];
        if (!m->destination || anonymous_volume(m->name))
            continue;
        if (m->type && strcmp(m->type, "volume") && strcmp(m->type, "bind"))
            continue; /* tmpfs and the like are not ours to judge */
        int found = 0;
        for (size_t k = 0; k < want->n_mounts; k++)
            found |= !strcmp(m->destination, want->mounts[k].target);
        if (!found)
            return arena_printf(a, "drift: extra mount (%s)", m->destination);
    }
    return NULL;
}

/* Does container spec c use the network or volume named name? */
static int uses(const struct engine_container_spec *c, const char *name)
{
    for (size_t k = 0; k < c->n_endpoints; k++)
        if (c->endpoints[k].network && !strcmp(c->endpoints[k].network, name))
            return 1;
    for (size_t k = 0; k < c->n_mounts; k++)
        if (c->mounts[k].volume && !strcmp(c->mounts[k].volume, name))
            return 1;
    return 0;
}

static void plan_desired(struct builder *b, const struct plan_in *in,
                         const struct plan_bottle_in *bi, const struct owned_list *owned)
{
    struct plan *p = b->p;
    struct arena *a = &p->arena;
    struct plan_bottle *pb = add_bottle(b, bi->name);
    if (!bi->d) {
        pb->status = PLAN_FAILED;
        pb->error = arena_strdup(a, bi->error ? bi->error : "failed");
        p->n_failed++;
        return;
    }
    const struct desired *d = bi->d;

    /* Conflicts first: a bottle with one is not touched at all. */
    for (size_t r = 0; r < d->n; r++) {
        const struct desired_resource *res = &d->res[r];
        if (!res->name)
            continue;
        const void *obj;
        const struct engine_kvs *labels = actual_labels(in, res, &obj);
        if (!obj)
            continue;
        char *why = not_ours(a, in, labels, bi->name, desired_role_name(res->role));
        if (why) {
            pb->status = PLAN_CONFLICT;
            pb->error = arena_printf(a, "conflict: %s '%s' exists and is %s; it is never touched",
                                     kind_word(res->kind), res->name, why);
            p->n_failed++;
            return;
        }
    }

    /* Ours, of this bottle, under a name that is not desired: delete first. */
    if (in->complete) {
        for (size_t k = 0; k < owned->n; k++) {
            const struct owned *o = &owned->v[k];
            if (strcmp(o->bottle, bi->name))
                continue;
            int desired_name = 0;
            for (size_t r = 0; r < d->n; r++)
                desired_name |= d->res[r].name && !strcmp(d->res[r].name, o->name) &&
                                kind_of(d->res[r].kind) == o->kind;
            if (!desired_name)
                add_action(
                    b, pb, PLAN_DELETE, o->role, o->name,
                    arena_printf(a, "not desired (%s %s)", o->role ? o->role : "?", o->name));
        }
    }

    enum plan_act act[ROLE__COUNT];
    const char *cause[ROLE__COUNT];
    int has[ROLE__COUNT];
    for (size_t r = 0; r < d->n; r++) {
        const struct desired_resource *res = &d->res[r];
        has[r] = 0;
        if (!res->name)
            continue;
        const void *obj;
        const struct engine_kvs *labels = actual_labels(in, res, &obj);
        if (!obj) {
            act[r] = PLAN_CREATE;
            cause[r] = r == ROLE_AGENT && bi->no_ca ? "missing; no CA yet" : "missing";
            has[r] = 1;
            continue;
        }
        const char *hash = engine_kvs_get(labels, LABEL_SPEC_HASH);
        const char *scheme = engine_kvs_get(labels, LABEL_HASH_SCHEME);
        char want_scheme[16];
        snprintf(want_scheme, sizeof(want_scheme), "%d", DESIRED_HASH_SCHEME);
        if (!scheme || strcmp(scheme, want_scheme)) {
            act[r] = PLAN_RECREATE;
            cause[r] = arena_printf(a, "spec changed (hash scheme %s -> %s)",
                                    scheme ? scheme : "none", want_scheme);
            has[r] = 1;
        } else if (!hash || strcmp(hash, res->spec_hash)) {
            act[r] = PLAN_RECREATE;
            cause[r] = "spec changed";
            has[r] = 1;
        } else if (res->kind == DESIRED_CONTAINER) {
            char *drift = container_drift(a, &res->container, obj);
            if (!drift && bi->immutable_drift[r])
                drift = arena_strdup(a, bi->immutable_drift[r]);
            if (drift) {
                act[r] = PLAN_RECREATE;
                cause[r] = drift;
                has[r] = 1;
            }
        }
        if (!has[r] && r == ROLE_AGENT && bi->no_ca) {
            act[r] = PLAN_RECREATE;
            cause[r] = "no CA yet";
            has[r] = 1;
        }
    }
    /* A (re)created network or volume recreates what is attached to it. */
    for (size_t r = 0; r < d->n; r++) {
        if (!d->res[r].name || d->res[r].kind != DESIRED_CONTAINER || has[r])
            continue;
        for (size_t u = 0; u < d->n && !has[r]; u++) {
            if (!d->res[u].name || d->res[u].kind == DESIRED_CONTAINER || !has[u] ||
                !uses(&d->res[r].container, d->res[u].name))
                continue;
            act[r] = PLAN_RECREATE;
            cause[r] = arena_printf(a, "%s %s %s", kind_word(d->res[u].kind),
                                    desired_role_name(d->res[u].role),
                                    act[u] == PLAN_CREATE ? "created" : "recreated");
            has[r] = 1;
        }
    }
    /* Kept containers that are not running get started; a kept sidecar
     * gets its config when the hash it reports differs. */
    for (size_t r = 0; r < d->n; r++) {
        if (!d->res[r].name || d->res[r].kind != DESIRED_CONTAINER || has[r])
            continue;
        const struct engine_container *c = plan_find_container(in->containers, d->res[r].name);
        if (c && (!c->state || strcmp(c->state, "running"))) {
            act[r] = PLAN_START;
            cause[r] = arena_printf(a, "not running (%s)", c->state ? c->state : "unknown");
            has[r] = 1;
        }
    }
    for (size_t r = 0; r < d->n; r++)
        if (has[r])
            add_action(b, pb, act[r], desired_role_name(d->res[r].role), d->res[r].name, cause[r]);
    if (!has[ROLE_PROXY]) {
        if (bi->config_state == PLAN_CONFIG_UNKNOWN)
            add_action(b, pb, PLAN_DELIVER, "proxy", d->res[ROLE_PROXY].name,
                       "config hash unknown");
        else if (bi->config_state == PLAN_CONFIG_KNOWN &&
                 (!bi->config_hash || strcmp(bi->config_hash, d->config_hash)))
            add_action(b, pb, PLAN_DELIVER, "proxy", d->res[ROLE_PROXY].name, "config changed");
    }
    if (bi->keys_cause)
        add_action(b, pb, PLAN_KEYS, "keys", "deploy keys", bi->keys_cause);
    pb->status = pb->n_actions ? PLAN_CHANGES : PLAN_UP_TO_DATE;
    p->n_changes += pb->n_actions;
}

/* ---- the whole plan ---------------------------------------------------- */

static int is_named(const struct plan_in *in, const char *bottle)
{
    for (size_t i = 0; i < in->n_bottles; i++)
        if (in->bottles[i].name && !strcmp(in->bottles[i].name, bottle))
            return 1;
    for (size_t i = 0; i < in->n_keep; i++)
        if (in->keep[i] && !strcmp(in->keep[i], bottle))
            return 1;
    return 0;
}

int plan_compute(const struct plan_in *in, struct plan **ret)
{
    if (!in || !ret || (in->n_bottles && !in->bottles))
        return BD_E_INVAL;
    for (size_t i = 0; i < in->n_bottles; i++)
        if (!in->bottles[i].name)
            return BD_E_INVAL;
    struct plan *p = xcalloc(1, sizeof(*p));
    arena_init(&p->arena);
    struct builder b = {p, 0, 0};
    size_t cap_guards = 0;

    /* Everything of ours that names a bottle, in delete order per bottle. */
    struct owned_list owned = {0};
    for (size_t i = 0; in->containers && i < in->containers->n; i++)
        if (plan_is_ours(&in->containers->v[i].labels, in->instance))
            owned_add(&owned, &in->containers->v[i].labels, in->containers->v[i].name,
                      RANK_CONTAINER);
    for (size_t i = 0; in->volumes && i < in->volumes->n; i++)
        if (plan_is_ours(&in->volumes->v[i].labels, in->instance))
            owned_add(&owned, &in->volumes->v[i].labels, in->volumes->v[i].name, RANK_VOLUME);
    for (size_t i = 0; in->networks && i < in->networks->n; i++)
        if (plan_is_ours(&in->networks->v[i].labels, in->instance))
            owned_add(&owned, &in->networks->v[i].labels, in->networks->v[i].name, RANK_NETWORK);
    if (owned.n)
        qsort(owned.v, owned.n, sizeof(*owned.v), cmp_owned);

    for (size_t i = 0; i < in->n_bottles; i++)
        plan_desired(&b, in, &in->bottles[i], &owned);

    /* Orphan bottles, by name (owned is sorted by bottle). */
    size_t n_orphans = 0, n_existing = 0;
    for (size_t k = 0; k < owned.n; k++) {
        if (k && !strcmp(owned.v[k].bottle, owned.v[k - 1].bottle))
            continue;
        n_existing++;
        n_orphans += !is_named(in, owned.v[k].bottle);
    }
    const char *refusal = NULL;
    char *reason;
    if (!in->complete) {
        reason = arena_printf(&p->arena, "gc blocked by %s",
                              in->n_blocked_by ? in->blocked_by[0] : "an incomplete snapshot");
        p->gc_blocked_by =
            arena_alloc(&p->arena, (in->n_blocked_by ? in->n_blocked_by : 1) * sizeof(char *));
        for (size_t i = 0; i < in->n_blocked_by; i++)
            p->gc_blocked_by[p->n_gc_blocked_by++] = arena_strdup(&p->arena, in->blocked_by[i]);
        add_guard(p, &cap_guards, "incomplete-snapshot",
                  arena_printf(&p->arena, "the manifest snapshot is incomplete: no deletions (%s)",
                               reason));
        refusal = reason;
    } else if (n_orphans && in->n_bottles == 0 && !in->allow_empty) {
        refusal = arena_printf(&p->arena,
                               "the desired set is empty and would delete all %zu "
                               "bottle(s) (use --allow-empty)",
                               n_existing);
        add_guard(p, &cap_guards, "allow-empty", refusal);
    } else {
        long max = in->max_deletes < 0 ? PLAN_DEFAULT_MAX_DELETES : in->max_deletes;
        if ((long)n_orphans > max && !in->force) {
            refusal = arena_printf(&p->arena,
                                   "%zu bottles to delete, more than --max-deletes %ld "
                                   "(use --force)",
                                   n_orphans, max);
            add_guard(p, &cap_guards, "max-deletes", refusal);
        }
    }
    for (size_t k = 0; k < owned.n;) {
        const char *name = owned.v[k].bottle;
        size_t end = k;
        while (end < owned.n && !strcmp(owned.v[end].bottle, name))
            end++;
        if (!is_named(in, name)) {
            struct plan_bottle *pb = add_bottle(&b, name);
            int approved = 0;
            for (size_t j = 0; j < in->n_approved; j++)
                approved |= in->approved[j] && !strcmp(in->approved[j], name);
            if (refusal && !approved) {
                pb->status = PLAN_REFUSED;
                pb->error = refusal;
                p->n_refused++;
            } else {
                pb->status = PLAN_ORPHAN;
                for (size_t j = k; j < end; j++)
                    add_action(&b, pb, PLAN_DELETE, owned.v[j].role, owned.v[j].name, "orphan");
                p->n_changes += pb->n_actions;
            }
        }
        k = end;
    }
    free(owned.v);
    *ret = p;
    return 0;
}

void plan_free(struct plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_bottles; i++)
        free(p->bottles[i].actions);
    free(p->bottles);
    free(p->guards);
    arena_release(&p->arena);
    free(p);
}

int plan_exit_code(const struct plan *p, int detailed)
{
    if (p->n_failed || p->n_refused)
        return 1;
    if (p->n_changes)
        return detailed ? 2 : 0;
    return 0;
}

/* ---- output ------------------------------------------------------------ */

char *plan_json(const struct plan *p, const char *instance)
{
    cJSON *o = cJSON_CreateObject();
    if (instance)
        cJSON_AddStringToObject(o, "instance", instance);
    else
        cJSON_AddNullToObject(o, "instance");
    cJSON *bs = cJSON_AddArrayToObject(o, "bottles");
    size_t counts[PLAN_KEYS + 1] = {0};
    for (size_t i = 0; i < p->n_bottles; i++) {
        const struct plan_bottle *pb = &p->bottles[i];
        cJSON *jb = cJSON_CreateObject();
        cJSON_AddStringToObject(jb, "name", pb->name);
        cJSON_AddStringToObject(jb, "status", plan_status_name(pb->status));
        if (pb->error)
            cJSON_AddStringToObject(jb, "error", pb->error);
        else
            cJSON_AddNullToObject(jb, "error");
        cJSON *as = cJSON_AddArrayToObject(jb, "actions");
        for (size_t k = 0; k < pb->n_actions; k++) {
            const struct plan_action *a = &pb->actions[k];
            cJSON *ja = cJSON_CreateObject();
            cJSON_AddStringToObject(ja, "action", plan_act_name(a->act));
            cJSON_AddStringToObject(ja, "role", a->role);
            cJSON_AddStringToObject(ja, "resource", a->resource);
            cJSON_AddStringToObject(ja, "cause", a->cause);
            cJSON_AddItemToArray(as, ja);
            counts[a->act]++;
        }
        cJSON_AddItemToArray(bs, jb);
    }
    cJSON *gs = cJSON_AddArrayToObject(o, "guards");
    for (size_t i = 0; i < p->n_guards; i++) {
        cJSON *g = cJSON_CreateObject();
        cJSON_AddStringToObject(g, "guard", p->guards[i].guard);
        cJSON_AddStringToObject(g, "reason", p->guards[i].reason);
        cJSON_AddItemToArray(gs, g);
    }
    cJSON *gc = cJSON_AddArrayToObject(o, "gc_blocked_by");
    for (size_t i = 0; i < p->n_gc_blocked_by; i++)
        cJSON_AddItemToArray(gc, cJSON_CreateString(p->gc_blocked_by[i]));
    cJSON *s = cJSON_AddObjectToObject(o, "summary");
    for (int a = PLAN_CREATE; a <= PLAN_DELETE; a++)
        cJSON_AddNumberToObject(s, plan_act_name((enum plan_act)a), (double)counts[a]);
    cJSON_AddNumberToObject(s, "failed", (double)p->n_failed);
    cJSON_AddNumberToObject(s, "refused", (double)p->n_refused);
    char *text = json_canon_print(o, 1);
    cJSON_Delete(o);
    return text;
}

void plan_print_text(const struct plan *p, FILE *out, int verbose)
{
    size_t counts[PLAN_KEYS + 1] = {0};
    for (size_t i = 0; i < p->n_bottles; i++) {
        const struct plan_bottle *pb = &p->bottles[i];
        for (size_t k = 0; k < pb->n_actions; k++) {
            const struct plan_action *a = &pb->actions[k];
            fprintf(out, "%s/%s: %s (%s)\n", pb->name, a->role, plan_act_name(a->act), a->cause);
            counts[a->act]++;
        }
        if (pb->status == PLAN_FAILED || pb->status == PLAN_CONFLICT)
            fprintf(out, "%s: failed: %s\n", pb->name, pb->error);
        else if (pb->status == PLAN_REFUSED)
            fprintf(out, "%s: delete refused (%s)\n", pb->name, pb->error);
        else if (pb->status == PLAN_UP_TO_DATE && verbose)
            fprintf(out, "%s: up to date\n", pb->name);
    }
    for (size_t i = 0; i < p->n_gc_blocked_by; i++)
        fprintf(out, "gc blocked by %s\n", p->gc_blocked_by[i]);
    if (!p->n_changes && !p->n_failed && !p->n_refused) {
        fprintf(out, "No changes: %zu bottle(s) up to date.\n", p->n_bottles);
        return;
    }
    fprintf(out,
            "Plan: %zu to create, %zu to recreate, %zu to start, %zu to deliver, %zu to delete; "
            "%zu bottle(s) failed, %zu refused.\n",
            counts[PLAN_CREATE], counts[PLAN_RECREATE], counts[PLAN_START], counts[PLAN_DELIVER],
            counts[PLAN_DELETE], p->n_failed, p->n_refused);
}
