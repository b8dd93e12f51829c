/*
 * gate.h - the git gate: `bottle-proxy gate` (a smart-HTTP server running
 * `git http-backend` per request, gate_http.c) and `bottle-proxy gate-hook`
 * (the mirrors' pre-receive hook, gate_hook.c), on shared pieces here
 * (gate_conf.c: the config, gate_git.c: child processes, upstream fetch,
 * ssh configuration, the status file).
 *
 * Layout, for a config file /gate/config.json and a root /srv/git:
 *   /gate/config.json     {"proxy": "HOST:PORT", "repos": [{"name", "url",
 *                          "host", "port", "host_key"}], optional
 *                          "max_blob_bytes", "max_push_bytes"}
 *   /gate/keys/<name>     the repo's private key (0600)
 *   /gate/token           the raw-tunnel token for `bottle-proxy connect`
 *   /gate/status.json     written here (atomically): auth_failures,
 *                         learned_host_keys
 *   /srv/git/<name>.git   the bare mirror, hooks/pre-receive installed
 *   /srv/git/.gate/       gate-owned state (0700): <name>.ssh_config,
 *                         <name>.known_hosts, <name>.lock, status.lock
 *
 * Everything from the config that reaches an ssh config file or a shell
 * (ssh runs ProxyCommand and git runs GIT_SSH_COMMAND through one) is
 * checked against a small character set when the config is loaded, so no
 * quoting is ever needed there; paths are checked the same way.
 *
 * Nothing here ever formats a key or the token: they stay in their files.
 */
#ifndef BOTTLED_GATE_H
#define BOTTLED_GATE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "http.h"

#define GATE_CONFIG_DEFAULT  "/gate/config.json"
#define GATE_ROOT_DEFAULT    "/srv/git"
#define GATE_LISTEN_DEFAULT  "0.0.0.0:8080"
#define GATE_MAX_BLOB        ((uint64_t)16 << 20)  /* per object scanned */
#define GATE_MAX_PUSH        ((uint64_t)256 << 20) /* all objects of one push */
#define GATE_MAX_REPOS       64
#define GATE_MAX_AUTH_FAILS  20 /* newest kept in status.json */
#define GATE_CONFIG_MAX_SIZE ((size_t)1 << 20)

struct gate_repo {
    char *name;     /* [A-Za-z0-9][A-Za-z0-9._-]*, no "..", at most 100 bytes */
    char *url;      /* ssh://[user@]host[:port]/path */
    char *host;     /* for known_hosts */
    unsigned port;  /* 1..65535 */
    char *host_key; /* "TYPE BASE64", or "" (learn on first use) */
};

struct gate_conf {
    char *path;  /* the config file */
    char *dir;   /* directory of the config file: keys/, token, status.json */
    char *root;  /* GIT_PROJECT_ROOT */
    char *state; /* root/.gate */
    char *self;  /* this executable, for the hook and ProxyCommand */
    char *proxy; /* HOST:PORT of the sidecar */
    uint64_t max_blob, max_push;
    struct gate_repo *repos;
    size_t n_repos;
};

/*
 * Reads and checks the config at path; root is the mirrors' directory.
 * Returns 0, BD_E_IO (unreadable), BD_E_TOO_BIG or BD_E_INVAL; on an error
 * *ret_err is a malloc'd message naming the offending field (never a
 * value that could be secret: the config holds none).  c is written only
 * on success; release it with gate_conf_release().
 */
int gate_conf_load(const char *path, const char *root, struct gate_conf *c, char **ret_err);
void gate_conf_release(struct gate_conf *c);
/* The repo named name[0..len), or NULL. */
const struct gate_repo *gate_conf_repo(const struct gate_conf *c, const char *name, size_t len);
/* 1 if every byte of s is in [A-Za-z0-9/._+-]: safe unquoted in a shell. */
int gate_safe_path(const char *s);

/* "gate: " (then indent spaces), the message and a newline on stderr: the
 * gate's log, and the refusal a pusher sees through the hook. */
void gate_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void gate_vlog(int indent, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* ---- requests (gate_req.c) ---- */

struct gate_route {
    const struct gate_repo *repo; /* borrowed from the config */
    const char *service;          /* "git-upload-pack" or "git-receive-pack" (static) */
    int info_refs;                /* GET info/refs (else a POST of the service) */
    char *path_info, *query;      /* for the CGI; owned, gate_route_release() */
};

/*
 * Maps a parsed request to a configured repo and a smart-protocol service:
 * GET /<repo>.git/info/refs?service=<service>, POST /<repo>.git/<service>.
 * Returns 0 (rt filled), or the HTTP status to answer: 400 (not
 * origin-form), 404 (unknown repo, the dumb protocol, any other path), 405.
 */
int gate_route_request(const struct gate_conf *c, const struct http_request *req,
                       struct gate_route *rt);
void gate_route_release(struct gate_route *rt);

#define GATE_CGI_HEAD (64 << 10)

/*
 * The CGI head at the start of b (header lines up to a blank line, LF or
 * CRLF; "Status: NNN reason" picks the status, default 200; Connection and
 * Transfer-Encoding dropped) appended to out as an HTTP/1.1 response head
 * with "Connection: close".  Returns the head's length in b, 0 when it is
 * incomplete, -1 when malformed (out unchanged then).
 */
long gate_cgi_head(const struct buf *b, struct buf *out);

/* ---- child processes (gate_git.c) ---- */

/*
 * Runs argv (argv[0] looked up in PATH), stdin from in_fd (-1: /dev/null),
 * stdout into out and stderr into err (NULL: to our stderr; a full buffer
 * drops the rest, the child is never blocked).  extra_env (NULL-terminated,
 * may be NULL) is added to our environment.  Returns the exit status
 * (0..255), 256 + signal when killed, or a negative BD_E_* when it could
 * not be started.
 */
int gate_run(const char *const *argv, const char *const *extra_env, int in_fd, struct buf *out,
             struct buf *err);

/* "GIT_SSH_COMMAND=ssh -F <r's ssh_config>", malloc'd, for gate_run()'s extra_env. */
char *gate_ssh_env(const struct gate_conf *c, const struct gate_repo *r);

/*
 * Writes state/<name>.ssh_config and, when r->host_key is set, the
 * known_hosts line; without host_key the learned file is kept (pinned).
 * Returns 0 or BD_E_IO.
 */
int gate_ssh_setup(const struct gate_conf *c, const struct gate_repo *r);

/*
 * After an ssh operation for r: with an empty host_key and a key now in
 * the gate's known_hosts, records it in status.json (once), warns on
 * stderr and switches the repo to strict checking.  Errors are logged.
 */
void gate_ssh_learned(const struct gate_conf *c, const struct gate_repo *r);

/*
 * Looks at an upstream ssh/git error text: a "Permission denied" adds an
 * auth_failures entry for r to status.json with that line.  Returns 1 when
 * it was an authentication failure.
 */
int gate_note_failure(const struct gate_conf *c, const struct gate_repo *r, const char *err);

/* Creates status.json with empty lists unless it exists.  0 or BD_E_IO. */
int gate_status_init(const struct gate_conf *c);

/* flock()s state/<name>.lock; returns the fd (close it to unlock) or -1. */
int gate_repo_lock(const struct gate_conf *c, const struct gate_repo *r);

/*
 * Fetches every branch and tag of r's upstream into its mirror (pruning
 * what upstream deleted), serialised with other fetches and pushes of r;
 * sets the mirror's HEAD to upstream's while it is unborn.  Returns 0, or
 * BD_E_UNAVAIL with upstream's error text in *ret_err (malloc'd).
 */
int gate_fetch(const struct gate_conf *c, const struct gate_repo *r, char **ret_err);

/* Creates or updates r's mirror: config, hook, ssh files.  0 or an error (logged). */
int gate_mirror_init(const struct gate_conf *c, const struct gate_repo *r);

/* ---- subcommands ---- */

/* `bottle-proxy gate [--config FILE] [--listen ADDR:PORT] [--root DIR] [--max-conns N]` */
int cmd_gate(int argc, char **argv);
/* `bottle-proxy gate-hook --config FILE --root DIR --repo NAME`, stdin as pre-receive's */
int cmd_gate_hook(int argc, char **argv);

#endif
