/*
 * engine.c - the engine backend registry, URL resolution, and the thin
 * wrappers every caller goes through (they reset the error message, so a
 * message is always about the last call).
 *
 * Adding a backend: its own engine_<name>.c with a const struct
 * engine_ops, one line in backends[] and one in scheme_backend().
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "err.h"
#include "xalloc.h"

#define PODMAN_URL "unix:///run/podman/podman.sock"
#define DOCKER_URL "unix:///var/run/docker.sock"

static const struct engine_ops *const backends[] = {
    &engine_docker_ops,
};

const struct engine_ops *engine_ops_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
        if (strcmp(backends[i]->name, name) == 0)
            return backends[i];
    return NULL;
}

/* The backend name for a URL's scheme, or NULL. */
static const char *scheme_backend(const char *url)
{
    if (strncmp(url, "unix://", 7) == 0)
        return "docker";
    if (strncmp(url, "apple:", 6) == 0)
        return "apple";
    return NULL;
}

/* ------------------------------------------------------------ data helpers */

void engine_strv_add(struct engine_strv *sv, const char *s)
{
    sv->v = xrealloc(sv->v, (sv->n + 1) * sizeof(*sv->v));
    sv->v[sv->n++] = xstrdup(s);
}

void engine_strv_release(struct engine_strv *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    sv->v = NULL;
    sv->n = 0;
}

void engine_kvs_add(struct engine_kvs *kvs, const char *key, const char *value)
{
    kvs->v = xrealloc(kvs->v, (kvs->n + 1) * sizeof(*kvs->v));
    kvs->v[kvs->n].key = xstrdup(key);
    kvs->v[kvs->n].value = xstrdup(value);
    kvs->n++;
}

const char *engine_kvs_get(const struct engine_kvs *kvs, const char *key)
{
    for (size_t i = 0; i < kvs->n; i++)
        if (strcmp(kvs->v[i].key, key) == 0)
            return kvs->v[i].value;
    return NULL;
}

void engine_kvs_release(struct engine_kvs *kvs)
{
    for (size_t i = 0; i < kvs->n; i++) {
        free(kvs->v[i].key);
        free(kvs->v[i].value);
    }
    free(kvs->v);
    kvs->v = NULL;
    kvs->n = 0;
}

void engine_version_release(struct engine_version *v)
{
    free(v->api_version);
    free(v->engine_version);
    memset(v, 0, sizeof(*v));
}

void engine_network_list_release(struct engine_network_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        struct engine_network *n = &l->v[i];
        free(n->id);
        free(n->name);
        free(n->subnet);
        free(n->gateway);
        free(n->bridge_name);
        engine_kvs_release(&n->labels);
        engine_strv_release(&n->containers);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void engine_volume_list_release(struct engine_volume_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].name);
        free(l->v[i].driver);
        free(l->v[i].mountpoint);
        engine_kvs_release(&l->v[i].labels);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void engine_container_release(struct engine_container *c)
{
    free(c->id);
    free(c->name);
    free(c->image);
    free(c->image_id);
    free(c->state);
    engine_kvs_release(&c->labels);
    for (size_t i = 0; i < c->n_networks; i++) {
        free(c->networks[i].network);
        free(c->networks[i].network_id);
        free(c->networks[i].ipv4);
        engine_strv_release(&c->networks[i].aliases);
    }
    free(c->networks);
    for (size_t i = 0; i < c->n_mounts; i++) {
        free(c->mounts[i].type);
        free(c->mounts[i].name);
        free(c->mounts[i].source);
        free(c->mounts[i].destination);
    }
    free(c->mounts);
    memset(c, 0, sizeof(*c));
}

void engine_container_list_release(struct engine_container_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        engine_container_release(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void engine_container_info_release(struct engine_container_info *i)
{
    engine_container_release(&i->c);
    free(i->network_mode);
    engine_strv_release(&i->caps);
    engine_strv_release(&i->cap_add);
    engine_strv_release(&i->cap_drop);
    engine_strv_release(&i->security_opt);
    free(i->user);
    free(i->workdir);
    engine_strv_release(&i->env);
    engine_strv_release(&i->extra_hosts);
    engine_kvs_release(&i->sysctls);
    memset(i, 0, sizeof(*i));
}

void engine_path_stat_release(struct engine_path_stat *s)
{
    free(s->name);
    free(s->mtime);
    free(s->link_target);
    memset(s, 0, sizeof(*s));
}

void engine_exec_result_release(struct engine_exec_result *r)
{
    buf_release(&r->out);
    buf_release(&r->err);
}

/* ------------------------------------------------------------ handle */

int engine_default_url(char **ret_url)
{
    const char *env = getenv("DOCKER_HOST");
    if (env && *env) {
        *ret_url = xstrdup(env);
        return 0;
    }
    /* Probe Podman's socket through the backend itself: "answers /_ping"
     * is exactly what opening does. */
    struct engine *e = NULL;
    if (engine_open(PODMAN_URL, &e, NULL, 0) == 0) {
        engine_close(e);
        *ret_url = xstrdup(PODMAN_URL);
        return 0;
    }
    *ret_url = xstrdup(DOCKER_URL);
    return 0;
}

int engine_open(const char *url, struct engine **ret, char *errmsg, size_t errmsg_len)
{
    char *deflt = NULL;
    struct engine *e = NULL;
    int r;

    if (!url) {
        r = engine_default_url(&deflt);
        if (r < 0)
            goto out;
        url = deflt;
    }
    const char *bname = scheme_backend(url);
    const struct engine_ops *ops = bname ? engine_ops_lookup(bname) : NULL;
    if (!ops) {
        if (errmsg && errmsg_len)
            snprintf(errmsg, errmsg_len, "unsupported engine URL \"%s\"%s", url,
                     bname ? " (backend not built)" : " (expected unix:///path)");
        r = BD_E_INVAL;
        goto out;
    }
    e = xcalloc(1, sizeof(*e));
    e->ops = ops;
    r = ops->open(e, url);
    if (r < 0) {
        if (errmsg && errmsg_len)
            snprintf(errmsg, errmsg_len, "%s", e->errmsg);
        goto out;
    }
    *ret = e;
    e = NULL;
    if (errmsg && errmsg_len)
        errmsg[0] = '\0';
out:
    free(e);
    free(deflt);
    return r;
}

void engine_close(struct engine *e)
{
    if (!e)
        return;
    if (e->impl)
        e->ops->close(e);
    free(e);
}

const char *engine_errmsg(const struct engine *e)
{
    return e->errmsg;
}

bool engine_is_podman(const struct engine *e)
{
    return e->podman;
}

unsigned long engine_mutations(const struct engine *e)
{
    return e->mutations;
}

void engine_count_mutation(struct engine *e)
{
    e->mutations++;
}

void engine_set_errmsg(struct engine *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->errmsg, sizeof(e->errmsg), fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ wrappers */

#define CALL(e, op, ...) ((e)->errmsg[0] = '\0', (e)->ops->op((e), __VA_ARGS__))

int engine_version(struct engine *e, struct engine_version *ret)
{
    return CALL(e, version, ret);
}

int engine_network_create(struct engine *e, const struct engine_network_spec *spec, char **ret_id)
{
    return CALL(e, network_create, spec, ret_id);
}

int engine_network_list(struct engine *e, const struct engine_strv *label_filter,
                        struct engine_network_list *ret)
{
    return CALL(e, network_list, label_filter, ret);
}

int engine_network_remove(struct engine *e, const char *network)
{
    return CALL(e, network_remove, network);
}

int engine_network_connect(struct engine *e, const char *container,
                           const struct engine_endpoint_spec *ep)
{
    return CALL(e, network_connect, container, ep);
}

int engine_network_disconnect(struct engine *e, const char *network, const char *container)
{
    return CALL(e, network_disconnect, network, container);
}

int engine_volume_create(struct engine *e, const char *name, const struct engine_kvs *labels)
{
    return CALL(e, volume_create, name, labels);
}

int engine_volume_list(struct engine *e, const struct engine_strv *label_filter,
                       struct engine_volume_list *ret)
{
    return CALL(e, volume_list, label_filter, ret);
}

int engine_volume_remove(struct engine *e, const char *name)
{
    return CALL(e, volume_remove, name);
}

int engine_container_create(struct engine *e, const struct engine_container_spec *spec,
                            char **ret_id)
{
    if (spec->n_endpoints > ENGINE_MAX_ENDPOINTS || spec->n_mounts > ENGINE_MAX_MOUNTS) {
        engine_set_errmsg(e, "too many endpoints or mounts");
        return BD_E_INVAL;
    }
    return CALL(e, container_create, spec, ret_id);
}

int engine_container_list(struct engine *e, const struct engine_strv *label_filter,
                          struct engine_container_list *ret)
{
    return CALL(e, container_list, label_filter, ret);
}

int engine_container_inspect(struct engine *e, const char *container,
                             struct engine_container_info *ret)
{
    return CALL(e, container_inspect, container, ret);
}

int engine_container_start(struct engine *e, const char *container)
{
    return CALL(e, container_start, container);
}

int engine_container_stop(struct engine *e, const char *container, int timeout_s)
{
    return CALL(e, container_stop, container, timeout_s);
}

int engine_container_kill(struct engine *e, const char *container, const char *signal)
{
    return CALL(e, container_kill, container, signal);
}

int engine_container_remove(struct engine *e, const char *container)
{
    return CALL(e, container_remove, container);
}

int engine_container_wait(struct engine *e, const char *container, int timeout_s, int *ret_status)
{
    return CALL(e, container_wait, container, timeout_s, ret_status);
}

int engine_archive_put(struct engine *e, const char *container, const char *dir, const void *tar,
                       size_t len)
{
    return CALL(e, archive_put, container, dir, tar, len);
}

int engine_archive_get(struct engine *e, const char *container, const char *path, size_t max,
                       struct buf *ret_tar, struct engine_path_stat *ret_stat)
{
    return CALL(e, archive_get, container, path, max, ret_tar, ret_stat);
}

int engine_exec(struct engine *e, const char *container, const struct engine_exec_spec *spec,
                struct engine_exec_result *ret)
{
    return CALL(e, exec, container, spec, ret);
}

int engine_image_id(struct engine *e, const char *ref, char **ret_id)
{
    return CALL(e, image_id, ref, ret_id);
}

int engine_events(struct engine *e, const struct engine_strv *types, int64_t since,
                  engine_event_fn fn, void *arg)
{
    if (!e->ops->events) {
        engine_set_errmsg(e, "the %s backend has no event stream", e->ops->name);
        return BD_E_INVAL;
    }
    return CALL(e, events, types, since, fn, arg);
}

void engine_events_cancel(struct engine *e)
{
    /* not CALL(): errmsg belongs to the thread running the stream */
    if (e->ops->events_cancel)
        e->ops->events_cancel(e);
}
