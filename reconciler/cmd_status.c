/*
 * cmd_status.c - `bottled status [NAME...]`: what the state database
 * remembers of each bottle (phase, reason, last error, hashes, resources,
 * deploy keys)
 * and of the last reconcile passes.
 *
 * Read-only: the state dir is opened STATE_RDONLY, so status works while
 * `watch` holds the lock and never creates anything.  It shows the
 * database, not the engine: what the last pass recorded, which may lag
 * behind a pass in progress.
 *
 * Everything is read first into one struct status (strings copied into an
 * arena), then printed as text or JSON from that one snapshot, so both
 * forms show the same data.  Times in the database are Unix seconds; the
 * JSON gives them as ISO 8601 UTC strings.
 *
 * The watcher's live view: `bottled watch` rewrites one row (state.h,
 * struct state_watcher) at each change of what it is doing (idle,
 * settling, deferred, in a pass and its trigger, the next resync).  The
 * row is believed only while its process lives and holds the state dir's
 * lock (the lock file names the holder's pid); otherwise status says the
 * watcher is not running, and when it was last seen.
 *
 * Exit status: 0 shown (whatever the phases: status is informational);
 * 1 a NAME the state does not know; 2 bottled's own configuration is wrong
 * (flags, the state dir's mode or owner); 3 the state database cannot be
 * read (unreadable, busy past the timeout, a schema of another version).
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "arena.h"
#include "buf.h"
#include "cmd.h"
#include "err.h"
#include "json_canon.h"
#include "state.h"
#include "xalloc.h"

#define PASSES_SHOWN 5  /* with -v and in the JSON */
#define EVENTS_SHOWN 5  /* per bottle, with -v and in the JSON */
#define SHORT_HASH   12 /* hex digits of a hash or engine id in text output */
#define WHEN_MAX     96 /* "<iso> (in <span>)" */

struct status_resource {
    const char *role;
    const char *name;
    const char *engine_id; /* NULL until known */
    const char *spec_hash;
};

struct status_key {
    const char *repo, *forge, *repo_path, *key_id, *fingerprint, *state;
};

struct status_bottle {
    struct state_bottle b; /* strings in the arena */
    struct status_resource *res;
    size_t n_res;
    struct status_key *keys; /* deploy keys at the forges */
    size_t n_keys;
    struct state_event ev[EVENTS_SHOWN]; /* oldest first; strings in the arena */
    size_t n_ev;
};

struct status {
    struct arena a;
    int64_t now;
    const char *instance;                   /* NULL: no state yet */
    struct state_pass passes[PASSES_SHOWN]; /* the last ones, oldest first */
    size_t n_passes;
    struct state_pass last_done; /* the last finished pass */
    int have_done;
    struct status_bottle *bottles;
    size_t n;
    struct state_watcher watcher; /* strings in the arena */
    int have_watcher;
    int watcher_alive; /* its process lives and holds the lock */
};

static const char *adup(struct arena *a, const char *s)
{
    return s ? arena_strdup(a, s) : NULL;
}

static struct status_bottle *add_bottle(struct status *s, const struct state_bottle *b)
{
    s->bottles = xrealloc(s->bottles, (s->n + 1) * sizeof(*s->bottles));
    struct status_bottle *sb = &s->bottles[s->n++];
    memset(sb, 0, sizeof(*sb));
    sb->b = *b;
    sb->b.name = adup(&s->a, b->name);
    sb->b.spec_hash = adup(&s->a, b->spec_hash);
    sb->b.manifest_hash = adup(&s->a, b->manifest_hash);
    sb->b.config_hash = adup(&s->a, b->config_hash);
    sb->b.reason = adup(&s->a, b->reason);
    sb->b.last_error = adup(&s->a, b->last_error);
    return sb;
}

static int bottle_cb(const struct state_bottle *b, void *arg)
{
    add_bottle(arg, b);
    return 0;
}

struct res_ctx {
    struct status *s;
    struct status_bottle *sb;
};

static int resource_cb(const struct state_resource *r, void *arg)
{
    struct res_ctx *c = arg;
    struct status_bottle *sb = c->sb;
    sb->res = xrealloc(sb->res, (sb->n_res + 1) * sizeof(*sb->res));
    sb->res[sb->n_res++] = (struct status_resource){
        .role = adup(&c->s->a, r->role),
        .name = adup(&c->s->a, r->name),
        .engine_id = adup(&c->s->a, r->engine_id),
        .spec_hash = adup(&c->s->a, r->spec_hash),
    };
    return 0;
}

static int key_cb(const struct state_deploy_key *k, void *arg)
{
    struct res_ctx *c = arg;
    struct status_bottle *sb = c->sb;
    sb->keys = xrealloc(sb->keys, (sb->n_keys + 1) * sizeof(*sb->keys));
    sb->keys[sb->n_keys++] = (struct status_key){
        .repo = adup(&c->s->a, k->repo),
        .forge = adup(&c->s->a, k->forge),
        .repo_path = adup(&c->s->a, k->repo_path),
        .key_id = adup(&c->s->a, k->key_id),
        .fingerprint = adup(&c->s->a, k->fingerprint),
        .state = state_key_state_name(k->state),
    };
    return 0;
}

static int event_cb(const struct state_event *e, void *arg)
{
    struct res_ctx *c = arg;
    struct status_bottle *sb = c->sb;
    if (sb->n_ev == EVENTS_SHOWN) /* the state module returns at most that many */
        return 0;
    sb->ev[sb->n_ev++] = (struct state_event){
        .id = e->id,
        .ts = e->ts,
        .bottle = NULL,
        .kind = adup(&c->s->a, e->kind),
        .detail = adup(&c->s->a, e->detail),
    };
    return 0;
}

static int pass_cb(const struct state_pass *p, void *arg)
{
    struct status *s = arg;
    if (s->n_passes < PASSES_SHOWN) {
        s->passes[s->n_passes] = *p;
        s->passes[s->n_passes].gc_blocked = adup(&s->a, p->gc_blocked);
        s->passes[s->n_passes].trigger = adup(&s->a, p->trigger);
        s->n_passes++;
    }
    return 0;
}

/* Keeps the last finished pass seen (passes come oldest first). */
static int done_cb(const struct state_pass *p, void *arg)
{
    struct status *s = arg;
    if (p->finished_at != 0) {
        s->last_done = *p;
        s->last_done.gc_blocked = adup(&s->a, p->gc_blocked);
        s->last_done.trigger = adup(&s->a, p->trigger);
        s->have_done = 1;
    }
    return 0;
}

/* The pid the state dir's lock file names as its holder, or 0. */
static long lock_holder(const char *state_dir)
{
    char *path = xasprintf("%s/lock", state_dir);
    FILE *f = fopen(path, "re");
    long pid = 0;
    free(path);
    if (!f)
        return 0;
    if (fscanf(f, "pid %ld", &pid) != 1)
        pid = 0;
    fclose(f);
    return pid;
}

static int read_watcher(struct state *st, struct status *s)
{
    struct state_watcher w;
    int rc = state_watcher_get(st, &w);
    if (rc == BD_E_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    s->watcher = w;
    s->watcher.backend = adup(&s->a, w.backend);
    s->watcher.dir = adup(&s->a, w.dir);
    s->watcher.detail = adup(&s->a, w.detail);
    s->have_watcher = 1;
    s->watcher_alive = w.activity != STATE_ACT_STOPPED && w.pid > 0 &&
                       (kill((pid_t)w.pid, 0) == 0 || errno == EPERM) &&
                       lock_holder(state_dir(st)) == (long)w.pid;
    state_watcher_release(&w);
    return 0;
}

/*
 * Reads the passes, the bottles (all, or those named) with their
 * resources and events into s.  Returns 0, BD_E_NOTFOUND after a message
 * for each unknown NAME (the others are read), or another error.
 */
static int status_read(struct state *st, struct status *s, int argc, char **argv)
{
    int rc = read_watcher(st, s);
    if (rc)
        return rc;
    rc = state_passes_each(st, PASSES_SHOWN, pass_cb, s);
    if (rc)
        return rc;
    for (size_t i = s->n_passes; i-- > 0;) {
        if (s->passes[i].finished_at != 0) {
            s->last_done = s->passes[i];
            s->have_done = 1;
            break;
        }
    }
    /* Only when the last few passes never finished: look further back. */
    if (!s->have_done && s->n_passes == PASSES_SHOWN) {
        rc = state_passes_each(st, 0, done_cb, s);
        if (rc)
            return rc;
    }

    int unknown = 0;
    if (argc == 0) {
        rc = state_bottles_each(st, bottle_cb, s);
        if (rc)
            return rc;
    }
    for (int i = 0; i < argc; i++) {
        int dup = 0;
        for (int k = 0; k < i; k++)
            dup |= !strcmp(argv[k], argv[i]);
        if (dup)
            continue;
        struct state_bottle b;
        rc = state_bottle_get(st, argv[i], &b);
        if (rc == BD_E_NOTFOUND) {
            fprintf(stderr, "bottled: status: no bottle '%s' in the state of %s\n", argv[i],
                    state_dir(st));
            unknown = 1;
            continue;
        }
        if (rc)
            return rc;
        add_bottle(s, &b);
        state_bottle_release(&b);
    }
    for (size_t i = 0; i < s->n; i++) {
        struct res_ctx c = {s, &s->bottles[i]};
        rc = state_resources_each(st, s->bottles[i].b.name, resource_cb, &c);
        if (rc)
            return rc;
        rc = state_deploy_keys_each(st, s->bottles[i].b.name, key_cb, &c);
        if (rc)
            return rc;
        rc = state_events_each(st, s->bottles[i].b.name, EVENTS_SHOWN, event_cb, &c);
        if (rc)
            return rc;
    }
    return unknown ? BD_E_NOTFOUND : 0;
}

static void status_release(struct status *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->bottles[i].res);
        free(s->bottles[i].keys);
    }
    free(s->bottles);
    arena_release(&s->a);
}

/* ---- output ------------------------------------------------------------ */

/* "2024-05-01T10:00:00Z" */
static void iso_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, 32, "@%lld", (long long)t);
}

/* "3m" for 180 seconds: one unit, rounded down. */
static void span(int64_t secs, char out[32])
{
    if (secs < 60)
        snprintf(out, 32, "%llds", (long long)secs);
    else if (secs < 3600)
        snprintf(out, 32, "%lldm", (long long)(secs / 60));
    else if (secs < 86400)
        snprintf(out, 32, "%lldh", (long long)(secs / 3600));
    else
        snprintf(out, 32, "%lldd", (long long)(secs / 86400));
}

/* "2024-05-01T10:00:00Z (3m ago)" or "... (in 30s)". */
static void when(int64_t t, int64_t now, char out[WHEN_MAX])
{
    char iso[32], rel[32];
    iso_time(t, iso);
    span(t <= now ? now - t : t - now, rel);
    snprintf(out, WHEN_MAX, "%s (%s%s%s)", iso, t <= now ? "" : "in ", rel, t <= now ? " ago" : "");
}

/*
 * Writes s on one line: control characters are escaped, so a multi-line
 * error from the database cannot break the layout or move the cursor.
 */
static void put_line_safe(FILE *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n')
            fputs("\\n", out);
        else if (*p == '\t')
            fputs("\\t", out);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
}

/* "812 ms", "3.4 s", or span()'s form from a minute on. */
static void duration(int64_t ms, char out[32])
{
    if (ms < 1000)
        snprintf(out, 32, "%lld ms", (long long)ms);
    else if (ms < 60000)
        snprintf(out, 32, "%.1f s", (double)ms / 1000);
    else
        span(ms / 1000, out);
}

static void field(FILE *out, const char *label, const char *value)
{
    fprintf(out, "  %-12s", label);
    put_line_safe(out, value);
    fputc('\n', out);
}

static const char *plural(int n)
{
    return n == 1 ? "" : "s";
}

/* One pass on one line; with_gc adds the path that blocked its deletions. */
static void print_pass(FILE *out, const char *prefix, const struct state_pass *p, int64_t now,
                       int with_gc)
{
    char w[WHEN_MAX], took[32], trig[64] = "";
    if (p->trigger)
        snprintf(trig, sizeof(trig), " (%s)", p->trigger);
    if (p->finished_at == 0) {
        when(p->started_at, now, w);
        fprintf(out, "%s#%lld%s started %s, not finished (running, or its process died)\n", prefix,
                (long long)p->id, trig, w);
        return;
    }
    when(p->finished_at, now, w);
    if (p->duration_ms > 0)
        duration(p->duration_ms, took);
    else
        span(p->finished_at >= p->started_at ? p->finished_at - p->started_at : 0, took);
    fprintf(out, "%s#%lld%s finished %s: took %s, %d change%s, %d failure%s", prefix,
            (long long)p->id, trig, w, took, p->changes, plural(p->changes), p->failures,
            plural(p->failures));
    if (with_gc && p->gc_blocked) {
        fputs(", gc blocked by ", out);
        put_line_safe(out, p->gc_blocked);
    }
    fputc('\n', out);
}

static void print_bottle(FILE *out, const struct status_bottle *sb, int64_t now, int verbose)
{
    const struct state_bottle *b = &sb->b;
    char w[WHEN_MAX], num[32];
    fputc('\n', out);
    put_line_safe(out, b->name);
    fprintf(out, ": %s\n", state_phase_name(b->phase));
    if (b->reason)
        field(out, "reason", b->reason);
    if (b->last_error)
        field(out, "last error", b->last_error);
    fprintf(out, "  %-12s%.*s\n", "manifest", SHORT_HASH,
            b->manifest_hash ? b->manifest_hash : "-");
    if (verbose) {
        fprintf(out, "  %-12s%.*s\n", "spec", SHORT_HASH, b->spec_hash ? b->spec_hash : "-");
        fprintf(out, "  %-12s%.*s\n", "config", SHORT_HASH, b->config_hash ? b->config_hash : "-");
    }
    snprintf(num, sizeof(num), "%lld", (long long)b->generation);
    field(out, "generation", num);
    if (b->failures) {
        snprintf(num, sizeof(num), "%d", b->failures);
        field(out, "failures", num);
    }
    when(b->updated_at, now, w);
    field(out, "updated", w);
    if (b->last_pass_at) {
        char took[32], line[WHEN_MAX + 48];
        when(b->last_pass_at, now, w);
        duration(b->last_pass_ms, took);
        snprintf(line, sizeof(line), "%s, its work took %s", w, took);
        field(out, "last pass", line);
    }
    if (b->next_retry) {
        when(b->next_retry, now, w);
        field(out, "next retry", w);
    }
    if (sb->n_res) {
        fprintf(out, "  resources\n");
        int rw = 0, nw = 0;
        for (size_t i = 0; i < sb->n_res; i++) {
            int lr = (int)strlen(sb->res[i].role), ln = (int)strlen(sb->res[i].name);
            rw = lr > rw ? lr : rw;
            nw = ln > nw ? ln : nw;
        }
        for (size_t i = 0; i < sb->n_res; i++) {
            const struct status_resource *r = &sb->res[i];
            fprintf(out, "    %-*s  ", rw, r->role);
            put_line_safe(out, r->name);
            if (r->engine_id && !strcmp(r->engine_id, r->name))
                fprintf(out, "%*s  (volume)\n", nw - (int)strlen(r->name),
                        ""); /* named by its name */
            else if (r->engine_id)
                fprintf(out, "%*s  %.*s\n", nw - (int)strlen(r->name), "", SHORT_HASH,
                        r->engine_id);
            else
                fprintf(out, "%*s  (no engine id yet)\n", nw - (int)strlen(r->name), "");
        }
    }
    if (sb->n_keys) {
        fprintf(out, "  deploy keys\n");
        for (size_t i = 0; i < sb->n_keys; i++) {
            const struct status_key *k = &sb->keys[i];
            fputs("    ", out);
            put_line_safe(out, k->repo);
            fputs("  ", out);
            put_line_safe(out, k->forge);
            fputc(' ', out);
            put_line_safe(out, k->repo_path && *k->repo_path ? k->repo_path : "?");
            fprintf(out, "  %s", k->state);
            if (k->key_id) {
                fputs(" as ", out);
                put_line_safe(out, k->key_id);
            }
            fputs("  ", out);
            put_line_safe(out, k->fingerprint);
            fputc('\n', out);
        }
    }
    if (verbose && sb->n_ev) {
        fprintf(out, "  events\n");
        for (size_t i = 0; i < sb->n_ev; i++) {
            char iso[32];
            iso_time(sb->ev[i].ts, iso);
            fprintf(out, "    %s  ", iso);
            put_line_safe(out, sb->ev[i].kind);
            if (sb->ev[i].detail) {
                fputs(": ", out);
                put_line_safe(out, sb->ev[i].detail);
            }
            fputc('\n', out);
        }
    }
}

/* "watcher running ..." with what it is doing now, or when it was last seen. */
static void print_watcher(FILE *out, const struct status *s)
{
    const struct state_watcher *w = &s->watcher;
    char a[WHEN_MAX], b[WHEN_MAX];
    if (!s->have_watcher)
        return;
    if (!s->watcher_alive) {
        when(w->since, s->now, a);
        fprintf(out, "watcher not running (%s; last seen %s)\n",
                w->activity == STATE_ACT_STOPPED ? "stopped" : "its process is gone", a);
        return;
    }
    when(w->started_at, s->now, a);
    fprintf(out, "watcher running: pid %lld, %s on ", (long long)w->pid, w->backend);
    put_line_safe(out, w->dir);
    fprintf(out, ", since %s, %lld pass%s\n", a, (long long)w->passes, w->passes == 1 ? "" : "es");
    when(w->since, s->now, a);
    fprintf(out, "  now       %s", state_activity_name(w->activity));
    if (w->detail) {
        fputs(" (", out);
        put_line_safe(out, w->detail);
        fputc(')', out);
    }
    fprintf(out, " since %s\n", a);
    if (w->next_resync) {
        when(w->next_resync, s->now, b);
        fprintf(out, "  resync    %s\n", b);
    }
}

static void print_text(const struct status *s, const char *dir, FILE *out, int quiet, int verbose)
{
    const struct state_pass *last = s->n_passes ? &s->passes[s->n_passes - 1] : NULL;
    const char *gc = s->have_done ? s->last_done.gc_blocked : NULL;
    if (quiet) {
        /* Only what needs attention: a blocked gc, bottles that are not Ready. */
        if (gc) {
            fputs("gc blocked by ", out);
            put_line_safe(out, gc);
            fputc('\n', out);
        }
        for (size_t i = 0; i < s->n; i++) {
            const struct state_bottle *b = &s->bottles[i].b;
            if (b->phase == STATE_PHASE_READY)
                continue;
            put_line_safe(out, b->name);
            fprintf(out, ": %s", state_phase_name(b->phase));
            if (b->reason || b->last_error) {
                fputs(": ", out);
                put_line_safe(out, b->reason ? b->reason : b->last_error);
            }
            fputc('\n', out);
        }
        return;
    }
    fprintf(out, "instance %s (state dir ", s->instance);
    put_line_safe(out, dir);
    fprintf(out, ")\n");
    print_watcher(out, s);
    if (!last)
        fprintf(out, "no pass recorded yet\n");
    else
        print_pass(out, "last pass ", last, s->now, 0);
    if (last && last->finished_at == 0 && s->have_done)
        print_pass(out, "last finished pass ", &s->last_done, s->now, 0);
    if (gc) {
        fputs("gc blocked by ", out);
        put_line_safe(out, gc);
        fputc('\n', out);
    }
    if (verbose && s->n_passes) {
        fprintf(out, "recent passes:\n");
        for (size_t i = 0; i < s->n_passes; i++)
            print_pass(out, "  ", &s->passes[i], s->now, 1);
    }
    if (!s->n)
        fprintf(out, "no bottles recorded\n");
    for (size_t i = 0; i < s->n; i++)
        print_bottle(out, &s->bottles[i], s->now, verbose);
}

static void add_str(cJSON *o, const char *key, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

/* An ISO 8601 UTC string, or null for 0 (unset). */
static void add_time(cJSON *o, const char *key, int64_t t)
{
    char iso[32];
    if (!t) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    iso_time(t, iso);
    cJSON_AddStringToObject(o, key, iso);
}

static cJSON *pass_json(const struct state_pass *p)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "id", (double)p->id);
    add_time(j, "started_at", p->started_at);
    add_time(j, "finished_at", p->finished_at);
    if (p->finished_at && p->duration_ms > 0)
        cJSON_AddNumberToObject(j, "duration_ms", (double)p->duration_ms);
    else if (p->finished_at) /* recorded before schema 2: whole seconds */
        cJSON_AddNumberToObject(
            j, "duration_ms",
            (double)(p->finished_at >= p->started_at ? p->finished_at - p->started_at : 0) * 1000);
    else
        cJSON_AddNullToObject(j, "duration_ms");
    add_str(j, "trigger", p->trigger);
    cJSON_AddNumberToObject(j, "changes", p->changes);
    cJSON_AddNumberToObject(j, "failures", p->failures);
    add_str(j, "gc_blocked", p->gc_blocked);
    return j;
}

static char *status_json(const struct status *s)
{
    cJSON *o = cJSON_CreateObject();
    add_str(o, "instance", s->instance);
    add_str(o, "gc_blocked_by", s->have_done ? s->last_done.gc_blocked : NULL);
    if (s->have_watcher) {
        const struct state_watcher *w = &s->watcher;
        cJSON *jw = cJSON_AddObjectToObject(o, "watcher");
        cJSON_AddBoolToObject(jw, "running", s->watcher_alive);
        cJSON_AddNumberToObject(jw, "pid", (double)w->pid);
        add_time(jw, "started_at", w->started_at);
        add_str(jw, "backend", w->backend);
        add_str(jw, "dir", w->dir);
        add_str(jw, "activity",
                s->watcher_alive || w->activity == STATE_ACT_STOPPED
                    ? state_activity_name(w->activity)
                    : "gone");
        add_str(jw, "detail", w->detail);
        add_time(jw, "since", w->since);
        add_time(jw, "next_resync", w->next_resync);
        cJSON_AddNumberToObject(jw, "passes", (double)w->passes);
    } else {
        cJSON_AddNullToObject(o, "watcher");
    }
    cJSON *ps = cJSON_AddArrayToObject(o, "passes");
    for (size_t i = 0; i < s->n_passes; i++)
        cJSON_AddItemToArray(ps, pass_json(&s->passes[i]));
    cJSON *bs = cJSON_AddArrayToObject(o, "bottles");
    for (size_t i = 0; i < s->n; i++) {
        const struct status_bottle *sb = &s->bottles[i];
        const struct state_bottle *b = &sb->b;
        cJSON *jb = cJSON_CreateObject();
        cJSON_AddStringToObject(jb, "name", b->name);
        cJSON_AddStringToObject(jb, "phase", state_phase_name(b->phase));
        add_str(jb, "reason", b->reason);
        add_str(jb, "last_error", b->last_error);
        add_str(jb, "manifest_hash", b->manifest_hash);
        add_str(jb, "spec_hash", b->spec_hash);
        add_str(jb, "config_hash", b->config_hash);
        cJSON_AddNumberToObject(jb, "generation", (double)b->generation);
        cJSON_AddNumberToObject(jb, "failures", b->failures);
        add_time(jb, "next_retry", b->next_retry);
        add_time(jb, "updated_at", b->updated_at);
        add_time(jb, "last_pass_at", b->last_pass_at);
        if (b->last_pass_at)
            cJSON_AddNumberToObject(jb, "last_pass_ms", (double)b->last_pass_ms);
        else
            cJSON_AddNullToObject(jb, "last_pass_ms");
        cJSON *rs = cJSON_AddArrayToObject(jb, "resources");
        for (size_t k = 0; k < sb->n_res; k++) {
            cJSON *jr = cJSON_CreateObject();
            cJSON_AddStringToObject(jr, "role", sb->res[k].role);
            cJSON_AddStringToObject(jr, "name", sb->res[k].name);
            add_str(jr, "engine_id", sb->res[k].engine_id);
            add_str(jr, "spec_hash", sb->res[k].spec_hash);
            cJSON_AddItemToArray(rs, jr);
        }
        cJSON *ks = cJSON_AddArrayToObject(jb, "deploy_keys");
        for (size_t k = 0; k < sb->n_keys; k++) {
            const struct status_key *dk = &sb->keys[k];
            cJSON *jk = cJSON_CreateObject();
            cJSON_AddStringToObject(jk, "repo", dk->repo);
            cJSON_AddStringToObject(jk, "forge", dk->forge);
            add_str(jk, "repository", dk->repo_path);
            add_str(jk, "key_id", dk->key_id);
            add_str(jk, "fingerprint", dk->fingerprint);
            cJSON_AddStringToObject(jk, "state", dk->state);
            cJSON_AddItemToArray(ks, jk);
        }
        cJSON *es = cJSON_AddArrayToObject(jb, "events");
        for (size_t k = 0; k < sb->n_ev; k++) {
            cJSON *je = cJSON_CreateObject();
            cJSON_AddNumberToObject(je, "id", (double)sb->ev[k].id);
            add_time(je, "ts", sb->ev[k].ts);
            cJSON_AddStringToObject(je, "kind", sb->ev[k].kind);
            add_str(je, "detail", sb->ev[k].detail);
            cJSON_AddItemToArray(es, je);
        }
        cJSON_AddItemToArray(bs, jb);
    }
    char *text = json_canon_print(o, 1);
    cJSON_Delete(o);
    return text;
}

int cmd_status(const struct cmd *cmd, struct opts *o, int argc, char **argv)
{
    int ret = EXIT_USAGE;
    struct state *st = NULL;
    struct status s = {0};
    arena_init(&s.a);
    s.now = (int64_t)time(NULL);
    struct buf why;
    buf_init(&why, 0);

    char *dir = opts_state_dir(o);
    if (!dir)
        goto out;
    struct state_open_opts so = {.dir = dir, .mode = STATE_RDONLY};
    int err = state_open(&so, &st, &why);
    if (err == BD_E_NOTFOUND) {
        /* Nothing reconciled yet: an empty status, and no NAME is known. */
        for (int i = 0; i < argc; i++)
            fprintf(stderr, "bottled: status: no bottle '%s': no state in %s yet\n", argv[i], dir);
        if (o->json) {
            char *text = status_json(&s);
            fputs(text, stdout);
            free(text);
        } else if (!o->quiet) {
            printf("no state in %s: nothing reconciled yet\n", dir);
        }
        ret = argc ? EXIT_FAILED : EXIT_OK;
        goto out;
    }
    if (err) {
        fprintf(stderr, "bottled: status: state dir: %s\n", why.len ? why.data : bd_strerror(err));
        ret = err == BD_E_PERM || err == BD_E_MISMATCH || err == BD_E_INVAL ? EXIT_USAGE
                                                                            : EXIT_UNAVAIL;
        goto out;
    }
    s.instance = state_instance_id(st);
    err = status_read(st, &s, argc, argv);
    if (err && err != BD_E_NOTFOUND) {
        if (err == BD_E_LOCKED)
            fprintf(stderr,
                    "bottled: status: the state database in %s stayed busy past the "
                    "timeout (another process is writing it): try again\n",
                    dir);
        else
            fprintf(stderr, "bottled: status: state database: %s (%s)\n", bd_strerror(err),
                    state_errmsg(st));
        ret = EXIT_UNAVAIL;
        goto out;
    }
    if (o->json) {
        char *text = status_json(&s);
        fputs(text, stdout);
        free(text);
    } else {
        print_text(&s, dir, stdout, o->quiet, o->verbose);
    }
    ret = err == BD_E_NOTFOUND ? EXIT_FAILED : EXIT_OK;
out:
    state_close(st);
    status_release(&s);
    buf_release(&why);
    free(dir);
    return ret;
}
