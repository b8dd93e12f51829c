/*
 * gate_git.c - what the gate's server and hook share (gate.h): running
 * git and ssh without a shell, the per-repo ssh configuration, the
 * upstream fetch, mirror set-up and the status file.
 *
 * Several processes touch the same files (one server child per request,
 * hooks): the status file is read-modify-written under an flock and
 * replaced by rename(); each repo's upstream traffic is serialised by an
 * flock on state/<name>.lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "gate.h"
#include "xalloc.h"

extern char **environ;

/* ------------------------------------------------------------ processes */

static void drain(int fd, struct buf *b, int *open_)
{
    char tmp[16384];
    ssize_t n = read(fd, tmp, sizeof(tmp));
    if (n > 0) {
        if (b) {
            size_t room = b->max - b->len;
            (void)buf_append(b, tmp, (size_t)n < room ? (size_t)n : room);
        } else {
            ssize_t w = write(2, tmp, (size_t)n);
            (void)w;
        }
    } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        *open_ = 0;
    }
}

int gate_run(const char *const *argv, const char *const *extra_env, int in_fd, struct buf *out,
             struct buf *err)
{
    int po[2] = {-1, -1}, pe[2] = {-1, -1}, status = 0;
    pid_t pid;
    if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
        status = BD_E_IO;
        goto out;
    }
    pid = fork();
    if (pid < 0) {
        status = BD_E_IO;
        goto out;
    }
    if (pid == 0) {
        int in = in_fd >= 0 ? in_fd : open("/dev/null", O_RDONLY);
        if (in < 0 || dup2(in, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0)
            _exit(127);
        if (in_fd >= 0)
            lseek(0, 0, SEEK_SET);
        signal(SIGPIPE, SIG_DFL);
        for (size_t i = 0; extra_env && extra_env[i]; i++)
            putenv((char *)extra_env[i]);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    po[1] = pe[1] = -1;
    int oo = 1, eo = 1;
    while (oo || eo) {
        struct pollfd p[2] = {{oo ? po[0] : -1, POLLIN, 0}, {eo ? pe[0] : -1, POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (oo && p[0].revents)
            drain(po[0], out, &oo);
        if (eo && p[1].revents)
            drain(pe[0], err, &eo);
    }
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR) {
            status = BD_E_IO;
            goto out;
        }
    status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 256 + WTERMSIG(ws);
out:
    for (int i = 0; i < 2; i++) {
        if (po[i] >= 0)
            close(po[i]);
        if (pe[i] >= 0)
            close(pe[i]);
    }
    return status;
}

/* ------------------------------------------------------------ files */

static int write_file_atomic(const char *path, const char *data, size_t len, mode_t mode)
{
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode), r = BD_E_IO;
    if (fd < 0)
        goto out;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto out;
        off += (size_t)n;
    }
    if (fchmod(fd, mode) < 0 || fsync(fd) < 0)
        goto out;
    close(fd);
    fd = -1;
    if (rename(tmp, path) < 0)
        goto out;
    r = 0;
out:
    if (fd >= 0)
        close(fd);
    if (r < 0)
        unlink(tmp);
    free(tmp);
    return r;
}

static char *state_file(const struct gate_conf *c, const struct gate_repo *r, const char *suffix)
{
    return xasprintf("%s/%s.%s", c->state, r->name, suffix);
}

int gate_repo_lock(const struct gate_conf *c, const struct gate_repo *r)
{
    char *p = state_file(c, r, "lock");
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(p);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR) {
            close(fd);
            return -1;
        }
    return fd;
}

/* ------------------------------------------------------------ status.json */

typedef void (*status_edit)(cJSON *doc, void *arg);

static int status_update(const struct gate_conf *c, status_edit edit, void *arg)
{
    char *lock = xasprintf("%s/status.lock", c->state), *path = xasprintf("%s/status.json", c->dir);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600), r = BD_E_IO;
    struct buf b;
    cJSON *doc = NULL;
    buf_init(&b, 4 << 20);
    if (fd < 0)
        goto out;
    while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR)
            goto out;
    if (buf_read_file(&b, path) == 0)
        doc = cJSON_ParseWithLength(b.data ? b.data : "", b.len);
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        doc = cJSON_CreateObject();
    }
    static const char *const lists[] = {"auth_failures", "learned_host_keys"};
    for (size_t i = 0; i < 2; i++)
        if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, lists[i]))) {
            cJSON_DeleteItemFromObjectCaseSensitive(doc, lists[i]);
            cJSON_AddArrayToObject(doc, lists[i]);
        }
    if (edit)
        edit(doc, arg);
    char *text = cJSON_PrintUnformatted(doc);
    char *line = xasprintf("%s\n", text);
    cJSON_free(text);
    r = write_file_atomic(path, line, strlen(line), 0600);
    free(line);
out:
    if (fd >= 0)
        close(fd);
    cJSON_Delete(doc);
    buf_release(&b);
    free(lock);
    free(path);
    return r;
}

int gate_status_init(const struct gate_conf *c)
{
    return status_update(c, NULL, NULL);
}

struct auth_fail {
    const char *repo, *message;
};

static void add_auth_failure(cJSON *doc, void *arg)
{
    const struct auth_fail *a = arg;
    cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "auth_failures");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "repo", a->repo);
    cJSON_AddNumberToObject(o, "at", (double)time(NULL));
    cJSON_AddStringToObject(o, "message", a->message);
    cJSON_AddItemToArray(list, o);
    while (cJSON_GetArraySize(list) > GATE_MAX_AUTH_FAILS)
        cJSON_DeleteItemFromArray(list, 0);
}

struct learned {
    const char *repo, *key;
    int added;
};

static void add_learned(cJSON *doc, void *arg)
{
    struct learned *l = arg;
    cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "learned_host_keys"), *o;
    cJSON_ArrayForEach(o, list)
    {
        const char *repo = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "repo"));
        const char *key = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "host_key"));
        if (repo && key && !strcmp(repo, l->repo) && !strcmp(key, l->key))
            return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "repo", l->repo);
    cJSON_AddStringToObject(o, "host_key", l->key);
    cJSON_AddItemToArray(list, o);
    l->added = 1;
}

int gate_note_failure(const struct gate_conf *c, const struct gate_repo *r, const char *err)
{
    const char *p = strstr(err, "Permission denied");
    if (!p)
        return 0;
    const char *bol = p, *eol = strchr(p, '\n');
    while (bol > err && bol[-1] != '\n')
        bol--;
    char *line = xstrndup(bol, eol ? (size_t)(eol - bol) : strlen(bol));
    for (char *q = line; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f)
            *q = ' ';
    struct auth_fail a = {r->name, line};
    if (status_update(c, add_auth_failure, &a) < 0)
        gate_log("%s: cannot update status.json: %s", r->name, strerror(errno));
    gate_log("%s: upstream refused the gate's key: %s", r->name, line);
    free(line);
    return 1;
}

/* ------------------------------------------------------------ ssh */

char *gate_ssh_env(const struct gate_conf *c, const struct gate_repo *r)
{
    return xasprintf("GIT_SSH_COMMAND=ssh -F %s/%s.ssh_config", c->state, r->name);
}

/* The known_hosts host pattern: "host" on 22, "[host]:port" otherwise. */
static char *known_host_name(const struct gate_repo *r)
{
    return r->port == 22 ? xstrdup(r->host) : xasprintf("[%s]:%u", r->host, r->port);
}

static int write_ssh_config(const struct gate_conf *c, const struct gate_repo *r, int strict)
{
    char *path = state_file(c, r, "ssh_config"), *kh = state_file(c, r, "known_hosts");
    char *text = xasprintf("# written by bottle-proxy gate for repo %s\n"
                           "Host *\n"
                           "  IdentityFile %s/keys/%s\n"
                           "  IdentitiesOnly yes\n"
                           "  IdentityAgent none\n"
                           "  BatchMode yes\n"
                           "  PasswordAuthentication no\n"
                           "  KbdInteractiveAuthentication no\n"
                           "  StrictHostKeyChecking %s\n"
                           "  UserKnownHostsFile %s\n"
                           "  GlobalKnownHostsFile /dev/null\n"
                           "  CheckHostIP no\n"
                           "  UpdateHostKeys no\n"
                           "  ConnectTimeout 30\n"
                           "  ServerAliveInterval 15\n"
                           "  ServerAliveCountMax 4\n"
                           "  ProxyCommand %s connect --proxy %s --token-file %s/token %%h %%p\n",
                           r->name, c->dir, r->name, strict ? "yes" : "accept-new", kh, c->self,
                           c->proxy, c->dir);
    int rc = write_file_atomic(path, text, strlen(text), 0600);
    free(text);
    free(path);
    free(kh);
    return rc;
}

/* The first key in r's known_hosts file ("TYPE BASE64", malloc'd), or NULL. */
static char *known_key(const struct gate_conf *c, const struct gate_repo *r)
{
    char *path = state_file(c, r, "known_hosts"), *key = NULL;
    struct buf b;
    buf_init(&b, 1 << 20);
    if (buf_read_file(&b, path) == 0 && b.len) {
        const char *line = b.data;
        while (line && *line) {
            const char *eol = strchr(line, '\n');
            size_t n = eol ? (size_t)(eol - line) : strlen(line);
            const char *sp = memchr(line, ' ', n);
            if (n && line[0] != '#' && sp) {
                key = xstrndup(sp + 1, n - (size_t)(sp + 1 - line));
                char *sp2 = strchr(key, ' ');
                if (sp2) {
                    sp2 = strchr(sp2 + 1, ' ');
                    if (sp2)
                        *sp2 = '\0'; /* drop a comment */
                }
                break;
            }
            line = eol ? eol + 1 : NULL;
        }
    }
    buf_release(&b);
    free(path);
    return key;
}

int gate_ssh_setup(const struct gate_conf *c, const struct gate_repo *r)
{
    char *kh = state_file(c, r, "known_hosts"), *name = known_host_name(r), *line = NULL, *k = NULL;
    int rc = 0, strict = 1;
    if (*r->host_key) {
        line = xasprintf("%s %s\n", name, r->host_key);
        rc = write_file_atomic(kh, line, strlen(line), 0600);
    } else if (!(k = known_key(c, r))) {
        strict = 0; /* learn on first use */
        int fd = open(kh, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            rc = BD_E_IO;
        else
            close(fd);
    }
    if (rc == 0)
        rc = write_ssh_config(c, r, strict);
    free(kh);
    free(name);
    free(line);
    free(k);
    return rc;
}

void gate_ssh_learned(const struct gate_conf *c, const struct gate_repo *r)
{
    if (*r->host_key)
        return;
    char *k = known_key(c, r);
    if (!k)
        return;
    struct learned l = {r->name, k, 0};
    if (status_update(c, add_learned, &l) < 0)
        gate_log("%s: cannot update status.json: %s", r->name, strerror(errno));
    if (l.added)
        gate_log("warning: %s: no host_key configured; learned %s:%u's key on first use "
                 "and pinned it: %s",
                 r->name, r->host, r->port, k);
    if (write_ssh_config(c, r, 1) < 0)
        gate_log("%s: cannot write the ssh config: %s", r->name, strerror(errno));
    free(k);
}

/* ------------------------------------------------------------ mirrors */

static int git_in(const struct gate_conf *c, const struct gate_repo *r, const char *const *args,
                  struct buf *out, struct buf *err)
{
    char *dir = xasprintf("%s/%s.git", c->root, r->name);
    const char *argv[32] = {"git", "--git-dir", dir};
    size_t n = 3;
    for (size_t i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char *ssh = gate_ssh_env(c, r);
    const char *env[] = {ssh, NULL};
    int rc = gate_run(argv, env, -1, out, err);
    free(ssh);
    free(dir);
    return rc;
}

/* "Host key verification failed" and friends, in one line for the agent. */
static char *first_lines(const char *err)
{
    size_t n = strlen(err);
    while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
        n--;
    return xstrndup(err, n > 2000 ? 2000 : n);
}

int gate_fetch(const struct gate_conf *c, const struct gate_repo *r, char **ret_err)
{
    struct buf out, err;
    buf_init(&out, 64 << 10);
    buf_init(&err, 64 << 10);
    int lock = gate_repo_lock(c, r), rc = BD_E_UNAVAIL;
    const char *fetch[] = {"fetch",
                           "--quiet",
                           "--prune",
                           "--no-write-fetch-head",
                           r->url,
                           "+refs/heads/*:refs/heads/*",
                           "+refs/tags/*:refs/tags/*",
                           NULL};
    int st = git_in(c, r, fetch, NULL, &err);
    if (st != 0) {
        gate_note_failure(c, r, buf_cstr(&err));
        *ret_err = first_lines(err.len ? buf_cstr(&err) : "git fetch failed");
        goto out;
    }
    gate_ssh_learned(c, r);
    /* While HEAD is unborn, point it where upstream's points. */
    const char *verify[] = {"rev-parse", "--verify", "--quiet", "HEAD", NULL};
    if (git_in(c, r, verify, NULL, &out) != 0) {
        const char *lsr[] = {"ls-remote", "--symref", r->url, "HEAD", NULL};
        buf_reset(&out);
        buf_reset(&err);
        if (git_in(c, r, lsr, &out, &err) == 0 && !strncmp(buf_cstr(&out), "ref: refs/", 10)) {
            const char *s = buf_cstr(&out) + 5, *tab = strchr(s, '\t');
            if (tab) {
                char *ref = xstrndup(s, (size_t)(tab - s));
                const char *sym[] = {"symbolic-ref", "HEAD", ref, NULL};
                (void)git_in(c, r, sym, NULL, NULL);
                free(ref);
            }
        }
    }
    rc = 0;
out:
    if (lock >= 0)
        close(lock);
    buf_release(&out);
    buf_release(&err);
    return rc;
}

/* Single quotes for sh: 'it'\''s'. */
static void sh_quote(struct buf *b, const char *s)
{
    buf_putc(b, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            buf_puts(b, "'\\''");
        else
            buf_putc(b, *s);
    }
    buf_putc(b, '\'');
}

int gate_mirror_init(const struct gate_conf *c, const struct gate_repo *r)
{
    char *dir = xasprintf("%s/%s.git", c->root, r->name), *hook = NULL;
    struct buf b, err;
    int rc = BD_E_IO;
    buf_init(&b, 1 << 16);
    buf_init(&err, 1 << 16);
    struct stat st;
    if (stat(dir, &st) < 0) {
        const char *init[] = {"git", "init", "--quiet", "--bare", dir, NULL};
        if (gate_run(init, NULL, -1, NULL, &err) != 0) {
            gate_log("%s: git init failed: %s", r->name, buf_cstr(&err));
            goto out;
        }
    }
    /* Only upstream decides on deletions and non-fast-forwards. */
    static const char *const cfg[][2] = {
        {"http.receivepack", "true"},
        {"http.uploadpack", "true"},
        {"receive.denyDeletes", "false"},
        {"receive.denyNonFastForwards", "false"},
        {"receive.fsckObjects", "true"},
        {"core.logAllRefUpdates", "false"},
        {"gc.auto", "0"},
        {"uploadpack.allowFilter", "true"},
    };
    for (size_t i = 0; i < sizeof(cfg) / sizeof(*cfg); i++) {
        const char *set[] = {"config", cfg[i][0], cfg[i][1], NULL};
        if (git_in(c, r, set, NULL, &err) != 0) {
            gate_log("%s: git config %s failed: %s", r->name, cfg[i][0], buf_cstr(&err));
            goto out;
        }
    }
    hook = xasprintf("%s/hooks/pre-receive", dir);
    buf_puts(&b, "#!/bin/sh\n# installed by bottle-proxy gate: scan, then push upstream\nexec ");
    sh_quote(&b, c->self);
    buf_puts(&b, " gate-hook --config ");
    sh_quote(&b, c->path);
    buf_puts(&b, " --root ");
    sh_quote(&b, c->root);
    buf_puts(&b, " --repo ");
    sh_quote(&b, r->name);
    buf_puts(&b, "\n");
    char *hooks = xasprintf("%s/hooks", dir);
    (void)mkdir(hooks, 0755);
    free(hooks);
    if (write_file_atomic(hook, b.data, b.len, 0755) < 0) {
        gate_log("%s: cannot write %s: %s", r->name, hook, strerror(errno));
        goto out;
    }
    if (gate_ssh_setup(c, r) < 0) {
        gate_log("%s: cannot write the ssh files in %s: %s", r->name, c->state, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    buf_release(&b);
    buf_release(&err);
    free(dir);
    free(hook);
    return rc;
}
