/*
 * deploykeys.c - deploy keys at the forges as a finalizer (see deploykeys.h).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "arena.h"
#include "buf.h"
#include "deploykeys.h"
#include "err.h"
#include "fault.h"
#include "forge.h"
#include "hash.h"
#include "xalloc.h"

static void lk(const struct dk_env *env)
{
    if (env->mu)
        pthread_mutex_lock(env->mu);
}

static void ulk(const struct dk_env *env)
{
    if (env->mu)
        pthread_mutex_unlock(env->mu);
}

static char *msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *msg(const char *fmt, ...)
{
    va_list va;
    va_start(va, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, va) < 0)
        s = xstrdup("out of memory");
    va_end(va);
    return s;
}

char *dk_title(const char *instance, const char *bottle, const char *repo)
{
    return xasprintf(DK_TITLE_PREFIX "%s:%s:%s", instance, bottle, repo);
}

long dk_check_interval(void)
{
    const char *s = getenv("BOTTLED_KEY_CHECK_INTERVAL");
    if (s && *s && strspn(s, "0123456789") == strlen(s) && strlen(s) < 9)
        return strtol(s, NULL, 10);
    return DK_CHECK_INTERVAL_S;
}

/* The check is due at checked_at + interval * [0.75, 1.25), the jitter
 * fixed per key and check so that keys checked together spread out. */
static int check_due(const char *bottle, const char *repo, int64_t checked_at)
{
    long iv = dk_check_interval();
    char in[512], h[SHA256_HEX_LEN + 1];
    snprintf(in, sizeof(in), "%s:%s:%" PRId64, bottle, repo, checked_at);
    sha256_hex(in, strlen(in), h);
    unsigned long frac = strtoul((char[]){h[0], h[1], h[2], h[3], 0}, NULL, 16); /* 0..65535 */
    int64_t wait = (int64_t)iv * 3 / 4 + (int64_t)((double)iv / 2 * (double)frac / 65536.0);
    return (int64_t)time(NULL) >= checked_at + wait;
}

/* 1 if two public key lines hold the same key (type and base64 blob). */
static int same_key(const char *a, const char *b)
{
    if (!a || !b)
        return 0;
    size_t ta = strcspn(a, " "), tb = strcspn(b, " ");
    if (ta != tb || strncmp(a, b, ta) || a[ta] != ' ' || b[tb] != ' ')
        return 0;
    a += ta + 1;
    b += tb + 1;
    size_t la = strcspn(a, " \r\n"), lb = strcspn(b, " \r\n");
    return la == lb && la > 0 && !strncmp(a, b, la);
}

/* ---- resolving a manifest repo ------------------------------------------ */

int dk_repo_resolve(struct arena *a, struct state *st, const char *keys_dir, const char *bottle,
                    const struct m_repo *m, struct dk_repo *r, char **ret_err)
{
    memset(r, 0, sizeof(*r));
    r->name = m->name;
    r->provider = key_provider_name(m->key.provider);
    r->url = m->url;
    r->host = m->host;
    r->port = m->port ? m->port : 22;
    r->host_key = m->host_key;
    struct buf why;
    buf_init(&why, 0);
    int rc = 0;
    if (m->key.provider == KEY_STATIC) {
        rc = static_key_load(keys_dir, m->key.path, &r->key, &why);
        if (rc) {
            *ret_err = msg("repo %s: static key %s: %s", m->name, m->key.path,
                           why.len ? why.data : bd_strerror(rc));
            goto out;
        }
        r->have_key = 1;
        goto out;
    }
    char *path = NULL;
    rc = forge_repo_path(m->url, &path);
    if (rc) {
        *ret_err = msg("repo %s: the forge cannot name the repository of %s", m->name, m->url);
        goto out;
    }
    r->repo_path = arena_strdup(a, path);
    free(path);
    if (m->key.api_url) {
        r->api_root = m->key.api_url;
    } else {
        char *root = NULL;
        rc = forge_default_api_root(r->provider, m->host, &root);
        if (rc) {
            *ret_err = msg("repo %s: no default API root for %s at %s", m->name, r->provider,
                           m->host ? m->host : "?");
            goto out;
        }
        r->api_root = arena_strdup(a, root);
        free(root);
    }
    r->token_env = m->key.forge_token_env;
    if (!st)
        goto out;
    char *title = dk_title(state_instance_id(st), bottle, m->name);
    rc = state_deploy_key_ensure(st, bottle, m->name, title, &r->key, &why);
    free(title);
    if (rc == BD_E_NOTFOUND) {
        rc = 0; /* read-only and not generated yet */
    } else if (rc) {
        *ret_err = msg("repo %s: deploy key: %s", m->name, why.len ? why.data : bd_strerror(rc));
    } else {
        r->have_key = 1;
    }
out:
    buf_release(&why);
    return rc;
}

void dk_repo_release(struct dk_repo *r)
{
    if (r->have_key)
        deploy_key_release(&r->key);
    r->have_key = 0;
}

/* ---- the records ---------------------------------------------------------- */

struct rec {
    char *bottle, *forge, *repo, *key_id, *fingerprint, *api_root, *repo_path, *token_env;
    enum state_key_state state;
    int64_t checked_at;
};

struct recs {
    struct rec *v;
    size_t n;
};

static char *dup0(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static int recs_cb(const struct state_deploy_key *k, void *arg)
{
    struct recs *l = arg;
    l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = (struct rec){.bottle = dup0(k->bottle),
                                .forge = dup0(k->forge),
                                .repo = dup0(k->repo),
                                .key_id = dup0(k->key_id),
                                .fingerprint = dup0(k->fingerprint),
                                .api_root = dup0(k->api_root),
                                .repo_path = dup0(k->repo_path),
                                .token_env = dup0(k->token_env),
                                .state = k->state,
                                .checked_at = k->checked_at};
    return 0;
}

static void recs_release(struct recs *l)
{
    for (size_t i = 0; i < l->n; i++) {
        struct rec *r = &l->v[i];
        free(r->bottle), free(r->forge), free(r->repo), free(r->key_id), free(r->fingerprint);
        free(r->api_root), free(r->repo_path), free(r->token_env);
    }
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static int recs_load(struct state *st, const char *bottle, struct recs *l)
{
    memset(l, 0, sizeof(*l));
    return state_deploy_keys_each(st, bottle, recs_cb, l);
}

static const struct rec *rec_find(const struct recs *l, const char *forge, const char *repo)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].forge, forge) && !strcmp(l->v[i].repo, repo))
            return &l->v[i];
    return NULL;
}

static int is_forge(const struct dk_repo *r)
{
    return strcmp(r->provider, "static") != 0;
}

/* Why this one repo needs forge work, or NULL. */
static const char *repo_cause(const struct recs *l, const char *bottle, const struct dk_repo *r,
                              int64_t auth_at)
{
    const struct rec *k = rec_find(l, r->provider, r->name);
    if (!k)
        return "missing";
    if (k->state == STATE_KEY_INTENT)
        return "intent pending";
    if (k->state != STATE_KEY_REGISTERED || !k->key_id)
        return "missing";
    if (strcmp(k->api_root ? k->api_root : "", r->api_root) ||
        strcmp(k->repo_path ? k->repo_path : "", r->repo_path))
        return "moved";
    if (!r->have_key || strcmp(k->fingerprint, r->key.fingerprint))
        return "key changed";
    if (auth_at > k->checked_at)
        return "gate authentication failed";
    if (check_due(bottle, r->name, k->checked_at))
        return "check due";
    return NULL;
}

const char *dk_cause(struct arena *a, struct state *st, const char *bottle,
                     const struct dk_repo *repos, size_t n, int64_t auth_at)
{
    size_t forges = 0;
    for (size_t i = 0; i < n; i++)
        forges += is_forge(&repos[i]);
    if (!st)
        return forges ? "missing" : NULL;
    struct recs l;
    if (recs_load(st, bottle, &l) != 0)
        return forges ? "missing" : NULL;
    const char *cause = NULL;
    for (size_t i = 0; !cause && i < n; i++) {
        if (!is_forge(&repos[i]))
            continue;
        const char *c = repo_cause(&l, bottle, &repos[i], auth_at);
        if (c)
            cause = arena_printf(a, "%s: %s", repos[i].name, c);
    }
    for (size_t k = 0; !cause && k < l.n; k++) {
        int want = 0;
        for (size_t i = 0; i < n; i++)
            want |= is_forge(&repos[i]) && !strcmp(repos[i].provider, l.v[k].forge) &&
                    !strcmp(repos[i].name, l.v[k].repo);
        if (!want)
            cause = arena_printf(a, "%s: not desired", l.v[k].repo);
    }
    recs_release(&l);
    return cause;
}

/* ---- the forge ------------------------------------------------------------ */

/* Opens the forge of provider/api_root with the token of secret token_env. */
static int forge_connect(const struct dk_env *env, const char *provider, const char *api_root,
                         const char *token_env, struct forge **ret, char **ret_err)
{
    char *host = NULL;
    int rc = forge_api_root_host(api_root, &host);
    if (rc) {
        *ret_err = msg("forge API root %s: not an https:// URL", api_root);
        return rc;
    }
    const struct secret *sec = NULL;
    rc = token_env ? secret_store_lookup(env->store, token_env, host, &sec) : BD_E_NOTFOUND;
    if (rc) {
        char *m = token_env ? secret_lookup_message(env->store, rc, token_env, host)
                            : xstrdup("no forge_token_env recorded");
        *ret_err = msg("forge token: %s", m);
        free(m);
        free(host);
        return rc == BD_E_NOTFOUND ? BD_E_PERM : rc;
    }
    free(host);
    char emsg[512] = "";
    char *token = xmalloc(sec->value_len + 1);
    memcpy(token, sec->value, sec->value_len);
    token[sec->value_len] = '\0';
    rc = forge_open(provider, api_root, token, env->forge_ca, ret, emsg, sizeof(emsg));
    OPENSSL_cleanse(token, sec->value_len);
    free(token);
    if (rc)
        *ret_err = msg("forge %s: %s", api_root, emsg[0] ? emsg : bd_strerror(rc));
    return rc;
}

static int forge_fail(struct forge *f, int rc, char **ret_err)
{
    const char *m = forge_errmsg(f);
    *ret_err = msg("%s", m && *m ? m : bd_strerror(rc));
    return rc;
}

static int put_rec(const struct dk_env *env, const char *bottle, const struct dk_repo *r,
                   const char *key_id, enum state_key_state s, int64_t checked_at)
{
    struct state_deploy_key k = {.bottle = bottle,
                                 .forge = r->provider,
                                 .repo = r->name,
                                 .key_id = key_id,
                                 .fingerprint = r->key.fingerprint,
                                 .state = s,
                                 .api_root = r->api_root,
                                 .repo_path = r->repo_path,
                                 .token_env = r->token_env,
                                 .checked_at = checked_at};
    lk(env);
    int rc = state_deploy_key_put(env->st, &k);
    ulk(env);
    return rc;
}

static int64_t begin_intent(const struct dk_env *env, const char *bottle, const char *action,
                            const char *what)
{
    int64_t id = 0;
    lk(env);
    if (state_intent_begin(env->st, bottle, action, what, &id) != 0)
        id = 0;
    ulk(env);
    return id;
}

static void end_intent(const struct dk_env *env, int64_t id)
{
    if (!id)
        return;
    lk(env);
    (void)state_intent_done(env->st, id);
    ulk(env);
}

static void log_event(const struct dk_env *env, const char *bottle, const char *kind,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void log_event(const struct dk_env *env, const char *bottle, const char *kind,
                      const char *fmt, ...)
{
    va_list va;
    va_start(va, fmt);
    char *d = NULL;
    if (vasprintf(&d, fmt, va) < 0)
        d = NULL;
    va_end(va);
    lk(env);
    (void)state_event_add(env->st, bottle, kind, d);
    ulk(env);
    free(d);
}

/* Deletes key id at repo_path, bracketed by an intent. */
static int delete_at(const struct dk_env *env, struct forge *f, const char *bottle,
                     const char *repo_path, int64_t id, char **ret_err)
{
    char what[400];
    snprintf(what, sizeof(what), "%s#%" PRId64, repo_path, id);
    int64_t iid = begin_intent(env, bottle, "delete-key", what);
    int rc = forge_delete_key(f, repo_path, id);
    if (rc)
        return forge_fail(f, rc, ret_err);
    end_intent(env, iid);
    return 0;
}

/*
 * Settles one forge repo: lists the keys, adopts ours, deletes stale ones
 * with our title, registers the key when none is ours.
 */
static int ensure_one(const struct dk_env *env, struct forge *f, const char *bottle,
                      const struct dk_repo *r, char **ret_err)
{
    char *title = dk_title(env->instance, bottle, r->name);
    struct forge_key_list l = {0};
    int rc = 0;
    {
        lk(env);
        rc = state_repo_used(env->st, r->provider, r->api_root, r->repo_path);
        ulk(env);
        if (rc) {
            *ret_err = msg("record repo %s: %s", r->repo_path, bd_strerror(rc));
            goto out;
        }
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = forge_list_keys(f, r->repo_path, &l);
        if (rc) {
            rc = forge_fail(f, rc, ret_err);
            goto out;
        }
        int64_t adopt = 0;
        for (size_t i = 0; i < l.n; i++) {
            const struct forge_key *k = &l.v[i];
            if (!k->title || strcmp(k->title, title))
                continue;
            if (!adopt && !k->read_only && same_key(k->key, r->key.public_line)) {
                adopt = k->id;
                continue;
            }
            /* ours by title, but another key, read-only, or a duplicate */
            rc = delete_at(env, f, bottle, r->repo_path, k->id, ret_err);
            if (rc)
                goto out;
            log_event(env, bottle, "key-deleted",
                      "repo %s: stale key %" PRId64 " titled %s deleted at %s", r->name, k->id,
                      title, r->repo_path);
        }
        forge_key_list_release(&l);
        if (adopt) {
            char id[32];
            snprintf(id, sizeof(id), "%" PRId64, adopt);
            rc = put_rec(env, bottle, r, id, STATE_KEY_REGISTERED, (int64_t)time(NULL));
            if (rc)
                *ret_err = msg("record key of %s: %s", r->name, bd_strerror(rc));
            goto out;
        }
        if (attempt)
            break;
        /* none of ours: register it, the intent first */
        rc = put_rec(env, bottle, r, NULL, STATE_KEY_INTENT, 0);
        if (rc) {
            *ret_err = msg("record key intent of %s: %s", r->name, bd_strerror(rc));
            goto out;
        }
        char what[400];
        snprintf(what, sizeof(what), "%s:%s", r->provider, r->repo_path);
        int64_t iid = begin_intent(env, bottle, "add-key", what);
        int64_t id = 0;
        rc = forge_add_key(f, r->repo_path, title, r->key.public_line, &id);
        if (rc == BD_E_EXISTS)
            continue; /* a retried POST met the first attempt's key: list again */
        if (rc) {
            rc = forge_fail(f, rc, ret_err);
            goto out;
        }
        char ids[32];
        snprintf(ids, sizeof(ids), "%" PRId64, id);
        rc = put_rec(env, bottle, r, ids, STATE_KEY_REGISTERED, (int64_t)time(NULL));
        if (rc) {
            *ret_err = msg("record key of %s: %s", r->name, bd_strerror(rc));
            goto out;
        }
        end_intent(env, iid);
        log_event(env, bottle, "key-added", "repo %s: key %s (%s) registered at %s as %s", r->name,
                  r->key.fingerprint, title, r->repo_path, ids);
        goto out;
    }
    rc = BD_E_EXISTS;
    *ret_err = msg("repo %s: the forge refuses the key as a duplicate but lists no key titled %s "
                   "with it (is it registered elsewhere?)",
                   r->name, title);
out:
    forge_key_list_release(&l);
    free(title);
    return rc;
}

/* Deletes the key of one record at its forge (by id, or by title when only
 * intended), then forgets it and its files. */
static int revoke_rec(const struct dk_env *env, const char *bottle, const struct rec *k,
                      int keep_files, char **ret_err)
{
    int rc = 0;
    struct forge *f = NULL;
    struct forge_key_list l = {0};
    if (k->api_root && *k->api_root && k->repo_path && *k->repo_path) {
        struct state_deploy_key mark = {.bottle = bottle,
                                        .forge = k->forge,
                                        .repo = k->repo,
                                        .key_id = k->key_id,
                                        .fingerprint = k->fingerprint,
                                        .state = STATE_KEY_DELETING,
                                        .api_root = k->api_root,
                                        .repo_path = k->repo_path,
                                        .token_env = k->token_env,
                                        .checked_at = k->checked_at};
        lk(env);
        (void)state_deploy_key_put(env->st, &mark);
        ulk(env);
        rc = forge_connect(env, k->forge, k->api_root, k->token_env, &f, ret_err);
        if (rc)
            goto out;
        if (k->key_id) {
            int64_t id = strtoll(k->key_id, NULL, 10);
            if (id > 0 && (rc = delete_at(env, f, bottle, k->repo_path, id, ret_err)) != 0)
                goto out;
        }
        /* also any other key with the title (an add whose id was never
         * recorded) */
        char *title = dk_title(env->instance, bottle, k->repo);
        rc = forge_list_keys(f, k->repo_path, &l);
        if (rc == BD_E_NOTFOUND) {
            rc = 0; /* the repository is gone, and its keys with it */
        } else if (rc) {
            free(title);
            rc = forge_fail(f, rc, ret_err);
            goto out;
        }
        for (size_t i = 0; i < l.n && !rc; i++)
            if (l.v[i].title && !strcmp(l.v[i].title, title))
                rc = delete_at(env, f, bottle, k->repo_path, l.v[i].id, ret_err);
        free(title);
        if (rc)
            goto out;
    }
    lk(env);
    rc = state_deploy_key_forget(env->st, bottle, k->forge, k->repo);
    if (rc == 0 && !keep_files)
        (void)state_deploy_key_files_remove(env->st, bottle, k->repo, NULL);
    ulk(env);
    if (rc)
        *ret_err = msg("forget key of %s: %s", k->repo, bd_strerror(rc));
    else
        log_event(env, bottle, "key-revoked", "repo %s: key %s deleted at %s", k->repo,
                  k->key_id ? k->key_id : "(unrecorded)", k->repo_path ? k->repo_path : "?");
out:
    forge_key_list_release(&l);
    forge_close(f);
    return rc;
}

/* A bottle's records, read under the env's lock; a failure said in *ret_err. */
static int recs_read(const struct dk_env *env, const char *bottle, struct recs *l, char **ret_err)
{
    lk(env);
    int rc = recs_load(env->st, bottle, l);
    ulk(env);
    if (rc)
        *ret_err = msg("read the deploy keys: %s", bd_strerror(rc));
    return rc;
}

int dk_sync(const struct dk_env *env, const char *bottle, const struct dk_repo *repos, size_t n,
            int64_t auth_at, char **ret_err)
{
    struct recs l = {0};
    int rc = recs_read(env, bottle, &l, ret_err);
    if (rc)
        return rc;
    /* records of repos this bottle no longer has (or that moved) go first */
    for (size_t k = 0; k < l.n && !rc; k++) {
        int want = 0;
        for (size_t i = 0; i < n; i++)
            want |= is_forge(&repos[i]) && !strcmp(repos[i].provider, l.v[k].forge) &&
                    !strcmp(repos[i].name, l.v[k].repo) &&
                    !strcmp(repos[i].api_root, l.v[k].api_root ? l.v[k].api_root : "") &&
                    !strcmp(repos[i].repo_path, l.v[k].repo_path ? l.v[k].repo_path : "");
        if (!want) {
            /* keep the key files when the repo stays (only its place moved) */
            int stays = 0;
            for (size_t i = 0; i < n; i++)
                stays |= !strcmp(repos[i].name, l.v[k].repo);
            rc = revoke_rec(env, bottle, &l.v[k], stays, ret_err);
        }
    }
    for (size_t i = 0; i < n && !rc; i++) {
        const struct dk_repo *r = &repos[i];
        if (!is_forge(r))
            continue;
        if (!r->have_key) {
            *ret_err = msg("repo %s: no deploy key generated", r->name);
            rc = BD_E_INVAL;
            break;
        }
        if (!repo_cause(&l, bottle, r, auth_at))
            continue;
        struct forge *f = NULL;
        rc = forge_connect(env, r->provider, r->api_root, r->token_env, &f, ret_err);
        if (rc == 0)
            rc = ensure_one(env, f, bottle, r, ret_err);
        forge_close(f);
    }
    recs_release(&l);
    return rc;
}

int dk_has_keys(struct state *st, const char *bottle)
{
    struct recs l;
    if (recs_load(st, bottle, &l) != 0)
        return 0;
    int n = l.n > 0;
    recs_release(&l);
    return n;
}

int dk_revoke_bottle(const struct dk_env *env, const char *bottle, size_t *ret_n, char **ret_err)
{
    struct recs l = {0};
    *ret_n = 0;
    int rc = recs_read(env, bottle, &l, ret_err);
    if (rc)
        return rc;
    for (size_t k = 0; k < l.n && !rc; k++) {
        rc = revoke_rec(env, bottle, &l.v[k], 0, ret_err);
        if (!rc)
            (*ret_n)++;
    }
    if (!rc) {
        lk(env);
        (void)state_host_keys_forget(env->st, bottle);
        ulk(env);
    }
    recs_release(&l);
    return rc;
}

/* ---- gc ----------------------------------------------------------------------- */

struct used {
    char **forge, **api_root, **repo;
    size_t n;
};

static int used_cb(const char *forge, const char *api_root, const char *repo, void *arg)
{
    struct used *u = arg;
    u->forge = xrealloc(u->forge, (u->n + 1) * sizeof(char *));
    u->api_root = xrealloc(u->api_root, (u->n + 1) * sizeof(char *));
    u->repo = xrealloc(u->repo, (u->n + 1) * sizeof(char *));
    u->forge[u->n] = xstrdup(forge);
    u->api_root[u->n] = xstrdup(api_root);
    u->repo[u->n] = xstrdup(repo);
    u->n++;
    return 0;
}

/* Is key id, titled "<prefix><bottle>:<repo>" at api_root, the one a record owns? */
static int owned(const struct recs *all, const char *api_root, const char *title_rest, int64_t id)
{
    for (size_t i = 0; i < all->n; i++) {
        const struct rec *r = &all->v[i];
        if (!r->key_id || strtoll(r->key_id, NULL, 10) != id || !r->api_root ||
            strcmp(r->api_root, api_root))
            continue;
        size_t bl = strlen(r->bottle);
        if (!strncmp(title_rest, r->bottle, bl) && title_rest[bl] == ':' &&
            !strcmp(title_rest + bl + 1, r->repo))
            return 1;
    }
    return 0;
}

int dk_gc(const struct dk_env *env, const char *const *token_envs, size_t n_token_envs,
          size_t *ret_deleted, char **ret_err)
{
    struct used u = {0};
    struct recs all = {0};
    int last = 0;
    *ret_deleted = 0;
    lk(env);
    int rc = state_repos_used_each(env->st, used_cb, &u);
    if (rc == 0)
        rc = recs_load(env->st, NULL, &all);
    ulk(env);
    if (rc) {
        *ret_err = msg("read the repos used: %s", bd_strerror(rc));
        goto out;
    }
    char *prefix = xasprintf(DK_TITLE_PREFIX "%s:", env->instance);
    for (size_t i = 0; i < u.n; i++) {
        /* the token: a record's at this API root, else the manifests' names */
        const char **names = xcalloc(all.n + n_token_envs + 1, sizeof(*names));
        size_t nn = 0;
        for (size_t k = 0; k < all.n; k++)
            if (all.v[k].token_env && all.v[k].api_root &&
                !strcmp(all.v[k].api_root, u.api_root[i]))
                names[nn++] = all.v[k].token_env;
        for (size_t k = 0; k < n_token_envs; k++)
            names[nn++] = token_envs[k];
        struct forge *f = NULL;
        char *err = NULL;
        int frc = BD_E_PERM;
        for (size_t k = 0; k < nn && frc; k++) {
            free(err);
            err = NULL;
            frc = forge_connect(env, u.forge[i], u.api_root[i], names[k], &f, &err);
        }
        free(names);
        if (frc) {
            free(*ret_err);
            *ret_err = err ? err : msg("%s %s: no forge token to use", u.api_root[i], u.repo[i]);
            last = frc;
            continue;
        }
        struct forge_key_list l = {0};
        frc = forge_list_keys(f, u.repo[i], &l);
        if (frc == BD_E_NOTFOUND) {
            frc = 0;
        } else if (frc) {
            free(*ret_err);
            forge_fail(f, frc, ret_err);
            last = frc;
        }
        for (size_t k = 0; !frc && k < l.n; k++) {
            const struct forge_key *key = &l.v[k];
            if (!key->title || strncmp(key->title, prefix, strlen(prefix)))
                continue;
            if (owned(&all, u.api_root[i], key->title + strlen(prefix), key->id))
                continue;
            char tb[200];
            snprintf(tb, sizeof(tb), "%.*s", (int)strcspn(key->title + strlen(prefix), ":"),
                     key->title + strlen(prefix));
            char *e2 = NULL;
            int drc = delete_at(env, f, tb, u.repo[i], key->id, &e2);
            if (drc) {
                free(*ret_err);
                *ret_err = e2;
                last = drc;
                break;
            }
            (*ret_deleted)++;
            log_event(env, NULL, "key-gc", "orphan key %" PRId64 " titled %s deleted at %s",
                      key->id, key->title, u.repo[i]);
        }
        forge_key_list_release(&l);
        forge_close(f);
    }
    free(prefix);
    rc = last;
out:
    for (size_t i = 0; i < u.n; i++) {
        free(u.forge[i]);
        free(u.api_root[i]);
        free(u.repo[i]);
    }
    free(u.forge);
    free(u.api_root);
    free(u.repo);
    recs_release(&all);
    return rc;
}
