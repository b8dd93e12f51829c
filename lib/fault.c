/*
 * fault.c - see fault.h.  Only compiled with BOTTLED_FAULT_HOOKS.
 */
#include "fault.h"

#ifdef BOTTLED_FAULT_HOOKS
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long fault_n;

void fault_point(const char *what)
{
    pthread_mutex_lock(&fault_mu);
    unsigned long n = ++fault_n;
    const char *count = getenv("BOTTLED_FAULT_COUNT");
    if (count && *count) {
        int fd = open(count, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0) {
            char line[256];
            int len = snprintf(line, sizeof(line), "%lu %s\n", n, what ? what : "?");
            if (len > 0 && (size_t)len < sizeof(line) && write(fd, line, (size_t)len) < 0)
                (void)errno;
            close(fd);
        }
    }
    const char *at = getenv("BOTTLED_FAULT_AT");
    if (at && *at) {
        char *end = NULL;
        unsigned long want = strtoul(at, &end, 10);
        if (end && !*end && want == n) {
            fprintf(stderr, "bottled: BOTTLED_FAULT_AT=%lu: killed before %s\n", n,
                    what ? what : "?");
            raise(SIGKILL);
        }
    }
    pthread_mutex_unlock(&fault_mu);
}
#endif
