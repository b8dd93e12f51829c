/*
 * proxy_main.c - the bottle-proxy command line.
 *
 * Two modes:
 *   - `bottle-proxy --config DIR` runs the sidecar (proxy.c): explicit
 *     proxy on --listen, admin endpoint on --admin, config from DIR/current;
 *   - `bottle-proxy --check-config DIR` loads a generation exactly as the
 *     running proxy will (pconf_load()) and says whether it would be served.
 * and helper subcommands named by the first argument (cmds.h): `scan` (the
 * detectors over a file, for the git gate's hook) and `connect` (ssh's
 * ProxyCommand through the raw tunnel); and the git gate (gate.h): `gate`
 * (its smart-HTTP server) and `gate-hook` (its mirrors' pre-receive hook).
 *
 * Exit status: --check-config 0 valid, 1 invalid (diagnostics on stderr, or
 * in the JSON document with --json); --config 0 after a clean shutdown, 1
 * when start-up failed; 2 usage.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "build_config.h"
#include "cmds.h"
#include "diag.h"
#include "err.h"
#include "gate.h"
#include "pconf.h"
#include "proxy.h"
#include "signer.h"
#include "xalloc.h"

#define DEFAULT_LISTEN "0.0.0.0:9099"
#define DEFAULT_ADMIN  "127.0.0.1:9098"

static const char usage_text[] =
    "usage: bottle-proxy --config DIR [--listen ADDR:PORT] [--admin ADDR:PORT] [--verbose]\n"
    "       bottle-proxy --check-config DIR [--json]\n"
    "       bottle-proxy scan [--max-bytes N] [--label TEXT] [FILE|-]\n"
    "       bottle-proxy connect [--proxy HOST:PORT] [--token-file FILE] HOST PORT\n"
    "       bottle-proxy gate [--config FILE] [--listen ADDR:PORT] [--root DIR]\n"
    "       bottle-proxy --help | --version\n"
    "\n"
    "  --config DIR        run the proxy with the config generation DIR/current names;\n"
    "                      SIGHUP or a new 'current' reloads it, SIGTERM stops\n"
    "  --listen ADDR:PORT  the explicit proxy (CONNECT, absolute-form http:// and\n"
    "                      https://, origin-form to a route's host); default " DEFAULT_LISTEN "\n"
    "  --admin ADDR:PORT   /healthz, /config-hash, /metrics; default " DEFAULT_ADMIN "\n"
    "  --verbose           log connection state changes on stderr\n"
    "  --check-config DIR  validate a config generation and exit: DIR is the config\n"
    "                      directory (the generation its 'current' file names is\n"
    "                      checked) or one generation directory gen-<id> itself\n"
    "  --json              print the result as one JSON document on stdout\n"
    "  --help              show this help\n"
    "  --version           print the version\n"
    "  scan                the sidecar's credential detectors over a file or stdin\n"
    "                      (exit 1 naming each detector found; 'scan --help')\n"
    "  connect             ssh ProxyCommand through the raw tunnel ('connect --help')\n"
    "  gate                the git gate's smart-HTTP server ('gate --help'); its\n"
    "                      mirrors' pre-receive hook runs 'gate-hook'\n"
    "\n"
    "Audit: one JSON line per request or tunnel on stdout.\n"
    "Exit status: 0 valid / clean shutdown, 1 invalid / start-up failed, 2 usage error.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bottle-proxy: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'bottle-proxy --help'.\n");
    va_end(ap);
    return 2;
}

static void print_json(const struct diag_list *l, const struct pconf *c)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddBoolToObject(doc, "ok", c != NULL);
    cJSON_AddItemToObject(doc, "generation",
                          c ? cJSON_CreateString(c->generation) : cJSON_CreateNull());
    cJSON_AddItemToObject(doc, "config_hash",
                          c ? cJSON_CreateString(c->config_hash) : cJSON_CreateNull());
    cJSON_AddItemToObject(doc, "routes",
                          c ? cJSON_CreateNumber((double)c->n_routes) : cJSON_CreateNull());
    cJSON_AddItemToObject(doc, "secrets",
                          c ? cJSON_CreateNumber((double)c->n_secrets) : cJSON_CreateNull());
    cJSON_AddItemToObject(doc, "tunnels",
                          c ? cJSON_CreateNumber((double)c->n_tunnels) : cJSON_CreateNull());
    cJSON *arr = cJSON_AddArrayToObject(doc, "diagnostics");
    for (size_t i = 0; i < l->n; i++) {
        const struct diag *d = &l->v[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", d->path);
        cJSON_AddNumberToObject(o, "line", d->line);
        cJSON_AddNumberToObject(o, "column", d->col);
        cJSON_AddStringToObject(o, "severity", d->level == DIAG_ERROR ? "error" : "warning");
        cJSON_AddStringToObject(o, "message", d->msg);
        cJSON_AddItemToObject(o, "allowed",
                              d->allowed ? cJSON_CreateString(d->allowed) : cJSON_CreateNull());
        char *text = diag_format(d);
        cJSON_AddStringToObject(o, "text", text);
        free(text);
        cJSON_AddItemToArray(arr, o);
    }
    char *s = cJSON_Print(doc);
    printf("%s\n", s);
    cJSON_free(s);
    cJSON_Delete(doc);
}

/* A path's parent and last component, ignoring trailing slashes. */
static void split_path(const char *dir, char **ret_parent, char **ret_base)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/')
        b--;
    *ret_base = xstrndup(dir + b, n - b);
    if (b == 0)
        *ret_parent = xstrdup(".");
    else if (b == 1)
        *ret_parent = xstrdup("/");
    else
        *ret_parent = xstrndup(dir, b - 1);
}

static int check_config(const char *dir, int json)
{
    struct diag_list diags;
    diag_list_init(&diags);
    struct pconf *c = NULL;
    char *parent = NULL, *base = NULL, *probe = xasprintf("%s/current", dir);
    struct stat st;
    int r;
    if (lstat(probe, &st) == 0) {
        r = pconf_load(dir, NULL, &diags, &c);
    } else {
        free(probe);
        probe = xasprintf("%s/MANIFEST", dir);
        if (lstat(probe, &st) == 0) {
            split_path(dir, &parent, &base);
            r = pconf_load(parent, base, &diags, &c);
        } else {
            diag_error(&diags, dir, 0, 0, NULL, NULL,
                       "neither a config directory (no 'current') nor a generation (no "
                       "'MANIFEST')");
            r = BD_E_NOTFOUND;
        }
    }
    (void)r;
    diag_list_sort(&diags);
    if (json) {
        print_json(&diags, c);
    } else {
        diag_print_text(&diags, stderr);
        if (c) {
            printf("ok: generation %s, config hash %s, %zu route%s, %zu secret%s", c->generation,
                   c->config_hash, c->n_routes, c->n_routes == 1 ? "" : "s", c->n_secrets,
                   c->n_secrets == 1 ? "" : "s");
            if (c->n_tunnels)
                printf(", %zu raw tunnel%s", c->n_tunnels, c->n_tunnels == 1 ? "" : "s");
            putchar('\n');
        } else
            fprintf(stderr, "invalid: %zu error%s\n", diags.n_errors,
                    diags.n_errors == 1 ? "" : "s");
    }
    int status = c ? 0 : 1;
    pconf_unref(c);
    diag_list_release(&diags);
    free(probe);
    free(parent);
    free(base);
    return status;
}

/* "--opt VALUE" or "--opt=VALUE"; 1 if a matched, -1 on a usage error (reported). */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **ret)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0 || (a[n] != '\0' && a[n] != '='))
        return 0;
    if (*ret) {
        usage_error("%s given twice", name);
        return -1;
    }
    if (a[n] == '=') {
        *ret = a + n + 1;
    } else {
        if (*i + 1 >= argc) {
            usage_error("%s needs a value", name);
            return -1;
        }
        *ret = argv[++*i];
    }
    if (!**ret) {
        usage_error("%s needs a value", name);
        return -1;
    }
    return 1;
}

int main(int argc, char **argv)
{
    const char *check = NULL, *config = NULL, *listen = NULL, *admin = NULL;
    int json = 0, verbose = 0;
    signer_exec_entry(argc, argv); /* the CA key's process, in a fresh image */
    if (argc > 1 && !strcmp(argv[1], "scan"))
        return cmd_scan(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "connect"))
        return cmd_connect(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "gate"))
        return cmd_gate(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "gate-hook"))
        return cmd_gate_hook(argc - 1, argv + 1);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int m;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("bottle-proxy %s\n", BOTTLED_VERSION);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--verbose")) {
            verbose = 1;
        } else if ((m = opt_value(argc, argv, &i, "--check-config", &check)) != 0 ||
                   (m = opt_value(argc, argv, &i, "--config", &config)) != 0 ||
                   (m = opt_value(argc, argv, &i, "--listen", &listen)) != 0 ||
                   (m = opt_value(argc, argv, &i, "--admin", &admin)) != 0) {
            if (m < 0)
                return 2;
        } else if (a[0] == '-') {
            return usage_error("unknown option '%s'", a);
        } else {
            return usage_error("unexpected argument '%s'", a);
        }
    }
    if (check && config)
        return usage_error("%s", "--check-config and --config exclude each other");
    if (check) {
        if (listen || admin || verbose)
            return usage_error("%s", "--listen, --admin and --verbose go with --config");
        return check_config(check, json);
    }
    if (!config)
        return usage_error("%s", json ? "--json needs --check-config DIR" : "nothing to do");
    if (json)
        return usage_error("%s", "--json goes with --check-config");
    struct proxy_opts o = {
        .cfg_dir = config,
        .listen = listen ? listen : DEFAULT_LISTEN,
        .admin = admin ? admin : DEFAULT_ADMIN,
        .verbose = verbose,
    };
    return proxy_run(&o);
}
