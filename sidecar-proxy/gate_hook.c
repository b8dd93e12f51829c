/*
 * gate_hook.c - `bottle-proxy gate-hook`: the mirrors' pre-receive hook.
 *
 * Runs inside receive-pack with the pushed objects in the quarantine (the
 * environment git sets makes them visible to every git we start) and the
 * mirror's refs still at upstream's values as last fetched:
 *
 *   1. what is new to upstream: `git rev-list --objects NEW... --not --all`,
 *      typed and sized by `cat-file --batch-check`;
 *   2. where each blob came from: `diff-tree --stdin -r -m --root` over the
 *      new commits, oldest first, so a label says the path and the commit
 *      that introduced it (also when a later commit removed it again);
 *   3. every blob, commit message and annotated tag message through
 *      `bottle-proxy scan`, with a per-object and a per-push byte cap: an
 *      object over a cap refuses the push (never passes unscanned);
 *   4. any finding refuses the whole push, naming label and detector (scan
 *      never prints the matched text);
 *   5. a clean push goes upstream by URL (no remote, no tracking refs: ref
 *      updates are forbidden under the quarantine), atomically, each ref
 *      leased at the value the agent saw; upstream's refusal is the agent's.
 *
 * Our stderr reaches the agent as "remote:" lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "gate.h"
#include "xalloc.h"

#define MAX_UPDATES   1000
#define MAX_FINDINGS  50
#define MAX_LIST      ((size_t)256 << 20)
#define NULL_SHA_CHAR '0'

struct update {
    char *old_, *new_, *ref;
};

struct label {
    char *sha, *text; /* blob sha -> "<path> in <commit>" */
};

struct hook {
    const struct gate_conf *c;
    const struct gate_repo *r;
    struct update *u;
    size_t n_u;
    struct label *labels;
    size_t n_labels, cap_labels;
    size_t findings;
    uint64_t scanned;
    char tmpdir[64];
};

static int is_zero(const char *sha)
{
    for (; *sha; sha++)
        if (*sha != NULL_SHA_CHAR)
            return 0;
    return 1;
}

static int is_hex(const char *s, size_t n)
{
    if (n != 40 && n != 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int read_updates(struct hook *h)
{
    char line[2048];
    while (fgets(line, sizeof(line), stdin)) {
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n')
            line[--n] = '\0';
        char *a = line, *b = strchr(a, ' '), *ref;
        if (!b || !(ref = strchr(b + 1, ' ')))
            return BD_E_INVAL;
        *b++ = '\0';
        *ref++ = '\0';
        if (!is_hex(a, strlen(a)) || !is_hex(b, strlen(b)) || !*ref)
            return BD_E_INVAL;
        if (h->n_u == MAX_UPDATES)
            return BD_E_TOO_BIG;
        h->u = xrealloc(h->u, (h->n_u + 1) * sizeof(*h->u));
        h->u[h->n_u++] = (struct update){xstrdup(a), xstrdup(b), xstrdup(ref)};
    }
    return 0;
}

/* A file in the private temp dir holding data; returns an fd at offset 0 or -1. */
static int tmp_with(struct hook *h, const char *name, const char *data, size_t len)
{
    char *p = xasprintf("%s/%s", h->tmpdir, name);
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    free(p);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/*
 * git ARGS [NEW... --not --all] with stdin from in_fd, output into out (our
 * stderr gets git's); with_tips appends every non-deleting update's new
 * value and "--not --all" (rev-list's --stdin takes no options in git 2.39).
 */
static int git(const struct hook *h, const char *const *args, int with_tips, int in_fd,
               struct buf *out)
{
    const char **argv = xcalloc(h->n_u + 24, sizeof(*argv));
    size_t n = 0;
    argv[n++] = "git";
    for (size_t i = 0; args[i] && n < 20; i++)
        argv[n++] = args[i];
    if (with_tips) {
        for (size_t i = 0; i < h->n_u; i++)
            if (!is_zero(h->u[i].new_))
                argv[n++] = h->u[i].new_;
        argv[n++] = "--not";
        argv[n++] = "--all";
    }
    argv[n] = NULL;
    int rc = gate_run(argv, NULL, in_fd, out, NULL);
    free(argv);
    return rc;
}

static void add_label(struct hook *h, const char *sha, size_t n, const char *path,
                      const char *commit)
{
    for (size_t i = 0; i < h->n_labels; i++)
        if (strlen(h->labels[i].sha) == n && !memcmp(h->labels[i].sha, sha, n))
            return;
    if (h->n_labels == h->cap_labels) {
        h->cap_labels = h->cap_labels ? 2 * h->cap_labels : 64;
        h->labels = xrealloc(h->labels, h->cap_labels * sizeof(*h->labels));
    }
    h->labels[h->n_labels++] =
        (struct label){xstrndup(sha, n), xasprintf("%s in %s", path, commit)};
}

static const char *label_of(const struct hook *h, const char *sha)
{
    for (size_t i = 0; i < h->n_labels; i++)
        if (!strcmp(h->labels[i].sha, sha))
            return h->labels[i].text;
    return NULL;
}

/* Labels from `diff-tree --stdin -z -r -m --root --no-renames` over the new commits. */
static int map_paths(struct hook *h)
{
    struct buf commits, diff;
    buf_init(&commits, MAX_LIST);
    buf_init(&diff, MAX_LIST);
    int rc = BD_E_INTERNAL, fd2 = -1;
    const char *rl[] = {"rev-list", "--reverse", NULL};
    if (git(h, rl, 1, -1, &commits) != 0)
        goto out;
    fd2 = tmp_with(h, "commits", commits.data ? commits.data : "", commits.len);
    const char *dt[] = {"diff-tree", "--stdin", "-z",           "-r", "-m",
                        "--root",    "--raw",   "--no-renames", NULL};
    if (fd2 < 0 || git(h, dt, 0, fd2, &diff) != 0)
        goto out;
    const char *p = diff.data ? diff.data : "", *end = p + diff.len;
    char commit[65] = "?";
    while (p < end) {
        size_t n = strnlen(p, (size_t)(end - p));
        if (p[0] == ':') {
            /* ":100644 100644 OLDSHA NEWSHA M" NUL path NUL */
            const char *path = p + n + 1;
            if (path >= end)
                break;
            size_t pn = strnlen(path, (size_t)(end - path));
            const char *f = p;
            int sp = 0;
            while (f < p + n && sp < 3)
                if (*f++ == ' ')
                    sp++;
            const char *sha = f, *sha_end = memchr(sha, ' ', (size_t)(p + n - sha));
            if (sha_end && is_hex(sha, (size_t)(sha_end - sha)) &&
                strspn(sha, "0") < (size_t)(sha_end - sha)) {
                char *pth = xstrndup(path, pn);
                add_label(h, sha, (size_t)(sha_end - sha), pth, commit);
                free(pth);
            }
            p = path + pn + 1;
        } else {
            size_t hn = 0;
            while (hn < n && p[hn] != ' ')
                hn++;
            if (is_hex(p, hn)) {
                memcpy(commit, p, hn);
                commit[hn] = '\0';
            }
            p += n + 1;
        }
    }
    rc = 0;
out:
    if (fd2 >= 0)
        close(fd2);
    buf_release(&commits);
    buf_release(&diff);
    return rc;
}

/* One finding or refusal line; the first one opens the refusal. */
static void refuse(struct hook *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(struct hook *h, const char *fmt, ...)
{
    if (h->findings++ == 0)
        gate_log("push refused: it would take these to %s (values are never shown):", h->r->url);
    if (h->findings > MAX_FINDINGS) {
        if (h->findings == MAX_FINDINGS + 1)
            gate_log("  ... and more");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    gate_vlog(2, fmt, ap);
    va_end(ap);
}

/* `bottle-proxy scan` over data[0..len) under label. */
static void scan(struct hook *h, const char *label, const char *data, size_t len)
{
    struct buf out, err;
    buf_init(&out, 1 << 16);
    buf_init(&err, 1 << 16);
    int fd = tmp_with(h, "object", data, len);
    char max[32];
    snprintf(max, sizeof(max), "%llu", (unsigned long long)h->c->max_blob);
    const char *argv[] = {h->c->self, "scan", "--max-bytes", max, "--label", label, "-", NULL};
    int st = fd < 0 ? BD_E_IO : gate_run(argv, NULL, fd, &out, &err);
    if (st == 0)
        goto out;
    if (st == 1 && out.len) {
        const char *p = buf_cstr(&out);
        while (*p) {
            const char *eol = strchr(p, '\n');
            size_t n = eol ? (size_t)(eol - p) : strlen(p);
            const char *colon = n > 2 ? memchr(p, ':', n) : NULL;
            /* "<label>: <detector>": the detector is after the last ": " */
            for (const char *q = p + n - 1; q > p; q--)
                if (q[0] == ' ' && q[-1] == ':') {
                    colon = q - 1;
                    break;
                }
            if (colon)
                refuse(h, "%s: credential found by detector '%.*s'", label,
                       (int)(n - (size_t)(colon + 2 - p)), colon + 2);
            p = eol ? eol + 1 : p + n;
        }
        goto out;
    }
    size_t en = err.len;
    while (en && err.data[en - 1] == '\n')
        en--;
    refuse(h, "%s: could not be scanned (%.*s), so it is not let through", label, (int)en,
           err.data ? err.data : "");
out:
    if (fd >= 0)
        close(fd);
    buf_release(&out);
    buf_release(&err);
}

/* The message of a commit or tag object: what follows the first blank line. */
static const char *message_of(const char *obj, size_t len, size_t *ret_len)
{
    const char *p = NULL;
    for (size_t i = 0; i + 1 < len; i++)
        if (obj[i] == '\n' && obj[i + 1] == '\n') {
            p = obj + i + 2;
            break;
        }
    *ret_len = p ? len - (size_t)(p - obj) : 0;
    return p ? p : "";
}

struct object {
    char sha[65], type[8];
    uint64_t size;
    char *path; /* from rev-list, may be empty */
};

/* "<path> in <commit>", or what rev-list knew: "<path> (blob <sha>)". */
static char *blob_label(const struct hook *h, const struct object *o)
{
    const char *l = label_of(h, o->sha);
    if (l)
        return xstrdup(l);
    return *o->path ? xasprintf("%s (blob %s)", o->path, o->sha) : xasprintf("blob %s", o->sha);
}

/* Reads exactly n bytes from f into b (capped) ; 0 or -1. */
static int read_exact(FILE *f, char *b, size_t n)
{
    return n == 0 || fread(b, 1, n, f) == n ? 0 : -1;
}

static int scan_objects(struct hook *h)
{
    struct buf list, check, want;
    buf_init(&list, MAX_LIST);
    buf_init(&check, MAX_LIST);
    buf_init(&want, MAX_LIST);
    struct object *obj = NULL;
    size_t n_obj = 0, cap = 0;
    int rc = BD_E_INTERNAL, fd2 = -1, fd3 = -1;
    char *buf = NULL;
    FILE *f = NULL;
    pid_t pid = -1;
    const char *rl[] = {"rev-list", "--objects", NULL};
    if (git(h, rl, 1, -1, &list) != 0) {
        gate_log("listing the pushed objects failed");
        goto out;
    }
    fd2 = tmp_with(h, "objects", list.data ? list.data : "", list.len);
    const char *bc[] = {"cat-file",
                        "--batch-check=%(objectname) %(objecttype) %(objectsize) %(rest)", NULL};
    if (fd2 < 0 || git(h, bc, 0, fd2, &check) != 0) {
        gate_log("typing the pushed objects failed");
        goto out;
    }
    const char *p = buf_cstr(&check);
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        char *line = xstrndup(p, n), *t1 = strchr(line, ' '), *t2 = t1 ? strchr(t1 + 1, ' ') : NULL;
        p = eol ? eol + 1 : p + n;
        if (!t1 || !t2 || (size_t)(t1 - line) > 64 || (size_t)(t2 - t1 - 1) > 7) {
            free(line);
            continue;
        }
        if (n_obj == cap) {
            cap = cap ? 2 * cap : 256;
            obj = xrealloc(obj, cap * sizeof(*obj));
        }
        struct object *o = &obj[n_obj++];
        memcpy(o->sha, line, (size_t)(t1 - line));
        o->sha[t1 - line] = '\0';
        memcpy(o->type, t1 + 1, (size_t)(t2 - t1 - 1));
        o->type[t2 - t1 - 1] = '\0';
        char *t3 = strchr(t2 + 1, ' ');
        o->size = strtoull(t2 + 1, NULL, 10);
        o->path = xstrdup(t3 ? t3 + 1 : "");
        free(line);
    }
    /* Caps first: an object over them refuses the push unscanned. */
    for (size_t i = 0; i < n_obj; i++) {
        struct object *o = &obj[i];
        if (!strcmp(o->type, "tree"))
            continue;
        if (o->size > h->c->max_blob) {
            if (!strcmp(o->type, "blob")) {
                char *l = blob_label(h, o);
                refuse(h, "%s: %llu bytes, over the gate's scan limit of %llu bytes per file", l,
                       (unsigned long long)o->size, (unsigned long long)h->c->max_blob);
                free(l);
            } else
                refuse(h, "%s %s: %llu bytes, over the gate's scan limit of %llu bytes", o->type,
                       o->sha, (unsigned long long)o->size, (unsigned long long)h->c->max_blob);
            o->type[0] = '\0';
            continue;
        }
        h->scanned += o->size;
        if (h->scanned > h->c->max_push) {
            refuse(h,
                   "the push carries more than %llu bytes of new content, over the gate's "
                   "scan limit per push",
                   (unsigned long long)h->c->max_push);
            rc = 0;
            goto out;
        }
        buf_appendf(&want, "%s\n", o->sha);
    }
    if (h->findings) {
        rc = 0;
        goto out;
    }
    fd3 = tmp_with(h, "want", want.data ? want.data : "", want.len);
    int po[2];
    if (fd3 < 0 || pipe(po) < 0)
        goto out;
    pid = fork();
    if (pid == 0) {
        dup2(fd3, 0);
        dup2(po[1], 1);
        close(po[0]);
        close(po[1]);
        execlp("git", "git", "cat-file", "--batch", (char *)NULL);
        _exit(127);
    }
    close(po[1]);
    f = fdopen(po[0], "r");
    if (pid < 0 || !f)
        goto out;
    buf = xmalloc(h->c->max_blob + 1);
    for (size_t i = 0; i < n_obj; i++) {
        struct object *o = &obj[i];
        if (!o->type[0] || !strcmp(o->type, "tree"))
            continue;
        char head[256];
        if (!fgets(head, sizeof(head), f) || strncmp(head, o->sha, strlen(o->sha)) != 0) {
            gate_log("reading object %s failed", o->sha);
            goto out;
        }
        if (read_exact(f, buf, (size_t)o->size) < 0 || fgetc(f) != '\n') {
            gate_log("reading object %s failed", o->sha);
            goto out;
        }
        char *label = NULL;
        if (!strcmp(o->type, "blob")) {
            label = blob_label(h, o);
            scan(h, label, buf, (size_t)o->size);
        } else if (!strcmp(o->type, "commit")) {
            size_t mn;
            const char *m = message_of(buf, (size_t)o->size, &mn);
            label = xasprintf("commit message of %s", o->sha);
            scan(h, label, m, mn);
        } else if (!strcmp(o->type, "tag")) {
            size_t mn, tn = 0;
            const char *m = message_of(buf, (size_t)o->size, &mn), *t = NULL;
            for (const char *q = buf; q < buf + o->size;) {
                const char *e = memchr(q, '\n', (size_t)(buf + o->size - q));
                if (!e || e == q)
                    break;
                if (!strncmp(q, "tag ", 4)) {
                    t = q + 4;
                    tn = (size_t)(e - t);
                    break;
                }
                q = e + 1;
            }
            label =
                t ? xasprintf("tag %.*s (%s)", (int)tn, t, o->sha) : xasprintf("tag %s", o->sha);
            scan(h, label, m, mn);
        }
        free(label);
    }
    rc = 0;
out:
    if (f)
        fclose(f);
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    for (size_t i = 0; i < n_obj; i++)
        free(obj[i].path);
    free(obj);
    free(buf);
    if (fd2 >= 0)
        close(fd2);
    if (fd3 >= 0)
        close(fd3);
    buf_release(&list);
    buf_release(&check);
    buf_release(&want);
    return rc;
}

/* Pushes the updates to upstream; 0 when upstream took them all. */
static int push_upstream(struct hook *h)
{
    const char *argv[2 * MAX_UPDATES + 16];
    char **owned = xcalloc(2 * h->n_u + 1, sizeof(*owned));
    size_t n = 0, no = 0;
    argv[n++] = "git";
    argv[n++] = "push";
    argv[n++] = "--atomic";
    argv[n++] = "--porcelain";
    argv[n++] = "--no-verify";
    argv[n++] = "--quiet";
    for (size_t i = 0; i < h->n_u; i++) {
        const struct update *u = &h->u[i];
        owned[no] = xasprintf("--force-with-lease=%s:%s", u->ref, is_zero(u->old_) ? "" : u->old_);
        argv[n++] = owned[no++];
    }
    argv[n++] = h->r->url;
    for (size_t i = 0; i < h->n_u; i++) {
        const struct update *u = &h->u[i];
        owned[no] =
            is_zero(u->new_) ? xasprintf(":%s", u->ref) : xasprintf("+%s:%s", u->new_, u->ref);
        argv[n++] = owned[no++];
    }
    argv[n] = NULL;
    struct buf out, err;
    buf_init(&out, 1 << 20);
    buf_init(&err, 1 << 20);
    char *ssh = gate_ssh_env(h->c, h->r);
    const char *env[] = {ssh, NULL};
    int lock = gate_repo_lock(h->c, h->r);
    int st = gate_run(argv, env, -1, &out, &err);
    if (lock >= 0)
        close(lock);
    if (st == 0) {
        gate_ssh_learned(h->c, h->r);
    } else {
        gate_note_failure(h->c, h->r, buf_cstr(&err));
        gate_log("push refused by upstream %s:", h->r->url);
        for (struct buf *b = &err; b; b = b == &err ? &out : NULL) {
            const char *p = buf_cstr(b);
            while (*p) {
                const char *eol = strchr(p, '\n');
                size_t k = eol ? (size_t)(eol - p) : strlen(p);
                if (k && strncmp(p, "Done", 4) != 0)
                    gate_log("  %.*s", (int)k, p);
                p = eol ? eol + 1 : p + k;
            }
        }
    }
    for (size_t i = 0; i < no; i++)
        free(owned[i]);
    free(owned);
    free(ssh);
    buf_release(&out);
    buf_release(&err);
    return st == 0 ? 0 : -1;
}

static const char hook_usage[] =
    "usage: bottle-proxy gate-hook --config FILE --root DIR --repo NAME\n"
    "The pre-receive hook `bottle-proxy gate` installs in its mirrors: reads\n"
    "'<old> <new> <ref>' lines on stdin, scans what is new to upstream and\n"
    "pushes it upstream.  Exit 0: accepted; 1: refused (reasons on stderr).\n";

int cmd_gate_hook(int argc, char **argv)
{
    const char *config = NULL, *root = NULL, *repo = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            fputs(hook_usage, stdout);
            return 0;
        }
        if (i + 1 < argc && !strcmp(argv[i], "--config"))
            config = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--root"))
            root = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--repo"))
            repo = argv[++i];
        else {
            fputs(hook_usage, stderr);
            return 2;
        }
    }
    if (!config || !root || !repo) {
        fputs(hook_usage, stderr);
        return 2;
    }
    struct gate_conf c;
    struct hook h = {0};
    char *err = NULL;
    int status = 1, rc;
    if ((rc = gate_conf_load(config, root, &c, &err)) < 0) {
        gate_log("push refused: the gate's config is unusable: %s", err);
        free(err);
        return 1;
    }
    h.c = &c;
    h.r = gate_conf_repo(&c, repo, strlen(repo));
    snprintf(h.tmpdir, sizeof(h.tmpdir), "/tmp/gate-hook.XXXXXX");
    if (!h.r) {
        gate_log("push refused: repo '%s' is not in the gate's config", repo);
        goto out;
    }
    if (!mkdtemp(h.tmpdir)) {
        h.tmpdir[0] = '\0';
        gate_log("push refused: no temporary directory: %s", strerror(errno));
        goto out;
    }
    if ((rc = read_updates(&h)) < 0) {
        gate_log("push refused: unreadable ref updates from git");
        goto out;
    }
    if (!h.n_u) {
        status = 0;
        goto out;
    }
    if (map_paths(&h) < 0) {
        gate_log("push refused: listing the pushed commits failed");
        goto out;
    }
    if (scan_objects(&h) < 0) {
        gate_log("push refused: the pushed objects could not all be scanned");
        goto out;
    }
    if (h.findings) {
        gate_log("remove these from every pushed commit (rewrite the history) and push again");
        goto out;
    }
    if (push_upstream(&h) < 0)
        goto out;
    status = 0;
out:
    if (h.tmpdir[0] && h.tmpdir[strlen(h.tmpdir) - 1] != 'X') {
        static const char *const names[] = {"commits", "objects", "want", "object"};
        for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
            char *p = xasprintf("%s/%s", h.tmpdir, names[i]);
            unlink(p);
            free(p);
        }
        rmdir(h.tmpdir);
    }
    for (size_t i = 0; i < h.n_u; i++) {
        free(h.u[i].old_);
        free(h.u[i].new_);
        free(h.u[i].ref);
    }
    free(h.u);
    for (size_t i = 0; i < h.n_labels; i++) {
        free(h.labels[i].sha);
        free(h.labels[i].text);
    }
    free(h.labels);
    gate_conf_release(&c);
    return status;
}
