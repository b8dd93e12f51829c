/*
 * pass.c - one pass's inputs and its plan (see pass.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "admin.h"
#include "build_config.h"
#include "buf.h"
#include "canonical.h"
#include "err.h"
#include "gatestatus.h"
#include "hash.h"
#include "pass.h"
#include "xalloc.h"

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

/* Asks a running sidecar of ours (one that is kept: same spec hash) for
 * the config hash it serves. */

/*
 * The IPv4 routes of this host (/proc/net/route), as CIDR strings in the
 * pass's arena: a new bottle's subnets must not overlap them either, e.g.
 * the bridges of another engine on the same host, whose networks the
 * engine we talk to does not list.  Only directly connected routes count
 * (a route through a gateway is not a link here), the default route never.  Only
 * for a local engine (a unix socket); nothing on error.
 */
static void host_routes(struct arena *a, char ***ret, size_t *n)
{
    FILE *f = fopen("/proc/net/route", "re");
    if (!f)
        return;
    char line[512];
    size_t cap = 0;
    if (!fgets(line, sizeof(line), f)) { /* the header */
        fclose(f);
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        char iface[64];
        unsigned dst = 0, gw = 0, flags = 0, refcnt = 0, use = 0, metric = 0, mask = 0;
        if (sscanf(line, "%63s %x %x %x %u %u %u %x", iface, &dst, &gw, &flags, &refcnt, &use,
                   &metric, &mask) != 8 ||
            mask == 0 || (flags & 0x2)) /* RTF_GATEWAY: not a local link */
            continue;
        /* little-endian on the hosts we run on: the kernel prints raw bytes */
        unsigned char d[4], m[4];
        memcpy(d, &dst, 4);
        memcpy(m, &mask, 4);
        int prefix = 0;
        for (int i = 0; i < 4; i++)
            for (int b = 7; b >= 0; b--)
                prefix += (m[i] >> b) & 1;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            *ret = xrealloc(*ret, cap * sizeof(**ret));
        }
        (*ret)[(*n)++] = arena_printf(a, "%u.%u.%u.%u/%d", d[0], d[1], d[2], d[3], prefix);
    }
    fclose(f);
}

/* Was this container id inspected and recorded by an earlier pass? */
struct known_id {
    const char *role, *id;
    int found;
};

static int known_id_cb(const struct state_resource *r, void *arg)
{
    struct known_id *k = arg;
    if (r->role && r->engine_id && !strcmp(r->role, k->role) && !strcmp(r->engine_id, k->id))
        k->found = 1;
    return 0;
}

static int strv_has(const struct engine_strv *v, const char *s)
{
    for (size_t i = 0; i < v->n; i++)
        if (!strcmp(v->v[i], s))
            return 1;
    return 0;
}

/*
 * The fields that cannot change after create, for containers of ours whose
 * id no earlier pass recorded (a new id: created by a run that crashed
 * before recording it, by hand with our labels, or the database was lost).
 * Recorded ids were checked when they were new.
 */
static void immutable_check(struct pass *ps, size_t k)
{
    static const enum desired_role roles[] = {ROLE_PROXY, ROLE_GATE, ROLE_AGENT};
    const struct desired *d = ps->pb[k].d;
    for (size_t i = 0; i < sizeof(roles) / sizeof(*roles); i++) {
        const struct desired_resource *res = &d->res[roles[i]];
        if (!res->name)
            continue;
        const struct engine_container *c = plan_find_container(&ps->ctrs, res->name);
        if (!c || !c->id || !plan_is_ours(&c->labels, ps->instance))
            continue;
        const char *hash = engine_kvs_get(&c->labels, LABEL_SPEC_HASH);
        if (!hash || strcmp(hash, res->spec_hash))
            continue; /* recreated anyway */
        struct known_id kid = {desired_role_name(res->role), c->id, 0};
        if (ps->st)
            (void)state_resources_each(ps->st, d->bottle, known_id_cb, &kid);
        if (kid.found)
            continue;
        struct engine_container_info info;
        if (engine_container_inspect(ps->e, c->id, &info) != 0)
            continue;
        const struct engine_container_spec *want = &res->container;
        const char *why = NULL;
        if (info.privileged)
            why = "drift: privileged";
        for (size_t j = 0; !why && j < info.caps.n; j++)
            if (!strv_has(&want->cap_add, info.caps.v[j]))
                why = arena_printf(&ps->a, "drift: capability %s", info.caps.v[j]);
        for (size_t j = 0; !why && j < want->cap_add.n; j++)
            if (!strv_has(&info.caps, want->cap_add.v[j]))
                why = arena_printf(&ps->a, "drift: capability %s missing", want->cap_add.v[j]);
        if (!why && want->no_new_privileges) {
            int nnp = 0;
            for (size_t j = 0; j < info.security_opt.n; j++)
                nnp |= !strncmp(info.security_opt.v[j], "no-new-privileges", 17) &&
                       !strstr(info.security_opt.v[j], "false");
            if (!nnp)
                why = "drift: no-new-privileges missing";
        }
        ps->in[k].immutable_drift[roles[i]] = why;
        engine_container_info_release(&info);
    }
}

long pass_find(const struct pass *ps, const char *name)
{
    for (size_t k = 0; k < ps->n; k++)
        if (!strcmp(ps->in[k].name, name))
            return (long)k;
    return -1;
}

static int fail_config(struct pass *ps)
{
    return ps->o->detailed_exitcode ? EXIT_FAILED : EXIT_USAGE;
}

/* Secrets, knobs and the subnet pool: bottled's own configuration. */
static int check_config(struct pass *ps)
{
    const struct opts *o = ps->o;
    struct diag_list diags;
    const char *pool = o->subnet_pool ? o->subnet_pool : DESIRED_SUBNET_POOL;
    char probe[1][DESIRED_SUBNET_STR_MAX];
    if (subnet_alloc(pool, NULL, 0, 0, probe) != 0) {
        usage_error(ps->cmd, "--subnet-pool '%s': want an IPv4 CIDR a.b.c.d/n, n <= 28", pool);
        return fail_config(ps);
    }
    if (o->forge_ca) {
        FILE *f = fopen(o->forge_ca, "re");
        if (!f) {
            usage_error(ps->cmd, "--forge-ca '%s': %s", o->forge_ca, strerror(errno));
            return fail_config(ps);
        }
        fclose(f);
    }
    char *secrets_path = o->secrets ? xstrdup(o->secrets) : xasprintf("%s/secrets", ps->state_dir);
    diag_list_init(&diags);
    int err = secret_store_load(secrets_path, o->secrets != NULL, o->secret_env.v, o->secret_env.n,
                                &diags, &ps->store);
    free(secrets_path);
    diag_print_text(&diags, stderr);
    diag_list_release(&diags);
    if (err) {
        fprintf(stderr, "bottled: %s: the secret store cannot be used\n", ps->cmd->name);
        return fail_config(ps);
    }
    diag_list_init(&diags);
    err = render_knobs_init(&ps->knobs, o->proxy_dns, o->proxy_add_host.v, o->proxy_add_host.n,
                            o->proxy_allow_private.v, o->proxy_allow_private.n,
                            o->proxy_upstream_ca, &diags);
    if (err) {
        diag_print_text(&diags, stderr);
        diag_list_release(&diags);
        usage_error(ps->cmd, "invalid --proxy-* settings");
        return fail_config(ps);
    }
    diag_list_release(&diags);
    ps->have_knobs = 1;
    return 0;
}

static int open_state(struct pass *ps)
{
    struct buf why;
    buf_init(&why, 0);
    struct state_open_opts so = {
        .dir = ps->state_dir,
        .mode = ps->mode == PASS_APPLY ? STATE_EXCLUSIVE : STATE_RDONLY,
        .instance = ps->o->instance,
    };
    int err = state_open(&so, &ps->st, &why);
    if (err == BD_E_NOTFOUND && ps->mode == PASS_READONLY) {
        ps->st = NULL;
        buf_release(&why);
        return 0;
    }
    if (err) {
        fprintf(stderr, "bottled: %s: state dir %s: %s\n", ps->cmd->name, ps->state_dir,
                why.len ? why.data : bd_strerror(err));
        buf_release(&why);
        ps->st = NULL;
        if (err == BD_E_PERM || err == BD_E_MISMATCH || err == BD_E_INVAL)
            return fail_config(ps);
        return EXIT_UNAVAIL;
    }
    buf_release(&why);
    return 0;
}

static void manifest_hash(const struct bottle *b, char out[65])
{
    out[0] = '\0';
    if (!b)
        return;
    char *text = bottle_canonical_text(b, 0);
    if (!text)
        return;
    sha256_hex(text, strlen(text), out);
    free(text);
}

/* The first file of a ustar archive (engine_archive_get()); NULL if none. */
static const char *tar_first_file(const struct buf *tar, size_t *ret_len)
{
    if (tar->len < 1024 || (tar->data[156] != '0' && tar->data[156] != '\0'))
        return NULL;
    char sz[13];
    memcpy(sz, tar->data + 124, 12);
    sz[12] = '\0';
    size_t len = (size_t)strtoul(sz, NULL, 8);
    if (len > tar->len - 512)
        return NULL;
    *ret_len = len;
    return tar->data + 512;
}

struct learned {
    struct arena *a;
    const char *repo;
    const char *key;
};

static int learned_cb(const char *bottle, const char *repo, const char *host_key, void *arg)
{
    struct learned *l = arg;
    (void)bottle;
    if (!strcmp(repo, l->repo))
        l->key = arena_strdup(l->a, host_key);
    return 0;
}

/*
 * PASS_APPLY: reads the status file of the bottle's gate (if it has one of
 * ours): learned host keys go into the database (unless the manifest pins
 * one), the newest authentication failure into pbk->auth_at.  Best effort:
 * a gate that wrote nothing yet, or garbage, changes nothing.
 */
static void read_gate_status(struct pass *ps, size_t k)
{
    struct pass_bottle *pbk = &ps->pb[k];
    const struct bottle *b = pbk->b;
    const char *name = desired_name(&ps->a, ps->o->name_prefix, b->name, ROLE_GATE);
    const struct engine_container *c = plan_find_container(&ps->ctrs, name);
    if (!c || !c->id || !plan_is_ours(&c->labels, ps->instance))
        return;
    struct buf tar;
    buf_init(&tar, 0);
    struct engine_path_stat pst = {0};
    int rc = engine_archive_get(ps->e, c->id, GATE_STATUS_PATH, GATE_STATUS_MAX + 4096, &tar, &pst);
    engine_path_stat_release(&pst);
    size_t len = 0;
    const char *text = rc == 0 ? tar_first_file(&tar, &len) : NULL;
    struct gate_status gs;
    if (text && gate_status_parse(text, len, &gs) == 0) {
        for (size_t i = 0; i < b->n_repos; i++) {
            const struct m_repo *m = &b->repos[i];
            int64_t at = gate_status_auth_at(&gs, m->name);
            if (at > pbk->auth_at)
                pbk->auth_at = at;
            struct learned have = {&ps->a, m->name, NULL};
            (void)state_host_keys_each(ps->st, b->name, learned_cb, &have);
            for (size_t j = 0; !m->host_key && j < gs.n_keys; j++)
                if (!strcmp(gs.keys[j].repo, m->name) &&
                    (!have.key || strcmp(have.key, gs.keys[j].host_key)) &&
                    state_host_key_put(ps->st, b->name, m->name, gs.keys[j].host_key) == 0) {
                    char *d = xasprintf("repo %s: the host key the gate learned is pinned: %.80s",
                                        m->name, gs.keys[j].host_key);
                    (void)state_event_add(ps->st, b->name, "host-key", d);
                    free(d);
                }
        }
        gate_status_release(&gs);
    }
    buf_release(&tar);
}

/* The bottle's repos for the gate: keys, forge places, host keys.  0, or
 * bi->error set. */
static int resolve_repos(struct pass *ps, size_t k, struct desired_gate_repo **ret)
{
    struct pass_bottle *pbk = &ps->pb[k];
    const struct bottle *b = pbk->b;
    struct arena *a = &ps->a;
    *ret = NULL;
    if (!b->n_repos) {
        /* records of repos it had: revoked by the keys phase */
        ps->in[k].keys_cause = dk_cause(a, ps->st, b->name, NULL, 0, 0);
        return 0;
    }
    if (ps->mode == PASS_APPLY && ps->st)
        read_gate_status(ps, k);
    pbk->repos = xcalloc(b->n_repos, sizeof(*pbk->repos));
    struct desired_gate_repo *g = arena_alloc(a, b->n_repos * sizeof(*g));
    for (size_t i = 0; i < b->n_repos; i++) {
        char *err = NULL;
        struct dk_repo *r = &pbk->repos[pbk->n_repos];
        int rc = dk_repo_resolve(a, ps->st, ps->keys_dir, b->name, &b->repos[i], r, &err);
        if (rc) {
            ps->in[k].error = arena_printf(a, "git gate: %s", err ? err : bd_strerror(rc));
            free(err);
            return rc;
        }
        pbk->n_repos++;
        if (!r->host_key && ps->st) {
            struct learned l = {a, r->name, NULL};
            (void)state_host_keys_each(ps->st, b->name, learned_cb, &l);
            r->host_key = l.key;
        }
        g[i] = (struct desired_gate_repo){
            .name = r->name,
            .url = r->url,
            .host = r->host,
            .port = r->port,
            .host_key = r->host_key,
            .fingerprint = r->have_key ? arena_strdup(a, r->key.fingerprint) : NULL,
        };
    }
    ps->in[k].keys_cause = dk_cause(a, ps->st, b->name, pbk->repos, pbk->n_repos, pbk->auth_at);
    *ret = g;
    return 0;
}

/* The bottle's desired resources, or bi->error.  0, or EXIT_UNAVAIL. */
static int compute_bottle(struct pass *ps, size_t k)
{
    struct plan_bottle_in *bi = &ps->in[k];
    struct pass_bottle *pbk = &ps->pb[k];
    const struct bottle *b = pbk->b;
    const struct opts *o = ps->o;
    struct arena *a = &ps->a;
    struct image_cache *images = ps->images;
    struct diag_list bdiags;
    diag_list_init(&bdiags);
    const char *pool = o->subnet_pool ? o->subnet_pool : DESIRED_SUBNET_POOL;
    const unsigned char *key =
        ps->st ? state_hmac_key(ps->st) : (const unsigned char *)NEW_INSTANCE;
    size_t key_len = ps->st ? STATE_HMAC_KEY_LEN : strlen(NEW_INSTANCE);
    char *cert = NULL, *ckey = NULL;
    struct render_output *r = NULL;
    int ret = 0;

    const char *proxy_id = NULL, *agent_id = NULL;
    int rc = image_lookup(ps->e, images, ps->proxy_ref, &proxy_id);
    if (rc == BD_E_NOIMAGE) {
        bi->error = arena_printf(
            a, "sidecar image %s not found in the engine: %s", ps->proxy_ref,
            o->proxy_image ? "pull or build it (`bash scripts/build-proxy-image.sh` builds "
                             "the default localhost/bottled-proxy:" BOTTLED_VERSION ")"
                           : "build it with `bash scripts/build-proxy-image.sh`");
        goto out;
    } else if (rc) {
        fprintf(stderr, "bottled: %s: engine: %s\n", ps->cmd->name, engine_errmsg(ps->e));
        ret = EXIT_UNAVAIL;
        goto out;
    }
    const char *agent_ref = b->image ? b->image : DEFAULT_AGENT_IMAGE;
    rc = image_lookup(ps->e, images, agent_ref, &agent_id);
    if (rc == BD_E_NOIMAGE) {
        bi->error = arena_printf(a, "agent image %s not found in the engine: %s", agent_ref,
                                 !strcmp(agent_ref, DEFAULT_AGENT_IMAGE)
                                     ? "build it with `bash scripts/setup.sh`"
                                     : "pull or build it");
        goto out;
    } else if (rc) {
        fprintf(stderr, "bottled: %s: engine: %s\n", ps->cmd->name, engine_errmsg(ps->e));
        ret = EXIT_UNAVAIL;
        goto out;
    }

    const char *gate_id = NULL;
    if (b->n_repos) {
        rc = image_lookup(ps->e, images, ps->gate_ref, &gate_id);
        if (rc == BD_E_NOIMAGE) {
            bi->error =
                arena_printf(a, "gate image %s not found in the engine: %s", ps->gate_ref,
                             o->gate_image ? "pull or build it"
                                           : "build it with `bash scripts/build-gate-image.sh`");
            goto out;
        } else if (rc) {
            fprintf(stderr, "bottled: %s: engine: %s\n", ps->cmd->name, engine_errmsg(ps->e));
            ret = EXIT_UNAVAIL;
            goto out;
        }
    }
    struct desired_gate_repo *grepos = NULL;
    if (resolve_repos(ps, k, &grepos) != 0)
        goto out;

    if (ps->st) {
        rc = state_bottle_ca(ps->st, b->name, &cert, &ckey);
        if (rc && rc != BD_E_NOTFOUND) {
            bi->error = arena_printf(a, "bottle CA: %s", bd_strerror(rc));
            goto out;
        }
    }
    bi->no_ca = cert == NULL;
    struct render_ca ca = {cert, cert ? strlen(cert) : 0, ckey, ckey ? strlen(ckey) : 0};
    if (render_bottle(b, ps->store, &ps->knobs, key, key_len,
                      ps->mode == PASS_APPLY && cert && ckey ? &ca : NULL, &bdiags, &r) < 0) {
        const char *m = first_error(&bdiags, b->name, NULL);
        bi->error = arena_printf(a, "sidecar config: %s", m ? m : "cannot be rendered");
        goto out;
    }

    /* Subnets: keep the one recorded on our existing network, else allocate. */
    const char *sub[2] = {NULL, NULL};
    enum desired_role nroles[2] = {ROLE_INT, ROLE_EGR};
    for (int j = 0; j < 2; j++) {
        const char *nm = desired_name(a, o->name_prefix, b->name, nroles[j]);
        const struct engine_network *n = plan_find_network(&ps->nets, nm);
        if (n && plan_is_ours(&n->labels, ps->instance)) {
            const char *s = engine_kvs_get(&n->labels, LABEL_SUBNET);
            sub[j] = s ? s : n->subnet;
        }
    }
    size_t need = (size_t)(!sub[0]) + (size_t)(!sub[1]);
    if (need) {
        char got[2][DESIRED_SUBNET_STR_MAX];
        rc = subnet_alloc(pool, ps->used, ps->n_used, need, got);
        if (rc) {
            bi->error = arena_printf(a, "no free /28 in --subnet-pool %s%s", pool,
                                     rc == BD_E_INVAL ? " (a network's subnet is malformed)" : "");
            goto out;
        }
        size_t g = 0;
        for (int j = 0; j < 2; j++)
            if (!sub[j]) {
                sub[j] = ps->used[ps->n_used++] = arena_strdup(a, got[g++]);
            }
    }

    struct desired_opts dopt = {
        .instance = ps->instance ? ps->instance : NEW_INSTANCE,
        .name_prefix = o->name_prefix,
        .proxy_image = ps->proxy_ref,
        .proxy_image_id = proxy_id,
        .agent_image_id = agent_id,
        .int_subnet = sub[0],
        .egr_subnet = sub[1],
        .ca_cert_pem = cert ? cert : NO_CA_PEM,
        .ca_cert_len = strlen(cert ? cert : NO_CA_PEM),
        .config_hash = r->config_hash,
        .skills_root = ps->set.root,
        .gateway_dns = ps->podman,
        .gate_image = ps->gate_ref,
        .gate_image_id = gate_id,
        .repos = grepos,
        .n_repos = grepos ? b->n_repos : 0,
    };
    rc = desired_bottle(b, &dopt, &bdiags, &pbk->d);
    if (rc) {
        const char *m = first_error(&bdiags, b->name, NULL);
        bi->error = arena_strdup(a, m ? m : "cannot compute its resources");
        goto out;
    }
    bi->d = pbk->d;
    if (ps->mode == PASS_APPLY) {
        pbk->r = r; /* its CA files point into cert and ckey: keep them */
        r = NULL;
        pbk->ca_cert = cert;
        pbk->ca_key = ckey;
        cert = ckey = NULL;
    }

    const struct engine_container *px =
        plan_find_container(&ps->ctrs, pbk->d->res[ROLE_PROXY].name);
    const char *px_hash = px ? engine_kvs_get(&px->labels, LABEL_SPEC_HASH) : NULL;
    if (px && plan_is_ours(&px->labels, ps->instance) && px->state &&
        !strcmp(px->state, "running") && px_hash &&
        !strcmp(px_hash, pbk->d->res[ROLE_PROXY].spec_hash))
        bi->config_state = PLAN_CONFIG_UNKNOWN; /* asked below, all at once */
out:
    render_output_free(r);
    free(cert);
    if (ckey) {
        OPENSSL_cleanse(ckey, strlen(ckey));
        free(ckey);
    }
    diag_list_release(&bdiags);
    return ret;
}

static int prepare(struct pass *ps, const struct cmd *cmd, const struct opts *o,
                   enum pass_mode mode, struct state *st);

int pass_prepare(struct pass *ps, const struct cmd *cmd, const struct opts *o, enum pass_mode mode)
{
    return prepare(ps, cmd, o, mode, NULL);
}

int pass_prepare_on(struct pass *ps, const struct cmd *cmd, const struct opts *o, struct state *st)
{
    return prepare(ps, cmd, o, PASS_APPLY, st);
}

void pass_keep(struct pass *ps, const char *name)
{
    ps->keep = xrealloc(ps->keep, (ps->n_keep + 2) * sizeof(*ps->keep));
    ps->keep[ps->n_keep++] = arena_strdup(&ps->a, name);
}

void pass_hold(struct pass *ps, const char *name)
{
    ps->hold = xrealloc(ps->hold, (ps->n_hold + 2) * sizeof(*ps->hold));
    ps->hold[ps->n_hold++] = arena_strdup(&ps->a, name);
}

static int prepare(struct pass *ps, const struct cmd *cmd, const struct opts *o,
                   enum pass_mode mode, struct state *st)
{
    memset(ps, 0, sizeof(*ps));
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ps->start_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    ps->cmd = cmd;
    ps->o = o;
    ps->mode = mode;
    arena_init(&ps->a);
    diag_list_init(&ps->diags);
    ps->images = xcalloc(1, sizeof(struct image_cache));
    ps->proxy_ref = o->proxy_image ? xstrdup(o->proxy_image)
                                   : xasprintf("localhost/bottled-proxy:%s", BOTTLED_VERSION);
    ps->gate_ref = o->gate_image ? xstrdup(o->gate_image)
                                 : xasprintf("localhost/bottled-gate:%s", BOTTLED_VERSION);
    int rc;

    /* bottled's own configuration first: any problem here is exit 2. */
    ps->state_dir = opts_state_dir(o);
    if (!ps->state_dir)
        return fail_config(ps);
    ps->keys_dir = o->keys_dir ? xstrdup(o->keys_dir) : xasprintf("%s/keys", ps->state_dir);
    if ((rc = check_config(ps)) != 0)
        return rc;
    if (st) {
        ps->st = st;
        ps->st_borrowed = 1;
    } else if ((rc = open_state(ps)) != 0) {
        return rc;
    }
    ps->instance = ps->st ? state_instance_id(ps->st) : o->instance;

    ps->have_set = 1;
    if (manifest_set_load(&ps->set, o->dir, &ps->diags) < 0) {
        diag_list_sort(&ps->diags);
        diag_print_text(&ps->diags, stderr);
        usage_error(cmd, "cannot read manifest directory '%s'", o->dir);
        return fail_config(ps);
    }
    if (!o->quiet && !o->json && ps->diags.n) {
        diag_list_sort(&ps->diags);
        diag_print_text(&ps->diags, stderr);
    }

    char emsg[512] = "";
    if (o->engine)
        ps->engine_url = xstrdup(o->engine);
    else if (engine_default_url(&ps->engine_url) != 0)
        ps->engine_url = NULL;
    rc = engine_open(ps->engine_url, &ps->e, emsg, sizeof(emsg));
    if (rc) {
        fprintf(stderr, "bottled: %s: engine: %s\n", cmd->name, emsg[0] ? emsg : bd_strerror(rc));
        return EXIT_UNAVAIL;
    }
    ps->podman = engine_is_podman(ps->e);
    /* One list call per kind, everything on the engine: foreign names are
     * conflicts and every network's subnet is taken. */
    if (engine_network_list(ps->e, NULL, &ps->nets) || engine_volume_list(ps->e, NULL, &ps->vols) ||
        engine_container_list(ps->e, NULL, &ps->ctrs)) {
        fprintf(stderr, "bottled: %s: engine: %s\n", cmd->name, engine_errmsg(ps->e));
        return EXIT_UNAVAIL;
    }
    struct manifest_set *set = &ps->set;
    char **routes = NULL;
    size_t n_routes = 0;
    if (ps->engine_url && !strncmp(ps->engine_url, "unix://", 7))
        host_routes(&ps->a, &routes, &n_routes);
    ps->used = xcalloc(ps->nets.n + n_routes + 2 * set->n + 1, sizeof(*ps->used));
    for (size_t i = 0; i < ps->nets.n; i++)
        if (ps->nets.v[i].subnet)
            ps->used[ps->n_used++] = ps->nets.v[i].subnet;
    for (size_t i = 0; i < n_routes; i++)
        ps->used[ps->n_used++] = routes[i];
    free(routes);

    ps->in = xcalloc(set->n + 1, sizeof(*ps->in));
    ps->pb = xcalloc(set->n + 1, sizeof(*ps->pb));
    ps->hashes = xcalloc(set->n + 1, sizeof(*ps->hashes));
    ps->keep = xcalloc(set->n + 1, sizeof(*ps->keep));

    /* Bottles in name order, so subnets are picked the same way every time. */
    for (size_t i = 0; i < set->n; i++) {
        const struct bottle *decl = set->decls[i];
        const struct bottle *b = set->bottles[i];
        if (pass_find(ps, decl->name) >= 0)
            continue;
        if (set->dup[i] || !b || b->failed) {
            const char *m = first_error(&ps->diags, decl->name, decl->path);
            ps->in[ps->n].name = decl->name;
            ps->in[ps->n].error =
                arena_printf(&ps->a, "%s has errors%s%s", decl->path, m ? ": " : "", m ? m : "");
            ps->pb[ps->n].path = decl->path;
            ps->pb[ps->n].invalid = 1;
            ps->n++;
            continue;
        }
        if (b->abstract)
            continue;
        ps->in[ps->n].name = b->name;
        ps->pb[ps->n].b = b;
        ps->pb[ps->n].path = decl->path;
        ps->n++;
    }
    /* sort both arrays together */
    for (size_t i = 1; i < ps->n; i++)
        for (size_t j = i; j > 0 && strcmp(ps->in[j - 1].name, ps->in[j].name) > 0; j--) {
            struct plan_bottle_in t = ps->in[j];
            ps->in[j] = ps->in[j - 1];
            ps->in[j - 1] = t;
            struct pass_bottle u = ps->pb[j];
            ps->pb[j] = ps->pb[j - 1];
            ps->pb[j - 1] = u;
        }

    for (size_t k = 0; k < ps->n; k++) {
        manifest_hash(ps->pb[k].b, ps->pb[k].manifest_hash);
        if (ps->in[k].error)
            continue;
        if ((rc = compute_bottle(ps, k)) != 0)
            return rc;
        if (ps->pb[k].d)
            immutable_check(ps, k);
    }
    /* The config hash each running, kept sidecar serves: one batch. */
    struct admin_query *q = xcalloc(ps->n + 1, sizeof(*q));
    size_t *qk = xcalloc(ps->n + 1, sizeof(*qk));
    size_t nq = 0;
    for (size_t k = 0; k < ps->n; k++) {
        if (!ps->pb[k].d || ps->in[k].config_state != PLAN_CONFIG_UNKNOWN)
            continue;
        const struct desired_resource *px = &ps->pb[k].d->res[ROLE_PROXY];
        const struct engine_container *c = plan_find_container(&ps->ctrs, px->name);
        q[nq].container = c->id;
        q[nq].ip = px->container.endpoints[0].ipv4;
        qk[nq++] = k;
    }
    sidecar_admin_get_many(ps->e, "/config-hash", q, nq);
    for (size_t i = 0; i < nq; i++) {
        struct plan_bottle_in *bi = &ps->in[qk[i]];
        const char *body = q[i].body;
        if (q[i].rc == 0 && q[i].code == 200 && body) {
            size_t len = strspn(body, "0123456789abcdef");
            if (len == SHA256_HEX_LEN && (body[len] == '\0' || body[len] == '\n')) {
                memcpy(ps->hashes[qk[i]], body, SHA256_HEX_LEN);
                ps->hashes[qk[i]][SHA256_HEX_LEN] = '\0';
                bi->config_hash = ps->hashes[qk[i]];
                bi->config_state = PLAN_CONFIG_KNOWN;
            }
        }
        free(q[i].body);
    }
    free(q);
    free(qk);
    /* Invalid ones (not in in[] as runnable) keep their resources. */
    for (size_t k = 0; k < ps->n; k++)
        if (ps->pb[k].invalid)
            ps->keep[ps->n_keep++] = ps->in[k].name;
    if (!set->complete) {
        ps->blocked = xcalloc(ps->diags.n + 1, sizeof(*ps->blocked));
        for (size_t k = 0; k < ps->diags.n; k++) {
            if (ps->diags.v[k].level != DIAG_ERROR)
                continue;
            int dup = 0;
            for (size_t j = 0; j < ps->n_blocked; j++)
                dup |= !strcmp(ps->blocked[j], ps->diags.v[k].path);
            if (!dup)
                ps->blocked[ps->n_blocked++] = ps->diags.v[k].path;
        }
        if (!ps->n_blocked)
            ps->blocked[ps->n_blocked++] = o->dir;
    }
    return pass_plan(ps);
}

int pass_plan(struct pass *ps)
{
    const struct opts *o = ps->o;
    plan_free(ps->plan);
    ps->plan = NULL;
    struct plan_in pin = {
        .instance = ps->instance,
        .bottles = ps->in,
        .n_bottles = ps->n,
        .keep = ps->keep,
        .n_keep = ps->n_keep,
        .complete = ps->set.complete,
        .blocked_by = ps->blocked,
        .n_blocked_by = ps->n_blocked,
        .allow_empty = o->allow_empty,
        .force = o->force,
        .max_deletes = o->max_deletes,
        .approved = ps->approved,
        .n_approved = ps->n_approved,
        .networks = &ps->nets,
        .volumes = &ps->vols,
        .containers = &ps->ctrs,
    };
    if (plan_compute(&pin, &ps->plan) < 0) {
        fprintf(stderr, "bottled: %s: internal error\n", ps->cmd->name);
        return EXIT_FAILED;
    }
    return 0;
}

void pass_release(struct pass *ps)
{
    plan_free(ps->plan);
    for (size_t k = 0; ps->pb && k < ps->n; k++) {
        desired_free(ps->pb[k].d);
        render_output_free(ps->pb[k].r);
        for (size_t i = 0; i < ps->pb[k].n_repos; i++)
            dk_repo_release(&ps->pb[k].repos[i]);
        free(ps->pb[k].repos);
        free(ps->pb[k].ca_cert);
        if (ps->pb[k].ca_key) {
            OPENSSL_cleanse(ps->pb[k].ca_key, strlen(ps->pb[k].ca_key));
            free(ps->pb[k].ca_key);
        }
    }
    free(ps->pb);
    free(ps->in);
    free(ps->hashes);
    free(ps->keep);
    free(ps->blocked);
    free(ps->approved);
    free(ps->used);
    if (ps->images) {
        image_cache_release(ps->images);
        free(ps->images);
    }
    engine_container_list_release(&ps->ctrs);
    engine_volume_list_release(&ps->vols);
    engine_network_list_release(&ps->nets);
    engine_close(ps->e);
    if (ps->have_set)
        manifest_set_release(&ps->set);
    if (!ps->st_borrowed)
        state_close(ps->st);
    free(ps->hold);
    if (ps->have_knobs)
        render_knobs_release(&ps->knobs);
    secret_store_free(ps->store);
    free(ps->state_dir);
    free(ps->engine_url);
    free(ps->proxy_ref);
    free(ps->gate_ref);
    free(ps->keys_dir);
    arena_release(&ps->a);
    diag_list_release(&ps->diags);
    memset(ps, 0, sizeof(*ps));
}
