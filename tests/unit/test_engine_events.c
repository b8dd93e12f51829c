/*
 * test_engine_events.c - the event stream parser (dk_events, engine_docker.h)
 * on lines recorded from Podman 4.3.1 and Docker 20.10.24 (shortened to the
 * fields we read), fed whole and split at every byte; its caps; and the
 * watcher's matching rules (watch_events_relevant, watch_events.h) on the
 * same events.  No engine is involved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "engine_docker.h"
#include "watch_events.h"
#include "xalloc.h"

#define S(lit) (lit), sizeof(lit) - 1

/* Docker 20.10: a container removed by hand, then a network connected. */
static const char docker_lines[] =
    "{\"status\":\"destroy\",\"id\":\"1f94f1455ac0\",\"from\":\"localhost/bottled-agent:latest\","
    "\"Type\":\"container\",\"Action\":\"destroy\",\"Actor\":{\"ID\":\"1f94f1455ac0\","
    "\"Attributes\":{\"image\":\"localhost/bottled-agent:latest\",\"io.bottled.bottle\":\"a\","
    "\"io.bottled.instance\":\"eb7e18aec8e1\",\"name\":\"pfx-a-agent\"}},\"scope\":\"local\","
    "\"time\":1795510557,\"timeNano\":1795510557812106067}\n"
    "{\"Type\":\"network\",\"Action\":\"connect\",\"Actor\":{\"ID\":\"06689103d666\","
    "\"Attributes\":{\"container\":\"7c0ffee\",\"name\":\"evx-net\",\"type\":\"bridge\"}},"
    "\"scope\":\"local\",\"time\":1795510555,\"timeNano\":1795510555961807788}\n"
    "{\"Type\":\"volume\",\"Action\":\"destroy\",\"Actor\":{\"ID\":\"pfx-a-work\",\"Attributes\":"
    "{\"driver\":\"local\"}},\"scope\":\"local\",\"time\":1795510557}\n";

/* Podman 4.3 compat: the same kinds of events, laid out its way. */
static const char podman_lines[] =
    "{\"status\":\"remove\",\"id\":\"a542c5734d61\",\"from\":\"localhost/bottled-agent:latest\","
    "\"Type\":\"container\",\"Action\":\"remove\",\"Actor\":{\"ID\":\"a542c5734d61\","
    "\"Attributes\":{\"containerExitCode\":\"0\",\"image\":\"localhost/bottled-agent:latest\","
    "\"io.bottled.bottle\":\"a\",\"io.bottled.instance\":\"eb7e18aec8e1\",\"name\":"
    "\"pfx-a-agent\",\"podId\":\"\"}},\"scope\":\"local\",\"time\":1795510549,\"timeNano\":"
    "1795510549087025006}\r\n"
    "{\"status\":\"connect\",\"id\":\"a542c5734d61\",\"Type\":\"network\",\"Action\":\"connect\","
    "\"Actor\":{\"ID\":\"a542c5734d61\",\"Attributes\":{\"containerExitCode\":\"0\",\"image\":"
    "\"\",\"name\":\"pfx-a-agent\",\"podId\":\"\"}},\"scope\":\"local\",\"time\":1795510549}\n"
    "\n"
    "{\"status\":\"remove\",\"Type\":\"volume\",\"Action\":\"remove\",\"Actor\":{\"ID\":\"\","
    "\"Attributes\":{\"containerExitCode\":\"0\",\"image\":\"\",\"name\":\"pfx-a-cfg\",\"podId\":"
    "\"\"}},\"scope\":\"local\",\"time\":1795510547}\n";

#define MAX_SEEN 16

/* What the callback saw, copied (the event's strings are borrowed). */
struct seen {
    char *type[MAX_SEEN], *action[MAX_SEEN], *id[MAX_SEEN], *name[MAX_SEEN];
    char *container[MAX_SEEN], *container_name[MAX_SEEN], *instance[MAX_SEEN];
    int64_t time_ns[MAX_SEEN];
    int lost[MAX_SEEN];
    size_t n;
    size_t stop_after; /* 0: never ask to stop */
};

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static int record(const struct engine_event *ev, void *arg)
{
    struct seen *s = arg;
    assert_true(s->n < MAX_SEEN);
    size_t i = s->n++;
    s->type[i] = dup_or_null(ev->type);
    s->action[i] = dup_or_null(ev->action);
    s->id[i] = dup_or_null(ev->id);
    s->name[i] = dup_or_null(ev->name);
    s->container[i] = dup_or_null(ev->container);
    s->container_name[i] = dup_or_null(ev->container_name);
    s->instance[i] =
        dup_or_null(ev->attrs ? engine_kvs_get(ev->attrs, "io.bottled.instance") : NULL);
    s->time_ns[i] = ev->time_ns;
    s->lost[i] = ev->lost;
    if (ev->lost)
        assert_null(ev->type);
    return s->stop_after && s->n >= s->stop_after;
}

static void seen_release(struct seen *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->type[i]);
        free(s->action[i]);
        free(s->id[i]);
        free(s->name[i]);
        free(s->container[i]);
        free(s->container_name[i]);
        free(s->instance[i]);
    }
    memset(s, 0, sizeof(*s));
}

/* Feeds text split into pieces of `step` bytes (0: whole). */
static void feed(struct seen *s, bool podman, const char *text, size_t len, size_t step)
{
    struct dk_events p;
    dk_events_init(&p, podman, record, s);
    if (!step)
        step = len;
    for (size_t off = 0; off < len; off += step)
        if (dk_events_feed(&p, text + off, off + step > len ? len - off : step))
            break;
    dk_events_release(&p);
}

static void check_docker(const struct seen *s)
{
    assert_int_equal(3, s->n);
    assert_string_equal("container", s->type[0]);
    assert_string_equal("destroy", s->action[0]);
    assert_string_equal("1f94f1455ac0", s->id[0]);
    assert_string_equal("pfx-a-agent", s->name[0]);
    assert_string_equal("1f94f1455ac0", s->container[0]);
    assert_string_equal("eb7e18aec8e1", s->instance[0]);
    assert_true(s->time_ns[0] / 1000000000 == 1795510557);
    /* a network event names the network and the container's id */
    assert_string_equal("network", s->type[1]);
    assert_string_equal("connect", s->action[1]);
    assert_string_equal("06689103d666", s->id[1]);
    assert_string_equal("evx-net", s->name[1]);
    assert_string_equal("7c0ffee", s->container[1]);
    assert_null(s->container_name[1]);
    /* a volume's actor id is its name; no timeNano: time in seconds */
    assert_string_equal("volume", s->type[2]);
    assert_string_equal("destroy", s->action[2]);
    assert_string_equal("pfx-a-work", s->name[2]);
    assert_string_equal("pfx-a-work", s->id[2]);
    assert_true(s->time_ns[2] == (int64_t)1795510557 * 1000000000);
    for (size_t i = 0; i < s->n; i++)
        assert_false(s->lost[i]);
}

static void check_podman(const struct seen *s)
{
    assert_int_equal(3, s->n);
    /* "remove" is reported as Docker's "destroy" */
    assert_string_equal("container", s->type[0]);
    assert_string_equal("destroy", s->action[0]);
    assert_string_equal("a542c5734d61", s->id[0]);
    assert_string_equal("pfx-a-agent", s->name[0]);
    assert_string_equal("eb7e18aec8e1", s->instance[0]);
    /* a network event's actor is the container; the network is not named */
    assert_string_equal("network", s->type[1]);
    assert_string_equal("connect", s->action[1]);
    assert_null(s->id[1]);
    assert_null(s->name[1]);
    assert_string_equal("a542c5734d61", s->container[1]);
    assert_string_equal("pfx-a-agent", s->container_name[1]);
    /* a volume's name is an attribute, its actor id "" */
    assert_string_equal("volume", s->type[2]);
    assert_string_equal("destroy", s->action[2]);
    assert_string_equal("pfx-a-cfg", s->name[2]);
    assert_null(s->container[2]);
}

static void test_docker_lines(void **state)
{
    (void)state;
    struct seen s = {0};
    feed(&s, false, S(docker_lines), 0);
    check_docker(&s);
    seen_release(&s);
    /* chunk boundaries anywhere give the same events */
    for (size_t step = 1; step < 64; step++) {
        feed(&s, false, S(docker_lines), step);
        check_docker(&s);
        seen_release(&s);
    }
}

static void test_podman_lines(void **state)
{
    (void)state;
    struct seen s = {0};
    for (size_t step = 0; step < 40; step++) {
        feed(&s, true, S(podman_lines), step);
        check_podman(&s);
        seen_release(&s);
    }
}

static void test_bad_lines(void **state)
{
    (void)state;
    struct seen s = {0};
    /* not JSON, not an object, no Type/Action/Actor: each one lost event;
     * blank lines nothing; a partial line at the end nothing */
    static const char in[] = "garbage\n[1,2]\n{\"Type\":\"container\"}\n"
                             "{\"Type\":\"container\",\"Action\":\"die\"}\n  \n\n"
                             "{\"Type\":\"container\",\"Action\":\"die\",\"Actor\":{}}\n"
                             "{\"Type\":\"container\",\"Act";
    feed(&s, false, S(in), 0);
    assert_int_equal(5, s.n);
    for (size_t i = 0; i < 4; i++)
        assert_true(s.lost[i]);
    assert_false(s.lost[4]);
    assert_string_equal("die", s.action[4]);
    assert_null(s.id[4]);
    assert_null(s.name[4]);
    assert_null(s.instance[4]);
    seen_release(&s);
}

static void test_line_cap(void **state)
{
    (void)state;
    struct seen s = {0};
    size_t big = DK_EVENT_LINE_MAX + 100;
    char *line = xmalloc(big + 1);
    memset(line, 'x', big);
    line[big] = '\n';
    struct dk_events p;
    dk_events_init(&p, false, record, &s);
    /* in pieces: the cap is hit in the middle of a piece */
    for (size_t off = 0; off < big + 1; off += 4096)
        assert_int_equal(
            0, dk_events_feed(&p, line + off, off + 4096 > big + 1 ? big + 1 - off : 4096));
    assert_true(p.line.len == 0);
    /* the next line is read normally */
    assert_int_equal(0, dk_events_feed(&p, S("{\"Type\":\"volume\",\"Action\":\"destroy\","
                                             "\"Actor\":{\"ID\":\"v\"}}\n")));
    dk_events_release(&p);
    free(line);
    assert_int_equal(2, s.n);
    assert_true(s.lost[0]);
    assert_false(s.lost[1]);
    assert_string_equal("v", s.name[1]);
    seen_release(&s);
}

static void test_stop(void **state)
{
    (void)state;
    struct seen s = {.stop_after = 1};
    struct dk_events p;
    dk_events_init(&p, false, record, &s);
    assert_int_equal(1, dk_events_feed(&p, S(docker_lines)));
    assert_int_equal(1, dk_events_feed(&p, S(docker_lines)));
    dk_events_release(&p);
    assert_int_equal(1, s.n);
    seen_release(&s);
}

/* ---- the watcher's matching rules */

struct ev_in {
    const char *type, *action, *id, *name, *container, *container_name, *instance;
};

static int relevant(struct watch_events_scope *sc, struct ev_in in)
{
    struct engine_kvs attrs = {0};
    if (in.instance)
        engine_kvs_add(&attrs, "io.bottled.instance", in.instance);
    struct engine_event ev = {.type = in.type,
                              .action = in.action,
                              .id = in.id,
                              .name = in.name,
                              .container = in.container,
                              .container_name = in.container_name,
                              .attrs = &attrs};
    int r = watch_events_relevant(sc, &ev);
    engine_kvs_release(&attrs);
    return r;
}

static void test_relevant(void **state)
{
    (void)state;
    struct watch_events_scope sc = {.instance = "eb7e18aec8e1", .prefix = "pfx-"};
    const char *me = "eb7e18aec8e1", *other = "0123456789ab";

    /* containers: ours by label; drift actions only */
    assert_int_equal(
        1, relevant(&sc, (struct ev_in){"container", "die", "c1", "pfx-a-agent", "c1", NULL, me}));
    assert_int_equal(
        1, relevant(&sc, (struct ev_in){"container", "stop", "c1", "pfx-a-agent", "c1", NULL, me}));
    assert_int_equal(0, relevant(&sc, (struct ev_in){"container", "start", "c1", "pfx-a-agent",
                                                     "c1", NULL, me}));
    assert_int_equal(0, relevant(&sc, (struct ev_in){"container", "create", "c2", "pfx-b-agent",
                                                     "c2", NULL, me}));
    /* a kill (our own SIGHUP reload) and exec events are no drift */
    assert_int_equal(
        0, relevant(&sc, (struct ev_in){"container", "kill", "c1", "pfx-a-proxy", "c1", NULL, me}));
    assert_int_equal(0, relevant(&sc, (struct ev_in){"container", "exec_die", "c1", "pfx-a-agent",
                                                     "c1", NULL, me}));
    /* another instance's container, even with our prefix: not ours */
    assert_int_equal(0, relevant(&sc, (struct ev_in){"container", "destroy", "c9", "pfx-a-agent",
                                                     "c9", NULL, other}));
    /* no label: the name decides */
    assert_int_equal(
        1, relevant(&sc, (struct ev_in){"container", "destroy", "c8", "pfx-x", "c8", NULL, NULL}));
    assert_int_equal(
        0, relevant(&sc, (struct ev_in){"container", "destroy", "c7", "web", "c7", NULL, NULL}));

    /* Docker network events: a foreign network connected to a container we
     * know by id (c1, c2 seen above); c1 destroyed, then forgotten */
    assert_int_equal(
        1, relevant(&sc, (struct ev_in){"network", "connect", "n1", "bridge", "c2", NULL, NULL}));
    assert_int_equal(
        0, relevant(&sc, (struct ev_in){"network", "connect", "n1", "bridge", "c3", NULL, NULL}));
    assert_int_equal(1, relevant(&sc, (struct ev_in){"container", "destroy", "c2", "pfx-b-agent",
                                                     "c2", NULL, me}));
    assert_int_equal(0, relevant(&sc, (struct ev_in){"network", "disconnect", "n1", "bridge", "c2",
                                                     NULL, NULL}));
    /* a foreign container on our network */
    assert_int_equal(1, relevant(&sc, (struct ev_in){"network", "connect", "n2", "pfx-a-int", "c3",
                                                     NULL, NULL}));
    /* Podman: the container named, the network not */
    assert_int_equal(1, relevant(&sc, (struct ev_in){"network", "connect", NULL, NULL, "c4",
                                                     "pfx-a-agent", NULL}));
    assert_int_equal(
        0, relevant(&sc, (struct ev_in){"network", "connect", NULL, NULL, "c5", "web", NULL}));
    /* networks and volumes removed: by name */
    assert_int_equal(1, relevant(&sc, (struct ev_in){"network", "destroy", "n2", "pfx-a-int", NULL,
                                                     NULL, NULL}));
    assert_int_equal(
        0, relevant(&sc, (struct ev_in){"network", "create", "n2", "pfx-a-int", NULL, NULL, NULL}));
    assert_int_equal(1, relevant(&sc, (struct ev_in){"volume", "destroy", "pfx-a-work",
                                                     "pfx-a-work", NULL, NULL, NULL}));
    assert_int_equal(0, relevant(&sc, (struct ev_in){"volume", "unmount", "pfx-a-work",
                                                     "pfx-a-work", "c1", NULL, NULL}));
    assert_int_equal(
        0, relevant(&sc, (struct ev_in){"volume", "destroy", "data", "data", NULL, NULL, NULL}));
    assert_int_equal(
        0, relevant(&sc, (struct ev_in){"image", "delete", "i1", NULL, NULL, NULL, NULL}));
    /* a lost event always counts */
    struct engine_event lost = {.lost = true};
    assert_int_equal(1, watch_events_relevant(&sc, &lost));
    engine_strv_release(&sc.ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docker_lines), cmocka_unit_test(test_podman_lines),
        cmocka_unit_test(test_bad_lines),    cmocka_unit_test(test_line_cap),
        cmocka_unit_test(test_stop),         cmocka_unit_test(test_relevant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
