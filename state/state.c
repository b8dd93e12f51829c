/*
 * state.c - opening the state dir: its location, ownership and mode, the
 * identity files and the order things are set up in (state.h).
 *
 * Order in STATE_EXCLUSIVE: create the dir (0700), refuse it unless it is
 * ours and private, take the lock, then create what is missing (identity
 * files, keys/, ca/) and open the database.  Identity files are created
 * through link(2) from a complete temporary file, so a reader never sees
 * a half-written one and two creators cannot both win.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "state_int.h"
#include "xalloc.h"

#define IDENTITY_MAX 64 /* bytes read from instance-id */

int64_t state_now(void)
{
    return (int64_t)time(NULL);
}

static void say(struct buf *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct buf *why, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL)
        return;
    va_start(ap, fmt);
    (void)buf_vappendf(why, fmt, ap);
    va_end(ap);
}

int state_default_dir(char **ret_dir)
{
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");

    if (geteuid() == 0) {
        *ret_dir = xstrdup("/var/lib/bottled");
        return 0;
    }
    /* The XDG spec: a relative path in the variable is invalid, ignore it. */
    if (xdg != NULL && xdg[0] == '/') {
        *ret_dir = xasprintf("%s/bottled", xdg);
        return 0;
    }
    if (home != NULL && home[0] == '/') {
        *ret_dir = xasprintf("%s/.local/state/bottled", home);
        return 0;
    }
    return BD_E_NOTFOUND;
}

static int random_bytes(void *p, size_t n)
{
    uint8_t *b = p;

    while (n > 0) {
        ssize_t r = getrandom(b, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return BD_E_IO;
        }
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

int state_write_file(int dirfd, const char *name, const void *data, size_t len, int exclusive)
{
    char *tmp = xasprintf(".%s.tmp.%ld", name, (long)getpid());
    const char *p = data;
    int fd = -1, rc = BD_E_IO, saved;

    (void)unlinkat(dirfd, tmp, 0); /* a leftover of a crashed run with our pid */
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        goto out;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            goto out;
        }
        p += w;
        len -= (size_t)w;
    }
    if (fsync(fd) < 0)
        goto out;
    if (exclusive) {
        if (linkat(dirfd, tmp, dirfd, name, 0) < 0) {
            rc = errno == EEXIST ? BD_E_EXISTS : BD_E_IO;
            goto out;
        }
    } else if (renameat(dirfd, tmp, dirfd, name) < 0) {
        goto out;
    }
    (void)fsync(dirfd);
    rc = 0;
out:
    saved = errno;
    if (fd >= 0)
        close(fd);
    (void)unlinkat(dirfd, tmp, 0);
    free(tmp);
    errno = saved;
    return rc;
}

/* mkdir -p with mode 0700 for everything it creates. */
static int mkdir_p(const char *path)
{
    char *p = xstrdup(path);
    int rc = 0;

    for (char *s = p + 1; *s != '\0'; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST) {
            rc = BD_E_IO;
            goto out;
        }
        *s = '/';
    }
    if (mkdir(p, 0700) < 0 && errno != EEXIST)
        rc = BD_E_IO;
out:
    free(p);
    return rc;
}

/* Ours and private: owned by the effective user, nothing for group/other. */
static int check_private(const struct stat *sb, const char *what, const char *path, struct buf *why)
{
    if (sb->st_uid != geteuid()) {
        say(why, "%s '%s' is owned by uid %u, not by the running user (uid %u)", what, path,
            (unsigned)sb->st_uid, (unsigned)geteuid());
        return BD_E_PERM;
    }
    if (sb->st_mode & 077) {
        say(why, "%s '%s' has mode %04o: group/world accessible; want %s (chmod %s '%s')", what,
            path, (unsigned)(sb->st_mode & 07777), S_ISDIR(sb->st_mode) ? "0700" : "0600",
            S_ISDIR(sb->st_mode) ? "700" : "600", path);
        return BD_E_PERM;
    }
    return 0;
}

/*
 * Reads a private file of the state dir into out (at most max bytes).
 * BD_E_NOTFOUND if it does not exist.
 */
static int read_private(struct state *st, const char *name, void *out, size_t max, size_t *ret_len,
                        struct buf *why)
{
    struct stat sb;
    char *path = xasprintf("%s/%s", st->dir, name);
    int fd = -1, rc = BD_E_IO;
    size_t len = 0;

    fd = openat(st->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) {
            rc = BD_E_NOTFOUND;
        } else {
            say(why, "cannot open '%s': %s", path, strerror(errno));
        }
        goto out;
    }
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        say(why, "'%s' is not a regular file", path);
        rc = BD_E_INVAL;
        goto out;
    }
    rc = check_private(&sb, "file", path, why);
    if (rc < 0)
        goto out;
    for (;;) {
        ssize_t r = read(fd, (char *)out + len, max - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            say(why, "cannot read '%s': %s", path, strerror(errno));
            rc = BD_E_IO;
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len == max) {
            char extra;
            if (read(fd, &extra, 1) != 0) {
                say(why, "'%s' is larger than %zu bytes", path, max);
                rc = BD_E_INVAL;
                goto out;
            }
            break;
        }
    }
    *ret_len = len;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

static int valid_instance(const char *s, size_t len)
{
    if (len != STATE_INSTANCE_ID_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int load_instance(struct state *st, const char *want, struct buf *why)
{
    char data[IDENTITY_MAX];
    size_t len = 0;
    int rc;

    rc = read_private(st, "instance-id", data, sizeof(data), &len, why);
    if (rc == BD_E_NOTFOUND && st->mode == STATE_EXCLUSIVE) {
        char id[STATE_INSTANCE_ID_LEN + 2];
        if (want != NULL) {
            memcpy(id, want, STATE_INSTANCE_ID_LEN);
        } else {
            uint8_t r[STATE_INSTANCE_ID_LEN / 2];
            static const char hex[] = "0123456789abcdef";
            if (random_bytes(r, sizeof(r)) < 0) {
                say(why, "getrandom: %s", strerror(errno));
                return BD_E_IO;
            }
            for (size_t i = 0; i < sizeof(r); i++) {
                id[2 * i] = hex[r[i] >> 4];
                id[2 * i + 1] = hex[r[i] & 15];
            }
        }
        id[STATE_INSTANCE_ID_LEN] = '\n';
        rc = state_write_file(st->dirfd, "instance-id", id, STATE_INSTANCE_ID_LEN + 1, 1);
        if (rc < 0 && rc != BD_E_EXISTS) {
            say(why, "cannot create '%s/instance-id': %s", st->dir, strerror(errno));
            return rc;
        }
        /* Read back what won, ours or a racing creator's. */
        rc = read_private(st, "instance-id", data, sizeof(data), &len, why);
    }
    if (rc == BD_E_NOTFOUND) {
        say(why, "state dir '%s' has no instance-id yet (a mutating command creates it)", st->dir);
        return rc;
    }
    if (rc < 0)
        return rc;
    if (len > 0 && data[len - 1] == '\n')
        len--;
    if (!valid_instance(data, len)) {
        say(why, "'%s/instance-id' is malformed: want %d lowercase hex characters", st->dir,
            STATE_INSTANCE_ID_LEN);
        return BD_E_INVAL;
    }
    if (want != NULL && memcmp(want, data, STATE_INSTANCE_ID_LEN) != 0) {
        say(why, "--instance %s does not match instance %.*s recorded in '%s/instance-id'", want,
            STATE_INSTANCE_ID_LEN, data, st->dir);
        return BD_E_MISMATCH;
    }
    memcpy(st->instance, data, STATE_INSTANCE_ID_LEN);
    st->instance[STATE_INSTANCE_ID_LEN] = '\0';
    return 0;
}

static int load_hmac_key(struct state *st, struct buf *why)
{
    uint8_t key[STATE_HMAC_KEY_LEN + 1];
    size_t len = 0;
    int rc;

    rc = read_private(st, "hmac.key", key, sizeof(key), &len, why);
    if (rc == BD_E_NOTFOUND && st->mode == STATE_EXCLUSIVE) {
        uint8_t fresh[STATE_HMAC_KEY_LEN];
        if (random_bytes(fresh, sizeof(fresh)) < 0) {
            say(why, "getrandom: %s", strerror(errno));
            return BD_E_IO;
        }
        rc = state_write_file(st->dirfd, "hmac.key", fresh, sizeof(fresh), 1);
        memset(fresh, 0, sizeof(fresh));
        if (rc < 0 && rc != BD_E_EXISTS) {
            say(why, "cannot create '%s/hmac.key': %s", st->dir, strerror(errno));
            return rc;
        }
        rc = read_private(st, "hmac.key", key, sizeof(key), &len, why);
    }
    if (rc == BD_E_NOTFOUND) {
        say(why, "state dir '%s' has no hmac.key yet (a mutating command creates it)", st->dir);
        return rc;
    }
    if (rc < 0)
        return rc;
    if (len != STATE_HMAC_KEY_LEN) {
        say(why, "'%s/hmac.key' is malformed: want %d bytes", st->dir, STATE_HMAC_KEY_LEN);
        rc = BD_E_INVAL;
    } else {
        memcpy(st->hmac_key, key, STATE_HMAC_KEY_LEN);
    }
    memset(key, 0, sizeof(key));
    return rc;
}

/* A private subdirectory of the state dir, created if missing. */
static int ensure_subdir(struct state *st, const char *name, struct buf *why)
{
    struct stat sb;
    char *path = xasprintf("%s/%s", st->dir, name);
    int rc = BD_E_IO;

    if (mkdirat(st->dirfd, name, 0700) < 0 && errno != EEXIST) {
        say(why, "cannot create '%s': %s", path, strerror(errno));
        goto out;
    }
    if (fstatat(st->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(sb.st_mode)) {
        say(why, "'%s' is not a directory", path);
        goto out;
    }
    rc = check_private(&sb, "directory", path, why);
out:
    free(path);
    return rc;
}

int state_open(const struct state_open_opts *o, struct state **ret_st, struct buf *why)
{
    struct state *st = NULL;
    struct stat sb;
    int rc = BD_E_INVAL;

    if (o == NULL || o->dir == NULL || o->dir[0] == '\0') {
        say(why, "no state dir given");
        return BD_E_INVAL;
    }
    if (o->instance != NULL && !valid_instance(o->instance, strlen(o->instance))) {
        say(why, "--instance '%s': want %d lowercase hex characters", o->instance,
            STATE_INSTANCE_ID_LEN);
        return BD_E_INVAL;
    }
    st = xcalloc(1, sizeof(*st));
    st->dir = xstrdup(o->dir);
    st->dirfd = -1;
    st->lockfd = -1;
    st->mode = o->mode;

    if (st->mode == STATE_EXCLUSIVE && mkdir_p(st->dir) < 0) {
        say(why, "cannot create state dir '%s': %s", st->dir, strerror(errno));
        rc = BD_E_IO;
        goto out;
    }
    st->dirfd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (st->dirfd < 0) {
        rc = errno == ENOENT ? BD_E_NOTFOUND : BD_E_IO;
        say(why, "cannot open state dir '%s': %s", st->dir, strerror(errno));
        goto out;
    }
    if (fstat(st->dirfd, &sb) < 0) {
        say(why, "cannot stat state dir '%s': %s", st->dir, strerror(errno));
        rc = BD_E_IO;
        goto out;
    }
    rc = check_private(&sb, "state dir", st->dir, why);
    if (rc < 0)
        goto out;
    if (st->mode == STATE_EXCLUSIVE) {
        rc = state_lock(st->dirfd, st->dir, &st->lockfd, why);
        if (rc < 0)
            goto out;
    }
    rc = load_instance(st, o->instance, why);
    if (rc < 0)
        goto out;
    rc = load_hmac_key(st, why);
    if (rc < 0)
        goto out;
    if (st->mode == STATE_EXCLUSIVE) {
        rc = ensure_subdir(st, "keys", why);
        if (rc < 0)
            goto out;
        rc = ensure_subdir(st, "ca", why);
        if (rc < 0)
            goto out;
    }
    rc = state_db_open(st, o->busy_timeout_ms > 0 ? o->busy_timeout_ms : 5000, why);
    if (rc < 0)
        goto out;
    *ret_st = st;
    st = NULL;
    rc = 0;
out:
    state_close(st);
    return rc;
}

void state_close(struct state *st)
{
    if (st == NULL)
        return;
    if (st->db != NULL) {
        if (st->in_tx)
            (void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close_v2(st->db);
    }
    if (st->lockfd >= 0)
        state_unlock(st->lockfd);
    if (st->dirfd >= 0)
        close(st->dirfd);
    memset(st->hmac_key, 0, sizeof(st->hmac_key));
    free(st->dir);
    free(st);
}

const char *state_dir(const struct state *st)
{
    return st->dir;
}

const char *state_instance_id(const struct state *st)
{
    return st->instance;
}

const uint8_t *state_hmac_key(const struct state *st)
{
    return st->hmac_key;
}

int state_schema_version(const struct state *st)
{
    return st->schema_version;
}

const char *state_errmsg(const struct state *st)
{
    return st->db != NULL ? sqlite3_errmsg(st->db) : "no database";
}
