/*
 * cmd_plan.c - `bottled plan`: the actions a reconcile pass would take,
 * each with its cause; no side effects.
 *
 * Read-only: the state dir is opened STATE_RDONLY (works while `watch`
 * holds the lock; nothing is created, no CA is minted), the engine only
 * sees list calls (one per kind), image lookups and, for a running
 * sidecar of ours, one exec of `curl .../config-hash` to read the config
 * hash it serves.  Without a state dir everything of ours is new: the
 * instance is "(new)" (or --instance), every bottle is created.
 *
 * Exit status (architecture.md): 0 nothing to do (or changes, without
 * --detailed-exitcode); 2 changes planned with --detailed-exitcode; 1 a
 * bottle failed, is in conflict, or a guard refused a deletion; 2 (1 with
 * --detailed-exitcode) bottled's own configuration is wrong; 3 the engine
 * or the state database is unreachable.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "build_config.h"
#include "buf.h"
#include "cmd.h"
#include "desired.h"
#include "engine.h"
#include "err.h"
#include "loader.h"
#include "plan.h"
#include "render.h"
#include "secrets.h"
#include "state.h"
#include "xalloc.h"

#define ADMIN_CONFIG_HASH "http://127.0.0.1:9098/config-hash"
/* Stands in for a bottle CA that is not minted yet: only a create uses it. */
#define NO_CA_PEM    "-----BEGIN CERTIFICATE-----\nbm8gQ0EgeWV0\n-----END CERTIFICATE-----\n"
#define NEW_INSTANCE "000000000000"

struct image_cache {
    char **ref;
    char **id; /* NULL: missing */
    int *err;
    size_t n;
};

/* The id of ref (cached); 0, BD_E_NOIMAGE, or an engine error. */
static int image_lookup(struct engine *e, struct image_cache *c, const char *ref, const char **id)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->ref[i], ref)) {
            *id = c->id[i];
            return c->err[i];
        }
    char *got = NULL;
    int rc = engine_image_id(e, ref, &got);
    c->ref = xrealloc(c->ref, (c->n + 1) * sizeof(*c->ref));
    c->id = xrealloc(c->id, (c->n + 1) * sizeof(*c->id));
    c->err = xrealloc(c->err, (c->n + 1) * sizeof(*c->err));
    c->ref[c->n] = xstrdup(ref);
    c->id[c->n] = rc ? NULL : got;
    c->err[c->n] = rc;
    c->n++;
    *id = rc ? NULL : got;
    return rc;
}

static void image_cache_release(struct image_cache *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->ref[i]);
        free(c->id[i]);
    }
    free(c->ref);
    free(c->id);
    free(c->err);
}

/* The first error about bottle name (or its file), for a one-line reason. */
static const char *first_error(const struct diag_list *l, const char *name, const char *path)
{
    for (size_t k = 0; k < l->n; k++)
        if (l->v[k].level == DIAG_ERROR && l->v[k].bottle && !strcmp(l->v[k].bottle, name))
            return l->v[k].msg;
    for (size_t k = 0; path && k < l->n; k++)
        if (l->v[k].level == DIAG_ERROR && !strcmp(l->v[k].path, path))
            return l->v[k].msg;
    return NULL;
}

static int cmp_bottle_in(const void *a, const void *b)
{
    return strcmp(((const struct plan_bottle_in *)a)->name,
                  ((const struct plan_bottle_in *)b)->name);
}

/* Asks a running sidecar of ours (one that is kept: same spec hash) for
 * the config hash it serves. */
static void query_config_hash(struct engine *e, const struct engine_container *c,
                              struct plan_bottle_in *bi, char out[SHA256_HEX_LEN + 1])
{
    struct engine_exec_spec spec = {0};
    engine_strv_add(&spec.cmd, "curl");
    engine_strv_add(&spec.cmd, "-s");
    engine_strv_add(&spec.cmd, "--max-time");
    engine_strv_add(&spec.cmd, "2");
    engine_strv_add(&spec.cmd, ADMIN_CONFIG_HASH);
    spec.max_output = 4096;
    spec.timeout_s = 10;
    struct engine_exec_result r = {0};
    bi->config_state = PLAN_CONFIG_UNKNOWN;
    if (engine_exec(e, c->id, &spec, &r) == 0 && r.exit_code == 0 && r.out.len >= SHA256_HEX_LEN) {
        const char *s = r.out.data;
        size_t n = strspn(s, "0123456789abcdef");
        if (n == SHA256_HEX_LEN && (r.out.len == n || s[n] == '\n')) {
            memcpy(out, s, SHA256_HEX_LEN);
            out[SHA256_HEX_LEN] = '\0';
            bi->config_hash = out;
            bi->config_state = PLAN_CONFIG_KNOWN;
        }
    }
    engine_exec_result_release(&r);
    engine_strv_release(&spec.cmd);
}

int cmd_plan(const struct cmd *cmd, struct opts *o, int argc, char **argv)
{
    (void)argv;
    if (argc)
        return usage_error(cmd, "takes no arguments (got %d)", argc);
    const int usage_rc = o->detailed_exitcode ? EXIT_FAILED : EXIT_USAGE;
    int ret = usage_rc;
    struct diag_list diags, bdiags;
    diag_list_init(&diags);
    diag_list_init(&bdiags);
    struct secret_store *store = NULL;
    struct render_knobs knobs = {0};
    int have_knobs = 0;
    struct state *st = NULL;
    struct manifest_set set = {0};
    int have_set = 0;
    struct engine *e = NULL;
    struct engine_network_list nets = {0};
    struct engine_volume_list vols = {0};
    struct engine_container_list ctrs = {0};
    struct image_cache images = {0};
    struct plan_bottle_in *in_b = NULL;
    struct desired **ds = NULL;
    char(*hashes)[SHA256_HEX_LEN + 1] = NULL;
    const char **keep = NULL, **blocked = NULL;
    size_t n_in = 0, n_keep = 0, n_blocked = 0;
    const char **used = NULL;
    size_t n_used = 0;
    char(*allocs)[DESIRED_SUBNET_STR_MAX] = NULL;
    struct plan *p = NULL;
    struct arena a;
    arena_init(&a);
    char *secrets_path = NULL;
    unsigned char zero_key[32] = {0};
    const char *pool = o->subnet_pool ? o->subnet_pool : DESIRED_SUBNET_POOL;
    char *proxy_ref = o->proxy_image ? xstrdup(o->proxy_image)
                                     : xasprintf("localhost/bottled-proxy:%s", BOTTLED_VERSION);

    /* bottled's own configuration first: any problem here is exit 2. */
    char *state_dir = opts_state_dir(o);
    if (!state_dir)
        goto out;
    {
        char probe[1][DESIRED_SUBNET_STR_MAX];
        if (subnet_alloc(pool, NULL, 0, 0, probe) != 0) {
            usage_error(cmd, "--subnet-pool '%s': want an IPv4 CIDR a.b.c.d/n, n <= 28", pool);
            goto out;
        }
    }
    secrets_path = o->secrets ? xstrdup(o->secrets) : xasprintf("%s/secrets", state_dir);
    int err = secret_store_load(secrets_path, o->secrets != NULL, o->secret_env.v, o->secret_env.n,
                                &diags, &store);
    diag_print_text(&diags, stderr);
    if (err) {
        fprintf(stderr, "bottled: plan: the secret store cannot be used\n");
        goto out;
    }
    diag_list_release(&diags);
    diag_list_init(&diags);
    err = render_knobs_init(&knobs, o->proxy_dns, o->proxy_add_host.v, o->proxy_add_host.n,
                            o->proxy_allow_private.v, o->proxy_allow_private.n,
                            o->proxy_upstream_ca, &diags);
    if (err) {
        diag_print_text(&diags, stderr);
        usage_error(cmd, "invalid --proxy-* settings");
        goto out;
    }
    have_knobs = 1;

    struct buf why;
    buf_init(&why, 0);
    struct state_open_opts so = {.dir = state_dir, .mode = STATE_RDONLY, .instance = o->instance};
    err = state_open(&so, &st, &why);
    if (err == BD_E_NOTFOUND) {
        st = NULL;
    } else if (err) {
        fprintf(stderr, "bottled: plan: state dir: %s\n", why.len ? why.data : bd_strerror(err));
        buf_release(&why);
        if (err == BD_E_PERM || err == BD_E_MISMATCH || err == BD_E_INVAL)
            goto out;
        ret = EXIT_UNAVAIL;
        goto out;
    }
    buf_release(&why);
    const char *instance = st ? state_instance_id(st) : o->instance;
    const unsigned char *key = st ? state_hmac_key(st) : zero_key;
    size_t key_len = st ? STATE_HMAC_KEY_LEN : sizeof(zero_key);

    have_set = 1;
    if (manifest_set_load(&set, o->dir, &diags) < 0) {
        diag_list_sort(&diags);
        diag_print_text(&diags, stderr);
        usage_error(cmd, "cannot read manifest directory '%s'", o->dir);
        goto out;
    }
    if (!o->quiet && !o->json && diags.n) {
        diag_list_sort(&diags);
        diag_print_text(&diags, stderr);
    }

    char emsg[512] = "";
    err = engine_open(o->engine, &e, emsg, sizeof(emsg));
    if (err) {
        fprintf(stderr, "bottled: plan: engine: %s\n", emsg[0] ? emsg : bd_strerror(err));
        ret = EXIT_UNAVAIL;
        goto out;
    }
    /* One list call per kind, everything on the engine: foreign names are
     * conflicts and every network's subnet is taken. */
    if (engine_network_list(e, NULL, &nets) || engine_volume_list(e, NULL, &vols) ||
        engine_container_list(e, NULL, &ctrs)) {
        fprintf(stderr, "bottled: plan: engine: %s\n", engine_errmsg(e));
        ret = EXIT_UNAVAIL;
        goto out;
    }
    used = xcalloc(nets.n + 2 * set.n + 1, sizeof(*used));
    allocs = xcalloc(2 * set.n + 1, sizeof(*allocs));
    for (size_t i = 0; i < nets.n; i++)
        if (nets.v[i].subnet)
            used[n_used++] = nets.v[i].subnet;

    in_b = xcalloc(set.n + 1, sizeof(*in_b));
    ds = xcalloc(set.n + 1, sizeof(*ds));
    hashes = xcalloc(set.n + 1, sizeof(*hashes));
    keep = xcalloc(set.n + 1, sizeof(*keep));
    size_t n_alloc = 0;

    /* Bottles in name order, so subnets are picked the same way every time. */
    for (size_t i = 0; i < set.n; i++) {
        const struct bottle *decl = set.decls[i];
        const struct bottle *b = set.bottles[i];
        int seen = 0;
        for (size_t k = 0; k < n_in; k++)
            seen |= !strcmp(in_b[k].name, decl->name);
        if (seen)
            continue;
        if (set.dup[i] || !b || b->failed) {
            const char *m = first_error(&diags, decl->name, decl->path);
            in_b[n_in].name = decl->name;
            in_b[n_in].error =
                arena_printf(&a, "%s has errors%s%s", decl->path, m ? ": " : "", m ? m : "");
            n_in++;
            continue;
        }
        if (b->abstract)
            continue;
        in_b[n_in++].name = b->name;
    }
    qsort(in_b, n_in, sizeof(*in_b), cmp_bottle_in);

    for (size_t k = 0; k < n_in; k++) {
        struct plan_bottle_in *bi = &in_b[k];
        if (bi->error)
            continue;
        long idx = manifest_set_find(&set, bi->name);
        const struct bottle *b = set.bottles[idx];
        diag_list_release(&bdiags);
        diag_list_init(&bdiags);

        const char *proxy_id = NULL, *agent_id = NULL;
        int rc = image_lookup(e, &images, proxy_ref, &proxy_id);
        if (rc == BD_E_NOIMAGE) {
            bi->error = arena_printf(
                &a, "sidecar image %s not found in the engine: %s", proxy_ref,
                o->proxy_image ? "pull or build it (`bash scripts/build-proxy-image.sh` builds "
                                 "the default localhost/bottled-proxy:" BOTTLED_VERSION ")"
                               : "build it with `bash scripts/build-proxy-image.sh`");
            continue;
        } else if (rc) {
            fprintf(stderr, "bottled: plan: engine: %s\n", engine_errmsg(e));
            ret = EXIT_UNAVAIL;
            goto out;
        }
        const char *agent_ref = b->image ? b->image : DEFAULT_AGENT_IMAGE;
        rc = image_lookup(e, &images, agent_ref, &agent_id);
        if (rc == BD_E_NOIMAGE) {
            bi->error = arena_printf(&a, "agent image %s not found in the engine: %s", agent_ref,
                                     !strcmp(agent_ref, DEFAULT_AGENT_IMAGE)
                                         ? "build it with `bash scripts/setup.sh`"
                                         : "pull or build it");
            continue;
        } else if (rc) {
            fprintf(stderr, "bottled: plan: engine: %s\n", engine_errmsg(e));
            ret = EXIT_UNAVAIL;
            goto out;
        }

        struct render_output *r = NULL;
        if (render_bottle(b, store, &knobs, key, key_len, NULL, &bdiags, &r) < 0) {
            const char *m = first_error(&bdiags, b->name, NULL);
            bi->error = arena_printf(&a, "sidecar config: %s", m ? m : "cannot be rendered");
            continue;
        }

        char *cert = NULL, *ckey = NULL;
        if (st && instance) {
            rc = state_bottle_ca(st, b->name, &cert, &ckey);
            if (ckey) {
                OPENSSL_cleanse(ckey, strlen(ckey));
                free(ckey);
            }
            if (rc && rc != BD_E_NOTFOUND) {
                bi->error = arena_printf(&a, "bottle CA: %s", bd_strerror(rc));
                render_output_free(r);
                continue;
            }
        }
        bi->no_ca = cert == NULL;

        /* Subnets: keep the one recorded on our existing network, else allocate. */
        const char *sub[2] = {NULL, NULL};
        enum desired_role nroles[2] = {ROLE_INT, ROLE_EGR};
        for (int j = 0; j < 2; j++) {
            const char *nm = desired_name(&a, o->name_prefix, b->name, nroles[j]);
            const struct engine_network *n = plan_find_network(&nets, nm);
            if (n && plan_is_ours(&n->labels, instance)) {
                const char *s = engine_kvs_get(&n->labels, LABEL_SUBNET);
                sub[j] = s ? s : n->subnet;
            }
        }
        size_t need = (size_t)(!sub[0]) + (size_t)(!sub[1]);
        if (need) {
            rc = subnet_alloc(pool, used, n_used, need, allocs + n_alloc);
            if (rc) {
                bi->error =
                    arena_printf(&a, "no free /28 in --subnet-pool %s%s", pool,
                                 rc == BD_E_INVAL ? " (a network's subnet is malformed)" : "");
                render_output_free(r);
                free(cert);
                continue;
            }
            for (int j = 0; j < 2; j++)
                if (!sub[j]) {
                    sub[j] = allocs[n_alloc];
                    used[n_used++] = allocs[n_alloc++];
                }
        }

        struct desired_opts dopt = {
            .instance = instance ? instance : NEW_INSTANCE,
            .name_prefix = o->name_prefix,
            .proxy_image = proxy_ref,
            .proxy_image_id = proxy_id,
            .agent_image_id = agent_id,
            .int_subnet = sub[0],
            .egr_subnet = sub[1],
            .ca_cert_pem = cert ? cert : NO_CA_PEM,
            .ca_cert_len = strlen(cert ? cert : NO_CA_PEM),
            .config_hash = r->config_hash,
            .skills_root = set.root,
        };
        rc = desired_bottle(b, &dopt, &bdiags, &ds[k]);
        render_output_free(r);
        free(cert);
        if (rc) {
            const char *m = first_error(&bdiags, b->name, NULL);
            bi->error = arena_strdup(&a, m ? m : "cannot compute its resources");
            continue;
        }
        bi->d = ds[k];

        const struct engine_container *px = plan_find_container(&ctrs, ds[k]->res[ROLE_PROXY].name);
        const char *px_hash = px ? engine_kvs_get(&px->labels, LABEL_SPEC_HASH) : NULL;
        if (px && plan_is_ours(&px->labels, instance) && px->state &&
            !strcmp(px->state, "running") && px_hash &&
            !strcmp(px_hash, ds[k]->res[ROLE_PROXY].spec_hash))
            query_config_hash(e, px, bi, hashes[k]);
    }

    /* Names declared but not planned (failed ones) keep their resources. */
    for (size_t i = 0; i < set.n; i++) {
        int planned = 0;
        for (size_t k = 0; k < n_in; k++)
            planned |= !strcmp(in_b[k].name, set.decls[i]->name);
        if (!planned && !set.decls[i]->abstract)
            keep[n_keep++] = set.decls[i]->name;
    }
    if (!set.complete) {
        blocked = xcalloc(diags.n + 1, sizeof(*blocked));
        for (size_t k = 0; k < diags.n; k++) {
            if (diags.v[k].level != DIAG_ERROR)
                continue;
            int dup = 0;
            for (size_t j = 0; j < n_blocked; j++)
                dup |= !strcmp(blocked[j], diags.v[k].path);
            if (!dup)
                blocked[n_blocked++] = diags.v[k].path;
        }
        if (!n_blocked)
            blocked[n_blocked++] = o->dir;
    }

    struct plan_in pin = {
        .instance = instance,
        .bottles = in_b,
        .n_bottles = n_in,
        .keep = keep,
        .n_keep = n_keep,
        .complete = set.complete,
        .blocked_by = blocked,
        .n_blocked_by = n_blocked,
        .allow_empty = o->allow_empty,
        .force = o->force,
        .max_deletes = o->max_deletes,
        .networks = &nets,
        .volumes = &vols,
        .containers = &ctrs,
    };
    /* Every bottle the engine has for us that the manifests do not name is an
     * orphan; "empty desired set" means no runnable bottle is declared. */
    if (plan_compute(&pin, &p) < 0) {
        fprintf(stderr, "bottled: plan: internal error\n");
        ret = EXIT_FAILED;
        goto out;
    }
    if (o->json) {
        char *text = plan_json(p, instance);
        fputs(text, stdout);
        free(text);
    } else {
        if (!o->quiet)
            printf("instance %s\n", instance ? instance : "(new)");
        plan_print_text(p, stdout, o->verbose);
    }
    ret = plan_exit_code(p, o->detailed_exitcode);
out:
    plan_free(p);
    for (size_t k = 0; ds && k < set.n + 1; k++)
        desired_free(ds[k]);
    free(ds);
    free(in_b);
    free(hashes);
    free(keep);
    free(blocked);
    free(used);
    free(allocs);
    image_cache_release(&images);
    engine_container_list_release(&ctrs);
    engine_volume_list_release(&vols);
    engine_network_list_release(&nets);
    engine_close(e);
    if (have_set)
        manifest_set_release(&set);
    state_close(st);
    if (have_knobs)
        render_knobs_release(&knobs);
    secret_store_free(store);
    free(secrets_path);
    free(state_dir);
    free(proxy_ref);
    arena_release(&a);
    diag_list_release(&bdiags);
    diag_list_release(&diags);
    return ret;
}
