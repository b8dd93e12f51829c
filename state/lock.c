/*
 * lock.c - the exclusive lock of mutating commands on a state dir.
 *
 * flock(LOCK_EX | LOCK_NB) on <dir>/lock: the kernel drops it when the
 * holder dies, however it dies, so there is never a stale lock to clean
 * up.  The file's content is only a courtesy for the message of the
 * process that lost ("pid N\nstarted <UTC time the lock was taken>\n"); a
 * loser reading between the winner's truncate and write sees no holder and
 * says so.  The descriptor is O_CLOEXEC: a child that execs does not keep
 * the lock, but a forked child that does not exec shares it (flock locks
 * belong to the open file description) until it exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "state_int.h"

#define HOLDER_MAX 256

/* Appends "pid N, started T" from the lock file's content, checked. */
static void describe_holder(int fd, struct buf *why)
{
    char data[HOLDER_MAX + 1];
    ssize_t n = pread(fd, data, HOLDER_MAX, 0);
    long pid = 0;
    char started[32] = "";

    if (n > 0) {
        data[n] = '\0';
        const char *p = data;
        if (strncmp(p, "pid ", 4) == 0) {
            char *end;
            errno = 0;
            pid = strtol(p + 4, &end, 10);
            if (errno != 0 || end == p + 4 || *end != '\n' || pid <= 0)
                pid = 0;
            else
                p = end + 1;
        }
        if (pid > 0 && strncmp(p, "started ", 8) == 0) {
            size_t len = strcspn(p + 8, "\n");
            /* Only the characters of an ISO 8601 time reach the message. */
            if (len < sizeof(started) && strspn(p + 8, "0123456789-:TZ") == len) {
                memcpy(started, p + 8, len);
                started[len] = '\0';
            }
        }
    }
    if (why == NULL)
        return;
    if (pid > 0 && started[0] != '\0')
        (void)buf_appendf(why, "pid %ld, started %s", pid, started);
    else if (pid > 0)
        (void)buf_appendf(why, "pid %ld", pid);
    else
        (void)buf_puts(why, "another process (holder not recorded yet)");
}

int state_lock(int dirfd, const char *dir, int *ret_fd, struct buf *why)
{
    struct stat sb;
    int fd, rc = BD_E_IO;

    fd = openat(dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        if (why != NULL)
            (void)buf_appendf(why, "cannot open '%s/lock': %s", dir, strerror(errno));
        return BD_E_IO;
    }
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        if (why != NULL)
            (void)buf_appendf(why, "'%s/lock' is not a regular file", dir);
        goto out;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK) {
            if (why != NULL)
                (void)buf_appendf(why, "state dir '%s' is locked by ", dir);
            describe_holder(fd, why);
            rc = BD_E_LOCKED;
        } else if (why != NULL) {
            (void)buf_appendf(why, "cannot lock '%s/lock': %s", dir, strerror(errno));
        }
        goto out;
    }

    char info[HOLDER_MAX], ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    int len = snprintf(info, sizeof(info), "pid %ld\nstarted %s\n", (long)getpid(), ts);
    /* Courtesy only: a failure here does not matter for the lock itself. */
    if (ftruncate(fd, 0) == 0 && len > 0)
        (void)!pwrite(fd, info, (size_t)len, 0);
    *ret_fd = fd;
    return 0;
out:
    close(fd);
    return rc;
}

void state_unlock(int fd)
{
    /* Clear the holder before the lock goes, so nobody names a dead pid. */
    (void)!ftruncate(fd, 0);
    close(fd);
}
