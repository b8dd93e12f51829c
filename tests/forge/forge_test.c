/*
 * forge_test.c - a command-line front to the forge drivers, for
 * tests/forge/t0001-forge.sh (the test-tool of this layer).
 *
 * Usage: forge_test PROVIDER API_ROOT add REPO TITLE PUBKEY_LINE
 *        forge_test PROVIDER API_ROOT list REPO
 *        forge_test PROVIDER API_ROOT delete REPO ID
 *
 * The token comes from FORGE_TOKEN, or when that is unset from the first
 * line of stdin; never from argv.  Other settings from the environment:
 * FORGE_CA (CA bundle), FORGE_MAX_RETRIES, FORGE_MAX_WAIT (s),
 * FORGE_BACKOFF_MS, FORGE_TIMEOUT (s).
 *
 * Output: add "id N"; list "N keys" then "ID<TAB>TITLE<TAB>rw|ro<TAB>
 * FINGERPRINT|-<TAB>KEY" per key; delete "deleted N".  Every wait the
 * driver asks for is printed to stderr as "wait MS" and then waited for
 * real (the fake forge checks the timing).  A failure prints
 * "forge_test: <message> [<code>]" (and "retry_at +S" when the forge set
 * one) and exits 1; bad usage exits 2.  "mutations N" ends stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "forge.h"

static void on_wait(void *ud, long ms)
{
    (void)ud;
    fprintf(stderr, "wait %ld\n", ms);
    fflush(stderr);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static long env_long(const char *name, long def)
{
    const char *s = getenv(name);
    char *end;
    if (!s || !*s)
        return def;
    long v = strtol(s, &end, 10);
    return *end ? def : v;
}

static int usage(void)
{
    fprintf(stderr, "usage: forge_test PROVIDER API_ROOT add REPO TITLE PUBKEY_LINE\n"
                    "       forge_test PROVIDER API_ROOT list REPO\n"
                    "       forge_test PROVIDER API_ROOT delete REPO ID\n"
                    "(token in FORGE_TOKEN or on stdin)\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct forge *f = NULL;
    char err[512], line[4096];
    char *token = NULL;
    int r, rc = 1;

    if (argc < 5)
        return usage();
    const char *provider = argv[1], *root = argv[2], *cmd = argv[3], *repo = argv[4];
    if (getenv("FORGE_TOKEN")) {
        token = strdup(getenv("FORGE_TOKEN"));
    } else if (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        token = strdup(line);
        memset(line, 0, sizeof(line));
    }
    if (!token) {
        fprintf(stderr, "forge_test: no token (FORGE_TOKEN or stdin)\n");
        return 2;
    }

    r = forge_open(provider, root, token, getenv("FORGE_CA"), &f, err, sizeof(err));
    memset(token, 0, strlen(token));
    free(token);
    if (r < 0) {
        fprintf(stderr, "forge_test: %s [%s]\n", err, bd_strerror(r));
        return 1;
    }
    struct forge_opts o = forge_opts_default;
    o.max_retries = (int)env_long("FORGE_MAX_RETRIES", o.max_retries);
    o.max_wait_s = (int)env_long("FORGE_MAX_WAIT", o.max_wait_s);
    o.backoff_ms = env_long("FORGE_BACKOFF_MS", o.backoff_ms);
    o.timeout_s = (int)env_long("FORGE_TIMEOUT", o.timeout_s);
    o.sleep_ms = on_wait;
    forge_set_opts(f, &o);

    if (strcmp(cmd, "add") == 0 && argc == 7) {
        int64_t id = 0;
        r = forge_add_key(f, repo, argv[5], argv[6], &id);
        if (r == 0)
            printf("id %" PRId64 "\n", id);
    } else if (strcmp(cmd, "list") == 0 && argc == 5) {
        struct forge_key_list l = {0};
        r = forge_list_keys(f, repo, &l);
        if (r == 0) {
            printf("%zu keys\n", l.n);
            for (size_t i = 0; i < l.n; i++)
                printf("%" PRId64 "\t%s\t%s\t%s\t%s\n", l.v[i].id, l.v[i].title ? l.v[i].title : "",
                       l.v[i].read_only ? "ro" : "rw",
                       l.v[i].fingerprint ? l.v[i].fingerprint : "-", l.v[i].key ? l.v[i].key : "");
            forge_key_list_release(&l);
        }
    } else if (strcmp(cmd, "delete") == 0 && argc == 6) {
        char *end;
        long long id = strtoll(argv[5], &end, 10);
        if (*end || end == argv[5]) {
            forge_close(f);
            return usage();
        }
        r = forge_delete_key(f, repo, (int64_t)id);
        if (r == 0)
            printf("deleted %lld\n", id);
    } else {
        forge_close(f);
        return usage();
    }
    if (r < 0) {
        fprintf(stderr, "forge_test: %s [%s]\n", forge_errmsg(f), bd_strerror(r));
        if (forge_retry_at(f))
            fprintf(stderr, "retry_at +%ld\n", (long)(forge_retry_at(f) - time(NULL)));
    } else {
        rc = 0;
    }
    fprintf(stderr, "mutations %lu\n", forge_mutations(f));
    forge_close(f);
    return rc;
}
