/*
 * loop.h - the sidecar's single-threaded event loop (epoll).
 *
 * One loop per process.  It multiplexes file descriptors (level-triggered
 * epoll), one-shot timers (a binary heap on a monotonic millisecond clock),
 * signals (signalfd: the signals given are blocked and delivered as
 * ordinary events) and one inotify watch on a name inside a directory.
 *
 * Ownership: the loop never owns the objects it reports on.  struct
 * loop_io and struct loop_timer are embedded by their owners, who must
 * remove them (loop_io_del, loop_timer_cancel) before freeing them.
 * Objects must not be freed inside their own callback (an event for them
 * may still be queued in the current batch): hand the free to
 * loop_defer(), which runs after the batch.  An fd closed without
 * loop_io_del() leaves epoll by itself; its loop_io may be freed through
 * loop_defer() too.
 *
 * Nothing here logs; errors are returned as enum bd_err codes.
 */
#ifndef BOTTLED_LOOP_H
#define BOTTLED_LOOP_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct loop_io;
struct loop_timer;

/* events: EPOLLIN / EPOLLOUT / EPOLLERR / EPOLLHUP bits as epoll reported them. */
typedef void (*loop_io_cb)(struct loop_io *io, uint32_t events);
typedef void (*loop_timer_cb)(struct loop_timer *t);

struct loop_io {
    int fd;
    uint32_t events; /* current interest */
    int registered;  /* in the epoll set */
    loop_io_cb cb;
    void *arg;
};

struct loop_timer {
    uint64_t when; /* loop_now_ms() deadline */
    uint64_t seq;  /* arming order: breaks ties on when */
    size_t idx;    /* heap slot + 1; 0 when not armed */
    loop_timer_cb cb;
    void *arg;
};

/* Returns 0 and *ret, or BD_E_IO (errno set). */
int loop_new(struct loop **ret);
/* Frees the loop and its own fds; registered objects are not touched. */
void loop_free(struct loop *l);

/*
 * Runs until loop_stop().  Returns 0, or BD_E_IO (errno set) if epoll_wait
 * fails with anything but EINTR.
 */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

/* Monotonic milliseconds, refreshed once per wake-up. */
uint64_t loop_now_ms(const struct loop *l);

void loop_io_init(struct loop_io *io, int fd, loop_io_cb cb, void *arg);
/*
 * Sets the interest of io (adding it if needed); a no-op when unchanged.
 * Returns 0 or BD_E_IO (errno set).
 */
int loop_io_set(struct loop *l, struct loop_io *io, uint32_t events);
/* Removes io from the set (no-op if not registered).  Does not close the fd. */
void loop_io_del(struct loop *l, struct loop_io *io);

void loop_timer_init(struct loop_timer *t, loop_timer_cb cb, void *arg);
/*
 * (Re)arms t to fire once, ms milliseconds from now.  Timers due at the
 * same time fire in the order they were armed, and a timer armed by a
 * timer callback waits for the next turn of the loop even when already
 * due: arming 0 ms means "again after the I/O events pending now".
 */
void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t ms);
/* Disarms t (no-op if not armed). */
void loop_timer_cancel(struct loop *l, struct loop_timer *t);

/*
 * Blocks sigs (for the whole process: call before starting threads) and
 * delivers them to cb through a signalfd.  One set per loop.  Returns 0 or
 * BD_E_IO.
 */
int loop_signals(struct loop *l, const int *sigs, size_t n, void (*cb)(void *arg, int sig),
                 void *arg);

/*
 * Calls cb whenever the entry name in dir is created, written and closed,
 * moved in or has its attributes changed (an atomic rename of a pointer
 * file is a move-in).  One watch per loop.  Returns 0 or BD_E_IO.
 */
int loop_watch(struct loop *l, const char *dir, const char *name, void (*cb)(void *arg), void *arg);

/* Runs fn(arg) after the current batch of events (at the latest in loop_free()). */
void loop_defer(struct loop *l, void (*fn)(void *arg), void *arg);

#endif
