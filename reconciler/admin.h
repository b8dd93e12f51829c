/*
 * admin.h - the sidecar's admin endpoint (/healthz, /config-hash), as the
 * reconciler reads it.
 *
 * The sidecar binds its admin listener to its egress-side address (the
 * fixed .2 of the egress network: the agent, on the internal network,
 * cannot reach it).  On a local engine that address is routable from this
 * host, so a plain HTTP GET answers in a millisecond; where it is not (an
 * engine on another machine, a host that filters it), the same URL is
 * fetched by `curl` exec'd inside the sidecar container.  After the first
 * direct attempt that cannot connect, this process uses exec only.
 */
#ifndef BOTTLED_ADMIN_H
#define BOTTLED_ADMIN_H

#include "engine.h"

#define ADMIN_PORT 9098

/*
 * GETs http://IP:9098PATH of the sidecar in container.  Returns 0 with the
 * HTTP status in *ret_code and the body (at most 4 KiB, NUL-terminated,
 * malloc'd) in *ret_body; BD_E_UNAVAIL when neither way got an answer.
 */
int sidecar_admin_get(struct engine *e, const char *container, const char *ip, const char *path,
                      long *ret_code, char **ret_body);

/* One sidecar of a batch: in container/ip; out code/body (body malloc'd or NULL). */
struct admin_query {
    const char *container;
    const char *ip;
    long code;
    char *body;
    int rc; /* 0, or BD_E_UNAVAIL when neither way answered */
};

/*
 * The same GET of path on many sidecars at once: the direct requests run
 * concurrently (curl multi, at most 64 at a time), so a pass over 200
 * sidecars costs about one round trip; those not answered directly are
 * then read one by one through exec.
 */
void sidecar_admin_get_many(struct engine *e, const char *path, struct admin_query *q, size_t n);

#endif
