/*
 * fuzz_engine_events.c - bytes through the engine event stream parser
 * (dk_events, engine_docker.h) as Docker and as Podman, fed whole and again
 * in pieces whose sizes come from the input, each event through the
 * watcher's matching rules (watch_events_relevant).
 *
 * Invariants: both feedings deliver the same number of events and lost
 * lines (chunking never changes what is parsed); a lost event has no
 * fields; every other one has a type and an action; the line buffer never
 * holds more than DK_EVENT_LINE_MAX bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_docker.h"
#include "fuzz_target.h"
#include "watch_events.h"

struct count {
    unsigned long events, lost;
    struct watch_events_scope sc;
};

static int on_event(const struct engine_event *ev, void *arg)
{
    struct count *c = arg;
    if (ev->lost) {
        if (ev->type || ev->action || ev->id || ev->name || ev->container || ev->attrs)
            abort();
        c->lost++;
    } else {
        if (!ev->type || !ev->action || !ev->attrs)
            abort();
        c->events++;
    }
    (void)watch_events_relevant(&c->sc, ev);
    return 0;
}

static void run(const uint8_t *data, size_t size, bool podman, size_t step, struct count *c)
{
    struct dk_events p;
    c->sc.instance = "eb7e18aec8e1";
    c->sc.prefix = "bottle-";
    dk_events_init(&p, podman, on_event, c);
    for (size_t off = 0; off < size;) {
        size_t n = step ? step : size;
        if (n > size - off)
            n = size - off;
        if (dk_events_feed(&p, (const char *)data + off, n))
            abort(); /* on_event never asks to stop */
        if (p.line.len > DK_EVENT_LINE_MAX)
            abort();
        off += n;
        if (step)
            step = 1 + (step * 7 + data[off % size]) % 97; /* varying piece sizes */
    }
    dk_events_release(&p);
    engine_strv_release(&c->sc.ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int podman = 0; podman < 2; podman++) {
        struct count whole = {0}, pieces = {0};
        run(data, size, podman, 0, &whole);
        run(data, size, podman, size ? 1 + data[0] % 13 : 1, &pieces);
        if (whole.events != pieces.events || whole.lost != pieces.lost)
            abort();
    }
    return 0;
}
