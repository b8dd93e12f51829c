/*
 * test_plan.c - the diff engine (plan.h): desired bottles computed from
 * real manifests (desired.h) against hand-made engine lists, checked for
 * the exact actions, their order and causes, conflicts, and the delete
 * guards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "desired.h"
#include "err.h"
#include "loader.h"
#include "plan.h"
#include "xalloc.h"

#define INSTANCE "0123456789ab"
#define OTHER    "ba9876543210"
#define PROXY_ID "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define AGENT_ID "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define CFG_HASH "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define CFG_NEW  "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define CA_PEM   "-----BEGIN CERTIFICATE-----\nMIIBdGVzdA==\n-----END CERTIFICATE-----\n"

static char tmpdir[] = "/tmp/test_plan.XXXXXX";

static void write_file(const char *name, const char *text)
{
    char *p = xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(p);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(tmpdir))
        return -1;
    write_file("web.md", "---\nname: web\nenv: {A: \"1\"}\n---\nWeb.\n");
    write_file("db.md", "---\nname: db\n---\nDb.\n");
    write_file("old.md", "---\nname: old\n---\nOld.\n");
    write_file("gone.md", "---\nname: gone\n---\nGone.\n");
    write_file("web2.md", "---\nname: web2\nenv: {A: \"2\"}\n---\nWeb.\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *f[] = {"web.md", "db.md", "old.md", "gone.md", "web2.md"};
    for (size_t i = 0; i < 5; i++) {
        char *p = xasprintf("%s/%s", tmpdir, f[i]);
        unlink(p);
        free(p);
    }
    rmdir(tmpdir);
    return 0;
}

/* The desired resources of bottle name (declared in file stem), subnets by index. */
static struct desired *want(const char *name, int idx, const char *config_hash)
{
    struct manifest_set set;
    struct diag_list d;
    diag_list_init(&d);
    assert_int_equal(manifest_set_load(&set, tmpdir, &d), 0);
    long i = manifest_set_find(&set, name);
    assert_true(i >= 0);
    char isub[32], esub[32];
    snprintf(isub, sizeof(isub), "10.213.%d.0/28", idx);
    snprintf(esub, sizeof(esub), "10.213.%d.16/28", idx);
    struct desired_opts o = {
        .instance = INSTANCE,
        .proxy_image = "localhost/bottled-proxy:test",
        .proxy_image_id = PROXY_ID,
        .agent_image_id = AGENT_ID,
        .int_subnet = isub,
        .egr_subnet = esub,
        .ca_cert_pem = CA_PEM,
        .ca_cert_len = strlen(CA_PEM),
        .config_hash = config_hash ? config_hash : CFG_HASH,
        .skills_root = tmpdir,
    };
    struct desired *r = NULL;
    int rc = desired_bottle(set.bottles[i], &o, &d, &r);
    if (rc)
        fail_msg("desired %s: %s", name, d.n ? d.v[0].msg : bd_strerror(rc));
    diag_list_release(&d);
    manifest_set_release(&set);
    return r;
}

/* ---- a hand-made engine ------------------------------------------------- */

struct engine_snap {
    struct engine_network_list nets;
    struct engine_volume_list vols;
    struct engine_container_list ctrs;
};

static void copy_kvs(struct engine_kvs *dst, const struct engine_kvs *src)
{
    for (size_t i = 0; i < src->n; i++)
        engine_kvs_add(dst, src->v[i].key, src->v[i].value);
}

static struct engine_container *add_container(struct engine_snap *s, const char *name)
{
    s->ctrs.v = xrealloc(s->ctrs.v, (s->ctrs.n + 1) * sizeof(*s->ctrs.v));
    struct engine_container *c = &s->ctrs.v[s->ctrs.n++];
    memset(c, 0, sizeof(*c));
    c->name = xstrdup(name);
    c->id = xasprintf("id-%s", name);
    c->state = xstrdup("running");
    return c;
}

static void container_attach(struct engine_container *c, const char *network)
{
    c->networks = xrealloc(c->networks, (c->n_networks + 1) * sizeof(*c->networks));
    memset(&c->networks[c->n_networks], 0, sizeof(*c->networks));
    c->networks[c->n_networks++].network = xstrdup(network);
}

static struct engine_network *add_network(struct engine_snap *s, const char *name)
{
    s->nets.v = xrealloc(s->nets.v, (s->nets.n + 1) * sizeof(*s->nets.v));
    struct engine_network *n = &s->nets.v[s->nets.n++];
    memset(n, 0, sizeof(*n));
    n->name = xstrdup(name);
    n->id = xasprintf("id-%s", name);
    return n;
}

static struct engine_volume *add_volume(struct engine_snap *s, const char *name)
{
    s->vols.v = xrealloc(s->vols.v, (s->vols.n + 1) * sizeof(*s->vols.v));
    struct engine_volume *v = &s->vols.v[s->vols.n++];
    memset(v, 0, sizeof(*v));
    v->name = xstrdup(name);
    return v;
}

/* What an apply of d leaves on the engine. */
static void applied(struct engine_snap *s, const struct desired *d)
{
    for (size_t r = 0; r < d->n; r++) {
        const struct desired_resource *res = &d->res[r];
        if (!desired_has(d, r))
            continue;
        if (res->kind == DESIRED_NETWORK) {
            struct engine_network *n = add_network(s, res->name);
            copy_kvs(&n->labels, &res->labels);
            n->subnet = xstrdup(res->network.subnet);
        } else if (res->kind == DESIRED_VOLUME) {
            copy_kvs(&add_volume(s, res->name)->labels, &res->labels);
        } else {
            struct engine_container *c = add_container(s, res->name);
            copy_kvs(&c->labels, &res->labels);
            for (size_t k = 0; k < res->container.n_endpoints; k++)
                container_attach(c, res->container.endpoints[k].network);
            c->mounts = xcalloc(res->container.n_mounts + 1, sizeof(*c->mounts));
            for (size_t k = 0; k < res->container.n_mounts; k++) {
                c->mounts[k].type = xstrdup("volume");
                c->mounts[k].name = xstrdup(res->container.mounts[k].volume);
                c->mounts[k].destination = xstrdup(res->container.mounts[k].target);
                c->mounts[k].rw = !res->container.mounts[k].read_only;
            }
            c->n_mounts = res->container.n_mounts;
        }
    }
}

static void snap_release(struct engine_snap *s)
{
    engine_network_list_release(&s->nets);
    engine_volume_list_release(&s->vols);
    engine_container_list_release(&s->ctrs);
}

static void set_label(struct engine_kvs *kvs, const char *key, const char *value)
{
    for (size_t i = 0; i < kvs->n; i++)
        if (!strcmp(kvs->v[i].key, key)) {
            free(kvs->v[i].value);
            kvs->v[i].value = xstrdup(value);
            return;
        }
    engine_kvs_add(kvs, key, value);
}

static struct engine_container *ctr(struct engine_snap *s, const char *name)
{
    for (size_t i = 0; i < s->ctrs.n; i++)
        if (!strcmp(s->ctrs.v[i].name, name))
            return &s->ctrs.v[i];
    fail_msg("no container %s", name);
    return NULL;
}

static struct engine_network *net(struct engine_snap *s, const char *name)
{
    for (size_t i = 0; i < s->nets.n; i++)
        if (!strcmp(s->nets.v[i].name, name))
            return &s->nets.v[i];
    fail_msg("no network %s", name);
    return NULL;
}

static struct plan_in base_in(struct engine_snap *s, const struct plan_bottle_in *b, size_t n)
{
    return (struct plan_in){
        .instance = INSTANCE,
        .bottles = b,
        .n_bottles = n,
        .complete = 1,
        .max_deletes = -1,
        .networks = &s->nets,
        .volumes = &s->vols,
        .containers = &s->ctrs,
    };
}

static struct plan *run(const struct plan_in *in)
{
    struct plan *p = NULL;
    assert_int_equal(plan_compute(in, &p), 0);
    return p;
}

/* Asserts bottle i's actions as "act role name cause" lines. */
static void expect(const struct plan *p, size_t i, const char *name, enum plan_status st,
                   const char *const *lines, size_t n)
{
    assert_true(i < p->n_bottles);
    const struct plan_bottle *b = &p->bottles[i];
    assert_string_equal(b->name, name);
    if (b->status != st)
        fail_msg("%s: status %s, want %s (%s)", name, plan_status_name(b->status),
                 plan_status_name(st), b->error ? b->error : "");
    for (size_t k = 0; k < b->n_actions && k < n; k++) {
        char *got = xasprintf("%s %s %s %s", plan_act_name(b->actions[k].act), b->actions[k].role,
                              b->actions[k].resource, b->actions[k].cause);
        if (strcmp(got, lines[k]))
            fail_msg("%s action %zu: got '%s', want '%s'", name, k, got, lines[k]);
        free(got);
    }
    if (b->n_actions != n)
        fail_msg("%s: %zu actions, want %zu", name, b->n_actions, n);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- tests ------------------------------------------------------------- */

static void test_empty_engine_creates_in_order(void **state)
{
    (void)state;
    struct desired *d = want("web", 0, NULL);
    struct engine_snap s = {0};
    struct plan_bottle_in b = {.name = "web", .d = d};
    struct plan_in in = base_in(&s, &b, 1);
    struct plan *p = run(&in);
    static const char *const lines[] = {
        "create int bottle-web-int missing",     "create egr bottle-web-egr missing",
        "create work bottle-web-work missing",   "create cfg bottle-web-cfg missing",
        "create proxy bottle-web-proxy missing", "create agent bottle-web-agent missing",
    };
    assert_int_equal(p->n_bottles, 1);
    expect(p, 0, "web", PLAN_CHANGES, lines, N(lines));
    assert_int_equal(plan_exit_code(p, 1), 2);
    assert_int_equal(plan_exit_code(p, 0), 0);
    plan_free(p);

    /* No CA yet: the agent says so. */
    b.no_ca = 1;
    p = run(&in);
    assert_string_equal(p->bottles[0].actions[5].cause, "missing; no CA yet");
    plan_free(p);
    desired_free(d);
}

static void test_converged_is_empty(void **state)
{
    (void)state;
    struct desired *d = want("web", 0, NULL);
    struct engine_snap s = {0};
    applied(&s, d);
    struct plan_bottle_in b = {.name = "web", .d = d};
    struct plan_in in = base_in(&s, &b, 1);
    struct plan *p = run(&in);
    expect(p, 0, "web", PLAN_UP_TO_DATE, NULL, 0);
    assert_int_equal(p->n_changes, 0);
    assert_int_equal(plan_exit_code(p, 1), 0);
    plan_free(p);

    /* The sidecar reports the same config hash: still nothing. */
    b.config_state = PLAN_CONFIG_KNOWN;
    b.config_hash = CFG_HASH;
    p = run(&in);
    expect(p, 0, "web", PLAN_UP_TO_DATE, NULL, 0);
    plan_free(p);

    /* A different one: deliver, nothing recreated. */
    b.config_hash = CFG_NEW;
    p = run(&in);
    static const char *const deliver[] = {"deliver proxy bottle-web-proxy config changed"};
    expect(p, 0, "web", PLAN_CHANGES, deliver, 1);
    plan_free(p);

    /* No answer: deliver, and say why. */
    b.config_state = PLAN_CONFIG_UNKNOWN;
    p = run(&in);
    static const char *const unknown[] = {"deliver proxy bottle-web-proxy config hash unknown"};
    expect(p, 0, "web", PLAN_CHANGES, unknown, 1);
    plan_free(p);

    /* A stopped agent is started; a stopped sidecar too, no delivery then. */
    b.config_state = PLAN_CONFIG_NOT_QUERIED;
    struct engine_container *a = ctr(&s, "bottle-web-agent");
    free(a->state);
    a->state = xstrdup("exited");
    p = run(&in);
    static const char *const start[] = {"start agent bottle-web-agent not running (exited)"};
    expect(p, 0, "web", PLAN_CHANGES, start, 1);
    plan_free(p);

    snap_release(&s);
    desired_free(d);
}

static void test_spec_change_recreates(void **state)
{
    (void)state;
    struct desired *d = want("web", 0, NULL);
    struct engine_snap s = {0};
    applied(&s, d);
    struct plan_bottle_in b = {.name = "web", .d = d};
    struct plan_in in = base_in(&s, &b, 1);

    /* The agent's env changed: web2 is web with another env value. */
    struct desired *d2 = want("web2", 0, NULL);
    set_label(&ctr(&s, "bottle-web-agent")->labels, LABEL_SPEC_HASH, d2->res[ROLE_AGENT].spec_hash);
    struct plan *p = run(&in);
    static const char *const agent[] = {"recreate agent bottle-web-agent spec changed"};
    expect(p, 0, "web", PLAN_CHANGES, agent, 1);
    plan_free(p);
    set_label(&ctr(&s, "bottle-web-agent")->labels, LABEL_SPEC_HASH, d->res[ROLE_AGENT].spec_hash);

    /* The internal network changed: it and both containers on it. */
    set_label(&net(&s, "bottle-web-int")->labels, LABEL_SPEC_HASH, "0000");
    p = run(&in);
    static const char *const network[] = {
        "recreate int bottle-web-int spec changed",
        "recreate proxy bottle-web-proxy network int recreated",
        "recreate agent bottle-web-agent network int recreated",
    };
    expect(p, 0, "web", PLAN_CHANGES, network, N(network));
    plan_free(p);
    set_label(&net(&s, "bottle-web-int")->labels, LABEL_SPEC_HASH, d->res[ROLE_INT].spec_hash);

    /* The egress network is gone: created, and the sidecar (only) recreated. */
    struct engine_network *eg = net(&s, "bottle-web-egr");
    free(eg->name);
    eg->name = xstrdup("unrelated-network");
    engine_kvs_release(&eg->labels);
    p = run(&in);
    static const char *const egr[] = {
        "create egr bottle-web-egr missing",
        "recreate proxy bottle-web-proxy network egr created",
    };
    expect(p, 0, "web", PLAN_CHANGES, egr, N(egr));
    plan_free(p);

    /* An older hash scheme recreates with that cause. */
    snap_release(&s);
    memset(&s, 0, sizeof(s));
    applied(&s, d);
    set_label(&ctr(&s, "bottle-web-proxy")->labels, LABEL_HASH_SCHEME, "0");
    p = run(&in);
    static const char *const scheme[] = {
        "recreate proxy bottle-web-proxy spec changed (hash scheme 0 -> 1)"};
    expect(p, 0, "web", PLAN_CHANGES, scheme, 1);
    plan_free(p);

    /* The CA is not minted yet but the agent exists: recreated. */
    snap_release(&s);
    memset(&s, 0, sizeof(s));
    applied(&s, d);
    b.no_ca = 1;
    p = run(&in);
    static const char *const noca[] = {"recreate agent bottle-web-agent no CA yet"};
    expect(p, 0, "web", PLAN_CHANGES, noca, 1);
    plan_free(p);

    snap_release(&s);
    desired_free(d2);
    desired_free(d);
}

static void test_drift(void **state)
{
    (void)state;
    struct desired *d = want("web", 0, NULL);
    struct engine_snap s = {0};
    applied(&s, d);
    struct plan_bottle_in b = {.name = "web", .d = d};
    struct plan_in in = base_in(&s, &b, 1);

    container_attach(ctr(&s, "bottle-web-agent"), "podman");
    struct plan *p = run(&in);
    static const char *const extra[] = {
        "recreate agent bottle-web-agent drift: extra network attached (podman)"};
    expect(p, 0, "web", PLAN_CHANGES, extra, 1);
    plan_free(p);

    /* The sidecar lost its internal network. */
    snap_release(&s);
    memset(&s, 0, sizeof(s));
    applied(&s, d);
    struct engine_container *px = ctr(&s, "bottle-web-proxy");
    assert_int_equal(px->n_networks, 2);
    free(px->networks[1].network);
    px->n_networks = 1;
    p = run(&in);
    static const char *const missing[] = {
        "recreate proxy bottle-web-proxy drift: network missing (bottle-web-int)"};
    expect(p, 0, "web", PLAN_CHANGES, missing, 1);
    plan_free(p);

    /* An anonymous volume is not drift; a bind at another path is. */
    snap_release(&s);
    memset(&s, 0, sizeof(s));
    applied(&s, d);
    struct engine_container *ag = ctr(&s, "bottle-web-agent");
    ag->mounts = xrealloc(ag->mounts, (ag->n_mounts + 2) * sizeof(*ag->mounts));
    ag->mounts[ag->n_mounts++] = (struct engine_mount){
        xstrdup("volume"),
        xstrdup("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), NULL,
        xstrdup("/var/cache"), 1};
    p = run(&in);
    expect(p, 0, "web", PLAN_UP_TO_DATE, NULL, 0);
    plan_free(p);
    ag->mounts[ag->n_mounts++] =
        (struct engine_mount){xstrdup("bind"), NULL, xstrdup("/"), xstrdup("/host"), 1};
    p = run(&in);
    static const char *const bind[] = {
        "recreate agent bottle-web-agent drift: extra mount (/host)"};
    expect(p, 0, "web", PLAN_CHANGES, bind, 1);
    plan_free(p);

    /* Immutable fields the caller inspected (a new container id) differ. */
    snap_release(&s);
    memset(&s, 0, sizeof(s));
    applied(&s, d);
    b.immutable_drift[ROLE_AGENT] = "drift: capability NET_ADMIN";
    p = run(&in);
    static const char *const caps[] = {
        "recreate agent bottle-web-agent drift: capability NET_ADMIN"};
    expect(p, 0, "web", PLAN_CHANGES, caps, 1);
    plan_free(p);
    b.immutable_drift[ROLE_AGENT] = NULL;

    snap_release(&s);
    desired_free(d);
}

static void test_orphan_deleted_in_order(void **state)
{
    (void)state;
    struct desired *web = want("web", 0, NULL);
    struct desired *old = want("old", 1, NULL);
    struct engine_snap s = {0};
    applied(&s, old); /* create order in the lists: the plan must reorder */
    applied(&s, web);
    struct plan_bottle_in b = {.name = "web", .d = web};
    struct plan_in in = base_in(&s, &b, 1);
    struct plan *p = run(&in);
    assert_int_equal(p->n_bottles, 2);
    expect(p, 0, "web", PLAN_UP_TO_DATE, NULL, 0);
    static const char *const del[] = {
        "delete agent bottle-old-agent orphan", "delete proxy bottle-old-proxy orphan",
        "delete cfg bottle-old-cfg orphan",     "delete work bottle-old-work orphan",
        "delete egr bottle-old-egr orphan",     "delete int bottle-old-int orphan",
    };
    expect(p, 1, "old", PLAN_ORPHAN, del, N(del));
    assert_int_equal(plan_exit_code(p, 1), 2);
    plan_free(p);

    /* A name in keep (declared, failed to resolve) is left alone. */
    const char *keep[] = {"old"};
    in.keep = keep;
    in.n_keep = 1;
    p = run(&in);
    assert_int_equal(p->n_bottles, 1);
    plan_free(p);
    in.keep = NULL;
    in.n_keep = 0;

    /* A failed bottle is not an orphan: its resources stay. */
    struct plan_bottle_in two[] = {{.name = "old", .error = "secret X is missing"},
                                   {.name = "web", .d = web}};
    in.bottles = two;
    in.n_bottles = 2;
    p = run(&in);
    assert_int_equal(p->n_bottles, 2);
    assert_int_equal(p->bottles[0].status, PLAN_FAILED);
    assert_string_equal(p->bottles[0].error, "secret X is missing");
    assert_int_equal(p->bottles[0].n_actions, 0);
    assert_int_equal(plan_exit_code(p, 1), 1);
    plan_free(p);

    /* Other instances' resources are never ours to delete. */
    snap_release(&s);
    memset(&s, 0, sizeof(s));
    applied(&s, old);
    for (size_t i = 0; i < s.ctrs.n; i++)
        set_label(&s.ctrs.v[i].labels, LABEL_INSTANCE, OTHER);
    for (size_t i = 0; i < s.vols.n; i++)
        set_label(&s.vols.v[i].labels, LABEL_INSTANCE, OTHER);
    for (size_t i = 0; i < s.nets.n; i++)
        set_label(&s.nets.v[i].labels, LABEL_INSTANCE, OTHER);
    in.bottles = &b;
    in.n_bottles = 1;
    p = run(&in);
    assert_int_equal(p->n_bottles, 1);
    assert_int_equal(p->bottles[0].n_actions, 6);
    plan_free(p);

    snap_release(&s);
    desired_free(old);
    desired_free(web);
}

static void test_incomplete_snapshot_deletes_nothing(void **state)
{
    (void)state;
    struct desired *web = want("web", 0, NULL);
    struct desired *old = want("old", 1, NULL);
    struct engine_snap s = {0};
    applied(&s, web);
    applied(&s, old);
    /* A stale name of web (an older --name-prefix) would be deleted too. */
    struct engine_volume *v = add_volume(&s, "team-web-work");
    copy_kvs(&v->labels, &web->res[ROLE_WORK].labels);
    struct plan_bottle_in b = {.name = "web", .d = web};
    struct plan_in in = base_in(&s, &b, 1);

    struct plan *p = run(&in);
    static const char *const stale[] = {
        "delete work team-web-work not desired (work team-web-work)"};
    expect(p, 0, "web", PLAN_CHANGES, stale, 1);
    assert_int_equal(p->bottles[1].status, PLAN_ORPHAN);
    plan_free(p);

    const char *blocked[] = {"/m/broken.md"};
    in.complete = 0;
    in.blocked_by = blocked;
    in.n_blocked_by = 1;
    p = run(&in);
    expect(p, 0, "web", PLAN_UP_TO_DATE, NULL, 0);
    expect(p, 1, "old", PLAN_REFUSED, NULL, 0);
    assert_string_equal(p->bottles[1].error, "gc blocked by /m/broken.md");
    assert_int_equal(p->n_gc_blocked_by, 1);
    assert_string_equal(p->gc_blocked_by[0], "/m/broken.md");
    assert_int_equal(p->n_guards, 1);
    assert_string_equal(p->guards[0].guard, "incomplete-snapshot");
    for (size_t i = 0; i < p->n_bottles; i++)
        for (size_t k = 0; k < p->bottles[i].n_actions; k++)
            assert_int_not_equal(p->bottles[i].actions[k].act, PLAN_DELETE);
    assert_int_equal(plan_exit_code(p, 1), 1);

    /* The JSON document carries all of it. */
    char *text = plan_json(p, INSTANCE);
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "instance")->valuestring, INSTANCE);
    cJSON *gc = cJSON_GetObjectItem(j, "gc_blocked_by");
    assert_int_equal(cJSON_GetArraySize(gc), 1);
    assert_string_equal(cJSON_GetArrayItem(gc, 0)->valuestring, "/m/broken.md");
    cJSON *bs = cJSON_GetObjectItem(j, "bottles");
    assert_int_equal(cJSON_GetArraySize(bs), 2);
    cJSON *b1 = cJSON_GetArrayItem(bs, 1);
    assert_string_equal(cJSON_GetObjectItem(b1, "status")->valuestring, "refused");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(b1, "actions")), 0);
    cJSON_Delete(j);
    free(text);
    plan_free(p);

    snap_release(&s);
    desired_free(old);
    desired_free(web);
}

static void test_empty_desired_refused(void **state)
{
    (void)state;
    struct desired *web = want("web", 0, NULL);
    struct engine_snap s = {0};
    applied(&s, web);
    struct plan_in in = base_in(&s, NULL, 0);
    struct plan *p = run(&in);
    assert_int_equal(p->n_bottles, 1);
    expect(p, 0, "web", PLAN_REFUSED, NULL, 0);
    assert_string_equal(p->guards[0].guard, "allow-empty");
    assert_non_null(strstr(p->bottles[0].error, "--allow-empty"));
    assert_int_equal(plan_exit_code(p, 1), 1);
    plan_free(p);

    in.allow_empty = 1;
    p = run(&in);
    assert_int_equal(p->bottles[0].status, PLAN_ORPHAN);
    assert_int_equal(p->bottles[0].n_actions, 6);
    assert_int_equal(p->n_guards, 0);
    plan_free(p);

    /* Nothing on the engine: an empty set is fine. */
    struct engine_snap none = {0};
    struct plan_in in2 = base_in(&none, NULL, 0);
    p = run(&in2);
    assert_int_equal(p->n_bottles, 0);
    assert_int_equal(plan_exit_code(p, 1), 0);
    plan_free(p);

    snap_release(&s);
    desired_free(web);
}

static void test_max_deletes(void **state)
{
    (void)state;
    struct desired *web = want("web", 0, NULL);
    struct desired *old = want("old", 1, NULL);
    struct desired *gone = want("gone", 2, NULL);
    struct desired *db = want("db", 3, NULL);
    struct engine_snap s = {0};
    applied(&s, web);
    applied(&s, old);
    applied(&s, gone);
    applied(&s, db);
    struct plan_bottle_in b = {.name = "web", .d = web};
    struct plan_in in = base_in(&s, &b, 1);
    in.max_deletes = 2; /* three orphans */
    struct plan *p = run(&in);
    assert_int_equal(p->n_bottles, 4);
    assert_int_equal(p->n_refused, 3);
    for (size_t i = 1; i < 4; i++) {
        assert_int_equal(p->bottles[i].status, PLAN_REFUSED);
        assert_int_equal(p->bottles[i].n_actions, 0);
        assert_non_null(strstr(p->bottles[i].error, "--max-deletes 2"));
    }
    /* orphans by name */
    assert_string_equal(p->bottles[1].name, "db");
    assert_string_equal(p->bottles[2].name, "gone");
    assert_string_equal(p->bottles[3].name, "old");
    assert_string_equal(p->guards[0].guard, "max-deletes");
    assert_int_equal(plan_exit_code(p, 0), 1);
    plan_free(p);

    in.force = 1;
    p = run(&in);
    assert_int_equal(p->n_refused, 0);
    assert_int_equal(p->n_changes, 18);
    plan_free(p);

    in.force = 0;
    in.max_deletes = 3;
    p = run(&in);
    assert_int_equal(p->n_refused, 0);
    plan_free(p);

    /* The default is 10. */
    in.max_deletes = -1;
    p = run(&in);
    assert_int_equal(p->n_refused, 0);
    plan_free(p);

    snap_release(&s);
    desired_free(db);
    desired_free(gone);
    desired_free(old);
    desired_free(web);
}

static void test_conflicts(void **state)
{
    (void)state;
    struct desired *web = want("web", 0, NULL);
    struct desired *db = want("db", 1, NULL);
    struct engine_snap s = {0};
    /* An unlabelled container holds web's agent name. */
    add_container(&s, "bottle-web-agent");
    /* Another instance holds db's work volume. */
    struct engine_volume *v = add_volume(&s, "bottle-db-work");
    copy_kvs(&v->labels, &db->res[ROLE_WORK].labels);
    set_label(&v->labels, LABEL_INSTANCE, OTHER);
    struct plan_bottle_in b[] = {{.name = "db", .d = db}, {.name = "web", .d = web}};
    struct plan_in in = base_in(&s, b, 2);
    struct plan *p = run(&in);
    expect(p, 0, "db", PLAN_CONFLICT, NULL, 0);
    assert_non_null(strstr(p->bottles[0].error, "volume 'bottle-db-work'"));
    assert_non_null(strstr(p->bottles[0].error, "instance " OTHER));
    expect(p, 1, "web", PLAN_CONFLICT, NULL, 0);
    assert_non_null(strstr(p->bottles[1].error, "conflict: container 'bottle-web-agent'"));
    assert_non_null(strstr(p->bottles[1].error, "not managed by bottled"));
    assert_int_equal(p->n_failed, 2);
    assert_int_equal(plan_exit_code(p, 1), 1);
    plan_free(p);

    /* A new instance (no state): anything with the name is a conflict. */
    snap_release(&s);
    memset(&s, 0, sizeof(s));
    applied(&s, web);
    in = base_in(&s, &b[1], 1);
    in.instance = NULL;
    p = run(&in);
    expect(p, 0, "web", PLAN_CONFLICT, NULL, 0);
    plan_free(p);

    snap_release(&s);
    desired_free(db);
    desired_free(web);
}

static void test_text_output(void **state)
{
    (void)state;
    struct desired *web = want("web", 0, NULL);
    struct engine_snap s = {0};
    struct plan_bottle_in b = {.name = "web", .d = web};
    struct plan_in in = base_in(&s, &b, 1);
    struct plan *p = run(&in);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    plan_print_text(p, f, 0);
    fclose(f);
    assert_non_null(strstr(buf, "web/int: create (missing)\n"));
    assert_non_null(strstr(buf, "web/agent: create (missing)\n"));
    assert_non_null(strstr(buf, "Plan: 6 to create"));
    free(buf);
    plan_free(p);
    desired_free(web);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_engine_creates_in_order),
        cmocka_unit_test(test_converged_is_empty),
        cmocka_unit_test(test_spec_change_recreates),
        cmocka_unit_test(test_drift),
        cmocka_unit_test(test_orphan_deleted_in_order),
        cmocka_unit_test(test_incomplete_snapshot_deletes_nothing),
        cmocka_unit_test(test_empty_desired_refused),
        cmocka_unit_test(test_max_deletes),
        cmocka_unit_test(test_conflicts),
        cmocka_unit_test(test_text_output),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
