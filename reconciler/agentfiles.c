/*
 * agentfiles.c - the agent's /etc/bottle as one deterministic ustar
 * archive (desired.h, agent_files_tar()).
 *
 * Invariant: the bytes depend only on the inputs' content, the skill
 * files' execute bits and their relative paths, never on mtimes, owners,
 * readdir order or the host, because the archive's digest is part of the
 * agent's spec hash: the same bottle must give the same digest on every
 * pass and every machine, or a second plan would not be empty.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "buf.h"
#include "desired.h"
#include "err.h"
#include "loader.h"
#include "render.h"
#include "scan.h"
#include "xalloc.h"

#define TAR_BLOCK 512

struct entry {
    char *path; /* in the archive; directories end in '/' */
    char *src;  /* file to read, NULL for directories and in-memory files */
    const char *data;
    size_t len;
    unsigned mode;
    unsigned uid, gid;
};

struct tarb {
    struct entry *v;
    size_t n, cap;
    char *err;
};

static void add(struct tarb *t, struct entry e)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
    }
    t->v[t->n++] = e;
}

static void add_dir(struct tarb *t, const char *path)
{
    add(t, (struct entry){.path = xstrdup(path), .mode = 0755});
}

static void add_mem(struct tarb *t, const char *path, const char *data, size_t len)
{
    add(t, (struct entry){.path = xstrdup(path), .data = data, .len = len, .mode = 0644});
}

/* ---- skills ------------------------------------------------------------ */

struct skill_ctx {
    struct tarb *t;
    const char *name;
    size_t files;
    unsigned long long bytes;
    size_t entries;
};

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Walks dir (archive path arc, ending in '/') without following links. */
static int walk(struct skill_ctx *c, const char *dir, const char *arc, int depth)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    int r = -1;

    if (!d) {
        c->t->err =
            xasprintf("skill '%s': cannot read directory %s: %s", c->name, arc, strerror(errno));
        return -1;
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno) {
                c->t->err = xasprintf("skill '%s': cannot read directory %s: %s", c->name, arc,
                                      strerror(errno));
                goto out;
            }
            break;
        }
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (++c->entries > SCAN_MAX_ENTRIES) {
            c->t->err = xasprintf("skill '%s' has more than %d entries", c->name, SCAN_MAX_ENTRIES);
            goto out;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = xrealloc(names, cap * sizeof(*names));
        }
        names[n++] = xstrdup(de->d_name);
    }
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_cstr);
    for (size_t i = 0; i < n; i++) {
        char *path = xasprintf("%s/%s", dir, names[i]);
        char *sub = xasprintf("%s%s", arc, names[i]);
        struct stat st;
        int ok = 0;
        if (lstat(path, &st) != 0) {
            c->t->err = xasprintf("skill '%s': cannot stat %s: %s", c->name, sub, strerror(errno));
        } else if (S_ISLNK(st.st_mode)) {
            c->t->err = xasprintf("skill '%s' contains a symbolic link: %s", c->name, sub);
        } else if (S_ISDIR(st.st_mode)) {
            if (depth >= SCAN_MAX_DEPTH) {
                c->t->err = xasprintf("skill '%s' is nested too deep: %s", c->name, sub);
            } else {
                char *darc = xasprintf("%s/", sub);
                add_dir(c->t, darc);
                ok = walk(c, path, darc, depth + 1) == 0;
                free(darc);
            }
        } else if (S_ISREG(st.st_mode)) {
            if (++c->files > SKILL_MAX_FILES) {
                c->t->err =
                    xasprintf("skill '%s' has more than %d files", c->name, SKILL_MAX_FILES);
            } else if ((c->bytes += (unsigned long long)st.st_size) > SKILL_MAX_BYTES) {
                c->t->err =
                    xasprintf("skill '%s' is larger than %d bytes", c->name, SKILL_MAX_BYTES);
            } else {
                add(c->t, (struct entry){.path = xstrdup(sub),
                                         .src = xstrdup(path),
                                         .mode = (st.st_mode & 0111) ? 0755u : 0644u});
                ok = 1;
            }
        } else {
            c->t->err = xasprintf("skill '%s' contains a special file: %s", c->name, sub);
        }
        free(sub);
        free(path);
        if (!ok)
            goto out;
    }
    r = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return r;
}

static int add_skill(struct tarb *t, const char *root, const char *name)
{
    struct stat st;
    char *dir = NULL, *arc = NULL;
    int r = -1;

    if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..")) {
        t->err = xasprintf("invalid skill name '%s'", name);
        return -1;
    }
    char *skills = xasprintf("%s/skills", root);
    dir = xasprintf("%s/%s", skills, name);
    if (lstat(skills, &st) != 0 || !S_ISDIR(st.st_mode)) {
        t->err = xasprintf("skill directory 'skills/%s/': skills/ is not a directory", name);
        goto out;
    }
    if (lstat(dir, &st) != 0) {
        t->err = xasprintf("skill directory 'skills/%s/' not found", name);
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        t->err = xasprintf("skill directory 'skills/%s/' is not a directory", name);
        goto out;
    }
    arc = xasprintf("bottle/skills/%s/", name);
    add_dir(t, arc);
    struct skill_ctx c = {.t = t, .name = name};
    r = walk(&c, dir, arc, 0);
out:
    free(arc);
    free(dir);
    free(skills);
    return r;
}

/* ---- gitconfig --------------------------------------------------------- */

/* A git config value, quoted; -1 on a control character git cannot take. */
static int git_quote(struct buf *b, const char *s)
{
    buf_putc(b, '"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            buf_putc(b, '\\');
            buf_putc(b, (char)ch);
        } else if (ch == '\n') {
            buf_puts(b, "\\n");
        } else if (ch == '\t') {
            buf_puts(b, "\\t");
        } else if (ch < 0x20 || ch == 0x7f) {
            return -1;
        } else {
            buf_putc(b, (char)ch);
        }
    }
    buf_putc(b, '"');
    return 0;
}

static char *gitconfig(const struct agent_files_in *in, size_t *ret_len, char **ret_err)
{
    struct buf b;
    buf_init(&b, BUF_MAX_DEFAULT); /* inputs are capped by the manifest size */
    buf_puts(&b, "# /etc/bottle/gitconfig, written by bottled (GIT_CONFIG_SYSTEM)\n");
    if (in->git_user_name || in->git_user_email) {
        buf_puts(&b, "[user]\n");
        if (in->git_user_name) {
            buf_puts(&b, "\tname = ");
            if (git_quote(&b, in->git_user_name) < 0)
                goto bad;
            buf_putc(&b, '\n');
        }
        if (in->git_user_email) {
            buf_puts(&b, "\temail = ");
            if (git_quote(&b, in->git_user_email) < 0)
                goto bad;
            buf_putc(&b, '\n');
        }
    }
    for (size_t i = 0; i < in->n_repos; i++) {
        /* names are [A-Za-z0-9._-]: nothing to escape in the subsection */
        buf_appendf(&b, "[url \"http://gate:%d/%s.git\"]\n\tinsteadOf = ", DESIRED_GATE_PORT,
                    in->repos[i].name);
        if (git_quote(&b, in->repos[i].url) < 0)
            goto bad_url;
        buf_putc(&b, '\n');
    }
    return buf_detach(&b, ret_len);
bad_url:
    buf_release(&b);
    *ret_err = xstrdup("a git-gate repo url holds a control character git config cannot carry");
    return NULL;
bad:
    buf_release(&b);
    *ret_err = xstrdup("git-gate.user holds a control character git config cannot carry");
    return NULL;
}

/* ---- ustar ------------------------------------------------------------- */

static void octal(char *field, size_t width, unsigned long long v)
{
    /* width - 1 zero-padded octal digits and a NUL; callers check that v
     * fits (sizes are capped far below 8^11) */
    field[width - 1] = '\0';
    for (size_t i = width - 1; i-- > 0; v >>= 3)
        field[i] = (char)('0' + (v & 7));
}

/* Splits path into ustar's name (<= 100) and prefix (<= 155); -1 if it cannot. */
static int split_name(const char *path, char name[100], char prefix[155])
{
    size_t len = strlen(path);
    if (len <= 100) {
        memcpy(name, path, len);
        return 0;
    }
    /* the last '/' that leaves a name of at most 100 bytes (a trailing
     * '/' of a directory stays with the name) */
    for (size_t i = len - 1; i > 0; i--) {
        if (path[i] != '/' || i == len - 1)
            continue;
        size_t nl = len - i - 1;
        if (nl > 100)
            break;
        if (i <= 155) {
            memcpy(prefix, path, i);
            memcpy(name, path + i + 1, nl);
            return 0;
        }
    }
    return -1;
}

/* Returns 0, -1 when the path does not fit, BD_E_TOO_BIG when out is full. */
static int header(struct buf *out, const struct entry *e, size_t size)
{
    unsigned char h[TAR_BLOCK];
    memset(h, 0, sizeof(h));
    if (split_name(e->path, (char *)h, (char *)h + 345) < 0)
        return -1;
    octal((char *)h + 100, 8, e->mode);
    octal((char *)h + 108, 8, e->uid);
    octal((char *)h + 116, 8, e->gid);
    octal((char *)h + 124, 12, size);
    octal((char *)h + 136, 12, 0);
    memset(h + 148, ' ', 8);
    h[156] = e->src || e->data ? '0' : '5';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    unsigned sum = 0;
    for (size_t i = 0; i < sizeof(h); i++)
        sum += h[i];
    snprintf((char *)h + 148, 7, "%06o", sum);
    h[155] = ' ';
    return buf_append(out, h, sizeof(h));
}

static int pad(struct buf *out, size_t len)
{
    static const char zero[TAR_BLOCK];
    size_t rem = len % TAR_BLOCK;
    return rem ? buf_append(out, zero, TAR_BLOCK - rem) : 0;
}

/* A regular-file member with its content in e->data: header, content, padding.
 * 0, or nonzero when the path does not fit or out is full (as header()). */
static int member(struct buf *out, const struct entry *e)
{
    int r = header(out, e, e->len);
    if (r == 0 && e->len && (buf_append(out, e->data, e->len) != 0 || pad(out, e->len) != 0))
        r = BD_E_TOO_BIG;
    return r;
}

/* The end of the archive: two zero blocks. */
static int trailer(struct buf *out)
{
    static const char end[2 * TAR_BLOCK];
    return buf_append(out, end, sizeof(end));
}

/* Reads a skill file as found by the walk; the size is re-checked. */
static int read_src(const struct entry *e, struct buf *content, char **ret_err)
{
    struct stat st;
    int fd = open(e->src, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        *ret_err = xasprintf("cannot read %s: %s", e->path + strlen("bottle/"),
                             fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char chunk[65536];
    for (;;) {
        ssize_t got = read(fd, chunk, sizeof(chunk));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got < 0)
                *ret_err =
                    xasprintf("cannot read %s: %s", e->path + strlen("bottle/"), strerror(errno));
            close(fd);
            return got < 0 ? -1 : 0;
        }
        if (buf_append(content, chunk, (size_t)got) != 0) {
            *ret_err = xasprintf("%s grew beyond the skill size limit while reading",
                                 e->path + strlen("bottle/"));
            close(fd);
            return -1;
        }
    }
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

int agent_files_tar(const struct agent_files_in *in, unsigned char **ret_tar, size_t *ret_len,
                    char **ret_err)
{
    struct tarb t = {0};
    struct buf out, content;
    char *gc = NULL;
    size_t gc_len = 0;
    int r = BD_E_INVAL;

    buf_init(&out, BUF_MAX_DEFAULT);
    buf_init(&content, SKILL_MAX_BYTES);
    if (!in->ca_cert_pem || !in->ca_cert_len ||
        !memmem(in->ca_cert_pem, in->ca_cert_len, "-----BEGIN CERTIFICATE-----", 27)) {
        t.err = xstrdup("the bottle CA certificate is missing");
        goto out;
    }
    if (memmem(in->ca_cert_pem, in->ca_cert_len, "PRIVATE KEY", 11)) {
        t.err = xstrdup("the bottle CA certificate holds a private key: refusing to give it "
                        "to the agent");
        goto out;
    }
    gc = gitconfig(in, &gc_len, &t.err);
    if (!gc)
        goto out;

    const char *prompt = in->prompt ? in->prompt : "";
    add_dir(&t, "bottle/");
    add_mem(&t, "bottle/ca.pem", in->ca_cert_pem, in->ca_cert_len);
    add_mem(&t, "bottle/gitconfig", gc, gc_len);
    add_mem(&t, "bottle/prompt.md", prompt, strlen(prompt));
    add_dir(&t, "bottle/skills/");
    for (size_t i = 0; i < in->n_skills; i++) {
        int dup = 0;
        for (size_t j = 0; j < i; j++)
            dup |= !strcmp(in->skills[j], in->skills[i]);
        if (dup)
            continue;
        if (!in->skills_root) {
            t.err = xstrdup("no manifest root to copy skills from");
            goto out;
        }
        if (add_skill(&t, in->skills_root, in->skills[i]) < 0)
            goto out;
    }
    qsort(t.v, t.n, sizeof(*t.v), cmp_entry);

    for (size_t i = 0; i < t.n; i++) {
        const struct entry *e = &t.v[i];
        const char *data = e->data;
        size_t len = e->len;
        if (e->src) {
            buf_reset(&content);
            if (read_src(e, &content, &t.err) < 0)
                goto out;
            data = content.data;
            len = content.len;
        }
        int hr = header(&out, e, len);
        if (hr != 0) {
            t.err = hr == -1 ? xasprintf("path too long for the archive: %s", e->path)
                             : xstrdup("the agent's files are too large");
            goto out;
        }
        if (len && (buf_append(&out, data, len) != 0 || pad(&out, len) != 0)) {
            t.err = xstrdup("the agent's files are too large");
            goto out;
        }
    }
    if (trailer(&out) != 0) {
        t.err = xstrdup("the agent's files are too large");
        goto out;
    }
    *ret_tar = (unsigned char *)buf_detach(&out, ret_len);
    r = 0;
out:
    for (size_t i = 0; i < t.n; i++) {
        free(t.v[i].path);
        free(t.v[i].src);
    }
    free(t.v);
    free(gc);
    buf_release(&content);
    buf_release(&out);
    if (r)
        *ret_err = t.err ? t.err : xstrdup("cannot build the agent's files");
    return r;
}

/* ---- the sidecar's config generation ----------------------------------- */

/* A rendered file as dir + its name (dir ends in '/'), 0600 when private. */
static int file_member(struct buf *out, const char *dir, const struct render_file *f, unsigned uid,
                       unsigned gid)
{
    char *path = xasprintf("%s%s", dir, f->name);
    struct entry e = {.path = path,
                      .data = f->data,
                      .len = f->len,
                      .mode = f->private ? 0600 : 0644,
                      .uid = uid,
                      .gid = gid};
    int r = member(out, &e);
    free(path);
    return r;
}

int cfg_generation_tar(const struct render_file *files, size_t n_files, const char *gen,
                       unsigned uid, unsigned gid, unsigned char **ret_tar, size_t *ret_len)
{
    struct buf out;
    buf_init(&out, BUF_MAX_DEFAULT);
    size_t glen = strlen(gen);
    if (!glen || glen > 64 ||
        strspn(gen, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                    "0123456789_-") != glen)
        return BD_E_INVAL;
    char *dir = xasprintf("gen-%s/", gen);
    char *current = xasprintf("gen-%s\n", gen);
    int r = BD_E_TOO_BIG;
    struct entry d = {.path = dir, .mode = 0700, .uid = uid, .gid = gid};
    if (header(&out, &d, 0) != 0)
        goto out;
    for (size_t i = 0; i < n_files; i++)
        if (file_member(&out, dir, &files[i], uid, gid) != 0)
            goto out;
    /* the pointer last: the sidecar never sees it before the files */
    struct entry c = {.path = "current",
                      .data = current,
                      .len = strlen(current),
                      .mode = 0644,
                      .uid = uid,
                      .gid = gid};
    if (member(&out, &c) != 0 || trailer(&out) != 0)
        goto out;
    *ret_tar = (unsigned char *)buf_detach(&out, ret_len);
    r = 0;
out:
    /* the archive holds secrets.json and the CA key: wipe before freeing */
    if (out.data)
        OPENSSL_cleanse(out.data, out.len);
    buf_release(&out);
    free(dir);
    free(current);
    return r;
}

int gate_files_tar(const struct render_file *files, size_t n_files, unsigned char **ret_tar,
                   size_t *ret_len)
{
    struct buf out;
    buf_init(&out, BUF_MAX_DEFAULT);
    int r = BD_E_TOO_BIG;
    struct entry dirs[] = {
        {.path = "gate/", .mode = 0700, .uid = GATE_UID, .gid = GATE_GID},
        {.path = "gate/keys/", .mode = 0700, .uid = GATE_UID, .gid = GATE_GID},
    };
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        if (header(&out, &dirs[i], 0) != 0)
            goto out;
    for (size_t i = 0; i < n_files; i++) {
        const char *n = files[i].name;
        const char *sl = strchr(n, '/');
        if (!*n || n[0] == '.' || (sl && (strchr(sl + 1, '/') || !sl[1] || sl[1] == '.'))) {
            r = BD_E_INVAL;
            goto out;
        }
        if (file_member(&out, "gate/", &files[i], GATE_UID, GATE_GID) != 0)
            goto out;
    }
    if (trailer(&out) != 0)
        goto out;
    *ret_tar = (unsigned char *)buf_detach(&out, ret_len);
    r = 0;
out:
    /* the archive holds private keys and the token: wipe before freeing */
    if (out.data)
        OPENSSL_cleanse(out.data, out.len);
    buf_release(&out);
    return r;
}

int dir_entry_tar(const char *path, unsigned mode, unsigned uid, unsigned gid,
                  unsigned char **ret_tar, size_t *ret_len)
{
    struct buf out;
    buf_init(&out, 16 * TAR_BLOCK);
    char *p = xasprintf("%s/", path);
    struct entry d = {.path = p, .mode = mode, .uid = uid, .gid = gid};
    int r = BD_E_INVAL;
    if (header(&out, &d, 0) == 0 && trailer(&out) == 0) {
        *ret_tar = (unsigned char *)buf_detach(&out, ret_len);
        r = 0;
    }
    buf_release(&out);
    free(p);
    return r;
}
