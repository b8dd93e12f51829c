/*
 * watch_test.c - drives one watch backend (reconciler/watch_backend.h) for
 * the shell tests in this directory.
 *
 *   watch_test [-b BACKEND] [-t SECONDS] [-r] [-w FILE] DIR
 *
 * Opens BACKEND (default: the best compiled one) on DIR and prints
 *
 *   ready BACKEND REALPATH
 *   T FLAG[,FLAG...] [PATH...]       one line per non-empty drained batch
 *   reopened BACKEND REALPATH        (-r) after a root-gone batch
 *
 * where T is seconds since the start (three decimals) and FLAG is one of
 * changed overflow root-gone incomplete failed truncated.  SIGUSR1 injects
 * an overflow (watch_backend_inject_overflow()) as soon as poll returns,
 * before the next drain, so events already queued are lost to it (the
 * shell test stops the process, queues events, signals and continues it).
 * With -r a root-gone batch
 * closes the backend and re-opens it on DIR, retrying every 50 ms for up to
 * 10 s while DIR does not exist.  Runs for SECONDS, or until SIGTERM or
 * SIGINT; exits 0, or 1 when an open fails ("error: ..." on stderr).
 * -w FILE creates FILE the moment open has returned, before anything is
 * printed, to test that a returned open is armed.  Every line is flushed
 * at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "watch_backend.h"

static volatile sig_atomic_t got_usr1, got_term;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        got_usr1 = 1;
    else
        got_term = 1;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_batch(double t, const struct watch_hints *h)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {WATCH_HINT_CHANGED, "changed"},     {WATCH_HINT_OVERFLOW, "overflow"},
        {WATCH_HINT_ROOT_GONE, "root-gone"}, {WATCH_HINT_INCOMPLETE, "incomplete"},
        {WATCH_HINT_FAILED, "failed"},       {WATCH_HINT_TRUNCATED, "truncated"},
    };
    printf("%.3f ", t);
    const char *sep = "";
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (h->flags & names[i].bit) {
            printf("%s%s", sep, names[i].name);
            sep = ",";
        }
    }
    for (size_t i = 0; i < h->n_paths; i++)
        printf(" %s", h->paths[i]);
    printf("\n");
    fflush(stdout);
}

static int open_backend(const char *name, const char *dir, struct watch_backend **ret)
{
    char err[512];
    int r = watch_backend_open(name, dir, ret, err, sizeof(err));
    if (r < 0)
        fprintf(stderr, "error: %s (%s)\n", err, bd_strerror(r));
    return r;
}

static void usage(void)
{
    fprintf(stderr, "usage: watch_test [-b BACKEND] [-t SECONDS] [-r] [-w FILE] DIR\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *backend = NULL;
    double seconds = 0;
    int reopen = 0;
    const char *poke = NULL;
    int opt;

    while ((opt = getopt(argc, argv, "b:t:rw:")) != -1) {
        switch (opt) {
        case 'b':
            backend = optarg;
            break;
        case 't': {
            char *end = NULL;
            seconds = strtod(optarg, &end);
            if (!end || *end || seconds <= 0)
                usage();
            break;
        }
        case 'r':
            reopen = 1;
            break;
        case 'w':
            poke = optarg;
            break;
        default:
            usage();
        }
    }
    if (optind + 1 != argc)
        usage();
    const char *dir = argv[optind];

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct watch_backend *wb = NULL;
    if (open_backend(backend, dir, &wb) < 0)
        return 1;
    double t0 = now();
    if (poke) {
        int fd = open(poke, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, "x\n", 2) != 2) {
            fprintf(stderr, "error: cannot write '%s': %s\n", poke, strerror(errno));
            return 1;
        }
        close(fd);
    }
    printf("ready %s %s\n", watch_backend_name(wb), watch_backend_real_path(wb));
    fflush(stdout);

    int status = 0;
    while (!got_term && (seconds <= 0 || now() - t0 < seconds)) {
        struct pollfd p = {.fd = watch_backend_fd(wb), .events = POLLIN};
        int n = poll(&p, 1, 100);
        /* After poll, before drain: events that were already queued when
         * the signal came are lost to the injected overflow. */
        if (got_usr1) {
            got_usr1 = 0;
            watch_backend_inject_overflow(wb);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue;
        struct watch_hints h;
        watch_backend_drain(wb, &h);
        if (h.flags)
            print_batch(now() - t0, &h);
        unsigned flags = h.flags;
        watch_hints_release(&h);
        if (!(flags & WATCH_HINT_ROOT_GONE) || !reopen)
            continue;

        const char *name = watch_backend_name(wb); /* a static string */
        watch_backend_close(wb);
        wb = NULL;
        for (int tries = 0; tries < 200 && !got_term; tries++) {
            char err[512];
            if (watch_backend_open(name, dir, &wb, err, sizeof(err)) == 0)
                break;
            usleep(50 * 1000);
        }
        if (!wb) {
            fprintf(stderr, "error: cannot re-open '%s'\n", dir);
            status = 1;
            break;
        }
        printf("reopened %s %s\n", watch_backend_name(wb), watch_backend_real_path(wb));
        fflush(stdout);
    }
    watch_backend_close(wb);
    return status;
}
