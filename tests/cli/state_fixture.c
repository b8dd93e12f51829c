/*
 * state_fixture.c - writes a state dir the way a reconcile pass would, for
 * the shell tests of `status` and `approve-deletes` (no engine needed).
 *
 *   state_fixture DIR CMD [KEY=VALUE...] [-- CMD [KEY=VALUE...]]...
 *
 * DIR is opened STATE_EXCLUSIVE (created if missing, lock taken) and the
 * commands run in order through the public state API (state.h):
 *
 *   bottle name=N [phase=P] [reason=S] [last_error=S] [manifest_hash=H]
 *          [spec_hash=H] [config_hash=H] [failures=N] [next_retry=T]
 *   resource bottle=N role=R name=S [engine_id=S] [spec_hash=H]
 *   event bottle=N kind=K [detail=S]
 *   bottle ... [last_pass_at=T] [last_pass_ms=N]
 *   pass [changes=N] [failures=N] [gc_blocked=PATH] [took=SECONDS]
 *        [trigger=S] [unfinished=1]   took sets its start that long before
 *                      its end (and its duration)
 *   watcher [pid=N|self] [activity=A] [detail=S] [next_resync=T] [passes=N]
 *                      the watch's live row (backend "inotify", dir "/m")
 *   take NAME          state_approval_take(): prints 1 or 0
 *   hold SECONDS [tx=1]
 *                      prints "locked" and sleeps with the lock held (and,
 *                      with tx=1, a write transaction open)
 *
 * and two that reach past the API into state.db with plain SQL, for what a
 * pass records but a test cannot wait for:
 *
 *   age SECONDS        moves every recorded time SECONDS into the past
 *   schema N           sets PRAGMA user_version (a newer database)
 *
 * A time T is Unix seconds, or +N / -N seconds from now.  Exits 0, or 1
 * after a message on stderr.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "buf.h"
#include "err.h"
#include "state.h"

static const char *dir;

static int fail(const char *what, int rc, struct state *st)
{
    fprintf(stderr, "state_fixture: %s: %s (%s)\n", what, bd_strerror(rc),
            st ? state_errmsg(st) : "-");
    return -1;
}

static int num(const char *s, int64_t *ret);

/* The value of KEY=... among args, or NULL. */
static const char *arg(int argc, char **argv, const char *key)
{
    size_t n = strlen(key);
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], key, n) && argv[i][n] == '=')
            return argv[i] + n + 1;
    return NULL;
}

static int num(const char *s, int64_t *ret)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) {
        fprintf(stderr, "state_fixture: '%s' is not a number\n", s);
        return -1;
    }
    *ret = v;
    return 0;
}

static int num_arg(int argc, char **argv, const char *key, int64_t *ret)
{
    const char *s = arg(argc, argv, key);
    *ret = 0;
    return s ? num(s, ret) : 0;
}

/* A time T: Unix seconds, or +N / -N from now; 0 when KEY is absent. */
static int time_arg(int argc, char **argv, const char *key, int64_t *ret)
{
    const char *s = arg(argc, argv, key);
    *ret = 0;
    if (!s)
        return 0;
    if (num(s, ret))
        return -1;
    if (s[0] == '+' || s[0] == '-')
        *ret += (int64_t)time(NULL);
    return 0;
}

/* Runs SQL on its own connection to state.db (beside the state's). */
static int raw_sql(const char *sql)
{
    char path[4096];
    sqlite3 *db = NULL;
    snprintf(path, sizeof(path), "%s/state.db", dir);
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK)
        fprintf(stderr, "state_fixture: %s: %s\n", sql, db ? sqlite3_errmsg(db) : "no memory");
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static int do_bottle(struct state *st, int argc, char **argv)
{
    struct state_bottle b = {
        .name = arg(argc, argv, "name"),
        .spec_hash = arg(argc, argv, "spec_hash"),
        .manifest_hash = arg(argc, argv, "manifest_hash"),
        .config_hash = arg(argc, argv, "config_hash"),
        .reason = arg(argc, argv, "reason"),
        .last_error = arg(argc, argv, "last_error"),
        .phase = STATE_PHASE_READY,
    };
    const char *phase = arg(argc, argv, "phase");
    const char *retry = arg(argc, argv, "next_retry");
    int64_t failures = 0;
    if (phase && state_phase_parse(phase, &b.phase)) {
        fprintf(stderr, "state_fixture: unknown phase '%s'\n", phase);
        return -1;
    }
    if (num_arg(argc, argv, "failures", &failures) ||
        time_arg(argc, argv, "last_pass_at", &b.last_pass_at) ||
        num_arg(argc, argv, "last_pass_ms", &b.last_pass_ms))
        return -1;
    b.failures = (int)failures;
    if (retry) {
        if (num(retry, &b.next_retry))
            return -1;
        if (retry[0] == '+' || retry[0] == '-')
            b.next_retry += (int64_t)time(NULL);
    }
    int rc = state_bottle_put(st, &b);
    return rc ? fail("bottle", rc, st) : 0;
}

static int do_resource(struct state *st, int argc, char **argv)
{
    struct state_resource r = {
        .bottle = arg(argc, argv, "bottle"),
        .role = arg(argc, argv, "role"),
        .name = arg(argc, argv, "name"),
        .engine_id = arg(argc, argv, "engine_id"),
        .spec_hash = arg(argc, argv, "spec_hash"),
    };
    int rc = state_resource_put(st, &r);
    return rc ? fail("resource", rc, st) : 0;
}

static int do_event(struct state *st, int argc, char **argv)
{
    int rc = state_event_add(st, arg(argc, argv, "bottle"), arg(argc, argv, "kind"),
                             arg(argc, argv, "detail"));
    return rc ? fail("event", rc, st) : 0;
}

static int do_pass(struct state *st, int argc, char **argv)
{
    int64_t id = 0, changes = 0, failures = 0, took = -1, unfinished = 0;
    const char *t = arg(argc, argv, "took");
    if (num_arg(argc, argv, "changes", &changes) || num_arg(argc, argv, "failures", &failures) ||
        (t && num(t, &took)) || num_arg(argc, argv, "unfinished", &unfinished))
        return -1;
    int rc = state_pass_begin(st, arg(argc, argv, "trigger"), &id);
    if (rc)
        return fail("pass begin", rc, st);
    if (unfinished)
        return 0;
    rc = state_pass_end(st, id, (int)changes, (int)failures, arg(argc, argv, "gc_blocked"),
                        took >= 0 ? took * 1000 : 0);
    if (rc)
        return fail("pass end", rc, st);
    if (took >= 0) {
        char sql[128];
        snprintf(sql, sizeof(sql),
                 "UPDATE passes SET started_at = finished_at - %lld WHERE id = %lld",
                 (long long)took, (long long)id);
        return raw_sql(sql);
    }
    return 0;
}

static int do_age(int argc, char **argv)
{
    int64_t s = 0;
    if (argc < 2 || num(argv[1], &s))
        return -1;
    char sql[512];
    snprintf(sql, sizeof(sql),
             "UPDATE bottles SET updated_at = updated_at - %1$lld,"
             " next_retry = next_retry - %1$lld, last_pass_at = last_pass_at - %1$lld;"
             " UPDATE passes SET started_at = started_at - %1$lld,"
             " finished_at = finished_at - %1$lld;"
             " UPDATE events SET ts = ts - %1$lld;",
             (long long)s);
    return raw_sql(sql);
}

static int do_hold(struct state *st, int argc, char **argv)
{
    int64_t secs = 0;
    if (argc < 2 || num(argv[1], &secs))
        return -1;
    const char *tx = arg(argc - 1, argv + 1, "tx");
    if (tx && !strcmp(tx, "1")) {
        int rc = state_begin(st);
        if (rc)
            return fail("begin", rc, st);
        /* BEGIN IMMEDIATE takes the write lock; a write makes it certain. */
        rc = state_event_add(st, NULL, "hold", NULL);
        if (rc)
            return fail("event", rc, st);
    }
    printf("locked\n");
    fflush(stdout);
    sleep((unsigned)secs);
    return 0;
}

static int do_watcher(struct state *st, int argc, char **argv)
{
    const char *pid = arg(argc, argv, "pid"), *act = arg(argc, argv, "activity");
    struct state_watcher w = {
        .pid = getpid(),
        .started_at = (int64_t)time(NULL) - 300,
        .backend = "inotify",
        .dir = "/m",
        .activity = STATE_ACT_IDLE,
        .detail = arg(argc, argv, "detail"),
        .since = (int64_t)time(NULL) - 2,
    };
    if (pid && strcmp(pid, "self") && num(pid, &w.pid))
        return -1;
    for (int a = STATE_ACT_IDLE; act && a <= STATE_ACT_STOPPED; a++)
        if (!strcmp(act, state_activity_name((enum state_activity)a)))
            w.activity = (enum state_activity)a;
    if (time_arg(argc, argv, "next_resync", &w.next_resync) ||
        num_arg(argc, argv, "passes", &w.passes))
        return -1;
    int rc = state_watcher_put(st, &w);
    return rc ? fail("watcher", rc, st) : 0;
}

static int run(struct state *st, int argc, char **argv)
{
    if (!strcmp(argv[0], "watcher"))
        return do_watcher(st, argc - 1, argv + 1);
    const char *c = argv[0];
    if (!strcmp(c, "bottle"))
        return do_bottle(st, argc - 1, argv + 1);
    if (!strcmp(c, "resource"))
        return do_resource(st, argc - 1, argv + 1);
    if (!strcmp(c, "event"))
        return do_event(st, argc - 1, argv + 1);
    if (!strcmp(c, "pass"))
        return do_pass(st, argc - 1, argv + 1);
    if (!strcmp(c, "age"))
        return do_age(argc, argv);
    if (!strcmp(c, "hold"))
        return do_hold(st, argc, argv);
    if (!strcmp(c, "take") && argc == 2) {
        int approved = 0;
        int rc = state_approval_take(st, argv[1], &approved);
        if (rc)
            return fail("take", rc, st);
        printf("%d\n", approved);
        return 0;
    }
    if (!strcmp(c, "schema") && argc == 2) {
        int64_t v = 0;
        char sql[64];
        if (num(argv[1], &v))
            return -1;
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld", (long long)v);
        return raw_sql(sql);
    }
    fprintf(stderr, "state_fixture: unknown command '%s' (or wrong arguments)\n", c);
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: state_fixture DIR CMD [KEY=VALUE...] [-- CMD ...]...\n");
        return 1;
    }
    dir = argv[1];
    struct state *st = NULL;
    struct buf why;
    buf_init(&why, 0);
    struct state_open_opts so = {.dir = dir, .mode = STATE_EXCLUSIVE};
    int rc = state_open(&so, &st, &why);
    if (rc) {
        fprintf(stderr, "state_fixture: %s\n", why.len ? why.data : bd_strerror(rc));
        buf_release(&why);
        return 1;
    }
    buf_release(&why);
    int ret = 0;
    for (int i = 2; i < argc && !ret;) {
        int end = i;
        while (end < argc && strcmp(argv[end], "--"))
            end++;
        if (end > i && run(st, end - i, argv + i) < 0)
            ret = 1;
        i = end + 1;
    }
    state_close(st);
    return ret;
}
