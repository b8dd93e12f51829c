/*
 * watch_fswatch.c - the libfswatch watch backend (watch_backend.h).
 *
 * libfswatch's monitor blocks in fsw_start_monitor(), so each monitoring
 * session runs on a helper thread; its callback merges what it saw into
 * one pending batch under a mutex and writes a byte to a self-pipe when
 * the batch stops being empty.  The caller polls the pipe; drain reads the
 * pipe first and then takes the batch, so a callback that runs in between
 * is either in this batch or wakes the next poll.
 *
 * Two sessions (a session's recursion applies to all its paths):
 *   tree     recursive, on the real path of the directory;
 *   anchors  not recursive, on the directories holding the name as given
 *            and the real path; only their two names count.
 *
 * What libfswatch 1.14's inotify monitor does and how it is handled here
 * (checked by tests/watch/t0001-backends.sh):
 *   - it watches IN_ALL_EVENTS, so every read of a manifest by our own pass
 *     comes back as events (PlatformSpecific); only change flags count,
 *     and an event-type filter drops the rest before the callback;
 *   - a directory *created* in the tree is watched, one *moved in* is not
 *     (and an event's IsDir flag names the watched parent, not the child):
 *     a MovedTo whose path is a directory re-arms the tree session;
 *   - a queue overflow throws unless allow_overflow is set; with it, an
 *     Overflow event arrives and the monitor goes on, with its watches
 *     possibly stale: an overflow re-arms the tree session as well;
 *   - given a path that is a symbolic link it keeps watching the old target
 *     after the link is swapped and reports nothing about the swap, hence
 *     the real path here and the anchors session;
 *   - the monitor gives no sign that its initial scan is done.  Both
 *     sessions also watch a private probe directory (mkdtemp() under
 *     $TMPDIR, never the watched one); open and re-arm write a file there
 *     until the session reports it, which it can only do after scanning
 *     all its paths.  The probe directory is removed at close (a killed
 *     process leaves it behind: bottled-watch-XXXXXX with two empty
 *     files);
 *   - fsw_stop_monitor() is cooperative: the loop notices within one
 *     latency (50 ms here), and it is a no-op before the monitor runs, so
 *     stopping repeats until the thread has returned;
 *   - fsw_destroy_session() leaks the callback context it allocated
 *     (`if (!context) delete context` in libfswatch.cpp): 24 bytes per
 *     session (two per open, one per re-arm).  LeakSanitizer reports it
 *     from `operator new` in fsw_start_monitor (create_monitor inlined;
 *     the library has no frame pointers, so that is the whole stack); in
 *     sanitizer builds this file suppresses exactly that, see below.
 * Re-arming starts the new tree session and waits until it is ready before
 * stopping the old one, so no change falls between the two.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libfswatch/c/libfswatch.h>

#include "buf.h"
#include "err.h"
#include "watch_backend.h"
#include "xalloc.h"

/*
 * LeakSanitizer's built-in suppressions (the runtime calls this hook if the
 * program defines it), so every binary that links this backend, not only
 * the tests, runs clean under ASan.  Only the library's own allocation is
 * named: a leak of ours would have our functions on its stack.
 */
#if defined(__SANITIZE_ADDRESS__)
#define FW_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FW_ASAN 1
#endif
#endif
#ifdef FW_ASAN
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:fsw_start_monitor\n";
}
/* ... and without the "Suppressions used" table on stderr at every exit. */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
    return "print_suppressions=0";
}
#endif

#define FW_LATENCY       0.05 /* seconds: the settle window is the caller's */
#define FW_READY_TIMEOUT 5000 /* ms to wait for a session's first probe event */
#define FW_PROBE_EVERY   20   /* ms between probe writes */

#define WANT_REARM 0x1u /* the tree session's watches may be stale */

#define CHANGE_FLAGS                                                                               \
    (Created | Updated | Removed | Renamed | OwnerModified | AttributeModified | MovedFrom |       \
     MovedTo | Link)

enum fw_role {
    FW_TREE,    /* recursive, the real path */
    FW_ANCHORS, /* not recursive, the directories holding the two names */
};

struct fw;

struct fw_session {
    struct fw *fw;
    enum fw_role role;
    FSW_HANDLE h;
    pthread_t thread;
    int thread_started;
    /* under fw->mu: */
    int ready;    /* the probe was reported: the initial scan is done */
    int done;     /* fsw_start_monitor() returned */
    int stopping; /* we asked it to return */
};

struct fw {
    struct watch_backend *wb;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int wake[2];
    char *probe; /* private directory every session also watches */
    unsigned probe_seq;
    struct fw_session *tree, *anchors;
    /* under mu: */
    struct watch_hints pending;
    unsigned want;
};

/* ---- the callback (helper threads, and inject on the caller's) -------- */

/* 1 if path is dir or below it (dir is absolute, without a trailing '/'
 * unless it is "/"). */
static int has_prefix_dir(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return path[0] == '/';
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* 1 if path is parent/name. */
static int is_child(const char *path, const char *parent, const char *name)
{
    if (!parent || !name)
        return 0;
    size_t n = strlen(parent);
    if (strncmp(path, parent, n) != 0)
        return 0;
    if (!(n == 1 && parent[0] == '/')) { /* "/" already ends in the separator */
        if (path[n] != '/')
            return 0;
        n++;
    }
    return strcmp(path + n, name) == 0;
}

static int path_is_dir(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* One event of session s into f->pending (f->mu held). */
static void take_event(struct fw_session *s, const fsw_cevent *ev)
{
    struct fw *f = s->fw;
    const struct watch_root *r = &f->wb->root;
    unsigned flags = 0;
    for (unsigned i = 0; i < ev->flags_num; i++)
        flags |= (unsigned)ev->flags[i];
    const char *path = ev->path ? ev->path : "";

    if (flags & Overflow) {
        watch_hints_add(&f->pending, WATCH_HINT_OVERFLOW | WATCH_HINT_RECHECK, NULL, 0);
        if (s->role == FW_TREE)
            f->want |= WANT_REARM;
        return;
    }
    if (!(flags & CHANGE_FLAGS))
        return;
    if (has_prefix_dir(path, f->probe)) {
        if (!s->ready) {
            s->ready = 1;
            pthread_cond_broadcast(&f->cv);
        }
        return;
    }
    if (s->role == FW_ANCHORS) {
        if (!strcmp(path, r->link_parent) || !strcmp(path, r->real_parent) ||
            is_child(path, r->link_parent, r->link_name) ||
            is_child(path, r->real_parent, r->real_name))
            watch_hints_add(&f->pending, WATCH_HINT_RECHECK, NULL, 0);
        return;
    }
    if (!has_prefix_dir(path, r->real))
        return;
    const char *rel = path + strlen(r->real);
    if (*rel == '/')
        rel++;
    watch_hints_add(&f->pending, WATCH_HINT_CHANGED, rel, strlen(rel));
    if (!*rel)
        watch_hints_add(&f->pending, WATCH_HINT_RECHECK, NULL, 0);
    else if ((flags & MovedTo) && path_is_dir(path))
        f->want |= WANT_REARM;
}

static void on_events(fsw_cevent const *const events, const unsigned int n, void *data)
{
    struct fw_session *s = data;
    struct fw *f = s->fw;

    pthread_mutex_lock(&f->mu);
    int was_idle = !f->pending.flags && !f->want;
    for (unsigned i = 0; i < n; i++)
        take_event(s, &events[i]);
    int wake = was_idle && (f->pending.flags || f->want);
    pthread_mutex_unlock(&f->mu);
    if (wake && write(f->wake[1], "e", 1) < 0) {
        /* full pipe: a wakeup is pending anyway */
    }
}

/* ---- sessions ---------------------------------------------------------- */

static void *session_main(void *arg)
{
    struct fw_session *s = arg;
    struct fw *f = s->fw;

    FSW_STATUS st = fsw_start_monitor(s->h);
    (void)st;
    pthread_mutex_lock(&f->mu);
    s->done = 1;
    int failed = !s->stopping;
    if (failed)
        watch_hints_add(&f->pending, WATCH_HINT_FAILED, NULL, 0);
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (failed && write(f->wake[1], "f", 1) < 0) {
        /* full pipe: a wakeup is pending anyway */
    }
    return NULL;
}

static void deadline_after(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Asks the session to stop, waits for its thread, frees it. */
static void session_free(struct fw_session *s)
{
    if (!s)
        return;
    struct fw *f = s->fw;
    if (s->thread_started) {
        pthread_mutex_lock(&f->mu);
        s->stopping = 1;
        while (!s->done) {
            pthread_mutex_unlock(&f->mu);
            fsw_stop_monitor(s->h); /* a no-op until the monitor runs: repeat */
            pthread_mutex_lock(&f->mu);
            struct timespec ts;
            deadline_after(&ts, 20);
            if (!s->done)
                pthread_cond_timedwait(&f->cv, &f->mu, &ts);
        }
        pthread_mutex_unlock(&f->mu);
        pthread_join(s->thread, NULL);
    }
    if (s->h)
        fsw_destroy_session(s->h);
    free(s);
}

/* Writes a file into the probe directory (ours, never the watched one). */
static void probe_poke(struct fw *f)
{
    char *p = xasprintf("%s/p%u", f->probe, f->probe_seq++ % 2);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0)
        close(fd);
    free(p);
}

/*
 * Creates the private probe directory in the first temporary directory
 * that is not inside the watched tree (never write into it).
 */
static int probe_create(struct fw *f, char *err, size_t errlen)
{
    const char *tmp = getenv("TMPDIR");
    const char *cands[] = {tmp && *tmp ? tmp : "/tmp", "/tmp", "/var/tmp", "/dev/shm"};
    int e = 0;

    for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
        char *real = realpath(cands[i], NULL);
        if (!real || has_prefix_dir(real, f->wb->root.real)) {
            e = real ? EEXIST : errno;
            free(real);
            continue;
        }
        f->probe = xasprintf("%s%sbottled-watch-XXXXXX", real, strcmp(real, "/") ? "/" : "");
        free(real);
        if (mkdtemp(f->probe))
            return 0;
        e = errno;
        free(f->probe);
        f->probe = NULL;
    }
    return watch_errf(err, errlen, BD_E_IO, "cannot create a probe directory outside '%s' (%s)",
                      f->wb->root.real,
                      e == EEXIST ? "every temporary directory is inside it" : strerror(e));
}

/* Escapes a path for a POSIX extended regular expression. */
static void regex_quote(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (strchr(".[]()*+?{}|^$\\", *s))
            buf_putc(b, '\\');
        buf_putc(b, *s);
    }
}

static int session_configure(struct fw *f, struct fw_session *s)
{
    const struct watch_root *r = &f->wb->root;
    int bad = 0;

    if (s->role == FW_TREE) {
        bad |= fsw_add_path(s->h, r->real);
        /* watch_skip_dir(): .git directories below the root, except below
         * skills/ (an include filter wins over every exclude). */
        const char *sep = strcmp(r->real, "/") ? "/" : "";
        struct buf ex, in;
        buf_init(&ex, 16384);
        buf_init(&in, 16384);
        buf_putc(&ex, '^');
        regex_quote(&ex, r->real);
        buf_appendf(&ex, "%s(.*/)?\\.git(/|$)", sep);
        buf_putc(&in, '^');
        regex_quote(&in, r->real);
        buf_appendf(&in, "%sskills(/|$)", sep);
        fsw_cmonitor_filter fex = {
            .text = ex.data, .type = filter_exclude, .case_sensitive = true, .extended = true};
        fsw_cmonitor_filter fin = {
            .text = in.data, .type = filter_include, .case_sensitive = true, .extended = true};
        bad |= fsw_add_filter(s->h, fex);
        bad |= fsw_add_filter(s->h, fin);
        buf_release(&ex);
        buf_release(&in);
    } else {
        bad |= fsw_add_path(s->h, r->link_parent);
        if (strcmp(r->link_parent, r->real_parent) != 0)
            bad |= fsw_add_path(s->h, r->real_parent);
    }
    bad |= fsw_add_path(s->h, f->probe);

    static const enum fsw_event_flag wanted[] = {
        Created,           Updated,   Removed, Renamed, OwnerModified,
        AttributeModified, MovedFrom, MovedTo, Link,    Overflow};
    for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
        fsw_event_type_filter tf = {.flag = wanted[i]};
        bad |= fsw_add_event_type_filter(s->h, tf);
    }
    bad |= fsw_set_callback(s->h, on_events, s);
    bad |= fsw_set_latency(s->h, FW_LATENCY);
    bad |= fsw_set_allow_overflow(s->h, true);
    bad |= fsw_set_recursive(s->h, s->role == FW_TREE);
    bad |= fsw_set_follow_symlinks(s->h, false);
    return bad ? BD_E_INTERNAL : 0;
}

/* Starts a session and waits until it has scanned its paths. */
static int session_start(struct fw *f, enum fw_role role, struct fw_session **ret, char *err,
                         size_t errlen)
{
    struct fw_session *s = xcalloc(1, sizeof(*s));
    int r = 0;

    s->fw = f;
    s->role = role;
    s->h = fsw_init_session(system_default_monitor_type);
    if (!s->h) {
        r = watch_errf(err, errlen, BD_E_INTERNAL, "libfswatch: cannot create a session");
        goto out;
    }
    if (session_configure(f, s) < 0) {
        r = watch_errf(err, errlen, BD_E_INTERNAL, "libfswatch: cannot configure a session (%d)",
                       (int)fsw_last_error());
        goto out;
    }
    if (pthread_create(&s->thread, NULL, session_main, s) != 0) {
        r = watch_errf(err, errlen, BD_E_INTERNAL, "cannot start the libfswatch thread");
        goto out;
    }
    s->thread_started = 1;

    pthread_mutex_lock(&f->mu);
    for (int waited = 0; !s->ready && !s->done && waited < FW_READY_TIMEOUT;
         waited += FW_PROBE_EVERY) {
        pthread_mutex_unlock(&f->mu);
        probe_poke(f);
        pthread_mutex_lock(&f->mu);
        struct timespec ts;
        deadline_after(&ts, FW_PROBE_EVERY);
        if (!s->ready && !s->done)
            pthread_cond_timedwait(&f->cv, &f->mu, &ts);
    }
    int ready = s->ready && !s->done;
    pthread_mutex_unlock(&f->mu);
    if (!ready)
        r = watch_errf(err, errlen, BD_E_INTERNAL, "the libfswatch monitor did not start (%s)",
                       s->done ? "it returned" : "no event from its probe");
out:
    if (r < 0) {
        session_free(s);
        return r;
    }
    *ret = s;
    return 0;
}

/* ---- the backend ------------------------------------------------------- */

static void fw_free(struct fw *f)
{
    if (!f)
        return;
    /* Ask both to stop before waiting for either: one latency, not two. */
    pthread_mutex_lock(&f->mu);
    if (f->tree)
        f->tree->stopping = 1;
    if (f->anchors)
        f->anchors->stopping = 1;
    pthread_mutex_unlock(&f->mu);
    if (f->tree && f->tree->thread_started)
        fsw_stop_monitor(f->tree->h);
    if (f->anchors && f->anchors->thread_started)
        fsw_stop_monitor(f->anchors->h);
    session_free(f->tree);
    session_free(f->anchors);
    watch_hints_release(&f->pending);
    if (f->probe) {
        for (int i = 0; i < 2; i++) {
            char *p = xasprintf("%s/p%d", f->probe, i);
            unlink(p);
            free(p);
        }
        rmdir(f->probe);
        free(f->probe);
    }
    if (f->wake[0] >= 0)
        close(f->wake[0]);
    if (f->wake[1] >= 0)
        close(f->wake[1]);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static int fw_open(struct watch_backend *wb, char *err, size_t errlen)
{
    struct fw *f = xcalloc(1, sizeof(*f));
    int r = 0;

    f->wb = wb;
    f->wake[0] = f->wake[1] = -1;
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);

    if (fsw_init_library() != FSW_OK) {
        r = watch_errf(err, errlen, BD_E_INTERNAL, "libfswatch failed to initialise");
        goto out;
    }
    if (pipe2(f->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
        r = watch_errf(err, errlen, BD_E_IO, "pipe2: %s", strerror(errno));
        goto out;
    }
    if ((r = probe_create(f, err, errlen)) < 0)
        goto out;
    if ((r = session_start(f, FW_TREE, &f->tree, err, errlen)) < 0)
        goto out;
    if (wb->root.real_name && (r = session_start(f, FW_ANCHORS, &f->anchors, err, errlen)) < 0)
        goto out;
    wb->impl = f;
    f = NULL;
out:
    fw_free(f);
    return r;
}

static int fw_fd(const struct watch_backend *wb)
{
    return ((const struct fw *)wb->impl)->wake[0];
}

/* Replaces the tree session by a fresh one; the new one is ready before the
 * old one stops. */
static int rearm(struct fw *f)
{
    struct fw_session *fresh = NULL;
    char err[256];
    if (session_start(f, FW_TREE, &fresh, err, sizeof(err)) < 0)
        return BD_E_INTERNAL;
    struct fw_session *old = f->tree;
    pthread_mutex_lock(&f->mu);
    f->tree = fresh;
    pthread_mutex_unlock(&f->mu);
    session_free(old);
    return 0;
}

static void fw_drain(struct watch_backend *wb, struct watch_hints *h)
{
    struct fw *f = wb->impl;
    char b[64];

    while (read(f->wake[0], b, sizeof(b)) > 0)
        ;
    pthread_mutex_lock(&f->mu);
    watch_hints_merge(h, &f->pending);
    unsigned want = f->want;
    f->want = 0;
    pthread_mutex_unlock(&f->mu);
    if ((want & WANT_REARM) && rearm(f) < 0)
        watch_hints_add(h, WATCH_HINT_FAILED, NULL, 0);
}

static void fw_inject_overflow(struct watch_backend *wb)
{
    struct fw *f = wb->impl;
    pthread_mutex_lock(&f->mu); /* what was pending is lost, as in a real overflow */
    watch_hints_release(&f->pending);
    f->want = 0;
    pthread_mutex_unlock(&f->mu);
    enum fsw_event_flag flag = Overflow;
    fsw_cevent ev = {.path = (char *)"", .evt_time = time(NULL), .flags = &flag, .flags_num = 1};
    on_events(&ev, 1, f->tree); /* the tree session's own callback */
}

static void fw_close(struct watch_backend *wb)
{
    fw_free(wb->impl);
    wb->impl = NULL;
}

const struct watch_ops watch_fswatch_ops = {
    .name = "fswatch",
    .open = fw_open,
    .fd = fw_fd,
    .drain = fw_drain,
    .inject_overflow = fw_inject_overflow,
    .close = fw_close,
};
