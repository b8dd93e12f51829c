/*
 * keys.c - generated deploy keys under the state dir's keys/, and static
 * keys from the keys dir (keys.h).
 *
 * Every directory on the way to a generated key is opened with
 * O_NOFOLLOW relative to the one before it (as ca.c does) and must be
 * ours and private, so nothing outside the state dir is ever read or
 * written through a link planted in it.  Key files are read into one
 * allocation of fixed size (no realloc leaving copies of a key behind)
 * that is overwritten before it is freed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "buf.h"
#include "err.h"
#include "keys.h"
#include "state_int.h"
#include "xalloc.h"

#define NAME_MAX_LEN 128
#define PRIV_NAME    "id_ed25519"
#define PUB_NAME     "id_ed25519.pub"
#define NAME_CHARS   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
#define WHY_MAX      1024

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

void deploy_key_release(struct deploy_key *k)
{
    if (k == NULL)
        return;
    free(k->public_line);
    sshkey_text_free(k->private_text);
    memset(k, 0, sizeof(*k));
}

/* As ca.c's bottle names: no leading '.', so never "." or "..". */
static int valid_bottle(const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;

    return len > 0 && len <= NAME_MAX_LEN && s[0] != '.' && strspn(s, NAME_CHARS) == len;
}

/* manifest.md: ^[A-Za-z0-9._-]+$, and "." and ".." are not names. */
static int valid_repo(const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;

    return len > 0 && len <= NAME_MAX_LEN && strspn(s, NAME_CHARS) == len && strcmp(s, ".") != 0 &&
           strcmp(s, "..") != 0;
}

static int ours_and_private(const struct stat *sb)
{
    return sb->st_uid == geteuid() && (sb->st_mode & 077) == 0;
}

/* Opens directory name of dirfd (creating it 0700 first when create is set). */
static int open_subdir(int dirfd, const char *name, int create, int *ret_fd)
{
    struct stat sb;
    int fd;

    if (create && mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
        return BD_E_IO;
    fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? BD_E_NOTFOUND : BD_E_IO;
    if (fstat(fd, &sb) < 0) {
        close(fd);
        return BD_E_IO;
    }
    if (!ours_and_private(&sb)) {
        close(fd);
        return BD_E_PERM;
    }
    *ret_fd = fd;
    return 0;
}

/* Opens st's dir / parts[0] / ... / parts[n - 1], explaining a failure. */
static int open_chain(struct state *st, const char *const *parts, size_t n, int create, int *ret_fd,
                      struct buf *why)
{
    struct buf path;
    int fd = st->dirfd, next = -1, rc = 0;

    buf_init(&path, 0);
    (void)buf_puts(&path, st->dir);
    for (size_t i = 0; i < n; i++) {
        (void)buf_appendf(&path, "/%s", parts[i]);
        rc = open_subdir(fd, parts[i], create, &next);
        if (rc == BD_E_IO)
            say(why, "cannot open directory '%s': %s", buf_cstr(&path), strerror(errno));
        else if (rc == BD_E_PERM)
            say(why,
                "directory '%s' is not owned by the running user or is group/world "
                "accessible; want 0700 (chmod 700 '%s')",
                buf_cstr(&path), buf_cstr(&path));
        else if (rc == BD_E_NOTFOUND)
            say(why, "no directory '%s'", buf_cstr(&path));
        if (fd != st->dirfd)
            close(fd);
        if (rc < 0)
            goto out;
        fd = next;
    }
    *ret_fd = fd;
out:
    buf_release(&path);
    return rc;
}

/*
 * Reads the regular file fd into one secret, NUL-terminated allocation.
 * BD_E_INVAL: not a regular file; BD_E_PERM: not ours or group/world
 * accessible; BD_E_TOO_BIG; BD_E_IO (errno).
 */
static int read_secret_fd(int fd, char **ret_text, size_t *ret_len)
{
    struct stat sb;
    char *text = NULL;
    size_t len = 0;
    int rc = BD_E_IO;

    if (fstat(fd, &sb) < 0)
        return BD_E_IO;
    if (!S_ISREG(sb.st_mode))
        return BD_E_INVAL;
    if (!ours_and_private(&sb))
        return BD_E_PERM;
    if (sb.st_size > SSHKEY_TEXT_MAX)
        return BD_E_TOO_BIG;
    text = xmalloc(SSHKEY_TEXT_MAX + 1);
    for (;;) {
        ssize_t n = read(fd, text + len, SSHKEY_TEXT_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > SSHKEY_TEXT_MAX) {
            rc = BD_E_TOO_BIG;
            goto out;
        }
    }
    *ret_text = xmemdup0(text, len);
    *ret_len = len;
    rc = 0;
out:
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

/* Overwrites and frees what read_secret_fd() returned. */
static void free_text(char *text, size_t len)
{
    if (text != NULL) {
        OPENSSL_cleanse(text, len);
        free(text);
    }
}

/* Explains a read_secret_fd() failure of path. */
static void say_read(struct buf *why, int rc, const char *path)
{
    if (rc == BD_E_INVAL)
        say(why, "'%s' is not a regular file", path);
    else if (rc == BD_E_PERM)
        say(why,
            "'%s' is not owned by the running user or is group/world accessible; want 0600 "
            "(chmod 600 '%s')",
            path, path);
    else if (rc == BD_E_TOO_BIG)
        say(why, "'%s' is larger than %d bytes: not a key", path, SSHKEY_TEXT_MAX);
    else
        say(why, "cannot read '%s': %s", path, strerror(errno));
}

/* Parses text as a key, prefixing the parser's explanation with the path. */
static int parse_key(const char *text, size_t len, const char *path, struct sshkey_private *ret,
                     struct buf *why)
{
    struct buf msg;
    int rc;

    buf_init(&msg, WHY_MAX);
    rc = sshkey_parse_private(text, len, ret, &msg);
    if (rc < 0)
        say(why, "'%s': %s", path, buf_cstr(&msg));
    buf_release(&msg);
    return rc;
}

/* The deploy_key of a parsed key and its text (which it takes over). */
static int fill_key(struct sshkey_private *k, char **text, struct deploy_key *ret)
{
    struct deploy_key dk;
    int rc;

    memset(&dk, 0, sizeof(dk));
    rc = sshkey_public_line(k->blob, k->blob_len, k->comment, &dk.public_line);
    if (rc < 0)
        return rc;
    memcpy(dk.type, k->type, sizeof(dk.type));
    memcpy(dk.fingerprint, k->fingerprint, sizeof(dk.fingerprint));
    dk.private_text = *text;
    *text = NULL;
    *ret = dk;
    return 0;
}

/* Writes a fresh key as PRIV_NAME of fd, unless one is there (BD_E_EXISTS). */
static int create_key(int fd, const char *comment)
{
    struct sshkey_ed25519 k;
    char *text = NULL;
    int rc;

    rc = sshkey_ed25519_generate(&k);
    if (rc == 0)
        rc = sshkey_private_openssh(&k, comment, &text);
    if (rc == 0)
        rc = state_write_file(fd, PRIV_NAME, text, strlen(text), 1);
    sshkey_ed25519_cleanse(&k);
    sshkey_text_free(text);
    return rc;
}

/* Rewrites PUB_NAME of fd unless it already holds exactly line + "\n". */
static int sync_public(int fd, const char *line)
{
    char *want = xasprintf("%s\n", line);
    char *have = NULL;
    size_t len = 0;
    int pfd, rc = 0;

    pfd = openat(fd, PUB_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (pfd >= 0) {
        if (read_secret_fd(pfd, &have, &len) < 0 || len != strlen(want) ||
            memcmp(have, want, len) != 0)
            rc = 1;
        close(pfd);
    } else {
        rc = 1;
    }
    if (rc == 1)
        rc = state_write_file(fd, PUB_NAME, want, strlen(want), 0);
    free_text(have, len);
    free(want);
    return rc;
}

int state_deploy_key_ensure(struct state *st, const char *bottle, const char *repo,
                            const char *comment, struct deploy_key *ret_key, struct buf *why)
{
    const char *parts[] = {"keys", KEYS_GENERATED_DIR, bottle, repo};
    struct sshkey_private k;
    struct deploy_key dk;
    char *path = NULL, *text = NULL;
    size_t len = 0;
    int fd = -1, create = st->mode == STATE_EXCLUSIVE, rc;

    memset(&k, 0, sizeof(k));
    memset(&dk, 0, sizeof(dk));
    if (!valid_bottle(bottle) || !valid_repo(repo)) {
        say(why, "invalid bottle or repo name for a deploy key");
        return BD_E_INVAL;
    }
    if (!sshkey_comment_valid(comment)) {
        say(why, "invalid deploy key comment: control characters or longer than %d bytes",
            SSHKEY_COMMENT_MAX);
        return BD_E_INVAL;
    }
    path = xasprintf("%s/keys/%s/%s/%s/%s", st->dir, KEYS_GENERATED_DIR, bottle, repo, PRIV_NAME);
    rc = open_chain(st, parts, sizeof(parts) / sizeof(parts[0]), create, &fd, why);
    if (rc < 0)
        goto out;
    /* Create at most once, then read back what won: ours or a racing creator's. */
    for (int created = 0;; created = 1) {
        int kfd = openat(fd, PRIV_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (kfd >= 0) {
            rc = read_secret_fd(kfd, &text, &len);
            close(kfd);
            if (rc < 0)
                say_read(why, rc, path);
            break;
        }
        if (errno != ENOENT) {
            rc = BD_E_IO;
            say(why, "cannot open '%s': %s", path, strerror(errno));
            break;
        }
        if (!create || created) {
            rc = BD_E_NOTFOUND;
            say(why, "no deploy key '%s'", path);
            break;
        }
        rc = create_key(fd, comment);
        if (rc < 0 && rc != BD_E_EXISTS) {
            say(why, "cannot create deploy key '%s': %s", path,
                rc == BD_E_IO ? strerror(errno) : bd_strerror(rc));
            break;
        }
    }
    if (rc < 0)
        goto out;
    rc = parse_key(text, len, path, &k, why);
    if (rc < 0)
        goto out;
    if (!k.is_ed25519) {
        say(why, "'%s' is a %s key; a generated deploy key is ssh-ed25519", path, k.type);
        rc = BD_E_INVAL;
        goto out;
    }
    rc = fill_key(&k, &text, &dk);
    if (rc < 0)
        goto out;
    if (create) {
        rc = sync_public(fd, dk.public_line);
        if (rc < 0) {
            say(why, "cannot write '%s.pub': %s", path, strerror(errno));
            goto out;
        }
    }
    *ret_key = dk;
    memset(&dk, 0, sizeof(dk));
out:
    deploy_key_release(&dk);
    sshkey_private_release(&k);
    free_text(text, len);
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

/* Removes what state_write_file() may leave after a kill: ".<name>.tmp.<pid>". */
static int remove_leftovers(int fd)
{
    int dfd = dup(fd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct dirent *e;
    int rc = 0;

    if (d == NULL) {
        if (dfd >= 0)
            close(dfd);
        return BD_E_IO;
    }
    while ((e = readdir(d)) != NULL) {
        if ((strncmp(e->d_name, "." PRIV_NAME ".tmp.", strlen("." PRIV_NAME ".tmp.")) == 0 ||
             strncmp(e->d_name, "." PUB_NAME ".tmp.", strlen("." PUB_NAME ".tmp.")) == 0) &&
            unlinkat(fd, e->d_name, 0) < 0 && errno != ENOENT)
            rc = BD_E_IO;
    }
    closedir(d);
    return rc;
}

int state_deploy_key_files_remove(struct state *st, const char *bottle, const char *repo,
                                  struct buf *why)
{
    const char *parts[] = {"keys", KEYS_GENERATED_DIR, bottle};
    char *dir = NULL;
    int bfd = -1, rfd = -1, rc;

    if (!valid_bottle(bottle) || !valid_repo(repo)) {
        say(why, "invalid bottle or repo name for a deploy key");
        return BD_E_INVAL;
    }
    if (st->mode == STATE_RDONLY) {
        say(why, "removing deploy key files needs a writable state dir");
        return BD_E_INVAL;
    }
    dir = xasprintf("%s/keys/%s/%s/%s", st->dir, KEYS_GENERATED_DIR, bottle, repo);
    rc = open_chain(st, parts, sizeof(parts) / sizeof(parts[0]), 0, &bfd, NULL);
    if (rc == 0)
        rc = open_subdir(bfd, repo, 0, &rfd);
    if (rc == BD_E_NOTFOUND) {
        rc = 0;
        goto rmdir_bottle;
    }
    if (rc < 0) {
        say(why, "cannot open '%s': %s", dir,
            rc == BD_E_PERM ? "not ours or group/world accessible" : strerror(errno));
        goto out;
    }
    /* The private key first: it is the truth, the .pub only follows it. */
    if ((unlinkat(rfd, PRIV_NAME, 0) < 0 && errno != ENOENT) ||
        (unlinkat(rfd, PUB_NAME, 0) < 0 && errno != ENOENT) || remove_leftovers(rfd) < 0 ||
        (unlinkat(bfd, repo, AT_REMOVEDIR) < 0 && errno != ENOENT)) {
        say(why, "cannot remove deploy key files in '%s': %s", dir, strerror(errno));
        rc = BD_E_IO;
        goto out;
    }
    (void)fsync(bfd);
rmdir_bottle:
    if (bfd >= 0) {
        close(bfd);
        bfd = -1;
    }
    /* The bottle's directory goes with its last repo; others may remain. */
    if (open_chain(st, parts, 2, 0, &bfd, NULL) == 0 && unlinkat(bfd, bottle, AT_REMOVEDIR) < 0 &&
        errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST) {
        say(why, "cannot remove '%s/keys/%s/%s': %s", st->dir, KEYS_GENERATED_DIR, bottle,
            strerror(errno));
        rc = BD_E_IO;
    }
out:
    if (rfd >= 0)
        close(rfd);
    if (bfd >= 0)
        close(bfd);
    free(dir);
    return rc;
}

/* 1 if path is dir or lies below it (both canonical, from realpath). */
static int path_inside(const char *dir, const char *path)
{
    size_t n = strlen(dir);

    if (strcmp(dir, "/") == 0)
        return path[0] == '/';
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static int has_dotdot(const char *path)
{
    for (const char *p = path; *p != '\0';) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return 1;
        p += n;
        if (*p == '/')
            p++;
    }
    return 0;
}

int static_key_load(const char *keys_dir, const char *rel_path, struct deploy_key *ret_key,
                    struct buf *why)
{
    struct sshkey_private k;
    char *kreal = NULL, *joined = NULL, *real = NULL, *gen = NULL, *text = NULL;
    size_t len = 0;
    int fd = -1, rc = BD_E_INVAL;

    memset(&k, 0, sizeof(k));
    if (rel_path == NULL || rel_path[0] == '\0') {
        say(why, "static key path is empty");
        return BD_E_INVAL;
    }
    if (rel_path[0] == '/') {
        say(why, "static key path '%s' is absolute; want a path relative to the keys dir",
            rel_path);
        return BD_E_INVAL;
    }
    if (has_dotdot(rel_path)) {
        say(why, "static key path '%s' has a '..' component", rel_path);
        return BD_E_INVAL;
    }
    if (keys_dir == NULL || keys_dir[0] == '\0') {
        say(why, "no keys dir for static key '%s'", rel_path);
        return BD_E_INVAL;
    }
    kreal = realpath(keys_dir, NULL);
    if (kreal == NULL) {
        rc = errno == ENOENT ? BD_E_NOTFOUND : BD_E_IO;
        say(why, "keys dir '%s': %s", keys_dir, strerror(errno));
        goto out;
    }
    joined = xasprintf("%s/%s", kreal, rel_path);
    real = realpath(joined, NULL);
    if (real == NULL) {
        rc = errno == ENOENT ? BD_E_NOTFOUND : BD_E_IO;
        if (errno == ENOENT)
            say(why, "static key '%s' does not exist in the keys dir '%s'", rel_path, keys_dir);
        else
            say(why, "static key '%s' in the keys dir '%s': %s", rel_path, keys_dir,
                strerror(errno));
        goto out;
    }
    if (!path_inside(kreal, real)) {
        say(why, "static key '%s' resolves to '%s', outside the keys dir '%s'", rel_path, real,
            kreal);
        rc = BD_E_INVAL;
        goto out;
    }
    gen = xasprintf("%s/%s", kreal, KEYS_GENERATED_DIR);
    if (path_inside(gen, real)) {
        say(why, "static key '%s' is under '%s', where bottled keeps its generated keys", rel_path,
            gen);
        rc = BD_E_INVAL;
        goto out;
    }
    /* O_NONBLOCK: a FIFO planted there must not hang the open. */
    fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        rc = BD_E_IO;
        say(why, "cannot open static key '%s': %s", real, strerror(errno));
        goto out;
    }
    rc = read_secret_fd(fd, &text, &len);
    if (rc < 0) {
        say(why, "static key ");
        say_read(why, rc, real);
        goto out;
    }
    rc = parse_key(text, len, real, &k, why);
    if (rc < 0)
        goto out;
    rc = fill_key(&k, &text, ret_key);
out:
    sshkey_private_release(&k);
    free_text(text, len);
    if (fd >= 0)
        close(fd);
    free(gen);
    free(real);
    free(joined);
    free(kreal);
    return rc;
}
