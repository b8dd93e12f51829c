/*
 * watch_events.c - the engine event stream thread of `bottled watch` (see
 * watch_events.h for what counts as a hint and why it cannot loop).
 *
 * The thread:
 *
 *   open engine --fail--> report DOWN (once per outage), sleep backoff --+
 *       |                                                                  |
 *   list our containers (ids)  --fail--> close, same as above ------------+
 *       |                                                                  |
 *   report LIVE (+ RESYNC after an outage)                                 |
 *       |                                                                  |
 *   stream events (since just before the list) until it drops ------------+
 *
 * It posts into one pending report under a mutex and writes a byte to a
 * self-pipe; drain reads the pipe first and then takes the report, so a
 * post that races with a drain is never lost (its byte stays for the next
 * poll).  Stopping cancels the stream (engine_events_cancel() shuts its
 * socket down) and wakes the backoff sleep through a condition variable.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "desired.h"
#include "err.h"
#include "watch_events.h"
#include "xalloc.h"

#define BACKOFF_MIN_MS 1000L
#define BACKOFF_MAX_MS 30000L
#define STABLE_MS      30000L /* a stream that lived this long resets the backoff */
#define QUIET_MS       5000L  /* one that lived this long is reopened at once */
#define REOPEN_BURST   3      /* ... and so are shorter-lived ones, this many per window */
#define REOPEN_WINDOW  60000L

struct watch_events {
    char *url;
    struct watch_events_scope sc; /* the thread's */
    char *prefix;
    char *instance;
    int pipe[2];
    pthread_t th;
    int started;
    pthread_mutex_t mu; /* guards what follows */
    pthread_cond_t cv;
    int stopping;
    struct engine *cur; /* the connection in use, for the cancel */
    struct watch_events_report pending;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ matching */

static int has_prefix(const char *s, const char *p)
{
    return s && p && *p && !strncmp(s, p, strlen(p));
}

static long id_index(const struct watch_events_scope *sc, const char *id)
{
    for (size_t i = 0; id && i < sc->ids.n; i++)
        if (!strcmp(sc->ids.v[i], id))
            return (long)i;
    return -1;
}

static void id_add(struct watch_events_scope *sc, const char *id)
{
    if (id && *id && id_index(sc, id) < 0)
        engine_strv_add(&sc->ids, id);
}

static void id_del(struct watch_events_scope *sc, const char *id)
{
    long i = id_index(sc, id);
    if (i < 0)
        return;
    free(sc->ids.v[i]);
    sc->ids.v[i] = sc->ids.v[--sc->ids.n];
}

static int one_of(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(s, *set))
            return 1;
    return 0;
}

int watch_events_relevant(struct watch_events_scope *sc, const struct engine_event *ev)
{
    static const char *const ctr_drift[] = {"die", "stop", "oom", "pause", "rename", NULL};
    if (ev->lost)
        return 1;
    if (!ev->type || !ev->action)
        return 0;
    const char *a = ev->action;
    if (!strcmp(ev->type, "container")) {
        const char *inst = ev->attrs ? engine_kvs_get(ev->attrs, LABEL_INSTANCE) : NULL;
        int ours =
            inst ? sc->instance && !strcmp(inst, sc->instance) : has_prefix(ev->name, sc->prefix);
        if (!ours)
            return 0;
        if (!strcmp(a, "destroy")) {
            id_del(sc, ev->id);
            return 1;
        }
        id_add(sc, ev->id);
        return one_of(a, ctr_drift);
    }
    if (!strcmp(ev->type, "network")) {
        if (!strcmp(a, "connect") || !strcmp(a, "disconnect"))
            return id_index(sc, ev->container) >= 0 || has_prefix(ev->container_name, sc->prefix) ||
                   has_prefix(ev->name, sc->prefix);
        return !strcmp(a, "destroy") && has_prefix(ev->name, sc->prefix);
    }
    if (!strcmp(ev->type, "volume"))
        return !strcmp(a, "destroy") && has_prefix(ev->name, sc->prefix);
    return 0;
}

/* ------------------------------------------------------------ the thread */

static void post(struct watch_events *we, unsigned flags, const char *first, const char *why)
{
    pthread_mutex_lock(&we->mu);
    struct watch_events_report *r = &we->pending;
    r->flags |= flags;
    if (flags & WATCH_EV_DRIFT) {
        if (!r->n_drift++ && first)
            snprintf(r->first, sizeof(r->first), "%s", first);
    }
    if (why)
        snprintf(r->why, sizeof(r->why), "%s", why);
    pthread_mutex_unlock(&we->mu);
    char c = 0;
    (void)!write(we->pipe[1], &c, 1); /* full pipe: a wake-up is pending anyway */
}

static int stopping(struct watch_events *we)
{
    pthread_mutex_lock(&we->mu);
    int s = we->stopping;
    pthread_mutex_unlock(&we->mu);
    return s;
}

/* "container NAME die", printable; names come from the engine. */
static void describe(const struct engine_event *ev, char *out, size_t max)
{
    if (ev->lost) {
        snprintf(out, max, "an unreadable event");
        return;
    }
    const char *who = ev->name ? ev->name : ev->container_name ? ev->container_name : ev->id;
    snprintf(out, max, "%s '%.64s' %s", ev->type, who ? who : "?", ev->action);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
}

static int on_event(const struct engine_event *ev, void *arg)
{
    struct watch_events *we = arg;
    if (watch_events_relevant(&we->sc, ev)) {
        char d[160];
        describe(ev, d, sizeof(d));
        post(we, WATCH_EV_DRIFT, d, NULL);
    }
    return stopping(we);
}

/* The ids of our containers, from one labelled list call. */
static int load_ids(struct watch_events *we, struct engine *e)
{
    struct engine_strv filter = {0};
    struct engine_container_list l = {0};
    char *term = xasprintf("%s=%s", LABEL_INSTANCE, we->instance);
    engine_strv_add(&filter, term);
    free(term);
    int rc = engine_container_list(e, &filter, &l);
    engine_strv_release(&filter);
    if (rc)
        return rc;
    engine_strv_release(&we->sc.ids);
    for (size_t i = 0; i < l.n; i++)
        id_add(&we->sc, l.v[i].id);
    engine_container_list_release(&l);
    return 0;
}

/* Sleeps ms unless stopped first; returns stopping(). */
static int nap(struct watch_events *we, long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&we->mu);
    while (!we->stopping && pthread_cond_timedwait(&we->cv, &we->mu, &until) != ETIMEDOUT)
        ;
    int s = we->stopping;
    pthread_mutex_unlock(&we->mu);
    return s;
}

static void *run(void *arg)
{
    struct watch_events *we = arg;
    struct engine_strv types = {0};
    engine_strv_add(&types, "container");
    engine_strv_add(&types, "network");
    engine_strv_add(&types, "volume");
    long backoff = BACKOFF_MIN_MS;
    int outage = 0;                    /* DOWN was reported and no LIVE since */
    int reopen = 0;                    /* the stream ended and this open is its retry at once */
    char ended[256] = "";              /* why it ended, said with the next LIVE */
    int64_t quick[REOPEN_BURST] = {0}; /* when short-lived streams were reopened at once */
    size_t nquick = 0;
    while (!stopping(we)) {
        struct engine *e = NULL;
        char why[256] = "";
        int64_t lived = 0;
        int opened = 0;
        /* replay from just before the list, so no event falls between */
        int64_t since = (int64_t)time(NULL) - 1;
        int rc = engine_open(we->url, &e, why, sizeof(why));
        if (rc == 0) {
            pthread_mutex_lock(&we->mu);
            if (!we->stopping)
                we->cur = e;
            pthread_mutex_unlock(&we->mu);
            if (we->cur != e) {
                engine_close(e);
                break;
            }
            rc = load_ids(we, e);
            if (rc == 0) {
                post(we, WATCH_EV_LIVE | (outage || reopen ? WATCH_EV_RESYNC : 0), NULL,
                     reopen ? ended : NULL);
                outage = reopen = 0;
                opened = 1;
                int64_t t0 = mono_ms();
                rc = engine_events(e, &types, since, on_event, we);
                lived = mono_ms() - t0;
                if (lived >= STABLE_MS)
                    backoff = BACKOFF_MIN_MS;
            }
            snprintf(why, sizeof(why), "%s", engine_errmsg(e));
            pthread_mutex_lock(&we->mu);
            we->cur = NULL;
            pthread_mutex_unlock(&we->mu);
            engine_close(e);
        }
        if (stopping(we))
            break;
        /* A stream that lived a while and ended (Podman ends it when its
         * event log rotates, at times twice in a row) is reopened at once,
         * and only said if that fails; so is one that ended sooner, up to
         * REOPEN_BURST times a minute.  One that keeps ending at once, or
         * an engine that cannot be reached, goes through the backoff. */
        int64_t now = mono_ms();
        int burst_ok = nquick < REOPEN_BURST || now - quick[nquick % REOPEN_BURST] > REOPEN_WINDOW;
        if (opened && (lived >= QUIET_MS || burst_ok)) {
            if (lived < QUIET_MS)
                quick[nquick++ % REOPEN_BURST] = now;
            reopen = 1;
            snprintf(ended, sizeof(ended), "%s", why);
            continue;
        }
        reopen = 0;
        if (!outage)
            post(we, WATCH_EV_DOWN, NULL, why[0] ? why : bd_strerror(rc ? rc : BD_E_UNAVAIL));
        outage = 1;
        if (nap(we, backoff))
            break;
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    engine_strv_release(&types);
    return NULL;
}

/* ------------------------------------------------------------ API */

int watch_events_start(const struct watch_events_opts *o, struct watch_events **ret)
{
    struct watch_events *we = xcalloc(1, sizeof(*we));
    we->pipe[0] = we->pipe[1] = -1;
    we->url = o->engine_url ? xstrdup(o->engine_url) : NULL;
    we->instance = xstrdup(o->instance ? o->instance : "");
    we->prefix = xasprintf("%s-", o->name_prefix ? o->name_prefix : DESIRED_DEFAULT_PREFIX);
    we->sc.instance = we->instance;
    we->sc.prefix = we->prefix;
    pthread_mutex_init(&we->mu, NULL);
    pthread_cond_init(&we->cv, NULL);
    if (pipe2(we->pipe, O_CLOEXEC | O_NONBLOCK) != 0 ||
        pthread_create(&we->th, NULL, run, we) != 0) {
        watch_events_stop(we);
        return BD_E_INTERNAL;
    }
    we->started = 1;
    *ret = we;
    return 0;
}

int watch_events_fd(const struct watch_events *we)
{
    return we->pipe[0];
}

void watch_events_drain(struct watch_events *we, struct watch_events_report *ret)
{
    char buf[64];
    while (read(we->pipe[0], buf, sizeof(buf)) > 0)
        ;
    pthread_mutex_lock(&we->mu);
    *ret = we->pending;
    memset(&we->pending, 0, sizeof(we->pending));
    pthread_mutex_unlock(&we->mu);
}

void watch_events_stop(struct watch_events *we)
{
    if (!we)
        return;
    pthread_mutex_lock(&we->mu);
    we->stopping = 1;
    if (we->cur)
        engine_events_cancel(we->cur);
    pthread_cond_broadcast(&we->cv);
    pthread_mutex_unlock(&we->mu);
    if (we->started)
        pthread_join(we->th, NULL);
    pthread_cond_destroy(&we->cv);
    pthread_mutex_destroy(&we->mu);
    if (we->pipe[0] >= 0)
        close(we->pipe[0]);
    if (we->pipe[1] >= 0)
        close(we->pipe[1]);
    engine_strv_release(&we->sc.ids);
    free(we->url);
    free(we->instance);
    free(we->prefix);
    free(we);
}
