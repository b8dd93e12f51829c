/*
 * engine_docker.h - the docker backend's pure parts, exposed for unit
 * tests (tests/unit/test_engine_json.c): JSON response parsers, error
 * bodies, filter encoding, the exec stream demultiplexer.  Nothing here
 * talks to an engine.  `podman` selects the Podman 4.3 compat quirks.
 */
#ifndef BOTTLED_ENGINE_DOCKER_H
#define BOTTLED_ENGINE_DOCKER_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "engine.h"

/* The highest API version the driver speaks, and the lowest it accepts. */
#define DK_API_MAJOR     1
#define DK_API_MINOR     41
#define DK_API_MIN_MINOR 40

/* Parses "1.41" into *ret_minor (major must be 1); BD_E_PROTO otherwise. */
int dk_parse_api_version(const char *s, size_t len, int *ret_minor);

/* `filters=` value: URL-encoded {"label":["k=v",...]}; *ret is allocated. */
void dk_label_filter(const struct engine_strv *labels, char **ret);

/* Percent-encodes s (unreserved characters and those in keep stay). */
void dk_urlencode(struct buf *out, const char *s, const char *keep);

/* The `message` of an error body (Docker {"message"}, Podman {"cause",
 * "message","response"}), cut to max bytes; "" if there is none. */
void dk_error_message(const char *body, size_t len, char *out, size_t max);

int dk_parse_networks(const char *json, size_t len, bool podman, struct engine_network_list *ret);
/* The libpod API's network list (Podman). */
int dk_parse_libpod_networks(const char *json, size_t len, struct engine_network_list *ret);
int dk_parse_volumes(const char *json, size_t len, struct engine_volume_list *ret);
int dk_parse_containers(const char *json, size_t len, bool podman,
                        struct engine_container_list *ret);
int dk_parse_inspect(const char *json, size_t len, bool podman, struct engine_container_info *ret);
/* The base64 JSON of X-Docker-Container-Path-Stat. */
int dk_parse_path_stat(const char *b64, size_t len, struct engine_path_stat *ret);

/*
 * Demultiplexer of the raw stream of exec/attach/logs (no TTY): frames of
 * an 8-byte header (stream 1 stdout / 2 stderr, 3 zero bytes, big-endian
 * u32 length) and the payload.  Fed in arbitrary pieces; each stream keeps
 * at most max bytes, the rest is dropped and `truncated` set.
 */
struct dk_demux {
    unsigned char hdr[8];
    size_t hdr_len;
    size_t remaining; /* payload bytes left in the current frame */
    int stream;
    size_t max;
    struct buf *out;
    struct buf *err;
    bool truncated;
    bool bad; /* a header with an unknown stream id */
};
void dk_demux_init(struct dk_demux *d, struct buf *out, struct buf *err, size_t max);
void dk_demux_feed(struct dk_demux *d, const char *p, size_t n);

/* The event stream's line cap: a longer line is skipped (a `lost` event). */
#define DK_EVENT_LINE_MAX ((size_t)256 << 10)

/*
 * The incremental parser of GET /events: newline-delimited JSON objects
 * fed in arbitrary pieces (chunk boundaries fall anywhere).  Each complete
 * line becomes one fn call with the event normalised as engine.h says
 * (`podman` selects Podman 4.3's attribute layout); a line over
 * DK_EVENT_LINE_MAX, or one that is not an event object, becomes one call
 * with ev->lost set.  Blank lines are skipped.  A partial line left when
 * the stream ends is dropped by dk_events_release().
 */
struct dk_events {
    struct buf line; /* the current line so far, capped at DK_EVENT_LINE_MAX */
    bool skipping;   /* the current line went over the cap: dropped up to its newline */
    bool podman;
    engine_event_fn fn;
    void *arg;
    bool stopped; /* fn returned nonzero: nothing more is delivered */
    unsigned long events, lost;
};
void dk_events_init(struct dk_events *p, bool podman, engine_event_fn fn, void *arg);
/* Returns 0, or 1 once fn asked to stop (the rest of data is ignored). */
int dk_events_feed(struct dk_events *p, const char *data, size_t n);
void dk_events_release(struct dk_events *p);

#endif
