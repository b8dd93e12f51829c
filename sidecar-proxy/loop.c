/*
 * loop.c - epoll event loop with a timer heap, signalfd and one inotify
 * watch (see loop.h).
 *
 * One iteration: run due timers, epoll_wait until the earliest deadline,
 * dispatch the batch, then run the deferred frees queued during it.  The
 * deferred list is what makes "never free an object inside its own
 * callback" cheap for the callers: a connection that dies mid-batch is
 * only unlinked, and freed once no queued event can point at it.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "loop.h"
#include "xalloc.h"

#define LOOP_BATCH 128

struct deferred {
    void (*fn)(void *arg);
    void *arg;
    struct deferred *next;
};

struct loop {
    int epfd;
    int stop;
    uint64_t now;
    uint64_t seq; /* timers armed so far */

    struct loop_timer **heap;
    size_t n_heap, cap_heap;

    struct loop_io sig_io;
    void (*sig_cb)(void *arg, int sig);
    void *sig_arg;

    struct loop_io ino_io;
    char *ino_name;
    void (*ino_cb)(void *arg);
    void *ino_arg;

    struct deferred *defer_head, **defer_tail;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int loop_new(struct loop **ret)
{
    int fd = epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0)
        return BD_E_IO;
    struct loop *l = xcalloc(1, sizeof(*l));
    l->epfd = fd;
    l->now = mono_ms();
    l->defer_tail = &l->defer_head;
    l->sig_io.fd = -1;
    l->ino_io.fd = -1;
    *ret = l;
    return 0;
}

static void run_deferred(struct loop *l)
{
    while (l->defer_head) {
        struct deferred *d = l->defer_head;
        l->defer_head = d->next;
        if (!l->defer_head)
            l->defer_tail = &l->defer_head;
        d->fn(d->arg);
        free(d);
    }
}

void loop_free(struct loop *l)
{
    if (!l)
        return;
    run_deferred(l);
    if (l->sig_io.fd >= 0)
        close(l->sig_io.fd);
    if (l->ino_io.fd >= 0)
        close(l->ino_io.fd);
    free(l->ino_name);
    free(l->heap);
    close(l->epfd);
    free(l);
}

void loop_stop(struct loop *l)
{
    l->stop = 1;
}

uint64_t loop_now_ms(const struct loop *l)
{
    return l->now;
}

void loop_defer(struct loop *l, void (*fn)(void *arg), void *arg)
{
    struct deferred *d = xcalloc(1, sizeof(*d));
    d->fn = fn;
    d->arg = arg;
    *l->defer_tail = d;
    l->defer_tail = &d->next;
}

void loop_io_init(struct loop_io *io, int fd, loop_io_cb cb, void *arg)
{
    io->fd = fd;
    io->events = 0;
    io->registered = 0;
    io->cb = cb;
    io->arg = arg;
}

int loop_io_set(struct loop *l, struct loop_io *io, uint32_t events)
{
    if (io->registered && io->events == events)
        return 0;
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(l->epfd, io->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, io->fd, &ev) < 0)
        return BD_E_IO;
    io->registered = 1;
    io->events = events;
    return 0;
}

void loop_io_del(struct loop *l, struct loop_io *io)
{
    if (!io->registered)
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->registered = 0;
    io->events = 0;
}

/* --- timers: a binary min-heap on (when); idx is slot + 1 --- */

static int earlier(const struct loop_timer *a, const struct loop_timer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_place(struct loop *l, size_t i, struct loop_timer *t)
{
    l->heap[i] = t;
    t->idx = i + 1;
}

static void heap_up(struct loop *l, size_t i)
{
    struct loop_timer *t = l->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!earlier(t, l->heap[p]))
            break;
        heap_place(l, i, l->heap[p]);
        i = p;
    }
    heap_place(l, i, t);
}

static void heap_down(struct loop *l, size_t i)
{
    struct loop_timer *t = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->n_heap)
            break;
        if (c + 1 < l->n_heap && earlier(l->heap[c + 1], l->heap[c]))
            c++;
        if (!earlier(l->heap[c], t))
            break;
        heap_place(l, i, l->heap[c]);
        i = c;
    }
    heap_place(l, i, t);
}

void loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *arg)
{
    t->when = 0;
    t->seq = 0;
    t->idx = 0;
    t->cb = cb;
    t->arg = arg;
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
    if (!t->idx)
        return;
    size_t i = t->idx - 1;
    t->idx = 0;
    l->n_heap--;
    if (i == l->n_heap)
        return;
    struct loop_timer *moved = l->heap[l->n_heap];
    heap_place(l, i, moved);
    heap_up(l, i);
    heap_down(l, moved->idx - 1);
}

void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t ms)
{
    loop_timer_cancel(l, t);
    t->when = l->now + ms;
    t->seq = l->seq++;
    if (l->n_heap == l->cap_heap) {
        l->cap_heap = l->cap_heap ? 2 * l->cap_heap : 64;
        l->heap = xrealloc(l->heap, l->cap_heap * sizeof(*l->heap));
    }
    heap_place(l, l->n_heap++, t);
    heap_up(l, l->n_heap - 1);
}

/*
 * Runs the timers that were due when it started.  One that a callback
 * arms (again) waits for the next turn, after epoll_wait(0): now is not
 * refreshed here, so a 0 ms re-arm would otherwise fire at once, over and
 * over, and a connection re-arming its kick at the fairness cap would
 * starve every other one.  A due timer armed before the run sorts ahead
 * of any armed during it (its when is <= now, theirs >= now, ties go by
 * seq), so stopping at the first of those skips nothing that was due.
 */
static void run_timers(struct loop *l)
{
    uint64_t seq = l->seq;
    while (l->n_heap > 0 && l->heap[0]->when <= l->now && l->heap[0]->seq < seq) {
        struct loop_timer *t = l->heap[0];
        loop_timer_cancel(l, t);
        t->cb(t);
    }
}

/* --- signals and inotify --- */

static void on_signal(struct loop_io *io, uint32_t events)
{
    struct loop *l = io->arg;
    (void)events;
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        l->sig_cb(l->sig_arg, (int)si.ssi_signo);
}

int loop_signals(struct loop *l, const int *sigs, size_t n, void (*cb)(void *arg, int sig),
                 void *arg)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < n; i++)
        sigaddset(&set, sigs[i]);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return BD_E_IO;
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return BD_E_IO;
    l->sig_cb = cb;
    l->sig_arg = arg;
    loop_io_init(&l->sig_io, fd, on_signal, l);
    return loop_io_set(l, &l->sig_io, EPOLLIN);
}

static void on_inotify(struct loop_io *io, uint32_t events)
{
    struct loop *l = io->arg;
    (void)events;
    char b[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int hit = 0;
    for (;;) {
        ssize_t n = read(io->fd, b, sizeof(b));
        if (n <= 0)
            break;
        for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= n;) {
            const struct inotify_event *e = (const struct inotify_event *)(b + off);
            if (e->len && !strcmp(e->name, l->ino_name))
                hit = 1;
            off += (ssize_t)sizeof(*e) + e->len;
        }
    }
    if (hit)
        l->ino_cb(l->ino_arg);
}

int loop_watch(struct loop *l, const char *dir, const char *name, void (*cb)(void *arg), void *arg)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0)
        return BD_E_IO;
    if (inotify_add_watch(fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ATTRIB) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return BD_E_IO;
    }
    l->ino_name = xstrdup(name);
    l->ino_cb = cb;
    l->ino_arg = arg;
    loop_io_init(&l->ino_io, fd, on_inotify, l);
    return loop_io_set(l, &l->ino_io, EPOLLIN);
}

int loop_run(struct loop *l)
{
    struct epoll_event ev[LOOP_BATCH];
    l->stop = 0;
    while (!l->stop) {
        l->now = mono_ms();
        run_timers(l);
        run_deferred(l);
        if (l->stop)
            break;
        int timeout = -1;
        if (l->n_heap > 0) {
            uint64_t w = l->heap[0]->when;
            timeout = w <= l->now ? 0 : (int)(w - l->now > 60000 ? 60000 : w - l->now);
        }
        int n = epoll_wait(l->epfd, ev, LOOP_BATCH, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return BD_E_IO;
        }
        l->now = mono_ms();
        for (int i = 0; i < n; i++) {
            struct loop_io *io = ev[i].data.ptr;
            if (io->registered)
                io->cb(io, ev[i].events);
        }
        run_deferred(l);
    }
    return 0;
}
