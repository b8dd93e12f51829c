/*
 * watch_events.h - the engine's event stream as a drift hint for `bottled
 * watch` (architecture.md, "Reconcile loop").
 *
 * A helper thread holds one engine connection streaming container,
 * network and volume events (engine_events()) and wakes the watcher's loop
 * through a pipe when an event concerns this instance and may mean drift:
 * a container of ours died, stopped, was removed, paused or renamed; a
 * network was connected to or disconnected from a container of ours (or a
 * container to or from a network of ours); a network or volume of ours was
 * removed; or an event was lost.  Events are only hints: the loop runs
 * its ordinary level-triggered pass after the settle window, with the
 * per-bottle backoff, so an outside tool fighting us cannot make it loop.
 * Not hints: create and start (ours, made by the pass), "kill" (bottled
 * itself SIGHUPs sidecars to reload them; a kill that stops a container is
 * followed by "die"), exec, mount, health and image events.
 *
 * Ours: a container event carries our io.bottled.instance label (both
 * engines report labels among its attributes), or, without that label,
 * its name starts with "<name-prefix>-".  Network and volume events carry
 * no labels: their names are matched by the prefix, and the container a
 * network event concerns by id (Docker names only the container's id)
 * against the ids of our containers, or by its name (Podman 4.3 names the
 * container, not the network).  The ids come from one labelled list call
 * when the stream (re)connects, then from our containers' own events; the
 * stream is opened with `since` just before that list, so nothing falls
 * between the two.
 *
 * A pass's own changes (a container recreated, started, connected) may
 * wake the loop once more after that pass: that pass finds everything
 * converged, changes nothing, and so causes no further event.  There is
 * no loop of pass -> event -> pass.
 *
 * Dropped stream: one that lived at least a few seconds is reopened at
 * once (Podman 4.3 ends it whenever it rotates its event log); if that
 * works, WATCH_EV_LIVE | WATCH_EV_RESYNC with `why` saying how it ended,
 * for one full pass (events may have been missed).  Otherwise (engine
 * restart, engine gone) the thread reconnects with backoff (1 s doubling
 * to 30 s, no busy loop), reports WATCH_EV_DOWN once per outage and
 * WATCH_EV_LIVE | WATCH_EV_RESYNC when it is back.  An idle stream costs
 * nothing but libcurl's once-a-second wake-up in the thread.
 *
 * Threads: everything but the thread's own work happens on the caller's
 * thread; the struct's fields are private.
 */
#ifndef BOTTLED_WATCH_EVENTS_H
#define BOTTLED_WATCH_EVENTS_H

#include <stddef.h>

#include "engine.h"

struct watch_events;

struct watch_events_opts {
    const char *engine_url;  /* NULL: engine_default_url() */
    const char *instance;    /* this instance's id (the io.bottled.instance label) */
    const char *name_prefix; /* NULL: "bottle" */
};

/* What watch_events_drain() reports. */
enum {
    WATCH_EV_DRIFT = 1 << 0,  /* an event that concerns us: a pass after the settle window */
    WATCH_EV_RESYNC = 1 << 1, /* the stream is back after an outage: one full pass now */
    WATCH_EV_DOWN = 1 << 2,   /* the stream dropped or cannot be opened (once per outage) */
    WATCH_EV_LIVE = 1 << 3,   /* the stream is (again) live */
};

struct watch_events_report {
    unsigned flags;
    unsigned long n_drift; /* relevant events since the last drain */
    char first[160];       /* the first of them, "container NAME die" (printable) */
    char why[256];         /* WATCH_EV_DOWN: the engine's message; WATCH_EV_RESYNC
                            * without an outage: how the stream ended */
};

/*
 * Starts the thread.  0, or BD_E_INTERNAL when no thread or pipe can be
 * had (the watcher then runs on its resync alone).  An engine that does
 * not answer is no error here: the thread keeps trying and reports
 * WATCH_EV_DOWN.
 */
int watch_events_start(const struct watch_events_opts *o, struct watch_events **ret);
/* The fd to poll for POLLIN; then call watch_events_drain(). */
int watch_events_fd(const struct watch_events *we);
/* Empties the pipe and returns what happened since the last drain. */
void watch_events_drain(struct watch_events *we, struct watch_events_report *ret);
/* Cancels the stream, joins the thread, frees; NULL is a no-op. */
void watch_events_stop(struct watch_events *we);

/*
 * The matching rules above, pure (for the unit tests): does ev concern the
 * instance and mean possible drift?  Keeps the set of our container ids in
 * ids (adds ours, removes destroyed ones).
 */
struct watch_events_scope {
    const char *instance;
    const char *prefix; /* "<name-prefix>-" */
    struct engine_strv ids;
};
int watch_events_relevant(struct watch_events_scope *sc, const struct engine_event *ev);

#endif
