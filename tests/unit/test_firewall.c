/*
 * test_firewall.c - the host firewall's pure parts (firewall.h): the
 * rendered rules, the listing parser and the planner (converged, tampered,
 * foreign and other-instance state), the bottle list; fw_exec() on small
 * commands; and fw_sync() end to end against fake iptables binaries on
 * PATH, so none of this needs root or touches a real firewall.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "firewall.h"
#include "xalloc.h"

#define INST  "0123456789ab"
#define OTHER "ba9876543210"
#define CH    "BOTTLED-" INST
#define CHF   "BOTTLED-" INST "-F"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct fw_bottle web = {"web", "bd1111111111aa", "bd2222222222bb", "10.213.0.17"};
static const struct fw_bottle api = {"api", "bd3333333333cc", "bd4444444444dd", "10.213.0.33"};
static const struct fw_bottle db = {"db", "bd5555555555ee", "bd6666666666ff", NULL};

/* What `iptables -S` prints for web's rules (iptables-nft 1.8.9). */
#define WEB_IN                                                                                     \
    "-A " CH " -i bd1111111111aa -m comment --comment \"bottled web\" -j DROP\n"                   \
    "-A " CH " -i bd2222222222bb -m conntrack --ctstate RELATED,ESTABLISHED -m comment "           \
    "--comment \"bottled web\" -j RETURN\n"                                                        \
    "-A " CH " -d 10.213.0.17/32 -i bd2222222222bb -p udp -m udp --dport 53 -m comment "           \
    "--comment \"bottled web\" -j RETURN\n"                                                        \
    "-A " CH " -d 10.213.0.17/32 -i bd2222222222bb -p tcp -m tcp --dport 53 -m comment "           \
    "--comment \"bottled web\" -j RETURN\n"                                                        \
    "-A " CH " -i bd2222222222bb -m comment --comment \"bottled web\" -j DROP\n"
#define WEB_IN6                                                                                    \
    "-A " CH " -i bd1111111111aa -m comment --comment \"bottled web\" -j DROP\n"                   \
    "-A " CH " -i bd2222222222bb -m conntrack --ctstate RELATED,ESTABLISHED -m comment "           \
    "--comment \"bottled web\" -j RETURN\n"                                                        \
    "-A " CH " -i bd2222222222bb -m comment --comment \"bottled web\" -j DROP\n"
#define WEB_FWD                                                                                    \
    "-A " CHF " -i bd1111111111aa -o bd1111111111aa -m comment --comment \"bottled web\" -j "      \
    "ACCEPT\n"                                                                                     \
    "-A " CHF " -i bd1111111111aa ! -o bd1111111111aa -m comment --comment \"bottled web\" -j "    \
    "DROP\n"

/* A Docker + netavark host, as listed on our machine, before anything of ours. */
#define POLICIES "-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n"
#define FOREIGN_CHAINS                                                                             \
    "-N DOCKER\n-N DOCKER-ISOLATION-STAGE-1\n-N DOCKER-ISOLATION-STAGE-2\n-N DOCKER-USER\n"        \
    "-N NETAVARK_FORWARD\n"
#define FOREIGN_FORWARD                                                                            \
    "-A FORWARD -j DOCKER-USER\n"                                                                  \
    "-A FORWARD -j DOCKER-ISOLATION-STAGE-1\n"                                                     \
    "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"                 \
    "-A FORWARD -o docker0 -j DOCKER\n"                                                            \
    "-A FORWARD -m comment --comment \"netavark firewall plugin rules\" -j NETAVARK_FORWARD\n"
#define FOREIGN_RULES                                                                              \
    "-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2\n"            \
    "-A DOCKER-ISOLATION-STAGE-1 -j RETURN\n"                                                      \
    "-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP\n"                                             \
    "-A DOCKER-USER -j RETURN\n"
/* Another instance of bottled on the same host. */
#define OTHER_STATE "-N BOTTLED-" OTHER "\n-N BOTTLED-" OTHER "-F\n"
#define OTHER_RULES                                                                                \
    "-A BOTTLED-" OTHER " -i bd7777777777aa -m comment --comment \"bottled zzz\" -j DROP\n"        \
    "-A BOTTLED-" OTHER "-F -i bd7777777777aa ! -o bd7777777777aa -m comment --comment "           \
    "\"bottled zzz\" -j DROP\n"

/* web alone, converged, among foreign rules and another instance. */
/* clang-format off */
static const char converged_web[] = POLICIES FOREIGN_CHAINS OTHER_STATE
    "-N " CH "\n"
    "-N " CHF "\n"
    "-A INPUT -j " CH "\n"
    "-A INPUT -j BOTTLED-" OTHER "\n"
    "-A FORWARD -j " CHF "\n"
    "-A FORWARD -j BOTTLED-" OTHER "-F\n"
    FOREIGN_FORWARD FOREIGN_RULES OTHER_RULES WEB_IN WEB_FWD;
/* clang-format on */

static char *render(enum fw_family f, const struct fw_bottle *b, size_t n)
{
    struct buf out;
    buf_init(&out, 1 << 20);
    assert_int_equal(fw_render(f, INST, b, n, &out), 0);
    return buf_detach(&out, NULL);
}

static char *plan_of(enum fw_family f, const struct fw_bottle *b, size_t n, const char *listing)
{
    struct buf out;
    buf_init(&out, 1 << 20);
    int rc = fw_plan(f, INST, b, n, listing, strlen(listing), &out);
    if (rc != 0)
        print_error("fw_plan: %s\n", bd_strerror(rc));
    assert_int_equal(rc, 0);
    return buf_detach(&out, NULL);
}

/* s with the first occurrence of what replaced by with. */
static char *replace(const char *s, const char *what, const char *with)
{
    const char *at = strstr(s, what);
    assert_non_null(at);
    return xasprintf("%.*s%s%s", (int)(at - s), s, with, at + strlen(what));
}

static void assert_plan(const char *got, const char *want)
{
    if (strcmp(got, want) != 0)
        print_error("plan:\n%s\nwanted:\n%s\n", got, want);
    assert_string_equal(got, want);
}

/* ---------------------------------------------------------------- render */

static void test_render_none(void **state)
{
    char *s = render(FW_IPV4, NULL, 0);
    assert_string_equal(s, "");
    free(s);
}

static void test_render_one(void **state)
{
    char *s = render(FW_IPV4, &web, 1);
    assert_string_equal(s, WEB_IN WEB_FWD);
    free(s);
    s = render(FW_IPV6, &web, 1);
    assert_string_equal(s, WEB_IN6 WEB_FWD);
    free(s);
}

static void test_render_three_sorted(void **state)
{
    const struct fw_bottle in[] = {web, db, api};
    char *s = render(FW_IPV4, in, 3);
    /* api, db, web; db has no gateway, so no DNS rules */
    const char *a = strstr(s, "bottled api"), *d = strstr(s, "bottled db"),
               *w = strstr(s, "bottled web");
    assert_true(a && d && w && a < d && d < w);
    size_t lines = 0, dns = 0;
    for (const char *p = s; *p; p++)
        lines += *p == '\n';
    for (const char *p = s; (p = strstr(p, "--dport 53")) != NULL; p++)
        dns++;
    assert_int_equal(lines, 5 + 3 + 5 + 2 * 3); /* INPUT rules, then two FORWARD rules each */
    assert_int_equal(dns, 4);
    /* the INPUT chain comes first, whole */
    assert_true(strstr(s, "-A " CHF " ") > strstr(s, "bottled web\" -j DROP\n-A " CH " -i bd2"));
    char *again = NULL;
    const struct fw_bottle in2[] = {api, web, db};
    again = render(FW_IPV4, in2, 3);
    assert_string_equal(s, again);
    free(again);
    free(s);
    s = render(FW_IPV6, in, 3);
    assert_null(strstr(s, "--dport"));
    free(s);
}

static void test_render_refuses(void **state)
{
    struct buf out;
    struct fw_bottle b;
    const struct fw_bottle twice[] = {web, web};
    const struct fw_bottle shared[] = {web, {"api", "bd3333333333cc", "bd1111111111aa", NULL}};

    buf_init(&out, 1 << 20);
    assert_int_equal(fw_render(FW_IPV4, "0123456789AB", &web, 1, &out), BD_E_INVAL);
    assert_int_equal(fw_render(FW_IPV4, "0123456789a", &web, 1, &out), BD_E_INVAL);
    assert_int_equal(fw_render(FW_IPV4, NULL, &web, 1, &out), BD_E_INVAL);
    assert_int_equal(fw_render(FW_IPV4, INST, twice, 2, &out), BD_E_INVAL);
    assert_int_equal(fw_render(FW_IPV4, INST, shared, 2, &out), BD_E_INVAL);
    assert_int_equal(fw_render(FW_IPV4, INST, NULL, 1, &out), BD_E_INVAL);

    static const char *const bad_names[] = {"Web", "-web", "web\"", "web x", "", NULL};
    for (size_t i = 0; i < N(bad_names); i++) {
        b = web;
        b.bottle = bad_names[i];
        assert_int_equal(fw_render(FW_IPV4, INST, &b, 1, &out), BD_E_INVAL);
    }
    static const char *const bad_ifs[] = {
        "bd+", "bd1111111111aa0x", "", ".", "..", "bd 1", "bd\"1", "bd/1", "bd!", NULL,
    };
    for (size_t i = 0; i < N(bad_ifs); i++) {
        b = web;
        b.int_bridge = bad_ifs[i];
        assert_int_equal(fw_render(FW_IPV4, INST, &b, 1, &out), BD_E_INVAL);
        b = web;
        b.egr_bridge = bad_ifs[i];
        assert_int_equal(fw_render(FW_IPV4, INST, &b, 1, &out), BD_E_INVAL);
    }
    b = web;
    b.egr_bridge = b.int_bridge;
    assert_int_equal(fw_render(FW_IPV4, INST, &b, 1, &out), BD_E_INVAL);
    static const char *const bad_gws[] = {"fd00::1", "10.0.0", "10.0.0.1/32", "",
                                          "1.2.3.4 -j ACCEPT"};
    for (size_t i = 0; i < N(bad_gws); i++) {
        b = web;
        b.egr_gateway = bad_gws[i];
        assert_int_equal(fw_render(FW_IPV4, INST, &b, 1, &out), BD_E_INVAL);
    }
    assert_int_equal(out.len, 0);
    buf_release(&out);
}

/* ------------------------------------------------------------------ plan */

static const char fresh_web[] = "*filter\n"
                                ":" CH " - [0:0]\n"
                                "-F " CH "\n" WEB_IN ":" CHF " - [0:0]\n"
                                "-F " CHF "\n" WEB_FWD "-I INPUT 1 -j " CH "\n"
                                "-I FORWARD 1 -j " CHF "\n"
                                "COMMIT\n";

static void test_plan_fresh(void **state)
{
    char *p = plan_of(FW_IPV4, &web, 1, "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n");
    assert_plan(p, fresh_web);
    free(p);
    /* an empty listing is the same */
    p = plan_of(FW_IPV4, &web, 1, "");
    assert_plan(p, fresh_web);
    free(p);
}

static void test_plan_converged(void **state)
{
    char *p = plan_of(FW_IPV4, &web, 1, converged_web);
    assert_string_equal(p, "");
    free(p);
    /* comments, a missing final newline */
    char *l = xasprintf("# Warning: iptables-legacy tables present\n%.*s",
                        (int)strlen(converged_web) - 1, converged_web);
    p = plan_of(FW_IPV4, &web, 1, l);
    assert_string_equal(p, "");
    free(p);
    free(l);
}

static void test_plan_missing_rule(void **state)
{
    char *l =
        replace(converged_web,
                "-A " CH " -i bd2222222222bb -m comment --comment \"bottled web\" -j DROP\n", "");
    char *p = plan_of(FW_IPV4, &web, 1, l);
    /* only our INPUT chain is rewritten; the jumps and the FORWARD chain stay */
    assert_plan(p, "*filter\n:" CH " - [0:0]\n-F " CH "\n" WEB_IN "COMMIT\n");
    free(p);
    free(l);
}

static void test_plan_extra_rule(void **state)
{
    char *l = replace(converged_web, WEB_FWD, WEB_FWD "-A " CHF " -j ACCEPT\n");
    char *p = plan_of(FW_IPV4, &web, 1, l);
    assert_plan(p, "*filter\n:" CHF " - [0:0]\n-F " CHF "\n" WEB_FWD "COMMIT\n");
    free(p);
    free(l);
    /* rules in another order differ too */
    l = replace(converged_web, WEB_IN, WEB_IN6);
    p = plan_of(FW_IPV4, &web, 1, l);
    assert_plan(p, "*filter\n:" CH " - [0:0]\n-F " CH "\n" WEB_IN "COMMIT\n");
    free(p);
    free(l);
}

static void test_plan_jump_not_first(void **state)
{
    char *l = replace(converged_web, "-A INPUT -j " CH "\n",
                      "-A INPUT -s 192.0.2.1/32 -j ACCEPT\n-A INPUT -j " CH "\n");
    char *p = plan_of(FW_IPV4, &web, 1, l);
    assert_plan(p, "*filter\n-D INPUT -j " CH "\n-I INPUT 1 -j " CH "\nCOMMIT\n");
    free(p);
    free(l);
    /* missing altogether */
    l = replace(converged_web, "-A FORWARD -j " CHF "\n", "");
    p = plan_of(FW_IPV4, &web, 1, l);
    assert_plan(p, "*filter\n-I FORWARD 1 -j " CHF "\nCOMMIT\n");
    free(p);
    free(l);
    /* at position 1 but with a match: not our jump, and deleted by its spec */
    l = replace(converged_web, "-A INPUT -j " CH "\n", "-A INPUT -i eth0 -j " CH "\n");
    p = plan_of(FW_IPV4, &web, 1, l);
    assert_plan(p, "*filter\n-D INPUT -i eth0 -j " CH "\n-I INPUT 1 -j " CH "\nCOMMIT\n");
    free(p);
    free(l);
}

static void test_plan_duplicate_jumps(void **state)
{
    char *l = replace(converged_web, FOREIGN_FORWARD,
                      FOREIGN_FORWARD "-A FORWARD -j " CHF "\n-A INPUT -j " CH "\n");
    char *p = plan_of(FW_IPV4, &web, 1, l);
    assert_plan(p, "*filter\n"
                   "-D INPUT -j " CH "\n-D INPUT -j " CH "\n-I INPUT 1 -j " CH "\n"
                   "-D FORWARD -j " CHF "\n-D FORWARD -j " CHF "\n-I FORWARD 1 -j " CHF "\n"
                   "COMMIT\n");
    free(p);
    free(l);
    /* a stray jump from a foreign chain, or to the wrong hook, is ours to delete */
    l = replace(converged_web, "-A DOCKER-USER -j RETURN\n",
                "-A DOCKER-USER -g " CH "\n-A DOCKER-USER -j RETURN\n-A OUTPUT -j " CHF "\n");
    p = plan_of(FW_IPV4, &web, 1, l);
    assert_plan(p, "*filter\n"
                   "-D INPUT -j " CH "\n-D DOCKER-USER -g " CH "\n-I INPUT 1 -j " CH "\n"
                   "-D FORWARD -j " CHF "\n-D OUTPUT -j " CHF "\n-I FORWARD 1 -j " CHF "\n"
                   "COMMIT\n");
    free(p);
    free(l);
}

static void test_plan_lookalikes(void **state)
{
    /* a comment that mentions our chain is not a jump; a chain named like
     * ours plus a suffix is not ours; quoting with escapes is understood */
    char *l = replace(converged_web, FOREIGN_RULES,
                      FOREIGN_RULES "-A DOCKER-USER -m comment --comment \"see -j " CH
                                    " \\\"x\\\"\" -j RETURN\n"
                                    "-N " CH "-X\n-A " CH "-X -j DROP\n-A INPUT -j " CH "-X\n");
    char *p = plan_of(FW_IPV4, &web, 1, l);
    assert_string_equal(p, "");
    free(p);
    free(l);
}

static void test_plan_other_instance(void **state)
{
    /* converged_web carries another instance's chains and jumps (ahead of
     * ours in FORWARD); neither the sync nor the removal names them */
    char *p = plan_of(FW_IPV4, &web, 1, converged_web);
    assert_string_equal(p, "");
    free(p);
    char *l = replace(converged_web, "-A INPUT -j " CH "\n-A INPUT -j BOTTLED-" OTHER "\n",
                      "-A INPUT -j BOTTLED-" OTHER "\n-A INPUT -j " CH "\n");
    p = plan_of(FW_IPV4, &web, 1, l);
    assert_plan(p, "*filter\n-D INPUT -j " CH "\n-I INPUT 1 -j " CH "\nCOMMIT\n");
    free(p);
    free(l);
    p = plan_of(FW_IPV4, NULL, 0, converged_web);
    assert_plan(p, "*filter\n"
                   "-D INPUT -j " CH "\n-D FORWARD -j " CHF "\n"
                   "-F " CH "\n-F " CHF "\n-X " CH "\n-X " CHF "\n"
                   "COMMIT\n");
    assert_null(strstr(p, OTHER));
    free(p);
}

static void test_plan_bottles_change(void **state)
{
    /* api added: both chains rewritten, jumps kept */
    const struct fw_bottle two[] = {web, api};
    char *p = plan_of(FW_IPV4, two, 2, converged_web);
    assert_non_null(strstr(p, ":" CH " - [0:0]\n"));
    assert_non_null(strstr(p, ":" CHF " - [0:0]\n"));
    assert_non_null(strstr(p, "bottled api"));
    assert_null(strstr(p, "-I "));
    assert_null(strstr(p, "-D "));
    free(p);
    /* web dropped in favour of api: web's rules go with it */
    p = plan_of(FW_IPV4, &api, 1, converged_web);
    assert_null(strstr(p, "bottled web"));
    free(p);
}

static void test_plan_remove(void **state)
{
    char *p = plan_of(FW_IPV4, NULL, 0, POLICIES FOREIGN_CHAINS FOREIGN_FORWARD FOREIGN_RULES);
    assert_string_equal(p, "");
    free(p);
    /* one chain left over, with a stray reference */
    p = plan_of(FW_IPV6, NULL, 0,
                POLICIES "-N " CHF "\n-A FORWARD -j " CHF "\n-A OUTPUT -j " CHF "\n");
    assert_plan(p, "*filter\n-D FORWARD -j " CHF "\n-D OUTPUT -j " CHF "\n-F " CHF "\n-X " CHF
                   "\nCOMMIT\n");
    free(p);
}

static void test_plan_bad_listing(void **state)
{
    static const char *const bad[] = {
        "garbage\n",
        "-P INPUT ACCEPT\n-Z INPUT\n",
        "-A INPUT -m comment --comment \"unterminated -j ACCEPT\n",
        "-N " CH " extra\n",
        "-A  -j DROP\n",
        "-A\n",
    };
    struct buf out;
    buf_init(&out, 1 << 20);
    for (size_t i = 0; i < N(bad); i++) {
        int rc = fw_plan(FW_IPV4, INST, &web, 1, bad[i], strlen(bad[i]), &out);
        if (rc != BD_E_PROTO)
            print_error("listing %zu: %s\n", i, bd_strerror(rc));
        assert_int_equal(rc, BD_E_PROTO);
        assert_int_equal(out.len, 0);
    }
    /* an embedded NUL */
    assert_int_equal(fw_plan(FW_IPV4, INST, &web, 1, "-N X\0Y\n", 7, &out), BD_E_PROTO);
    /* the listing's length is honoured, no terminator needed */
    assert_int_equal(
        fw_plan(FW_IPV4, INST, &web, 1, converged_web, sizeof(converged_web) - 1, &out), 0);
    assert_int_equal(out.len, 0);
    buf_release(&out);
}

static void test_plan_restore_cap(void **state)
{
    struct buf out;
    buf_init(&out, 64);
    assert_int_equal(fw_plan(FW_IPV4, INST, &web, 1, "", 0, &out), BD_E_TOO_BIG);
    assert_int_equal(out.len, 0);
    buf_release(&out);
}

/* --------------------------------------------------------------- bottles */

static void test_listing_bottles(void **state)
{
    const struct fw_bottle two[] = {web, api};
    char *r = render(FW_IPV4, two, 2);
    char *l = xasprintf("%s%s-A " CH " -m comment --comment \"something else\" -j DROP\n",
                        converged_web, r);
    char **names = NULL;
    size_t n = 0;

    assert_int_equal(fw_listing_bottles(INST, l, strlen(l), &names, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "api");
    assert_string_equal(names[1], "web");
    /* a second family's listing adds without duplicates */
    assert_int_equal(fw_listing_bottles(INST, converged_web, strlen(converged_web), &names, &n), 0);
    assert_int_equal(n, 2);
    fw_names_free(names, n);

    names = NULL;
    n = 0;
    assert_int_equal(fw_listing_bottles(OTHER, converged_web, strlen(converged_web), &names, &n),
                     0);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "zzz");
    fw_names_free(names, n);

    names = NULL;
    n = 0;
    assert_int_equal(fw_listing_bottles(INST, POLICIES, strlen(POLICIES), &names, &n), 0);
    assert_int_equal(n, 0);
    assert_null(names);
    assert_int_equal(fw_listing_bottles(INST, "junk\n", 5, &names, &n), BD_E_PROTO);
    free(l);
    free(r);
}

/* ----------------------------------------------------------------- exec */

static char *run(const char *const argv[], const char *in, size_t in_len, size_t cap, int timeout,
                 int want, char *err, size_t errlen)
{
    struct buf out;
    buf_init(&out, cap);
    int rc = fw_exec(argv, in, in_len, &out, timeout, err, errlen);
    if (rc != want)
        print_error("fw_exec %s: %s (%s)\n", argv[0], bd_strerror(rc), err);
    assert_int_equal(rc, want);
    return buf_detach(&out, NULL);
}

static void test_exec(void **state)
{
    char err[512];
    const char *echo[] = {"sh", "-c", "echo out; echo first >&2; echo >&2; echo second >&2; exit 3",
                          NULL};
    char *o = run(echo, NULL, 0, 1 << 20, 5000, BD_E_IO, err, sizeof(err));
    assert_string_equal(o, "out\n");
    assert_string_equal(err, "sh -c echo out; echo first >&2; echo >&2; echo second >&2; exit 3 "
                             "failed (exit 3): first second");
    free(o);

    const char *missing[] = {"bottled-no-such-binary", "-w", NULL};
    o = run(missing, NULL, 0, 1 << 20, 5000, BD_E_NOTFOUND, err, sizeof(err));
    assert_string_equal(err, "bottled-no-such-binary -w: 'bottled-no-such-binary' not found in "
                             "PATH, /usr/sbin or /sbin");
    free(o);

    /* stdin through the pipe, bigger than a pipe buffer */
    size_t big = 1 << 20;
    char *in = xmalloc(big);
    for (size_t i = 0; i < big; i++)
        in[i] = (char)('a' + i % 26);
    const char *cat[] = {"cat", NULL};
    o = run(cat, in, big, 2 << 20, 10000, 0, err, sizeof(err));
    assert_memory_equal(o, in, big);
    assert_string_equal(err, "");
    free(o);

    /* the output cap kills the child */
    o = run(cat, in, big, 1000, 10000, BD_E_TOO_BIG, err, sizeof(err));
    assert_non_null(strstr(err, "output over 1000 bytes"));
    free(o);

    /* a child that never reads its stdin does not kill us with SIGPIPE */
    const char *tru[] = {"true", NULL};
    o = run(tru, in, big, 1000, 10000, 0, err, sizeof(err));
    free(o);
    free(in);

    /* a signal is reported as such */
    const char *sig[] = {"sh", "-c", "kill -9 $$", NULL};
    o = run(sig, NULL, 0, 1000, 5000, BD_E_IO, err, sizeof(err));
    assert_non_null(strstr(err, "killed by signal 9"));
    free(o);
}

static void test_exec_timeout(void **state)
{
    char err[512];
    const char *slp[] = {"sleep", "10", NULL};
    time_t t0 = time(NULL);
    char *o = run(slp, NULL, 0, 1000, 300, BD_E_UNAVAIL, err, sizeof(err));
    assert_true(time(NULL) - t0 < 5);
    assert_string_equal(err, "sleep 10 timed out after 300 ms");
    free(o);
}

static void test_exec_sbin_fallback(void **state)
{
    char err[512];
    const char *prog = NULL;
    if (access("/usr/sbin/ldconfig", X_OK) == 0 || access("/sbin/ldconfig", X_OK) == 0)
        prog = "ldconfig";
    if (prog == NULL)
        skip();
    char *saved = xstrdup(getenv("PATH") ? getenv("PATH") : "");
    setenv("PATH", "/nonexistent", 1);
    const char *argv[] = {prog, "--version", NULL};
    char *o = run(argv, NULL, 0, 1 << 20, 10000, 0, err, sizeof(err));
    free(o);
    setenv("PATH", saved, 1);
    free(saved);
}

/* --------------------------------------------- fw_sync with fake binaries */

struct fake {
    char dir[64];
    char *saved_path;
};

static void write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
    char *p = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(p, mode), 0);
    free(p);
}

static char *read_file(const char *dir, const char *name)
{
    struct buf b;
    char *p = xasprintf("%s/%s", dir, name);
    buf_init(&b, 1 << 20);
    int rc = buf_read_file(&b, p);
    free(p);
    if (rc < 0) {
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b, NULL);
}

/*
 * All four binaries are faked, always: a real one found in /usr/sbin must
 * never run from a unit test.  iptables prints DIR/v4.listing (ip6tables
 * v6.listing) and logs its argv; the restores save their stdin and exit
 * with the content of DIR/restore.rc (default 0) after printing
 * DIR/restore.err to stderr.
 */
static int fake_setup(void **state)
{
    struct fake *f = xcalloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_firewall.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->saved_path = xstrdup(getenv("PATH") ? getenv("PATH") : "");
    static const char *const fam[][2] = {{"iptables", "v4"}, {"ip6tables", "v6"}};
    for (int i = 0; i < 2; i++) {
        char *lister = xasprintf("#!/bin/sh\necho \"$0 $*\" >>'%s/log'\ncat '%s/%s.listing'\n",
                                 f->dir, f->dir, fam[i][1]);
        char *restorer = xasprintf("#!/bin/sh\necho \"$0 $*\" >>'%s/log'\ncat >'%s/%s.restore'\n"
                                   "cat '%s/restore.err' >&2 2>/dev/null\n"
                                   "exit $(cat '%s/restore.rc' 2>/dev/null || echo 0)\n",
                                   f->dir, f->dir, fam[i][1], f->dir, f->dir);
        char *rname = xasprintf("%s-restore", fam[i][0]);
        write_file(f->dir, fam[i][0], lister, 0755);
        write_file(f->dir, rname, restorer, 0755);
        free(lister);
        free(restorer);
        free(rname);
    }
    /* the fakes come first; sh needs cat */
    char *path = xasprintf("%s:/usr/bin:/bin", f->dir);
    setenv("PATH", path, 1);
    free(path);
    *state = f;
    return 0;
}

static int fake_teardown(void **state)
{
    struct fake *f = *state;
    static const char *const files[] = {"iptables",          "ip6tables",  "iptables-restore",
                                        "ip6tables-restore", "v4.listing", "v6.listing",
                                        "v4.restore",        "v6.restore", "restore.rc",
                                        "restore.err",       "log"};
    setenv("PATH", f->saved_path, 1);
    for (size_t i = 0; i < N(files); i++) {
        char *p = xasprintf("%s/%s", f->dir, files[i]);
        unlink(p);
        free(p);
    }
    rmdir(f->dir);
    free(f->saved_path);
    free(f);
    return 0;
}

static void test_sync_fake(void **state)
{
    struct fake *f = *state;
    struct fw_stats st;
    char err[512];
    char *v6 = replace(converged_web, WEB_IN, WEB_IN6);

    write_file(f->dir, "v4.listing", converged_web, 0644);
    write_file(f->dir, "v6.listing", v6, 0644);
    assert_int_equal(fw_sync(INST, &web, 1, &st, err, sizeof(err)), 0);
    assert_int_equal(st.listings, 2);
    assert_int_equal(st.applies, 0);
    assert_string_equal(err, "");
    char *log = read_file(f->dir, "log");
    char *want =
        xasprintf("%s/iptables -w -t filter -S\n%s/ip6tables -w -t filter -S\n", f->dir, f->dir);
    assert_string_equal(log, want);
    free(log);
    free(want);
    assert_null(read_file(f->dir, "v4.restore"));

    /* api added: both families applied, with what fw_plan says */
    const struct fw_bottle two[] = {web, api};
    assert_int_equal(fw_sync(INST, two, 2, &st, err, sizeof(err)), 0);
    assert_int_equal(st.listings, 2);
    assert_int_equal(st.applies, 2);
    char *got = read_file(f->dir, "v4.restore");
    char *planned = plan_of(FW_IPV4, two, 2, converged_web);
    assert_string_equal(got, planned);
    free(got);
    free(planned);
    got = read_file(f->dir, "v6.restore");
    planned = plan_of(FW_IPV6, two, 2, v6);
    assert_string_equal(got, planned);
    free(got);
    free(planned);
    log = read_file(f->dir, "log");
    assert_non_null(strstr(log, "/iptables-restore -w --noflush\n"));
    assert_non_null(strstr(log, "/ip6tables-restore -w --noflush\n"));
    free(log);

    /* remove: both families have ours */
    assert_int_equal(fw_remove(INST, &st, err, sizeof(err)), 0);
    assert_int_equal(st.applies, 2);
    got = read_file(f->dir, "v6.restore");
    assert_non_null(strstr(got, "-X " CHF "\n"));
    free(got);

    /* list */
    char **names;
    size_t n;
    assert_int_equal(fw_list_bottles(INST, &names, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "web");
    fw_names_free(names, n);
    free(v6);
}

static void test_sync_fake_errors(void **state)
{
    struct fake *f = *state;
    struct fw_stats st;
    char err[512];

    /* a failing apply: the command and its stderr, one line */
    write_file(f->dir, "v4.listing", POLICIES, 0644);
    write_file(f->dir, "v6.listing", converged_web, 0644);
    write_file(f->dir, "restore.rc", "4\n", 0644);
    write_file(f->dir, "restore.err",
               "iptables-restore v1.8.9 (nf_tables): \nline 2: CHAIN_DEL failed (Device or "
               "resource busy): chain X\nTry `iptables-restore -h' for more information.\n",
               0644);
    assert_int_equal(fw_sync(INST, &web, 1, &st, err, sizeof(err)), BD_E_IO);
    assert_int_equal(st.listings, 2);
    assert_int_equal(st.applies, 2); /* ip6tables-restore ran (and failed) too */
    assert_string_equal(err, "iptables-restore -w --noflush failed (exit 4): iptables-restore "
                             "v1.8.9 (nf_tables): line 2: CHAIN_DEL failed (Device or resource "
                             "busy): chain X");

    /* a listing we do not understand: nothing applied in either family */
    write_file(f->dir, "restore.rc", "0\n", 0644);
    write_file(f->dir, "v6.listing", "what is this\n", 0644);
    assert_int_equal(fw_sync(INST, &web, 1, &st, err, sizeof(err)), BD_E_PROTO);
    assert_int_equal(st.listings, 2);
    assert_int_equal(st.applies, 0);
    assert_string_equal(err, "ip6tables -w -t filter -S: listing not understood");

    /* a listing that fails (not root) */
    write_file(f->dir, "iptables",
               "#!/bin/sh\necho 'iptables v1.8.9 (nf_tables): Could not fetch rule set "
               "generation id: Permission denied (you must be root)' >&2\nexit 4\n",
               0755);
    assert_int_equal(fw_sync(INST, &web, 1, &st, err, sizeof(err)), BD_E_IO);
    assert_int_equal(st.listings, 1);
    assert_int_equal(st.applies, 0);
    assert_string_equal(err, "iptables -w -t filter -S failed (exit 4): iptables v1.8.9 "
                             "(nf_tables): Could not fetch rule set generation id: Permission "
                             "denied (you must be root)");

    /* invalid input runs nothing */
    const struct fw_bottle twice[] = {web, web};
    assert_int_equal(fw_sync(INST, twice, 2, &st, err, sizeof(err)), BD_E_INVAL);
    assert_int_equal(st.listings, 0);
    assert_string_equal(err, "firewall: bottle 'web' given twice");
    assert_int_equal(fw_sync("nothex000000", &web, 1, &st, err, sizeof(err)), BD_E_INVAL);
    assert_int_equal(st.listings, 0);
    assert_int_equal(fw_sync(INST, &web, 1, NULL, NULL, 0), BD_E_IO); /* NULLs are fine */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_none),
        cmocka_unit_test(test_render_one),
        cmocka_unit_test(test_render_three_sorted),
        cmocka_unit_test(test_render_refuses),
        cmocka_unit_test(test_plan_fresh),
        cmocka_unit_test(test_plan_converged),
        cmocka_unit_test(test_plan_missing_rule),
        cmocka_unit_test(test_plan_extra_rule),
        cmocka_unit_test(test_plan_jump_not_first),
        cmocka_unit_test(test_plan_duplicate_jumps),
        cmocka_unit_test(test_plan_lookalikes),
        cmocka_unit_test(test_plan_other_instance),
        cmocka_unit_test(test_plan_bottles_change),
        cmocka_unit_test(test_plan_remove),
        cmocka_unit_test(test_plan_bad_listing),
        cmocka_unit_test(test_plan_restore_cap),
        cmocka_unit_test(test_listing_bottles),
        cmocka_unit_test(test_exec),
        cmocka_unit_test(test_exec_timeout),
        cmocka_unit_test(test_exec_sbin_fallback),
        cmocka_unit_test_setup_teardown(test_sync_fake, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_sync_fake_errors, fake_setup, fake_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
