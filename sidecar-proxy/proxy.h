/*
 * proxy.h - the running sidecar: config snapshots, listeners, connections.
 *
 * proxy_run() loads the config generation, starts the leaf minter (and with
 * it the signer process holding the CA key), opens the admin and proxy
 * listeners and serves until SIGTERM/SIGINT, reloading on SIGHUP and when
 * the config directory's `current` pointer changes.  Everything runs on
 * one thread in one epoll loop (loop.h); see proxy.c for the connection
 * state machine.
 *
 * Output: one JSON audit line per request or tunnel on stdout; operational
 * log lines (one per failure) on stderr.  Neither ever carries a secret.
 */
#ifndef BOTTLED_PROXY_H
#define BOTTLED_PROXY_H

struct proxy_opts {
    const char *cfg_dir; /* the cfg directory holding `current` */
    const char *listen;  /* "ADDR:PORT" ("[v6]:PORT"); the explicit proxy */
    const char *admin;   /* "ADDR:PORT"; healthz, config-hash, metrics */
    int verbose;         /* log state transitions on stderr */
};

/*
 * Runs the proxy.  Returns the process exit status: 0 after a clean
 * shutdown (SIGTERM/SIGINT: listeners closed, in-flight requests finished
 * within a grace period), 1 when start-up failed (logged on stderr).
 */
int proxy_run(const struct proxy_opts *opts);

#endif
