/*
 * cmd_watch.c - `bottled watch`: converge, then keep converging on every
 * change of the manifests, and repair drift on a timer.
 *
 * One single-threaded loop (poll) over three sources: the watch backend's
 * fd (watch_backend.h), a self-pipe the signal handlers write one byte
 * into, and timers.  Events are only hints: every pass is the same
 * level-triggered pass as `reconcile --once` (pass.h + apply.h), over all
 * manifests and the engine's labelled objects.  The state dir's lock is
 * taken once and held for the watcher's lifetime; the database stays open
 * between passes (pass_prepare_on).
 *
 * What triggers a pass ("trigger" in the progress line):
 *   start     once, at start
 *   change    a hint, after the manifests were quiet for --settle ms
 *             (capped: a pass runs at the latest SETTLE_CAP_MS after the
 *             first hint of a burst)
 *   hup       SIGHUP
 *   resync    every --resync s, +-10 % jitter (drift: a container removed
 *             or stopped by hand is recreated or started)
 *   overflow  the backend lost events; SIGUSR1 asks the backend to behave
 *             as if it had (watch_backend_inject_overflow: a test hook)
 *   reopen    the watched directory was moved, replaced or its link
 *             swapped (ROOT_GONE), or the backend failed: re-opened, then
 *             the settle window (the new tree may still be being written)
 *   retry     a failing bottle's backoff (state next_retry) ran out
 *   grace     a missing bottle's grace period ran out
 *   engine    the engine's event stream (watch_events.h) reported a change
 *             to one of our resources that may be drift (removed, stopped,
 *             network connected...): after the settle window, like change
 *   reconnect the event stream is back after an outage: events may have
 *             been missed (--no-engine-events: no stream, resync only)
 *   approval  `bottled approve-deletes` recorded an approval: while a pass
 *             has refused deletions, the watcher reads the approval count
 *             once a second (one small SQLite read), so approve-deletes
 *             needs no signal and cannot hit another process's pid
 * SIGTERM / SIGINT end the loop after the current pass (a pass is never
 * interrupted: apply records what it did), exit 0.
 *
 * Deletion grace: a bottle of this instance that no manifest declares is
 * kept (pass_keep) until it has been absent from complete snapshots for
 * --grace seconds, so a git-sync swap or a file moved between commits
 * never deletes and recreates it.  An incomplete snapshot deletes nothing
 * anyway (plan.h) and neither starts nor resets the clock.
 *
 * Backoff: apply records failures and next_retry per bottle (1 s doubling
 * to 5 min).  A bottle whose next_retry lies in the future is held out of
 * the pass (pass_hold) unless its manifest changed, in which case its
 * failure count is reset first.  Invalid manifests and refused deletions
 * have no next_retry: they wait for the file to change or an approval.
 *
 * A `.git/index.lock` in the manifest directory (as given or its real
 * path) means a git checkout is in progress: the pass is deferred (checked
 * every LOCK_POLL_MS), for at most LOCK_MAX_MS, then runs with a warning.
 *
 * Nothing is ever written into the watched directory.
 *
 * Live view: what the loop is doing (idle, settling, deferred, a pass and
 * its trigger) and the next resync are written to the state database's
 * watcher row (state_watcher_put) whenever they change, for `bottled
 * status`; never on a timer, so an idle watcher writes nothing.
 *
 * --json: each pass's result document (apply.h) as one line on stdout;
 * the watcher's own progress lines then go to stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "buf.h"
#include "cmd.h"
#include "err.h"
#include "pass.h"
#include "state.h"
#include "watch_backend.h"
#include "watch_events.h"
#include "xalloc.h"

#define SETTLE_CAP_MS    2000L  /* a burst of hints never postpones a pass longer */
#define LOCK_POLL_MS     500L   /* .git/index.lock re-checked this often */
#define LOCK_MAX_MS      60000L /* then the pass runs anyway */
#define REOPEN_RETRY_MS  500L   /* the directory is missing: try again */
#define APPROVAL_POLL_MS 1000L  /* while deletions are refused */
#define FAIL_RETRY_MS    5000L  /* a pass that could not run (engine, state) */

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t got_hup, got_term, got_usr1;

static void on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGHUP)
        got_hup = 1;
    else if (sig == SIGUSR1)
        got_usr1 = 1;
    else
        got_term = 1;
    char c = 0;
    (void)!write(sig_pipe[1], &c, 1);
    errno = saved;
}

/* A bottle that no complete snapshot declared, since when. */
struct absent {
    char *name;
    int64_t since_ms;
    int seen; /* in the current pass's orphans */
};

/*
 * A bottle repaired again and again with its manifest unchanged: something
 * outside bottled keeps undoing it (a tool fighting us).  From the
 * FIGHT_AFTER-th repair with no more than the fight window (10 resync
 * periods, at least 60 s) between two of them, it is marked Degraded with
 * the reason and given a backoff (failures / next_retry), so the fight
 * never becomes a tight loop; it stays Degraded between repairs.  A
 * manifest change or a quiet window ends the fight: the next pass that finds
 * it converged records it Ready again.
 */
#define FIGHT_AFTER 3
struct repaired {
    char *name;
    char hash[65]; /* the manifest hash of the last pass */
    int streak;    /* repairs, each within the fight window of the last */
    int64_t last_repair_ms;
    int announced; /* the "fighting" event of this streak is recorded */
    int seen;
};

struct watcher {
    const struct cmd *cmd;
    struct opts *o;
    struct state *st;
    struct watch_backend *wb;
    struct watch_events *ev; /* NULL: --no-engine-events, or no thread */
    int ev_live;             /* the event stream is live */
    FILE *out;               /* apply's per-action lines: stdout with -v, else /dev/null */
    unsigned long passes;
    struct absent *absent;
    size_t n_absent;
    struct repaired *rep;
    size_t n_rep;
    int64_t settle_at, burst_start; /* 0: no hints pending */
    int64_t resync_at;
    int64_t retry_at;    /* earliest next_retry of a failing bottle; 0: none */
    int64_t grace_at;    /* earliest grace expiry; 0: none */
    int64_t reopen_at;   /* 0: the backend is open */
    int64_t lock_since;  /* 0: no index.lock seen */
    int64_t approval_at; /* 0: no refusal pending */
    int64_t approvals;   /* approvals waiting after the last pass (not for a refused bottle) */
    int want_pass;
    const char *trigger;
    const char *settle_trigger; /* what the settle timer reports; NULL: "change" */
    struct state_watcher live;  /* as last written (live_set) */
    int64_t live_resync_ms;     /* resync_at when last written */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say(struct watcher *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct watcher *w, const char *fmt, ...)
{
    if (w->o->quiet)
        return;
    FILE *f = w->o->json ? stderr : stdout; /* stdout carries the JSON lines */
    va_list va;
    va_start(va, fmt);
    vfprintf(f, fmt, va);
    va_end(va);
    fflush(f);
}

/*
 * Records what the watcher does now for `bottled status`, when that (or the
 * next resync, or the pass count) changed since the last write.  A failed
 * write only costs the live view: it is not retried.
 */
static void live_set(struct watcher *w, enum state_activity a, const char *detail)
{
    struct state_watcher *l = &w->live;
    int same = l->backend && l->activity == a &&
               (detail ? l->detail && !strcmp(l->detail, detail) : !l->detail) &&
               w->live_resync_ms == w->resync_at && l->passes == (int64_t)w->passes;
    if (same || !w->st || !w->wb)
        return;
    int64_t now = (int64_t)time(NULL);
    if (!l->backend) {
        l->pid = getpid();
        l->started_at = now;
    }
    l->backend = watch_backend_name(w->wb);
    l->dir = watch_backend_real_path(w->wb);
    if (l->activity != a || !l->since)
        l->since = now;
    l->activity = a;
    l->detail = detail; /* static strings only */
    l->next_resync = w->resync_at ? now + (w->resync_at - now_ms() + 999) / 1000 : 0;
    l->passes = (int64_t)w->passes;
    w->live_resync_ms = w->resync_at;
    (void)state_watcher_put(w->st, l);
}

static void schedule_resync(struct watcher *w)
{
    int64_t period = (int64_t)w->o->resync_s * 1000;
    int64_t jitter = period / 10;
    int64_t r = jitter ? (int64_t)(random() % (2 * jitter + 1)) - jitter : 0;
    w->resync_at = now_ms() + period + r;
}

/* Asks for a pass now (the first trigger named wins). */
static void want(struct watcher *w, const char *trigger)
{
    if (!w->want_pass)
        w->trigger = trigger;
    w->want_pass = 1;
}

static int open_backend(struct watcher *w)
{
    char err[512] = "";
    int rc = watch_backend_open(w->o->watch_backend, w->o->dir, &w->wb, err, sizeof(err));
    if (rc) {
        w->wb = NULL;
        return rc;
    }
    w->reopen_at = 0;
    return 0;
}

static void reopen_backend(struct watcher *w, const char *why)
{
    watch_backend_close(w->wb);
    w->wb = NULL;
    if (open_backend(w) == 0) {
        say(w, "watch: %s: re-opened on %s\n", why, watch_backend_real_path(w->wb));
        /* the new tree may still be being written (a copy): settle first */
        w->settle_at = now_ms() + w->o->settle_ms;
        w->burst_start = w->settle_at;
        w->settle_trigger = "reopen";
    } else {
        if (!w->reopen_at)
            fprintf(stderr, "bottled: watch: %s: '%s' cannot be watched now; retrying\n", why,
                    w->o->dir);
        w->reopen_at = now_ms() + REOPEN_RETRY_MS;
    }
}

/* A hint: a pass once the hints were quiet for --settle ms (capped). */
static void settle(struct watcher *w, const char *trigger)
{
    int64_t t = now_ms();
    if (!w->settle_at) {
        w->burst_start = t;
        w->settle_trigger = trigger;
    }
    w->settle_at = t + w->o->settle_ms;
    if (w->settle_at > w->burst_start + SETTLE_CAP_MS && w->burst_start + SETTLE_CAP_MS > t)
        w->settle_at = w->burst_start + SETTLE_CAP_MS;
}

static void drain(struct watcher *w)
{
    struct watch_hints h;
    watch_backend_drain(w->wb, &h);
    unsigned f = h.flags;
    watch_hints_release(&h);
    if (!f)
        return;
    if (f & (WATCH_HINT_ROOT_GONE | WATCH_HINT_FAILED)) {
        reopen_backend(w, f & WATCH_HINT_FAILED ? "the watch backend failed"
                                                : "the manifest directory was moved or replaced");
        return;
    }
    if (f & WATCH_HINT_OVERFLOW) {
        say(w, "watch: events were lost: full rescan\n");
        want(w, "overflow");
        return;
    }
    if (f & WATCH_HINT_INCOMPLETE)
        fprintf(stderr,
                "bottled: watch: a directory under '%s' cannot be watched: changes "
                "there are seen by the periodic resync only\n",
                w->o->dir);
    settle(w, NULL);
}

/*
 * The engine's event stream: a drift hint goes through the settle window
 * like a file change (and then through the per-bottle backoff); the
 * stream back after an outage asks for one full pass at once.  Losing it is
 * said once per outage.
 */
static void drain_events(struct watcher *w)
{
    struct watch_events_report r;
    watch_events_drain(w->ev, &r);
    if (r.flags & WATCH_EV_DOWN) {
        fprintf(stderr,
                "bottled: watch: engine event stream %s: %s; reconnecting with backoff (the "
                "resync every %ld s still repairs drift)\n",
                w->ev_live ? "lost" : "unavailable", r.why, w->o->resync_s);
        w->ev_live = 0;
    }
    if (r.flags & WATCH_EV_LIVE) {
        /* without an outage in between: the engine ended the stream
         * (Podman does when it rotates its event log), reopened at once */
        if ((r.flags & WATCH_EV_RESYNC) && w->ev_live && r.why[0])
            say(w, "watch: engine events: %s; reopened\n", r.why);
        w->ev_live = 1;
        say(w, "watch: engine events: live%s\n",
            r.flags & WATCH_EV_RESYNC ? " again: full pass (events may have been missed)" : "");
    }
    if (r.flags & WATCH_EV_RESYNC)
        want(w, "reconnect");
    if (r.flags & WATCH_EV_DRIFT) {
        if (r.n_drift > 1)
            say(w, "watch: engine: %s (and %lu more)\n", r.first, r.n_drift - 1);
        else
            say(w, "watch: engine: %s\n", r.first);
        settle(w, "engine");
    }
}

/* A git checkout in progress in the manifest directory? */
static int index_locked(struct watcher *w)
{
    struct stat sb;
    char *p = xasprintf("%s/.git/index.lock", w->o->dir);
    int locked = lstat(p, &sb) == 0;
    free(p);
    if (!locked && w->wb) {
        p = xasprintf("%s/.git/index.lock", watch_backend_real_path(w->wb));
        locked = lstat(p, &sb) == 0;
        free(p);
    }
    return locked;
}

static struct absent *absent_find(struct watcher *w, const char *name)
{
    for (size_t i = 0; i < w->n_absent; i++)
        if (!strcmp(w->absent[i].name, name))
            return &w->absent[i];
    return NULL;
}

/*
 * Deletion grace: orphans of this plan that have not been absent from
 * complete snapshots for --grace seconds are kept.  Returns how many were
 * kept; sets w->grace_at.
 */
static size_t apply_grace(struct watcher *w, struct pass *ps)
{
    int64_t t = now_ms(), grace = (int64_t)w->o->grace_s * 1000;
    int complete = ps->set.complete;
    size_t kept = 0;
    for (size_t i = 0; i < w->n_absent; i++)
        w->absent[i].seen = 0;
    const struct plan *p = ps->plan;
    for (size_t i = 0; i < p->n_bottles; i++) {
        const struct plan_bottle *pb = &p->bottles[i];
        if (pass_find(ps, pb->name) >= 0)
            continue; /* declared */
        if (pb->status != PLAN_ORPHAN && pb->status != PLAN_REFUSED)
            continue;
        struct absent *a = absent_find(w, pb->name);
        if (!a && complete) {
            w->absent = xrealloc(w->absent, (w->n_absent + 1) * sizeof(*w->absent));
            a = &w->absent[w->n_absent++];
            *a = (struct absent){xstrdup(pb->name), t, 0};
            if (grace)
                say(w,
                    "watch: %s: no manifest declares it; deleted in %ld s unless it "
                    "comes back\n",
                    pb->name, w->o->grace_s);
        }
        if (a)
            a->seen = 1;
        if (!a || t - a->since_ms < grace) {
            pass_keep(ps, pb->name);
            kept++;
        }
    }
    /* forget the ones that came back (or are gone); an incomplete snapshot
     * says nothing about them */
    size_t k = 0;
    for (size_t i = 0; i < w->n_absent; i++) {
        if (complete && !w->absent[i].seen) {
            free(w->absent[i].name);
            continue;
        }
        w->absent[k++] = w->absent[i];
    }
    w->n_absent = k;
    w->grace_at = 0;
    for (size_t i = 0; i < w->n_absent; i++) {
        int64_t at = w->absent[i].since_ms + grace;
        if (at > t && (!w->grace_at || at < w->grace_at))
            w->grace_at = at;
    }
    return kept;
}

/*
 * Backoff: bottles with work to do whose next_retry is in the future are
 * held, unless their manifest changed (then their failure count starts
 * over).  Returns how many were held.
 */
static size_t apply_backoff(struct watcher *w, struct pass *ps)
{
    int64_t wall = (int64_t)time(NULL);
    size_t held = 0;
    const struct plan *p = ps->plan;
    for (size_t i = 0; i < p->n_bottles; i++) {
        const struct plan_bottle *pb = &p->bottles[i];
        if (pb->status != PLAN_CHANGES && pb->status != PLAN_ORPHAN && pb->status != PLAN_FAILED)
            continue;
        struct state_bottle sb;
        if (state_bottle_get(w->st, pb->name, &sb) != 0)
            continue;
        long k = pass_find(ps, pb->name);
        const char *hash = k >= 0 ? ps->pb[k].manifest_hash : "";
        int changed = hash[0] && sb.manifest_hash && strcmp(hash, sb.manifest_hash);
        if (sb.failures > 0 && changed) {
            struct state_bottle reset = sb;
            reset.failures = 0;
            reset.next_retry = 0;
            (void)state_bottle_put(w->st, &reset);
        } else if (sb.failures > 0 && sb.next_retry > wall) {
            pass_hold(ps, pb->name);
            held++;
        }
        state_bottle_release(&sb);
    }
    return held;
}

struct retry_scan {
    int64_t after; /* wall clock seconds */
    int64_t min;
};

static int earliest_retry_cb(const struct state_bottle *b, void *arg)
{
    struct retry_scan *r = arg;
    if (b->failures > 0 && b->next_retry > r->after && (!r->min || b->next_retry < r->min))
        r->min = b->next_retry;
    return 0;
}

/*
 * Sets w->retry_at from the bottles' next_retry (wall clock seconds) later
 * than pass_start: an older one belongs to a bottle the pass had every
 * chance to work on (or one kept in its grace, which has no job), and
 * counting it would wake the loop again at once, forever.
 */
static void schedule_retry(struct watcher *w, int64_t pass_start)
{
    struct retry_scan r = {pass_start, 0};
    (void)state_bottles_each(w->st, earliest_retry_cb, &r);
    int64_t min = r.min;
    w->retry_at = 0;
    if (min) {
        int64_t wait_s = min - (int64_t)time(NULL);
        w->retry_at = now_ms() + (wait_s > 0 ? wait_s * 1000 : 0) + 100;
    }
}

static int64_t fight_backoff_s(int streak)
{
    int64_t s = 1;
    for (int i = FIGHT_AFTER; i < streak && s < 300; i++)
        s *= 2;
    return s < 300 ? s : 300;
}

/* After apply: counts repairs of unchanged bottles (see struct repaired). */
static void track_repairs(struct watcher *w, const struct pass *ps)
{
    for (size_t i = 0; i < w->n_rep; i++)
        w->rep[i].seen = 0;
    for (size_t k = 0; k < ps->n; k++) {
        const char *name = ps->in[k].name;
        const char *hash = ps->pb[k].manifest_hash;
        const struct plan_bottle *pb = NULL;
        for (size_t i = 0; i < ps->plan->n_bottles; i++)
            if (!strcmp(ps->plan->bottles[i].name, name))
                pb = &ps->plan->bottles[i];
        int held = 0;
        for (size_t h = 0; h < ps->n_hold; h++)
            held |= !strcmp(ps->hold[h], name);
        struct repaired *r = NULL;
        for (size_t i = 0; i < w->n_rep; i++)
            if (!strcmp(w->rep[i].name, name))
                r = &w->rep[i];
        if (!r) {
            w->rep = xrealloc(w->rep, (w->n_rep + 1) * sizeof(*w->rep));
            r = &w->rep[w->n_rep++];
            memset(r, 0, sizeof(*r));
            r->name = xstrdup(name);
            snprintf(r->hash, sizeof(r->hash), "%s", hash);
            r->seen = 1;
            continue; /* first sight: a create is not a repair */
        }
        r->seen = 1;
        if (held)
            continue;
        int same = hash[0] && !strcmp(hash, r->hash);
        snprintf(r->hash, sizeof(r->hash), "%s", hash);
        if (!same)
            r->streak = r->announced = 0;
        int64_t t = now_ms(), window = (int64_t)w->o->resync_s * 10000;
        if (window < 60000)
            window = 60000;
        if (t - r->last_repair_ms > window)
            r->streak = r->announced = 0;
        if (pb && pb->status == PLAN_UP_TO_DATE && r->streak >= FIGHT_AFTER) {
            /* converged for now, but the fight is not over: stay Degraded */
            struct state_bottle sb;
            if (state_bottle_get(w->st, name, &sb) == 0) {
                if (sb.phase == STATE_PHASE_READY) {
                    struct state_bottle d = sb;
                    d.phase = STATE_PHASE_DEGRADED;
                    d.reason = "repaired again and again with its manifest unchanged: something "
                               "outside bottled keeps changing it";
                    (void)state_bottle_put(w->st, &d);
                }
                state_bottle_release(&sb);
            }
        }
        if (!pb || pb->status != PLAN_CHANGES || !same)
            continue;
        r->last_repair_ms = t;
        r->streak++;
        if (r->streak < FIGHT_AFTER)
            continue;
        struct state_bottle sb;
        if (state_bottle_get(w->st, name, &sb) != 0)
            continue;
        if (sb.failures == 0) { /* the repair itself succeeded */
            struct state_bottle d = sb;
            char *reason = xasprintf("repaired %d times in a row with its manifest unchanged: "
                                     "something outside bottled keeps changing it; retried "
                                     "with backoff",
                                     r->streak);
            d.phase = STATE_PHASE_DEGRADED;
            d.reason = reason;
            d.failures = r->streak - FIGHT_AFTER + 1;
            d.next_retry = (int64_t)time(NULL) + fight_backoff_s(r->streak);
            (void)state_bottle_put(w->st, &d);
            if (!r->announced)
                (void)state_event_add(w->st, name, "fighting", reason);
            r->announced = 1;
            fprintf(stderr, "bottled: watch: %s: %s\n", name, reason);
            free(reason);
        }
        state_bottle_release(&sb);
    }
    size_t k = 0;
    for (size_t i = 0; i < w->n_rep; i++) {
        if (!w->rep[i].seen) {
            free(w->rep[i].name);
            continue;
        }
        w->rep[k++] = w->rep[i];
    }
    w->n_rep = k;
}

/* One pass.  0, or the exit code of a pass that could not run (it is
 * retried in FAIL_RETRY_MS). */
static int run_pass(struct watcher *w)
{
    const char *trigger = w->trigger ? w->trigger : "change";
    w->want_pass = 0;
    w->trigger = NULL;
    w->settle_at = 0;
    w->settle_trigger = NULL;
    w->passes++;
    live_set(w, STATE_ACT_PASS, trigger);
    int64_t t0 = now_ms(), wall0 = (int64_t)time(NULL);
    struct pass ps;
    struct apply_stats stats = {0};
    size_t kept = 0, held = 0;
    int rc = pass_prepare_on(&ps, w->cmd, w->o, w->st);
    ps.trigger = trigger;
    ps.json_lines = 1;
    if (rc == 0) {
        kept = apply_grace(w, &ps);
        held = apply_backoff(w, &ps);
        if (kept)
            rc = pass_plan(&ps);
    }
    if (rc == 0)
        rc = apply_pass(&ps, APPLY_ALL, w->out, &stats);
    if (rc == 0)
        track_repairs(w, &ps);
    int64_t ms = now_ms() - t0;
    int blocked = rc == 0 && ps.plan && ps.plan->n_gc_blocked_by;
    pass_release(&ps);
    schedule_resync(w);
    if (rc) {
        fprintf(stderr,
                "bottled: watch: pass %lu (%s) could not run (exit %d); retrying in %ld s\n",
                w->passes, trigger, rc, FAIL_RETRY_MS / 1000);
        w->retry_at = now_ms() + FAIL_RETRY_MS;
        return rc;
    }
    schedule_retry(w, wall0);
    w->approval_at = stats.refused ? now_ms() + APPROVAL_POLL_MS : 0;
    w->approvals = 0;
    (void)state_approvals_count(w->st, &w->approvals);
    say(w,
        "watch: pass %lu (%s): %lld ms, %zu action(s), %zu failed, %zu refused, %zu held "
        "(backoff), %zu kept (grace)%s\n",
        w->passes, trigger, (long long)ms, stats.actions, stats.failed, stats.refused, held, kept,
        blocked ? ", gc blocked" : "");
    return 0;
}

static int open_state(struct watcher *w)
{
    char *dir = opts_state_dir(w->o);
    if (!dir)
        return EXIT_USAGE;
    struct buf why;
    buf_init(&why, 0);
    struct state_open_opts so = {.dir = dir, .mode = STATE_EXCLUSIVE, .instance = w->o->instance};
    int err = state_open(&so, &w->st, &why);
    int ret = 0;
    if (err) {
        fprintf(stderr, "bottled: watch: state dir %s: %s\n", dir,
                why.len ? why.data : bd_strerror(err));
        w->st = NULL;
        ret = err == BD_E_PERM || err == BD_E_MISMATCH || err == BD_E_INVAL ? EXIT_USAGE
                                                                            : EXIT_UNAVAIL;
    }
    buf_release(&why);
    free(dir);
    return ret;
}

static void take_timers(struct watcher *w, int64_t t)
{
    if (w->settle_at && t >= w->settle_at) {
        want(w, w->settle_trigger ? w->settle_trigger : "change");
        w->settle_trigger = NULL;
    }
    if (t >= w->resync_at)
        want(w, "resync");
    if (w->retry_at && t >= w->retry_at) {
        w->retry_at = 0;
        want(w, "retry");
    }
    if (w->grace_at && t >= w->grace_at) {
        w->grace_at = 0;
        want(w, "grace");
    }
    if (w->approval_at && t >= w->approval_at) {
        int64_t n = 0;
        w->approval_at = t + APPROVAL_POLL_MS;
        /* an approval the last pass left (for a bottle it did not refuse)
         * must not trigger a pass every second: only a new one counts */
        if (state_approvals_count(w->st, &n) == 0 && n > w->approvals) {
            w->approval_at = 0;
            want(w, "approval");
        }
    }
    if (w->reopen_at && t >= w->reopen_at)
        reopen_backend(w, "the manifest directory was missing");
}

static int64_t next_timer(const struct watcher *w)
{
    int64_t at = w->resync_at;
    const int64_t cand[] = {w->settle_at, w->retry_at, w->grace_at, w->approval_at, w->reopen_at};
    for (size_t i = 0; i < sizeof(cand) / sizeof(*cand); i++)
        if (cand[i] && cand[i] < at)
            at = cand[i];
    return at;
}

int cmd_watch(const struct cmd *cmd, struct opts *o, int argc, char **argv)
{
    (void)argv;
    if (argc)
        return usage_error(cmd, "takes no arguments (got %d)", argc);
    if (o->watch_backend) {
        int known = 0;
        for (size_t i = 0; watch_backend_compiled(i); i++)
            known |= !strcmp(watch_backend_compiled(i), o->watch_backend);
        if (!known)
            return usage_error(cmd, "--watch-backend '%s': not built in (see `bottled version`)",
                               o->watch_backend);
    }
    struct watcher w = {.cmd = cmd, .o = o};
    int ret = 0;
    srandom((unsigned)(time(NULL) ^ getpid()));
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        fprintf(stderr, "bottled: watch: pipe: %s\n", strerror(errno));
        return EXIT_UNAVAIL;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if ((ret = open_state(&w)) != 0)
        goto out;
    char err[512] = "";
    int rc = watch_backend_open(o->watch_backend, o->dir, &w.wb, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "bottled: watch: cannot watch '%s': %s\n", o->dir,
                err[0] ? err : bd_strerror(rc));
        ret = rc == BD_E_LIMIT || rc == BD_E_INTERNAL ? EXIT_UNAVAIL : EXIT_USAGE;
        w.wb = NULL;
        goto out;
    }
    w.out = o->verbose || o->json ? stdout : fopen("/dev/null", "we");
    if (!w.out)
        w.out = stdout;
    say(&w, "watch: instance %s, %s on %s, settle %ld ms, grace %ld s, resync %ld s\n",
        state_instance_id(w.st), watch_backend_name(w.wb), watch_backend_real_path(w.wb),
        o->settle_ms, o->grace_s, o->resync_s);

    /* The first pass: bottled's own configuration is checked here, and a
     * problem with it ends the watcher (exit 2) before it loops. */
    w.trigger = "start";
    rc = run_pass(&w);
    if (rc == EXIT_USAGE) {
        ret = rc;
        goto out;
    }
    if (!o->no_engine_events) {
        struct watch_events_opts eo = {.engine_url = o->engine,
                                       .instance = state_instance_id(w.st),
                                       .name_prefix = o->name_prefix};
        if (watch_events_start(&eo, &w.ev) != 0) {
            w.ev = NULL;
            fprintf(stderr, "bottled: watch: cannot start the engine event stream: drift is "
                            "repaired by the resync alone\n");
        }
    }

    while (!got_term) {
        live_set(&w, w.settle_at ? STATE_ACT_SETTLING : STATE_ACT_IDLE, NULL);
        struct pollfd pfd[3] = {{sig_pipe[0], POLLIN, 0}, {-1, POLLIN, 0}, {-1, POLLIN, 0}};
        if (w.wb)
            pfd[1].fd = watch_backend_fd(w.wb);
        if (w.ev)
            pfd[2].fd = watch_events_fd(w.ev);
        int64_t t = now_ms();
        int64_t at = w.want_pass ? t : next_timer(&w);
        int timeout = at <= t ? 0 : at - t > 3600000 ? 3600000 : (int)(at - t);
        int n = poll(pfd, 3, timeout);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "bottled: watch: poll: %s\n", strerror(errno));
            ret = EXIT_UNAVAIL;
            break;
        }
        if (n > 0 && (pfd[0].revents & POLLIN)) {
            char buf[64];
            while (read(sig_pipe[0], buf, sizeof(buf)) > 0)
                ;
        }
        if (got_term)
            break;
        if (got_hup) {
            got_hup = 0;
            want(&w, "hup");
        }
        if (got_usr1) {
            got_usr1 = 0;
            if (w.wb)
                watch_backend_inject_overflow(w.wb);
        }
        if (n > 0 && w.wb && (pfd[1].revents & (POLLIN | POLLERR | POLLHUP)))
            drain(&w);
        if (n > 0 && w.ev && (pfd[2].revents & POLLIN))
            drain_events(&w);
        take_timers(&w, now_ms());
        if (!w.want_pass)
            continue;
        if (index_locked(&w)) {
            int64_t t2 = now_ms();
            if (!w.lock_since) {
                w.lock_since = t2;
                live_set(&w, STATE_ACT_DEFERRED, ".git/index.lock: a git checkout is in progress");
                say(&w,
                    "watch: .git/index.lock in '%s': a git checkout is in progress; pass "
                    "deferred\n",
                    o->dir);
            }
            if (t2 - w.lock_since < LOCK_MAX_MS) {
                /* keep the pass wanted; look again shortly */
                struct pollfd p1 = {sig_pipe[0], POLLIN, 0};
                (void)poll(&p1, 1, (int)LOCK_POLL_MS);
                continue;
            }
            fprintf(stderr,
                    "bottled: watch: warning: .git/index.lock in '%s' for %ld s: running the "
                    "pass anyway\n",
                    o->dir, LOCK_MAX_MS / 1000);
        }
        w.lock_since = 0;
        (void)run_pass(&w);
    }
    if (got_term)
        say(&w, "watch: stopping after %lu pass(es)\n", w.passes);
    live_set(&w, STATE_ACT_STOPPED, NULL);
out:
    watch_events_stop(w.ev);
    if (w.out && w.out != stdout)
        fclose(w.out);
    watch_backend_close(w.wb);
    for (size_t i = 0; i < w.n_absent; i++)
        free(w.absent[i].name);
    free(w.absent);
    for (size_t i = 0; i < w.n_rep; i++)
        free(w.rep[i].name);
    free(w.rep);
    state_close(w.st);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    sig_pipe[0] = sig_pipe[1] = -1;
    return ret;
}
