/*
 * firewall_test.c - reconciler/firewall.c's entry points as a command, for
 * t0001-netns.sh, which runs it inside network namespaces it made.
 *
 * Usage:
 *   firewall_test sync INSTANCE [BOTTLE:INT:EGR[:GW]]...   fw_sync()
 *   firewall_test remove INSTANCE                          fw_remove()
 *   firewall_test list INSTANCE                            fw_list_bottles()
 *   firewall_test plan 4|6 INSTANCE [BOTTLE:...]...        fw_plan() on stdin
 * sync and remove print "listings=N applies=N" (fw_stats) on stdout, also
 * on failure; list prints one bottle per line; plan reads an `iptables -S`
 * listing on stdin and prints the restore input it would apply (nothing
 * when converged) and runs nothing.  Errors go to stderr with
 * exit status 1; usage errors exit 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "firewall.h"
#include "xalloc.h"

static int usage(void)
{
    fprintf(stderr, "usage: firewall_test sync INSTANCE [BOTTLE:INT:EGR[:GW]]...\n"
                    "       firewall_test remove INSTANCE\n"
                    "       firewall_test list INSTANCE\n"
                    "       firewall_test plan 4|6 INSTANCE [BOTTLE:INT:EGR[:GW]]... <listing\n");
    return 2;
}

/* Splits "B:I:E[:G]" in place; G is the rest (an IPv6 address stays whole). */
static int parse_bottle(char *s, struct fw_bottle *b)
{
    char *f[4] = {NULL, NULL, NULL, NULL};
    int n = 0;
    f[n++] = s;
    for (char *p = s; *p && n < 4; p++) {
        if (*p == ':') {
            *p = '\0';
            f[n++] = p + 1;
        }
    }
    if (n < 3)
        return -1;
    b->bottle = f[0];
    b->int_bridge = f[1];
    b->egr_bridge = f[2];
    b->egr_gateway = f[3];
    return 0;
}

static int plan(int argc, char **argv)
{
    enum fw_family f = strcmp(argv[0], "6") == 0 ? FW_IPV6 : FW_IPV4;
    size_t n = (size_t)argc - 2;
    struct fw_bottle *b = xcalloc(n ? n : 1, sizeof(*b));
    struct buf listing, out;
    char chunk[4096];
    size_t got;
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        if (parse_bottle(argv[2 + i], &b[i]) < 0) {
            free(b);
            return usage();
        }
    }
    buf_init(&listing, FW_OUTPUT_MAX);
    buf_init(&out, 0);
    while (rc == 0 && (got = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
        rc = buf_append(&listing, chunk, got);
    if (rc == 0)
        rc = fw_plan(f, argv[1], b, n, listing.data ? listing.data : "", listing.len, &out);
    if (rc == 0)
        fputs(buf_cstr(&out), stdout);
    else
        fprintf(stderr, "firewall_test: plan: %s\n", bd_strerror(rc));
    buf_release(&listing);
    buf_release(&out);
    free(b);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct fw_stats st = {0, 0};
    char err[512];
    int rc;

    if (argc < 3)
        return usage();
    if (strcmp(argv[1], "plan") == 0 && argc >= 4)
        return plan(argc - 2, argv + 2);
    if (strcmp(argv[1], "sync") == 0) {
        size_t n = (size_t)argc - 3;
        struct fw_bottle *b = xcalloc(n ? n : 1, sizeof(*b));
        for (size_t i = 0; i < n; i++) {
            if (parse_bottle(argv[3 + i], &b[i]) < 0) {
                free(b);
                return usage();
            }
        }
        rc = fw_sync(argv[2], b, n, &st, err, sizeof(err));
        free(b);
    } else if (strcmp(argv[1], "remove") == 0 && argc == 3) {
        rc = fw_remove(argv[2], &st, err, sizeof(err));
    } else if (strcmp(argv[1], "list") == 0 && argc == 3) {
        char **names;
        size_t n;
        rc = fw_list_bottles(argv[2], &names, &n, err, sizeof(err));
        if (rc == 0) {
            for (size_t i = 0; i < n; i++)
                printf("%s\n", names[i]);
            fw_names_free(names, n);
            return 0;
        }
        fprintf(stderr, "firewall_test: %s (%s)\n", err, bd_strerror(rc));
        return 1;
    } else {
        return usage();
    }
    printf("listings=%u applies=%u\n", st.listings, st.applies);
    if (rc < 0) {
        fprintf(stderr, "firewall_test: %s (%s)\n", err, bd_strerror(rc));
        return 1;
    }
    return 0;
}
