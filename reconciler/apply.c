/*
 * apply.c - carries out a pass's plan (see apply.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "admin.h"
#include "apply.h"
#include "deploykeys.h"
#include "err.h"
#include "firewall.h"
#include "hash.h"
#include "xalloc.h"

#define PROXY_UID    10099
#define PROXY_GID    10099
#define BACKOFF_MIN  1
#define BACKOFF_MAX  300
#define STOP_TIMEOUT 10

/* One action as carried out, for the report. */
struct done {
    const struct plan_action *a;
    int ok;
    char *error;
    long ms;
};

struct job {
    const struct plan_bottle *pb;
    long idx; /* in ps->in[], or -1 for an orphan */
    struct done *done;
    size_t n_done;
    int failed;
    char *error; /* why the bottle failed (first error) */
    enum state_phase phase;
    const char *reason;
    long ms; /* the bottle's work in this pass (0: nothing to do) */
};

struct apply {
    struct pass *ps;
    FILE *out;
    int quiet, json;
    pthread_mutex_t mu; /* the state handle, out, next */
    struct job *jobs;
    size_t n_jobs, next;
    unsigned long mutations;
    int unavailable;    /* a worker could not reach the engine */
    size_t keys_failed; /* gone bottles whose deploy keys could not be deleted */
    int64_t pass_id;
};

struct worker {
    struct apply *ap;
    struct engine *e;
};

/* ---- helpers ----------------------------------------------------------- */

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

static void lock(struct apply *ap)
{
    pthread_mutex_lock(&ap->mu);
}

static void unlock(struct apply *ap)
{
    pthread_mutex_unlock(&ap->mu);
}

static void event(struct apply *ap, const char *bottle, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void event(struct apply *ap, const char *bottle, const char *kind, const char *fmt, ...)
{
    va_list va;
    va_start(va, fmt);
    char *detail = NULL;
    if (vasprintf(&detail, fmt, va) < 0)
        detail = NULL;
    va_end(va);
    lock(ap);
    (void)state_event_add(ap->ps->st, bottle, kind, detail);
    unlock(ap);
    free(detail);
}

static int64_t intent(struct apply *ap, const char *bottle, const char *action, const char *res)
{
    int64_t id = 0;
    lock(ap);
    if (state_intent_begin(ap->ps->st, bottle, action, res, &id) != 0)
        id = 0;
    unlock(ap);
    return id;
}

static void confirm(struct apply *ap, int64_t id)
{
    if (!id)
        return;
    lock(ap);
    (void)state_intent_done(ap->ps->st, id);
    unlock(ap);
}

static struct dk_env dk_env_of(struct apply *ap)
{
    return (struct dk_env){.st = ap->ps->st,
                           .mu = &ap->mu,
                           .store = ap->ps->store,
                           .forge_ca = ap->ps->o->forge_ca,
                           .instance = ap->ps->instance};
}

static void progress(struct apply *ap, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void progress(struct apply *ap, const char *fmt, ...)
{
    if (ap->quiet || ap->json || !ap->out)
        return;
    va_list va;
    va_start(va, fmt);
    lock(ap);
    vfprintf(ap->out, fmt, va);
    fflush(ap->out);
    unlock(ap);
    va_end(va);
}

static void job_fail(struct job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void job_fail(struct job *j, const char *fmt, ...)
{
    if (j->failed)
        return;
    va_list va;
    va_start(va, fmt);
    if (vasprintf(&j->error, fmt, va) < 0)
        j->error = xstrdup("failed");
    va_end(va);
    j->failed = 1;
}

static struct done *record(struct job *j, const struct plan_action *a, int ok, const char *err,
                           long ms)
{
    j->done = xrealloc(j->done, (j->n_done + 1) * sizeof(*j->done));
    struct done *d = &j->done[j->n_done++];
    *d = (struct done){a, ok, err ? xstrdup(err) : NULL, ms};
    return d;
}

enum res_kind { K_CONTAINER, K_VOLUME, K_NETWORK, K_UNKNOWN };

static enum res_kind kind_of_name(const struct pass *ps, const char *name)
{
    if (plan_find_container(&ps->ctrs, name))
        return K_CONTAINER;
    for (size_t i = 0; i < ps->vols.n; i++)
        if (ps->vols.v[i].name && !strcmp(ps->vols.v[i].name, name))
            return K_VOLUME;
    if (plan_find_network(&ps->nets, name))
        return K_NETWORK;
    return K_UNKNOWN;
}

/* ---- engine steps (each: intent, call, confirm) ------------------------- */

static int remove_network(struct worker *w, const char *bottle, const char *name)
{
    struct pass *ps = w->ap->ps;
    int64_t id = intent(w->ap, bottle, "remove-network", name);
    int rc = engine_network_remove(w->e, name);
    if (rc == BD_E_BUSY) {
        /* something is still attached (a container connected by hand):
         * disconnect what the snapshot shows, then try once more */
        const struct engine_network *n = plan_find_network(&ps->nets, name);
        for (size_t i = 0; n && i < ps->ctrs.n; i++)
            for (size_t k = 0; k < ps->ctrs.v[i].n_networks; k++)
                if (ps->ctrs.v[i].networks[k].network &&
                    !strcmp(ps->ctrs.v[i].networks[k].network, name))
                    (void)engine_network_disconnect(w->e, name, ps->ctrs.v[i].id);
        rc = engine_network_remove(w->e, name);
    }
    if (rc == 0)
        confirm(w->ap, id);
    return rc;
}

static int remove_by_kind(struct worker *w, const char *bottle, enum res_kind k, const char *name)
{
    int64_t id;
    int rc;
    switch (k) {
    case K_CONTAINER:
        id = intent(w->ap, bottle, "remove-container", name);
        rc = engine_container_remove(w->e, name);
        break;
    case K_VOLUME:
        id = intent(w->ap, bottle, "remove-volume", name);
        rc = engine_volume_remove(w->e, name);
        break;
    case K_NETWORK:
        return remove_network(w, bottle, name);
    default:
        return 0; /* gone already */
    }
    if (rc == 0)
        confirm(w->ap, id);
    return rc;
}

/* Runs argv in container c; 0 and the output (cap 4 KiB), or an error. */
static int exec_out(struct engine *e, const char *c, const char *const *argv, int timeout_s,
                    struct engine_exec_result *r)
{
    struct engine_exec_spec spec = {0};
    for (size_t i = 0; argv[i]; i++)
        engine_strv_add(&spec.cmd, argv[i]);
    spec.max_output = 4096;
    spec.timeout_s = timeout_s;
    memset(r, 0, sizeof(*r));
    int rc = engine_exec(e, c, &spec, r);
    engine_strv_release(&spec.cmd);
    return rc;
}

/* Waits until the sidecar answers /healthz with 200 and serves want_hash. */
static int wait_sidecar(struct worker *w, const char *c, const char *ip, const char *want_hash,
                        char **why)
{
    long deadline = now_ms() + APPLY_HEALTHZ_TIMEOUT * 1000L;
    int tries = 0;
    const char *last = "no answer";
    while (now_ms() < deadline) {
        long code = 0;
        char *body = NULL;
        if (sidecar_admin_get(w->e, c, ip, "/healthz", &code, &body) == 0) {
            free(body);
            body = NULL;
            if (code == 200) {
                if (sidecar_admin_get(w->e, c, ip, "/config-hash", &code, &body) == 0 &&
                    code == 200 && !strncmp(body, want_hash, SHA256_HEX_LEN)) {
                    free(body);
                    return 0;
                }
                last = "it serves another config hash";
            } else {
                last = "/healthz is not 200 yet";
            }
        }
        free(body);
        if (++tries % 5 == 0) {
            struct engine_container_info info;
            if (engine_container_inspect(w->e, c, &info) == 0) {
                int running = info.running, status = info.exit_code;
                engine_container_info_release(&info);
                if (!running) {
                    *why = xasprintf("the sidecar exited (status %d) before it was ready; see "
                                     "the container's logs",
                                     status);
                    return BD_E_UNAVAIL;
                }
            }
        }
        /* 20 ms, doubling to 100 ms: a sidecar is usually ready (or has
         * reloaded) within a few tens of ms, and a pass waits for it */
        usleep((useconds_t)(tries < 3 ? 20 << (tries - 1) : 100) * 1000);
    }
    *why = xasprintf("the sidecar was not ready within %d s (%s)", APPLY_HEALTHZ_TIMEOUT, last);
    return BD_E_UNAVAIL;
}

/* Copies a new config generation into the sidecar's /cfg, current last. */
static int put_config(struct worker *w, const char *bottle, const char *c,
                      const struct render_output *r, char *gen, size_t gen_len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(gen, gen_len, "%.16s-%llx", r->config_hash,
             (unsigned long long)ts.tv_sec * 1000ULL + (unsigned long long)(ts.tv_nsec / 1000000));
    unsigned char *tar = NULL;
    size_t len = 0;
    int rc = cfg_generation_tar(r->files, r->n_files, gen, PROXY_UID, PROXY_GID, &tar, &len);
    if (rc)
        return rc;
    int64_t id = intent(w->ap, bottle, "deliver-config", c);
    rc = engine_archive_put(w->e, c, "/cfg", tar, len);
    OPENSSL_cleanse(tar, len);
    free(tar);
    if (rc == 0)
        confirm(w->ap, id);
    return rc;
}

/* Removes generations but the current and the previous one (the sidecar's
 * own user owns them); best effort. */
static void prune_generations(struct worker *w, const char *c, const char *keep)
{
    char cur[80];
    snprintf(cur, sizeof(cur), "gen-%s", keep);
    const char *argv[] = {"sh",
                          "-c",
                          "cd /cfg || exit 0; prev=; for d in $(ls -1dt gen-* 2>/dev/null); do "
                          "[ \"$d\" = \"$1\" ] && continue; "
                          "if [ -z \"$prev\" ]; then prev=$d; continue; fi; rm -rf -- \"$d\"; "
                          "done",
                          "sh",
                          cur,
                          NULL};
    struct engine_exec_result r;
    (void)exec_out(w->e, c, argv, 20, &r);
    engine_exec_result_release(&r);
}

/* ---- one bottle ------------------------------------------------------- */

static const struct plan_action *action_for(const struct plan_bottle *pb, const char *role,
                                            enum plan_act *act)
{
    for (size_t i = 0; i < pb->n_actions; i++) {
        const struct plan_action *a = &pb->actions[i];
        if (a->act != PLAN_DELETE && a->act != PLAN_DELIVER && !strcmp(a->role, role)) {
            *act = a->act;
            return a;
        }
    }
    return NULL;
}

static const struct plan_action *deliver_action(const struct plan_bottle *pb)
{
    for (size_t i = 0; i < pb->n_actions; i++)
        if (pb->actions[i].act == PLAN_DELIVER)
            return &pb->actions[i];
    return NULL;
}

static const char *errmsg_or(struct engine *e, int rc)
{
    const char *m = engine_errmsg(e);
    return m && *m ? m : bd_strerror(rc);
}

/* Creates one desired resource; *ret_id gets the engine id (containers,
 * networks) when the engine gave one. */
static int create_resource(struct worker *w, struct job *j, const struct desired *d,
                           enum desired_role role, char **ret_id)
{
    const struct desired_resource *res = &d->res[role];
    const char *bottle = d->bottle;
    int64_t id;
    int rc;
    switch (res->kind) {
    case DESIRED_NETWORK:
        id = intent(w->ap, bottle, "create-network", res->name);
        rc = engine_network_create(w->e, &res->network, ret_id);
        break;
    case DESIRED_VOLUME:
        id = intent(w->ap, bottle, "create-volume", res->name);
        rc = engine_volume_create(w->e, res->name, &res->labels);
        break;
    default:
        id = intent(w->ap, bottle, "create-container", res->name);
        rc = engine_container_create(w->e, &res->container, ret_id);
        break;
    }
    if (rc == 0)
        confirm(w->ap, id);
    else if (rc == BD_E_NOIMAGE)
        job_fail(j, "%s: image not found: %s", res->name, errmsg_or(w->e, rc));
    else if (rc == BD_E_BUSY && res->kind == DESIRED_NETWORK)
        job_fail(j, "%s: subnet %s overlaps a network or route in use: %s", res->name,
                 res->network.subnet ? res->network.subnet : "?", errmsg_or(w->e, rc));
    else
        job_fail(j, "create %s: %s", res->name, errmsg_or(w->e, rc));
    return rc;
}

/* The uid/gid of name in a passwd file's text; 0 found, -1 not. */
static int passwd_lookup(const char *text, size_t len, const char *name, unsigned *uid,
                         unsigned *gid)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < len;) {
        const char *line = text + i;
        const char *end = memchr(line, '\n', len - i);
        size_t ll = end ? (size_t)(end - line) : len - i;
        /* name:x:uid:gid:... */
        if (ll > nl && !memcmp(line, name, nl) && line[nl] == ':') {
            char buf[256];
            size_t cl = ll < sizeof(buf) - 1 ? ll : sizeof(buf) - 1;
            memcpy(buf, line, cl);
            buf[cl] = '\0';
            char *f[4] = {buf, NULL, NULL, NULL};
            for (int k = 1; k < 4; k++) {
                char *c = f[k - 1] ? strchr(f[k - 1], ':') : NULL;
                if (c)
                    *c++ = '\0';
                f[k] = c;
            }
            char *e1 = NULL, *e2 = NULL;
            unsigned long u = f[2] ? strtoul(f[2], &e1, 10) : 0;
            unsigned long g = f[3] ? strtoul(f[3], &e2, 10) : 0;
            if (f[2] && f[3] && e1 && *e1 == '\0' && e2 && (*e2 == '\0' || *e2 == ':')) {
                *uid = (unsigned)u;
                *gid = (unsigned)g;
                return 0;
            }
            return -1;
        }
        i += ll + 1;
    }
    return -1;
}

static int parse_id(const char *s, unsigned *ret)
{
    char *end = NULL;
    if (!s || !*s || strspn(s, "0123456789") != strlen(s))
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (v > 0x7fffffffUL)
        return -1;
    *ret = (unsigned)v;
    return 0;
}

/*
 * Makes the agent's work volume (mounted at its workdir) owned by the user
 * the agent runs as, before its start: a named volume's root is root's
 * unless the image already had that directory owned by the user.  The user
 * is agent.user, else the image's; a name is looked up in the container's
 * /etc/passwd.  Root (or no user) needs nothing.  0, or an error (job failed).
 */
static int own_workdir(struct worker *w, struct job *j, const struct desired *d)
{
    const struct engine_container_spec *k = &d->res[ROLE_AGENT].container;
    const char *name = k->name;
    struct engine_container_info info;
    int rc = engine_container_inspect(w->e, name, &info);
    if (rc) {
        job_fail(j, "inspect %s: %s", name, errmsg_or(w->e, rc));
        return rc;
    }
    char spec[256] = "";
    snprintf(spec, sizeof(spec), "%s", k->user ? k->user : info.user ? info.user : "");
    const char *workdir = k->workdir ? k->workdir : info.workdir;
    char wd[1024] = "";
    snprintf(wd, sizeof(wd), "%s", workdir ? workdir : "");
    engine_container_info_release(&info);
    if (!spec[0] || !wd[0] || !strcmp(wd, "/"))
        return 0;
    char *gpart = strchr(spec, ':');
    if (gpart)
        *gpart++ = '\0';
    unsigned uid = 0, gid = 0;
    int have_gid = gpart && parse_id(gpart, &gid) == 0;
    if (parse_id(spec, &uid) != 0 || (gpart && !have_gid)) {
        struct buf tar;
        buf_init(&tar, 0); /* written only on success */
        struct engine_path_stat st = {0};
        rc = engine_archive_get(w->e, name, "/etc/passwd", (size_t)4 << 20, &tar, &st);
        engine_path_stat_release(&st);
        unsigned pu = 0, pg = 0;
        int found = -1;
        if (rc == 0 && tar.len > 512) {
            char sz[13];
            memcpy(sz, tar.data + 124, 12);
            sz[12] = '\0';
            size_t flen = (size_t)strtoul(sz, NULL, 8);
            if (flen <= tar.len - 512)
                found = passwd_lookup(tar.data + 512, flen, spec, &pu, &pg);
        }
        buf_release(&tar);
        if (parse_id(spec, &uid) != 0) {
            if (found != 0) {
                job_fail(j, "%s: agent.user '%s' is not in the image's /etc/passwd", name, spec);
                return BD_E_INVAL;
            }
            uid = pu;
        }
        if (!have_gid)
            gid = found == 0 ? pg : uid;
    } else if (!have_gid) {
        gid = uid;
    }
    if (uid == 0)
        return 0;
    unsigned char *t = NULL;
    size_t tlen = 0;
    if (dir_entry_tar(wd + 1, 0755, uid, gid, &t, &tlen) != 0) {
        job_fail(j, "%s: workdir path too long", name);
        return BD_E_INVAL;
    }
    int64_t id = intent(w->ap, d->bottle, "own-workdir", name);
    rc = engine_archive_put(w->e, name, "/", t, tlen);
    free(t);
    if (rc) {
        job_fail(j, "make %s owned by the agent's user in %s: %s", wd, name, errmsg_or(w->e, rc));
        return rc;
    }
    confirm(w->ap, id);
    return 0;
}

/*
 * The gate's /gate/ files, before its first start: config.json, each
 * repo's private key and the tunnel token (derived from the instance key,
 * never stored).  The archive is wiped after the copy.
 */
static int put_gate_files(struct worker *w, struct job *j, const struct pass_bottle *pbk)
{
    struct pass *ps = w->ap->ps;
    const struct desired *d = pbk->d;
    const char *name = d->res[ROLE_GATE].name;
    size_t n = 2 + pbk->n_repos;
    struct render_file *files = xcalloc(n, sizeof(*files));
    char **names = xcalloc(pbk->n_repos + 1, sizeof(*names));
    char token[RENDER_GATE_TOKEN_LEN + 2];
    render_gate_token(state_hmac_key(ps->st), STATE_HMAC_KEY_LEN, d->bottle, token);
    token[RENDER_GATE_TOKEN_LEN] = '\n';
    token[RENDER_GATE_TOKEN_LEN + 1] = '\0';
    size_t k = 0;
    files[k++] = (struct render_file){"config.json", d->gate_config, strlen(d->gate_config), 0};
    files[k++] = (struct render_file){"token", token, strlen(token), 1};
    int rc = 0;
    for (size_t i = 0; i < pbk->n_repos; i++) {
        const struct dk_repo *r = &pbk->repos[i];
        if (!r->have_key || !r->key.private_text) {
            job_fail(j, "%s: no key for repo %s", name, r->name);
            rc = BD_E_INVAL;
            goto out;
        }
        names[i] = xasprintf("keys/%s", r->name);
        files[k++] =
            (struct render_file){names[i], r->key.private_text, strlen(r->key.private_text), 1};
    }
    unsigned char *tar = NULL;
    size_t len = 0;
    rc = gate_files_tar(files, k, &tar, &len);
    if (rc) {
        job_fail(j, "%s: cannot build the gate's files: %s", name, bd_strerror(rc));
        goto out;
    }
    int64_t id = intent(w->ap, d->bottle, "put-gate-files", name);
    rc = engine_archive_put(w->e, name, "/", tar, len);
    OPENSSL_cleanse(tar, len);
    free(tar);
    if (rc) {
        job_fail(j, "copy /gate into %s: %s", name, errmsg_or(w->e, rc));
        goto out;
    }
    confirm(w->ap, id);
out:
    OPENSSL_cleanse(token, sizeof(token));
    for (size_t i = 0; i < pbk->n_repos; i++)
        free(names[i]);
    free(names);
    free(files);
    return rc;
}

/* The keys phase of a desired bottle: its deploy keys at the forges. */
static int sync_keys(struct worker *w, struct job *j, const struct pass_bottle *pbk)
{
    struct dk_env env = dk_env_of(w->ap);
    char *err = NULL;
    int rc = dk_sync(&env, j->pb->name, pbk->repos, pbk->n_repos, pbk->auth_at, &err);
    if (rc) {
        job_fail(j, "deploy keys: %s", err ? err : bd_strerror(rc));
        free(err);
    }
    return rc;
}

/* Deletes the bottle's deploy keys at the forges (the bottle is going);
 * a failure leaves it Deleting, retried. */
static int revoke_keys(struct worker *w, struct job *j)
{
    struct dk_env env = dk_env_of(w->ap);
    char *err = NULL;
    size_t n = 0;
    int rc = dk_revoke_bottle(&env, j->pb->name, &n, &err);
    if (rc) {
        job_fail(j, "deploy keys: %s (the bottle stays Deleting and is retried)",
                 err ? err : bd_strerror(rc));
        free(err);
    } else if (n) {
        progress(w->ap, "%s/keys: %zu deploy key(s) deleted at the forge\n", j->pb->name, n);
    }
    return rc;
}

/* Delivers config (proxy) or files (gate, agent), then starts; the sidecar is
 * then waited for. */
static int start_container(struct worker *w, struct job *j, const struct pass_bottle *pbk,
                           enum desired_role role)
{
    const struct desired *d = pbk->d;
    const char *name = d->res[role].name;
    const char *bottle = d->bottle;
    int rc;
    char gen[96] = "";
    if (role == ROLE_PROXY) {
        if (!pbk->r) {
            job_fail(j, "%s: no sidecar config to deliver", name);
            return BD_E_INVAL;
        }
        rc = put_config(w, bottle, name, pbk->r, gen, sizeof(gen));
        if (rc) {
            job_fail(j, "deliver config into %s: %s", name, errmsg_or(w->e, rc));
            return rc;
        }
    } else if (role == ROLE_GATE) {
        if ((rc = put_gate_files(w, j, pbk)) != 0)
            return rc;
    } else if (role == ROLE_AGENT) {
        if ((rc = own_workdir(w, j, d)) != 0)
            return rc;
        int64_t id = intent(w->ap, bottle, "put-files", name);
        rc = engine_archive_put(w->e, name, DESIRED_ARCHIVE_DIR, d->agent_tar, d->agent_tar_len);
        if (rc) {
            job_fail(j, "copy /etc/bottle into %s: %s", name, errmsg_or(w->e, rc));
            return rc;
        }
        confirm(w->ap, id);
    }
    int64_t id = intent(w->ap, bottle, "start", name);
    rc = engine_container_start(w->e, name);
    if (rc) {
        job_fail(j, "start %s: %s", name, errmsg_or(w->e, rc));
        return rc;
    }
    confirm(w->ap, id);
    if (role == ROLE_PROXY) {
        char *why = NULL;
        rc = wait_sidecar(w, name, d->res[ROLE_PROXY].container.endpoints[0].ipv4, d->config_hash,
                          &why);
        if (rc) {
            job_fail(j, "%s: %s", name, why);
            free(why);
            return rc;
        }
        prune_generations(w, name, gen + 0);
    }
    return 0;
}

static int deliver(struct worker *w, struct job *j, const struct pass_bottle *pbk)
{
    const struct desired *d = pbk->d;
    const char *name = d->res[ROLE_PROXY].name;
    char gen[96];
    int rc = put_config(w, d->bottle, name, pbk->r, gen, sizeof(gen));
    if (rc) {
        job_fail(j, "deliver config into %s: %s", name, errmsg_or(w->e, rc));
        return rc;
    }
    int64_t id = intent(w->ap, d->bottle, "signal-reload", name);
    rc = engine_container_kill(w->e, name, "HUP");
    if (rc) {
        job_fail(j, "SIGHUP %s: %s", name, errmsg_or(w->e, rc));
        return rc;
    }
    confirm(w->ap, id);
    char *why = NULL;
    rc =
        wait_sidecar(w, name, d->res[ROLE_PROXY].container.endpoints[0].ipv4, d->config_hash, &why);
    if (rc) {
        job_fail(j, "%s after reload: %s", name, why);
        free(why);
        return rc;
    }
    prune_generations(w, name, gen);
    return 0;
}

static void step_done(struct worker *w, struct job *j, const struct plan_action *a, int rc, long t0)
{
    long ms = now_ms() - t0;
    record(j, a, rc == 0, rc ? j->error : NULL, ms);
    const char *bottle = j->pb->name;
    if (rc == 0) {
        progress(w->ap, "%s/%s: %s %s (%s): ok, %ld ms\n", bottle, a->role, plan_act_name(a->act),
                 a->resource, a->cause, ms);
        event(w->ap, bottle, plan_act_name(a->act), "%s %s (%s)", a->role, a->resource, a->cause);
    } else {
        progress(w->ap, "%s/%s: %s %s (%s): FAILED: %s\n", bottle, a->role, plan_act_name(a->act),
                 a->resource, a->cause, j->error ? j->error : "?");
    }
}

/* Removes the bottle's resources of the plan's delete actions; with
 * revoke (the whole bottle goes), its deploy keys are deleted at the forge
 * after the containers and before the volumes and networks. */
static void delete_actions(struct worker *w, struct job *j, int revoke)
{
    const struct plan_bottle *pb = j->pb;
    int revoked = !revoke;
    for (size_t i = 0; i < pb->n_actions && !j->failed; i++) {
        const struct plan_action *a = &pb->actions[i];
        if (a->act != PLAN_DELETE)
            continue;
        long t0 = now_ms();
        enum res_kind k = kind_of_name(w->ap->ps, a->resource);
        if (!revoked && k != K_CONTAINER) {
            revoked = 1;
            if (revoke_keys(w, j) != 0)
                break;
        }
        int rc = remove_by_kind(w, pb->name, k, a->resource);
        if (rc)
            job_fail(j, "remove %s: %s", a->resource, errmsg_or(w->e, rc));
        step_done(w, j, a, rc, t0);
    }
    if (!revoked && !j->failed)
        (void)revoke_keys(w, j);
}

static void apply_desired(struct worker *w, struct job *j)
{
    struct pass *ps = w->ap->ps;
    const struct pass_bottle *pbk = &ps->pb[j->idx];
    const struct desired *d = pbk->d;
    const struct plan_bottle *pb = j->pb;
    static const enum desired_role remove_order[] = {ROLE_AGENT, ROLE_GATE, ROLE_PROXY, ROLE_CFG,
                                                     ROLE_WORK,  ROLE_EGR,  ROLE_INT};
    const struct plan_action *keys = NULL;
    for (size_t i = 0; i < pb->n_actions; i++)
        if (pb->actions[i].act == PLAN_KEYS)
            keys = &pb->actions[i];

    delete_actions(w, j, 0);
    /* everything to recreate goes first, in delete order */
    for (size_t i = 0; i < sizeof(remove_order) / sizeof(*remove_order) && !j->failed; i++) {
        enum desired_role role = remove_order[i];
        enum plan_act act;
        const struct plan_action *a = action_for(pb, desired_role_name(role), &act);
        if (!a || act != PLAN_RECREATE || !desired_has(d, role))
            continue;
        enum res_kind k = d->res[role].kind == DESIRED_NETWORK  ? K_NETWORK
                          : d->res[role].kind == DESIRED_VOLUME ? K_VOLUME
                                                                : K_CONTAINER;
        int rc = remove_by_kind(w, pb->name, k, d->res[role].name);
        if (rc)
            job_fail(j, "remove %s (to recreate it): %s", d->res[role].name, errmsg_or(w->e, rc));
    }
    /* then creates and starts in create order, the deploy keys before the
     * sidecar (architecture.md, "Order on create") */
    for (size_t r = 0; r < ROLE__COUNT && !j->failed; r++) {
        if (r == ROLE_PROXY && keys) {
            long t0 = now_ms();
            int rc = sync_keys(w, j, pbk);
            step_done(w, j, keys, rc, t0);
            keys = NULL;
            if (rc)
                break;
        }
        if (!desired_has(d, r))
            continue;
        enum plan_act act;
        const struct plan_action *a = action_for(pb, desired_role_name((enum desired_role)r), &act);
        if (!a)
            continue;
        long t0 = now_ms();
        int rc = 0;
        if (act == PLAN_CREATE || act == PLAN_RECREATE) {
            char *id = NULL;
            rc = create_resource(w, j, d, (enum desired_role)r, &id);
            free(id);
            if (rc == 0 && d->res[r].kind == DESIRED_CONTAINER)
                rc = start_container(w, j, pbk, (enum desired_role)r);
        } else if (act == PLAN_START) {
            rc = start_container(w, j, pbk, (enum desired_role)r);
        }
        step_done(w, j, a, rc, t0);
    }
    const struct plan_action *dv = deliver_action(pb);
    if (dv && !j->failed) {
        long t0 = now_ms();
        int rc = deliver(w, j, pbk);
        step_done(w, j, dv, rc, t0);
    }
}

static void apply_orphan(struct worker *w, struct job *j)
{
    struct apply *ap = w->ap;
    struct state_bottle sb = {.name = j->pb->name,
                              .phase = STATE_PHASE_DELETING,
                              .reason = "orphan: no manifest declares it"};
    lock(ap);
    (void)state_bottle_put(ap->ps->st, &sb);
    unlock(ap);
    delete_actions(w, j, 1);
    if (j->failed)
        return;
    lock(ap);
    (void)state_bottle_forget(ap->ps->st, j->pb->name);
    (void)state_bottle_ca_remove(ap->ps->st, j->pb->name);
    (void)state_event_add(ap->ps->st, j->pb->name, "deleted", "every resource removed");
    unlock(ap);
}

static void run_job(struct worker *w, struct job *j)
{
    switch (j->pb->status) {
    case PLAN_CHANGES:
        if (j->idx >= 0 && w->ap->ps->pb[j->idx].d)
            apply_desired(w, j);
        else
            delete_actions(w, j, 0);
        break;
    case PLAN_ORPHAN:
        apply_orphan(w, j);
        break;
    default:
        break;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct apply *ap = w->ap;
    for (;;) {
        lock(ap);
        size_t i = ap->next++;
        unlock(ap);
        if (i >= ap->n_jobs)
            break;
        struct job *j = &ap->jobs[i];
        if (j->pb->status != PLAN_CHANGES && j->pb->status != PLAN_ORPHAN)
            continue;
        if (!w->e) {
            char emsg[512] = "";
            if (engine_open(ap->ps->engine_url, &w->e, emsg, sizeof(emsg)) != 0) {
                job_fail(j, "engine: %s", emsg);
                lock(ap);
                ap->unavailable = 1;
                unlock(ap);
                continue;
            }
        }
        long t0 = now_ms();
        run_job(w, j);
        j->ms = now_ms() - t0;
    }
    return NULL;
}

/* ---- records ------------------------------------------------------------ */

static int64_t backoff_s(int failures)
{
    int64_t s = BACKOFF_MIN;
    for (int i = 1; i < failures && s < BACKOFF_MAX; i++)
        s *= 2;
    return s < BACKOFF_MAX ? s : BACKOFF_MAX;
}

/* The bottle's row and resources after its job. */
static void record_bottle(struct apply *ap, struct job *j)
{
    struct pass *ps = ap->ps;
    const struct plan_bottle *pb = j->pb;
    const struct pass_bottle *pbk = j->idx >= 0 ? &ps->pb[j->idx] : NULL;
    struct state_bottle old = {0};
    int had = state_bottle_get(ps->st, pb->name, &old) == 0;
    struct state_bottle sb = {.name = pb->name};
    char spec_hash[SHA256_HEX_LEN + 1] = "";
    const char *err = j->error ? j->error : pb->error;

    if (pb->status == PLAN_ORPHAN && !j->failed) {
        if (had)
            state_bottle_release(&old);
        return; /* forgotten by apply_orphan */
    }
    if (pbk && pbk->d) {
        struct buf all;
        buf_init(&all, 0);
        for (size_t r = 0; r < pbk->d->n; r++)
            if (desired_has(pbk->d, r))
                buf_appendf(&all, "%s\n", pbk->d->res[r].spec_hash);
        sha256_hex(all.data, all.len, spec_hash);
        buf_release(&all);
        sb.spec_hash = spec_hash;
        sb.config_hash = pbk->d->config_hash;
    } else if (had) {
        sb.spec_hash = old.spec_hash;
        sb.config_hash = old.config_hash;
    }
    sb.manifest_hash = pbk && pbk->manifest_hash[0] ? pbk->manifest_hash
                       : had                        ? old.manifest_hash
                                                    : NULL;
    switch (pb->status) {
    case PLAN_REFUSED:
        sb.phase = STATE_PHASE_STALLED;
        sb.reason = pb->error;
        break;
    case PLAN_CONFLICT:
        sb.phase = STATE_PHASE_STALLED;
        sb.reason = "name conflict";
        sb.last_error = pb->error;
        break;
    case PLAN_FAILED:
        if (pbk && pbk->invalid) {
            sb.phase = STATE_PHASE_STALLED;
            sb.reason = "invalid manifest: waits for the file to change; running resources kept";
        } else {
            sb.phase = STATE_PHASE_RECONCILING;
            sb.reason = "failed; retried with backoff";
        }
        sb.last_error = pb->error;
        break;
    case PLAN_ORPHAN:
        sb.phase = STATE_PHASE_DELETING;
        sb.reason = "orphan: deletion failed, retried";
        break;
    default:
        sb.phase = ap->ps->o->no_host_firewall ? STATE_PHASE_DEGRADED : STATE_PHASE_READY;
        sb.reason =
            ap->ps->o->no_host_firewall ? "no host firewall (--insecure-no-host-firewall)" : NULL;
        break;
    }
    if (j->failed) {
        sb.phase = pb->status == PLAN_ORPHAN ? STATE_PHASE_DELETING : STATE_PHASE_RECONCILING;
        sb.reason = "failed; retried with backoff";
        sb.last_error = err;
    }
    int failing = j->failed || (pb->status == PLAN_FAILED && !(pbk && pbk->invalid));
    sb.failures = failing ? (had ? old.failures : 0) + 1 : 0;
    sb.next_retry = failing ? (int64_t)time(NULL) + backoff_s(sb.failures) : 0;
    sb.last_pass_at = (int64_t)time(NULL);
    sb.last_pass_ms = j->ms;
    (void)state_bottle_put(ps->st, &sb);
    if (j->failed || pb->status == PLAN_FAILED || pb->status == PLAN_CONFLICT ||
        pb->status == PLAN_REFUSED) {
        const char *kind = pb->status == PLAN_REFUSED ? "refused" : "failed";
        if (!had || !old.last_error || !err || strcmp(old.last_error, err))
            (void)state_event_add(ps->st, pb->name, kind, err);
    }
    if (had)
        state_bottle_release(&old);
}

/* Resource rows with the engine ids of what exists now: from a fresh
 * listing after changes, else from the pass's snapshot (still current). */
static int record_resources(struct apply *ap, struct engine *e, int fresh)
{
    struct pass *ps = ap->ps;
    struct engine_network_list fnets = {0};
    struct engine_volume_list fvols = {0};
    struct engine_container_list fctrs = {0};
    const struct engine_network_list *nets = &ps->nets;
    const struct engine_volume_list *vols = &ps->vols;
    const struct engine_container_list *ctrs = &ps->ctrs;
    int rc = 0;
    if (fresh) {
        struct engine_strv f = {0};
        char *lab = xasprintf("%s=%s", LABEL_INSTANCE, ps->instance);
        engine_strv_add(&f, lab);
        free(lab);
        rc = engine_network_list(e, &f, &fnets);
        if (!rc)
            rc = engine_volume_list(e, &f, &fvols);
        if (!rc)
            rc = engine_container_list(e, &f, &fctrs);
        engine_strv_release(&f);
        nets = &fnets, vols = &fvols, ctrs = &fctrs;
    }
    if (rc)
        goto out;
    for (size_t k = 0; k < ps->n; k++) {
        const struct desired *d = ps->pb[k].d;
        if (!d)
            continue;
        for (size_t r = 0; r < d->n; r++) {
            const struct desired_resource *res = &d->res[r];
            if (!res->name)
                continue;
            const char *id = NULL, *hash = NULL;
            const struct engine_kvs *labels = NULL;
            if (res->kind == DESIRED_NETWORK) {
                const struct engine_network *n = plan_find_network(nets, res->name);
                if (n)
                    id = n->id, labels = &n->labels;
            } else if (res->kind == DESIRED_VOLUME) {
                for (size_t i = 0; i < vols->n; i++)
                    if (vols->v[i].name && !strcmp(vols->v[i].name, res->name))
                        id = vols->v[i].name, labels = &vols->v[i].labels;
            } else {
                const struct engine_container *c = plan_find_container(ctrs, res->name);
                if (c)
                    id = c->id, labels = &c->labels;
            }
            if (!labels || !plan_is_ours(labels, ps->instance))
                continue;
            /* a container whose immutable fields differ is recreated: not recorded */
            if (res->kind == DESIRED_CONTAINER && ps->in[k].immutable_drift[r] && !fresh)
                continue;
            hash = engine_kvs_get(labels, LABEL_SPEC_HASH);
            struct state_resource sr = {.bottle = d->bottle,
                                        .role = desired_role_name(res->role),
                                        .name = res->name,
                                        .engine_id = id,
                                        .spec_hash = hash};
            (void)state_resource_put(ps->st, &sr);
        }
    }
out:
    engine_network_list_release(&fnets);
    engine_volume_list_release(&fvols);
    engine_container_list_release(&fctrs);
    return rc;
}

static int recover_intents_cb(const struct state_intent *i, void *arg)
{
    int64_t **ids = arg;
    (void)i;
    size_t n = 0;
    while ((*ids)[n])
        n++;
    *ids = xrealloc(*ids, (n + 2) * sizeof(**ids));
    (*ids)[n] = i->id;
    (*ids)[n + 1] = 0;
    return 0;
}

/* Intents a crashed run left: the snapshot already shows their effect (or
 * its absence); record them and close them. */
static void recover_intents(struct apply *ap)
{
    struct state *st = ap->ps->st;
    int64_t *ids = xcalloc(1, sizeof(*ids));
    (void)state_intents_pending(st, recover_intents_cb, &ids);
    size_t n = 0;
    for (; ids[n]; n++) {
        (void)state_intent_done(st, ids[n]);
    }
    if (n)
        (void)state_event_add(st, NULL, "recovered",
                              n == 1 ? "1 unfinished side effect of an earlier run: the snapshot "
                                       "decides what to redo"
                                     : "unfinished side effects of an earlier run: the snapshot "
                                       "decides what to redo");
    free(ids);
}

struct name_list {
    char **v;
    size_t n;
};

static int gone_cb(const struct state_bottle *b, void *arg)
{
    struct name_list *k = arg;
    k->v = xrealloc(k->v, (k->n + 1) * sizeof(*k->v));
    k->v[k->n++] = xstrdup(b->name);
    return 0;
}

static int gone_key_cb(const struct state_deploy_key *k, void *arg)
{
    struct name_list *l = arg;
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], k->bottle))
            return 0;
    l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = xstrdup(k->bottle);
    return 0;
}

/* Bottles the database remembers that no manifest declares and of which
 * nothing is left on the engine (not even a refused orphan): a crash after
 * an orphan's last engine delete, before apply_orphan forgot it, leaves
 * them, with their CA (and maybe deploy keys).  Their deploy keys are
 * deleted at the forge first (a failure keeps the bottle, Deleting, for
 * the next pass), then CA and records are forgotten; only with a complete
 * manifest snapshot, like every deletion. */
static void forget_gone(struct apply *ap)
{
    struct pass *ps = ap->ps;
    if (!ps->set.complete)
        return;
    struct name_list names = {0};
    (void)state_bottles_each(ps->st, gone_cb, &names);
    (void)state_deploy_keys_each(ps->st, NULL, gone_key_cb, &names);
    for (size_t i = 0; i < names.n; i++) {
        const char *name = names.v[i];
        int seen = pass_find(ps, name) >= 0;
        for (size_t k = 0; !seen && k < ps->n_keep; k++)
            seen = !strcmp(ps->keep[k], name);
        for (size_t k = 0; !seen && k < ps->plan->n_bottles; k++)
            seen = !strcmp(ps->plan->bottles[k].name, name);
        if (seen)
            continue;
        if (dk_has_keys(ps->st, name)) {
            struct dk_env env = dk_env_of(ap);
            env.mu = NULL; /* the workers are done */
            char *err = NULL;
            size_t n = 0;
            if (dk_revoke_bottle(&env, name, &n, &err) != 0) {
                struct state_bottle sb = {.name = name,
                                          .phase = STATE_PHASE_DELETING,
                                          .reason = "deploy keys not deleted yet; retried",
                                          .last_error = err};
                (void)state_bottle_put(ps->st, &sb);
                (void)state_event_add(ps->st, name, "failed", err);
                if (!ps->o->quiet && !ps->o->json)
                    fprintf(ap->out, "%s/keys: FAILED: %s\n", name, err ? err : "?");
                ap->keys_failed++;
                free(err);
                continue;
            }
        }
        if (state_bottle_ca_remove(ps->st, name) == 0 && state_bottle_forget(ps->st, name) == 0)
            (void)state_event_add(ps->st, name, "deleted",
                                  "no manifest declares it and nothing of it is left on the "
                                  "engine: records and CA forgotten");
    }
    for (size_t i = 0; i < names.n; i++)
        free(names.v[i]);
    free(names.v);
}

/* ---- the report --------------------------------------------------------- */

static void print_json(struct apply *ap, const struct apply_stats *st, FILE *out)
{
    struct pass *ps = ap->ps;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "instance", ps->instance);
    cJSON *bs = cJSON_AddArrayToObject(o, "bottles");
    for (size_t i = 0; i < ap->n_jobs; i++) {
        const struct job *j = &ap->jobs[i];
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "name", j->pb->name);
        cJSON_AddStringToObject(b, "status",
                                j->failed ? "failed" : plan_status_name(j->pb->status));
        const char *err = j->error ? j->error : j->pb->error;
        if (err)
            cJSON_AddStringToObject(b, "error", err);
        else
            cJSON_AddNullToObject(b, "error");
        cJSON *as = cJSON_AddArrayToObject(b, "actions");
        for (size_t k = 0; k < j->n_done; k++) {
            const struct done *d = &j->done[k];
            cJSON *a = cJSON_CreateObject();
            cJSON_AddStringToObject(a, "action", plan_act_name(d->a->act));
            cJSON_AddStringToObject(a, "role", d->a->role ? d->a->role : "");
            cJSON_AddStringToObject(a, "resource", d->a->resource);
            cJSON_AddStringToObject(a, "cause", d->a->cause);
            cJSON_AddBoolToObject(a, "ok", d->ok);
            if (d->error)
                cJSON_AddStringToObject(a, "error", d->error);
            cJSON_AddNumberToObject(a, "ms", (double)d->ms);
            cJSON_AddItemToArray(as, a);
        }
        cJSON_AddItemToArray(bs, b);
    }
    cJSON *gb = cJSON_AddArrayToObject(o, "gc_blocked_by");
    for (size_t i = 0; i < ps->plan->n_gc_blocked_by; i++)
        cJSON_AddItemToArray(gb, cJSON_CreateString(ps->plan->gc_blocked_by[i]));
    cJSON *sum = cJSON_AddObjectToObject(o, "summary");
    cJSON_AddNumberToObject(sum, "actions", (double)st->actions);
    cJSON_AddNumberToObject(sum, "failed", (double)st->failed);
    cJSON_AddNumberToObject(sum, "refused", (double)st->refused);
    cJSON_AddNumberToObject(sum, "engine_changes", (double)st->mutations);
    cJSON *pj = cJSON_AddObjectToObject(o, "pass");
    cJSON_AddNumberToObject(pj, "id", (double)ap->pass_id);
    cJSON_AddStringToObject(pj, "trigger", ps->trigger ? ps->trigger : ps->cmd->name);
    cJSON_AddNumberToObject(pj, "ms", (double)st->ms);
    char *text = ps->json_lines ? cJSON_PrintUnformatted(o) : cJSON_Print(o);
    fputs(text, out);
    fputc('\n', out);
    fflush(out);
    free(text);
    cJSON_Delete(o);
}

/* ---- the host firewall ------------------------------------------------------ */

static void fw_add(struct pass *ps, struct fw_bottle **v, size_t *n, size_t *cap, const char *name,
                   const struct desired *d)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *v = xrealloc(*v, *cap * sizeof(**v));
    }
    struct fw_bottle *f = &(*v)[*n];
    if (d) {
        *f = (struct fw_bottle){name, d->res[ROLE_INT].network.bridge_name,
                                d->res[ROLE_EGR].network.bridge_name,
                                d->res[ROLE_EGR].network.gateway};
        (*n)++;
        return;
    }
    /* no desired state (failed, invalid, orphan): what exists keeps its rules */
    const char *int_name = desired_name(&ps->a, ps->o->name_prefix, name, ROLE_INT);
    const char *egr_name = desired_name(&ps->a, ps->o->name_prefix, name, ROLE_EGR);
    const struct engine_network *in = plan_find_network(&ps->nets, int_name);
    const struct engine_network *eg = plan_find_network(&ps->nets, egr_name);
    if ((!in || !plan_is_ours(&in->labels, ps->instance)) &&
        (!eg || !plan_is_ours(&eg->labels, ps->instance)))
        return;
    char ib[DESIRED_BRIDGE_LEN + 1], eb[DESIRED_BRIDGE_LEN + 1];
    desired_bridge_name(ps->instance, name, ROLE_INT, ib);
    desired_bridge_name(ps->instance, name, ROLE_EGR, eb);
    *f = (struct fw_bottle){name, arena_strdup(&ps->a, ib), arena_strdup(&ps->a, eb),
                            eg && eg->gateway ? arena_strdup(&ps->a, eg->gateway) : NULL};
    (*n)++;
}

/*
 * Makes the instance's chains cover every bottle that has (or is about to
 * have) networks: the desired ones, the failed ones still running, and the
 * orphans, except those deleted in this pass (after: 1).  0, or -1 with a
 * message in err.
 */
static int firewall_sync(struct apply *ap, int after, char *err, size_t errlen)
{
    struct pass *ps = ap->ps;
    struct fw_bottle *v = NULL;
    size_t n = 0, cap = 0;
    for (size_t k = 0; k < ps->n; k++)
        fw_add(ps, &v, &n, &cap, ps->in[k].name, ps->pb[k].d);
    for (size_t i = 0; i < ap->n_jobs; i++) {
        const struct job *j = &ap->jobs[i];
        if (j->idx >= 0)
            continue;
        if (after && j->pb->status == PLAN_ORPHAN && !j->failed)
            continue;
        fw_add(ps, &v, &n, &cap, j->pb->name, NULL);
    }
    /* gc: orphans the plan did not list as jobs are still there */
    for (size_t i = 0; i < ps->plan->n_bottles; i++) {
        const struct plan_bottle *pb = &ps->plan->bottles[i];
        int listed = pass_find(ps, pb->name) >= 0;
        for (size_t j = 0; !listed && j < ap->n_jobs; j++)
            listed = ap->jobs[j].pb == pb;
        if (!listed)
            fw_add(ps, &v, &n, &cap, pb->name, NULL);
    }
    struct fw_stats st = {0};
    int rc = fw_sync(ps->instance, v, n, &st, err, errlen);
    free(v);
    if (rc == 0 && st.applies)
        event(ap, NULL, "firewall", "host firewall chains re-asserted (%u apply)", st.applies);
    return rc ? -1 : 0;
}

/* ---- gc: orphan keys at the forges ---------------------------------------- */

/* `bottled gc`: keys with our title prefix that no record owns, at every
 * repo ever used.  The tokens: the records', else the manifests' names. */
static void gc_keys(struct apply *ap, struct apply_stats *stats)
{
    struct pass *ps = ap->ps;
    const char **names = NULL;
    size_t n = 0;
    for (size_t k = 0; k < ps->n; k++) {
        const struct bottle *b = ps->pb[k].b;
        for (size_t i = 0; b && i < b->n_repos; i++) {
            const char *t = b->repos[i].key.forge_token_env;
            int dup = !t;
            for (size_t j = 0; !dup && j < n; j++)
                dup = !strcmp(names[j], t);
            if (dup)
                continue;
            names = xrealloc(names, (n + 1) * sizeof(*names));
            names[n++] = t;
        }
    }
    struct dk_env env = dk_env_of(ap);
    env.mu = NULL;
    size_t deleted = 0;
    char *err = NULL;
    int rc = dk_gc(&env, names, n, &deleted, &err);
    free(names);
    stats->actions += deleted;
    if (!ps->o->quiet && !ps->o->json && deleted)
        fprintf(ap->out, "gc: %zu orphan deploy key(s) deleted at the forges\n", deleted);
    if (rc) {
        fprintf(stderr, "bottled: %s: deploy keys: %s\n", ps->cmd->name, err ? err : "failed");
        stats->failed++;
    }
    free(err);
}

/* ---- the pass ------------------------------------------------------------ */

int apply_exit_code(const struct apply_stats *s, int detailed)
{
    if (s->failed || s->refused)
        return EXIT_FAILED;
    return detailed && s->actions ? 2 : EXIT_OK;
}

/* The bottles whose deletion a guard refused and that a person approved:
 * take the approvals and re-plan.  0 or an exit code. */
static int take_approvals(struct pass *ps)
{
    const struct plan *p = ps->plan;
    size_t n = 0;
    for (size_t i = 0; i < p->n_bottles; i++)
        n += p->bottles[i].status == PLAN_REFUSED;
    if (!n)
        return 0;
    ps->approved = xcalloc(n, sizeof(*ps->approved));
    for (size_t i = 0; i < p->n_bottles; i++) {
        int ok = 0;
        if (p->bottles[i].status == PLAN_REFUSED &&
            state_approval_take(ps->st, p->bottles[i].name, &ok) == 0 && ok)
            ps->approved[ps->n_approved++] = arena_strdup(&ps->a, p->bottles[i].name);
    }
    if (!ps->n_approved)
        return 0;
    for (size_t i = 0; i < ps->n_approved; i++)
        (void)state_event_add(ps->st, ps->approved[i], "approved",
                              "deletion approved by `bottled approve-deletes`");
    return pass_plan(ps);
}

int apply_pass(struct pass *ps, enum apply_scope scope, FILE *out, struct apply_stats *stats)
{
    struct apply ap = {.ps = ps, .out = out, .quiet = ps->o->quiet, .json = ps->o->json};
    memset(stats, 0, sizeof(*stats));
    pthread_mutex_init(&ap.mu, NULL);
    int ret = 0;

    recover_intents(&ap);
    if ((ret = take_approvals(ps)) != 0)
        goto out;
    (void)state_pass_begin(ps->st, ps->trigger ? ps->trigger : ps->cmd->name, &ap.pass_id);

    const struct plan *p = ps->plan;
    ap.jobs = xcalloc(p->n_bottles + 1, sizeof(*ap.jobs));
    for (size_t i = 0; i < p->n_bottles; i++) {
        const struct plan_bottle *pb = &p->bottles[i];
        int orphanish = pb->status == PLAN_ORPHAN ||
                        (pb->status == PLAN_REFUSED && pass_find(ps, pb->name) < 0);
        if (scope == APPLY_GC_ONLY && !orphanish)
            continue;
        int held = 0;
        for (size_t h = 0; h < ps->n_hold; h++)
            held |= !strcmp(ps->hold[h], pb->name);
        if (held)
            continue;
        ap.jobs[ap.n_jobs++] = (struct job){.pb = pb, .idx = pass_find(ps, pb->name)};
    }

    char fw_err[512] = "";
    int fw_failed = !ps->o->no_host_firewall && firewall_sync(&ap, 0, fw_err, sizeof(fw_err)) != 0;
    if (fw_failed) {
        /* never start a bottle the host firewall does not cover */
        fprintf(stderr,
                "bottled: %s: host firewall: %s (for an engine on another machine: "
                "--insecure-no-host-firewall)\n",
                ps->cmd->name, fw_err);
        for (size_t i = 0; i < ap.n_jobs; i++)
            if (ap.jobs[i].pb->status == PLAN_CHANGES || ap.jobs[i].pb->status == PLAN_ORPHAN)
                job_fail(&ap.jobs[i], "host firewall: %s", fw_err);
    }

    size_t n_workers = fw_failed ? 0 : APPLY_WORKERS;
    size_t busy = 0;
    for (size_t i = 0; i < ap.n_jobs; i++)
        busy += ap.jobs[i].pb->status == PLAN_CHANGES || ap.jobs[i].pb->status == PLAN_ORPHAN;
    if (n_workers > busy)
        n_workers = busy;
    struct worker *ws = xcalloc(n_workers + 1, sizeof(*ws));
    pthread_t *th = xcalloc(n_workers + 1, sizeof(*th));
    /* The first worker reuses the pass's connection (already negotiated). */
    for (size_t i = 0; i < n_workers; i++) {
        ws[i].ap = &ap;
        ws[i].e = i == 0 ? ps->e : NULL;
    }
    unsigned long before = engine_mutations(ps->e);
    size_t started = 0;
    for (size_t i = 0; i < n_workers; i++) {
        if (pthread_create(&th[i], NULL, worker_main, &ws[i]) != 0)
            break;
        started++;
    }
    if (n_workers && !started)
        worker_main(&ws[0]);
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    ap.mutations = engine_mutations(ps->e) - before;
    for (size_t i = 1; i < n_workers; i++) {
        if (ws[i].e) {
            ap.mutations += engine_mutations(ws[i].e);
            engine_close(ws[i].e);
        }
    }
    free(ws);
    free(th);
    if (!fw_failed && !ps->o->no_host_firewall && firewall_sync(&ap, 1, fw_err, sizeof(fw_err)))
        fprintf(stderr, "bottled: %s: host firewall: %s\n", ps->cmd->name, fw_err);

    forget_gone(&ap);
    if (state_begin(ps->st) == 0) {
        for (size_t i = 0; i < ap.n_jobs; i++)
            record_bottle(&ap, &ap.jobs[i]);
        (void)record_resources(&ap, ps->e, ap.mutations != 0);
        (void)state_commit(ps->st);
    }
    for (size_t i = 0; i < ap.n_jobs; i++) {
        const struct job *j = &ap.jobs[i];
        stats->bottles++;
        for (size_t k = 0; k < j->n_done; k++)
            stats->actions += j->done[k].ok;
        if (j->failed || j->pb->status == PLAN_FAILED || j->pb->status == PLAN_CONFLICT)
            stats->failed++;
        if (j->pb->status == PLAN_REFUSED)
            stats->refused++;
        if (!j->failed && !ps->o->quiet && !ps->o->json &&
            (j->pb->status == PLAN_FAILED || j->pb->status == PLAN_CONFLICT))
            fprintf(out, "%s: %s: %s\n", j->pb->name, plan_status_name(j->pb->status),
                    j->pb->error ? j->pb->error : "failed");
        if (!ps->o->quiet && !ps->o->json && j->pb->status == PLAN_REFUSED)
            fprintf(out, "%s: delete refused (%s)\n", j->pb->name, j->pb->error);
    }
    stats->failed += ap.keys_failed;
    if (scope == APPLY_GC_ONLY)
        gc_keys(&ap, stats);
    stats->mutations = ap.mutations;
    stats->ms = now_ms() - (long)ps->start_ms;
    (void)state_pass_end(ps->st, ap.pass_id, (int)stats->actions, (int)stats->failed,
                         p->n_gc_blocked_by ? p->gc_blocked_by[0] : NULL, stats->ms);
    if (ps->o->json) {
        print_json(&ap, stats, out);
    } else if (!ps->o->quiet) {
        for (size_t i = 0; i < p->n_gc_blocked_by; i++)
            fprintf(out, "gc blocked by %s\n", p->gc_blocked_by[i]);
        fprintf(out,
                "%zu action(s) applied, %zu bottle(s) failed, %zu refused, %lu engine "
                "change(s).\n",
                stats->actions, stats->failed, stats->refused, stats->mutations);
    }
    if (ap.unavailable)
        ret = EXIT_UNAVAIL;
out:
    for (size_t i = 0; i < ap.n_jobs; i++) {
        for (size_t k = 0; k < ap.jobs[i].n_done; k++)
            free(ap.jobs[i].done[k].error);
        free(ap.jobs[i].done);
        free(ap.jobs[i].error);
    }
    free(ap.jobs);
    pthread_mutex_destroy(&ap.mu);
    return ret;
}
