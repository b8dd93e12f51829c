/*
 * engine.h - the container engine driver interface: one small ops table per
 * backend, looked up by name, and the plain data the reconciler exchanges
 * with it.
 *
 * Backends: "docker" (engine_docker.c: the Docker Engine HTTP API over a
 * unix socket, serving Docker 20.10 and Podman 4.3's compat API).
 *
 * Ownership: every input struct is owned by the caller and only read.
 * Every output (ret_*) is written only on success and owned by the caller
 * afterwards; free it with the matching *_release().  Strings that the
 * engine did not report are NULL, never "".
 *
 * Errors: 0 or a negative code of err.h.  The codes that mean something
 * specific here:
 *   BD_E_NOTFOUND  the object (container, network, path in a container) is
 *                  not there; removes treat it as done and return 0
 *   BD_E_EXISTS    a create found the name taken
 *   BD_E_BUSY      a remove found the object in use (network with
 *                  containers, volume mounted)
 *   BD_E_NOIMAGE   the image reference does not resolve to a local image
 *   BD_E_UNAVAIL   the engine did not answer (socket, timeout)
 *   BD_E_PROTO     the engine answered something we cannot use
 *   BD_E_TOO_BIG   a response exceeded its cap
 * After a failure engine_errmsg() says why in one line (the engine's own
 * `message` where it gave one); it never holds request bodies, so no
 * environment value or archive byte can reach a log through it.
 *
 * Threads: a struct engine is one connection (one keep-alive socket) and
 * is used by one thread at a time; concurrent workers open one each.  The
 * exception is engine_events_cancel(), meant for another thread.
 *
 * The mutation counter counts every request that changes engine state
 * (create, remove, start, stop, kill, connect, disconnect, archive put),
 * one per HTTP request; reads, waits and exec do not count.  Tests use it
 * to prove that a converged pass makes no mutating call.
 */
#ifndef BOTTLED_ENGINE_H
#define BOTTLED_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* ---------------------------------------------------------------- data */

/* A growable string vector (argv, env, cap lists, label filters). */
struct engine_strv {
    char **v;
    size_t n;
};
void engine_strv_add(struct engine_strv *sv, const char *s);
void engine_strv_release(struct engine_strv *sv);

/* Key/value pairs (labels, sysctls), in the order added or reported. */
struct engine_kv {
    char *key;
    char *value;
};
struct engine_kvs {
    struct engine_kv *v;
    size_t n;
};
void engine_kvs_add(struct engine_kvs *kvs, const char *key, const char *value);
/* The value for key, or NULL. */
const char *engine_kvs_get(const struct engine_kvs *kvs, const char *key);
void engine_kvs_release(struct engine_kvs *kvs);

struct engine_version {
    char *api_version;    /* the API version the driver speaks, "1.41" */
    char *engine_version; /* "20.10.24", "4.3.1" */
    bool podman;
};
void engine_version_release(struct engine_version *v);

struct engine_network_spec {
    const char *name;
    bool internal;
    const char *subnet;      /* IPv4 CIDR, or NULL for the engine's pick */
    const char *gateway;     /* or NULL */
    const char *bridge_name; /* host bridge name (<= 15 chars), or NULL */
    struct engine_kvs labels;
};

struct engine_network {
    char *id;
    char *name;
    char *subnet; /* first IPAM config entry; NULL if none */
    char *gateway;
    /* Docker: from Options; Podman: the libpod list's network_interface
     * (its compat API honours the option at create but reports Options {},
     * and its compat list is slow, so the driver lists through libpod). */
    char *bridge_name;
    bool internal;
    struct engine_kvs labels;
    /* Attached container ids: the list calls of both engines leave these
     * out (Docker always; Podman 4.3 reports {}), so containers_known is
     * false there and attachments come from engine_container_list(). */
    bool containers_known;
    struct engine_strv containers;
};
struct engine_network_list {
    struct engine_network *v;
    size_t n;
};
void engine_network_list_release(struct engine_network_list *l);

struct engine_volume {
    char *name;
    char *driver;
    char *mountpoint;
    struct engine_kvs labels;
};
struct engine_volume_list {
    struct engine_volume *v;
    size_t n;
};
void engine_volume_list_release(struct engine_volume_list *l);

/* One network a container is created on or connected to. */
struct engine_endpoint_spec {
    const char *network;
    const char *ipv4; /* fixed address, or NULL */
    struct engine_strv aliases;
};

/* A named volume mounted into a container. */
struct engine_mount_spec {
    const char *volume;
    const char *target;
    bool read_only;
};

#define ENGINE_MAX_ENDPOINTS 4
#define ENGINE_MAX_MOUNTS    16

struct engine_container_spec {
    const char *name;
    const char *image;             /* full reference (localhost/name:tag) or image id */
    struct engine_strv cmd;        /* n == 0: the image's */
    struct engine_strv entrypoint; /* n == 0: the image's */
    struct engine_strv env;        /* "K=V" */
    struct engine_kvs labels;
    const char *user;    /* NULL: the image's */
    const char *workdir; /* NULL: the image's */
    /* Networks: the first is the container's network mode; the others are
     * connected before the call returns (the container is not started).
     * n_endpoints == 0 with network_mode set: e.g. "none",
     * "container:<id>". */
    struct engine_endpoint_spec endpoints[ENGINE_MAX_ENDPOINTS];
    size_t n_endpoints;
    const char *network_mode;
    bool cap_drop_all;
    struct engine_strv cap_add;
    bool no_new_privileges;
    int64_t memory;     /* bytes, 0 = unlimited */
    int64_t nano_cpus;  /* 0 = unlimited */
    int64_t pids_limit; /* 0 = engine default */
    struct engine_kvs sysctls;
    struct engine_strv extra_hosts; /* "name:ip" */
    struct engine_strv dns;
    struct engine_mount_spec mounts[ENGINE_MAX_MOUNTS];
    size_t n_mounts;
};

struct engine_endpoint {
    char *network;              /* the network's name */
    char *network_id;           /* NULL on Podman (it reports the name there) */
    char *ipv4;                 /* NULL if none */
    struct engine_strv aliases; /* inspect only */
};

struct engine_mount {
    char *type; /* "volume", "bind", ... */
    char *name; /* volume name; NULL for binds */
    char *source;
    char *destination;
    bool rw;
};

/* What one list call reports per container (and inspect as well). */
struct engine_container {
    char *id;
    char *name;     /* without the leading '/' */
    char *image;    /* as the engine reports it */
    char *image_id; /* "sha256:..." */
    char *state;    /* "created", "running", "exited", ... */
    struct engine_kvs labels;
    struct engine_endpoint *networks;
    size_t n_networks;
    struct engine_mount *mounts;
    size_t n_mounts;
};
struct engine_container_list {
    struct engine_container *v;
    size_t n;
};
void engine_container_release(struct engine_container *c);
void engine_container_list_release(struct engine_container_list *l);

/* The full inspect: adds the fields that cannot change after create. */
struct engine_container_info {
    struct engine_container c;
    bool running;
    int pid;
    int exit_code;
    /* The network mode as created.  Podman reports "bridge" for every
     * container on user networks; the driver then reports the single
     * attached network's name, or NULL when there are several. */
    char *network_mode;
    bool privileged;
    /* The container's capability set ("CHOWN", no CAP_ prefix, sorted),
     * the same on both engines; compare this, not cap_add/cap_drop, which
     * are as reported (Podman lists the defaults it dropped instead of
     * "ALL" and leaves out adds that were in its default set). */
    struct engine_strv caps;
    struct engine_strv cap_add;
    struct engine_strv cap_drop;
    struct engine_strv security_opt;
    char *user;
    char *workdir;
    struct engine_strv env;
    int64_t memory;
    int64_t nano_cpus;
    int64_t pids_limit;
    struct engine_strv extra_hosts;
    struct engine_kvs sysctls; /* empty on Podman 4.3: applied, not reported */
};
void engine_container_info_release(struct engine_container_info *i);

/* X-Docker-Container-Path-Stat of an archive get. */
struct engine_path_stat {
    char *name;
    int64_t size;
    uint32_t mode; /* Go's os.FileMode bits: 1<<31 = directory */
    char *mtime;
    char *link_target;
};
void engine_path_stat_release(struct engine_path_stat *s);

struct engine_exec_spec {
    struct engine_strv cmd;
    struct engine_strv env;
    const char *user;  /* NULL: the container's */
    size_t max_output; /* cap per stream, 0 = 1 MiB */
    int timeout_s;     /* 0 = 60 */
};
struct engine_exec_result {
    int exit_code;
    struct buf out; /* demultiplexed stdout */
    struct buf err; /* demultiplexed stderr */
    bool truncated; /* a stream exceeded max_output and was cut */
};
void engine_exec_result_release(struct engine_exec_result *r);

/*
 * One event of the engine's event stream (engine_events()), normalised
 * across engines.  Every string is borrowed for the callback only and is
 * NULL when the engine did not report it.
 *
 *   type       "container", "network" or "volume"
 *   action     Docker's word: "create", "start", "die", "stop", "destroy",
 *              "connect", "disconnect", ... (Podman's "remove" is reported
 *              as "destroy")
 *   id         container events: the container id; network events: the
 *              network id (Docker; Podman 4.3 names the container there
 *              instead); volume events: the volume name
 *   name       the actor's name: container, network (Docker only) or volume
 *   container  network and volume events: the id of the container they
 *              concern (Docker: Attributes.container; Podman: the actor);
 *              container events: the id again
 *   container_name  network events on Podman: the container's name
 *   attrs      every attribute as reported (a container event's labels are
 *              among them)
 *   lost       a line of the stream could not be read (over the line cap,
 *              or not an event): something happened that we do not know;
 *              every other field is NULL
 */
struct engine_event {
    const char *type;
    const char *action;
    const char *id;
    const char *name;
    const char *container;
    const char *container_name;
    const struct engine_kvs *attrs;
    int64_t time_ns; /* the engine's wall clock; 0 if not reported */
    bool lost;
};
/* Called per event; a nonzero return ends the stream (engine_events()
 * returns 0). */
typedef int (*engine_event_fn)(const struct engine_event *ev, void *arg);

/* ---------------------------------------------------------------- ops */

struct engine;

/*
 * One backend.  Each op has the meaning and errors of the engine_*()
 * wrapper of the same name below; backends count mutating requests with
 * engine_count_mutation() and leave a reason with engine_set_errmsg().
 */
struct engine_ops {
    const char *name;
    /* Connects and negotiates; sets e->impl.  url is backend-specific. */
    int (*open)(struct engine *e, const char *url);
    void (*close)(struct engine *e);
    int (*version)(struct engine *e, struct engine_version *ret);

    int (*network_create)(struct engine *e, const struct engine_network_spec *spec, char **ret_id);
    int (*network_list)(struct engine *e, const struct engine_strv *label_filter,
                        struct engine_network_list *ret);
    int (*network_remove)(struct engine *e, const char *network);
    int (*network_connect)(struct engine *e, const char *container,
                           const struct engine_endpoint_spec *ep);
    int (*network_disconnect)(struct engine *e, const char *network, const char *container);

    int (*volume_create)(struct engine *e, const char *name, const struct engine_kvs *labels);
    int (*volume_list)(struct engine *e, const struct engine_strv *label_filter,
                       struct engine_volume_list *ret);
    int (*volume_remove)(struct engine *e, const char *name);

    int (*container_create)(struct engine *e, const struct engine_container_spec *spec,
                            char **ret_id);
    int (*container_list)(struct engine *e, const struct engine_strv *label_filter,
                          struct engine_container_list *ret);
    int (*container_inspect)(struct engine *e, const char *container,
                             struct engine_container_info *ret);
    int (*container_start)(struct engine *e, const char *container);
    int (*container_stop)(struct engine *e, const char *container, int timeout_s);
    int (*container_kill)(struct engine *e, const char *container, const char *signal);
    int (*container_remove)(struct engine *e, const char *container);
    int (*container_wait)(struct engine *e, const char *container, int timeout_s, int *ret_status);

    int (*archive_put)(struct engine *e, const char *container, const char *dir, const void *tar,
                       size_t len);
    int (*archive_get)(struct engine *e, const char *container, const char *path, size_t max,
                       struct buf *ret_tar, struct engine_path_stat *ret_stat);
    int (*exec)(struct engine *e, const char *container, const struct engine_exec_spec *spec,
                struct engine_exec_result *ret);

    int (*image_id)(struct engine *e, const char *ref, char **ret_id);

    int (*events)(struct engine *e, const struct engine_strv *types, int64_t since,
                  engine_event_fn fn, void *arg);
    void (*events_cancel)(struct engine *e);
};

/* The handle: fields are for engine.c and the backends only. */
struct engine {
    const struct engine_ops *ops;
    void *impl;
    bool podman; /* set by open: the engine is Podman (its compat API) */
    unsigned long mutations;
    char errmsg[512];
};

extern const struct engine_ops engine_docker_ops;

/* The backend registered under name, or NULL. */
const struct engine_ops *engine_ops_lookup(const char *name);

/*
 * The engine URL to use when none was given (architecture.md): DOCKER_HOST
 * if set, else the Podman socket if its /_ping answers, else
 * unix:///var/run/docker.sock.  *ret_url is allocated.
 */
int engine_default_url(char **ret_url);

/*
 * Opens url (NULL: engine_default_url()).  "unix:///path" selects the
 * docker backend.  Fails with BD_E_INVAL for an unknown scheme,
 * BD_E_UNAVAIL when the engine does not answer /_ping, BD_E_PROTO for an
 * API older than 1.40.  On failure *ret is untouched; a message for the
 * caller is written to errmsg (may be NULL) of size errmsg_len.
 */
int engine_open(const char *url, struct engine **ret, char *errmsg, size_t errmsg_len);
void engine_close(struct engine *e);

/* Why the last call failed ("" after a success); valid until the next call. */
const char *engine_errmsg(const struct engine *e);
unsigned long engine_mutations(const struct engine *e);
/* The engine is Podman (known from open, without a request). */
bool engine_is_podman(const struct engine *e);

/* For backends. */
void engine_count_mutation(struct engine *e);
void engine_set_errmsg(struct engine *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

int engine_version(struct engine *e, struct engine_version *ret);

/* Returns the new id; BD_E_EXISTS if the name is taken, BD_E_BUSY if the
 * subnet overlaps one in use (a network, or a route on the host). */
int engine_network_create(struct engine *e, const struct engine_network_spec *spec, char **ret_id);
/* One call; label_filter holds "key=value" or "key" terms, all must match. */
int engine_network_list(struct engine *e, const struct engine_strv *label_filter,
                        struct engine_network_list *ret);
/* 0 also when it is already gone; BD_E_BUSY while containers are attached. */
int engine_network_remove(struct engine *e, const char *network);
int engine_network_connect(struct engine *e, const char *container,
                           const struct engine_endpoint_spec *ep);
/* Forced disconnect; 0 also when the container is not attached. */
int engine_network_disconnect(struct engine *e, const char *network, const char *container);

int engine_volume_create(struct engine *e, const char *name, const struct engine_kvs *labels);
int engine_volume_list(struct engine *e, const struct engine_strv *label_filter,
                       struct engine_volume_list *ret);
/* 0 also when already gone; BD_E_BUSY while a container uses it. */
int engine_volume_remove(struct engine *e, const char *name);

/*
 * Creates (never starts) the container and connects it to every endpoint
 * after the first.  BD_E_NOIMAGE if the image is missing, BD_E_EXISTS if
 * the name is taken.  If a connect fails the container is removed again
 * and the error returned.
 */
int engine_container_create(struct engine *e, const struct engine_container_spec *spec,
                            char **ret_id);
/* One call, all states (created and exited too). */
int engine_container_list(struct engine *e, const struct engine_strv *label_filter,
                          struct engine_container_list *ret);
int engine_container_inspect(struct engine *e, const char *container,
                             struct engine_container_info *ret);
/* 0 also when already running. */
int engine_container_start(struct engine *e, const char *container);
/* SIGTERM, then SIGKILL after timeout_s; 0 also when already stopped. */
int engine_container_stop(struct engine *e, const char *container, int timeout_s);
/* signal: "HUP", "SIGKILL", "15"...; BD_E_INVAL when the container is
 * not running. */
int engine_container_kill(struct engine *e, const char *container, const char *signal);
/* Forced (running too), with its anonymous volumes; 0 when already gone. */
int engine_container_remove(struct engine *e, const char *container);
/* Waits until the container is not running; *ret_status is its exit code. */
int engine_container_wait(struct engine *e, const char *container, int timeout_s, int *ret_status);

/*
 * Extracts a tar into dir inside the container.  dir must exist, on both
 * engines: Docker 20.10 answers 404 for a missing one while Podman 4.3
 * would create it, so on Podman the driver stats dir first and fails the
 * same way (BD_E_NOTFOUND, nothing written).  To create directories,
 * put the tar at an existing parent with the directories in it.
 */
int engine_archive_put(struct engine *e, const char *container, const char *dir, const void *tar,
                       size_t len);
/* A tar of path (file or directory), at most max bytes (0 = 64 MiB), and
 * its stat.  *ret_tar is initialised by the call. */
int engine_archive_get(struct engine *e, const char *container, const char *path, size_t max,
                       struct buf *ret_tar, struct engine_path_stat *ret_stat);
/* Runs spec->cmd in the running container and waits for it; a stream
 * beyond max_output is cut and ret->truncated set. */
int engine_exec(struct engine *e, const char *container, const struct engine_exec_spec *spec,
                struct engine_exec_result *ret);

/* The image id ("sha256:...") of a reference; BD_E_NOIMAGE if none. */
int engine_image_id(struct engine *e, const char *ref, char **ret_id);

/*
 * Streams the engine's events of the given types ("container", "network",
 * "volume"; both engines accept these as a `type` filter) on a connection
 * of its own, calling fn per event in the order the engine sends them,
 * until fn returns nonzero, engine_events_cancel() is called, or the
 * engine ends the stream.  since: wall-clock seconds to replay events from
 * (0: only new ones).  Returns 0 when fn or a cancel ended it; BD_E_UNAVAIL
 * when the stream could not be opened or was dropped (engine restart);
 * BD_E_PROTO / BD_E_INVAL when the engine refused the request.  The call
 * blocks for as long as the stream lives and uses no CPU while it is quiet
 * (libcurl wakes about once a second).  Lines are capped (engine_docker.h):
 * a longer one is skipped and reported as a `lost` event.
 */
int engine_events(struct engine *e, const struct engine_strv *types, int64_t since,
                  engine_event_fn fn, void *arg);
/*
 * Ends a running engine_events() on e soon, or makes the next one on e
 * return at once: the one call that may come from another thread while e
 * is in use.  Idempotent; e stays usable for nothing but engine_close().
 */
void engine_events_cancel(struct engine *e);

#endif
