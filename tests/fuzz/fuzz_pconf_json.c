/*
 * fuzz_pconf_json.c - routes.json bytes through the sidecar's config
 * validation (pconf_parse_json), against a fixed secrets.json.
 *
 * Invariants: a refusal comes with at least one error, an acceptance with
 * none and a snapshot whose routes are complete (host, ports, a bound
 * secret for every token_ref) and whose tunnels have a host, a port in
 * range and are unique by host and port; no diagnostic contains a secret
 * value in any letter case.
 */
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "fuzz_target.h"
#include "pconf.h"

#define V1 "fuzz-secret-value-one-8c1f"
#define V2 "fuzz-secret-value-two-77ae"
#define V3 "fuzz-secret-value-any-0d3b"

static const char secrets[] =
    "{\"version\":1,\"secrets\":["
    "{\"name\":\"CLAUDE_OAUTH_TOKEN\",\"value\":\"" V1 "\",\"hosts\":[\"api.anthropic.com\"]},"
    "{\"name\":\"GITEA_TOKEN\",\"value\":\"" V2 "\",\"hosts\":[\"*.example.com\"]},"
    "{\"name\":\"ANY\",\"value\":\"" V3 "\",\"hosts\":[\"*\"]}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct diag_list d;
    diag_list_init(&d);
    struct pconf *c = NULL;
    int r = pconf_parse_json("routes.json", (const char *)data, size, "secrets.json", secrets,
                             sizeof(secrets) - 1, &d, &c);
    if ((r == 0) != (c != NULL) || (r == 0) != (d.n_errors == 0))
        abort();
    for (size_t i = 0; i < d.n; i++)
        if (strcasestr(d.v[i].msg, V1) || strcasestr(d.v[i].msg, V2) || strcasestr(d.v[i].msg, V3))
            abort();
    for (size_t i = 0; c && i < c->n_routes; i++) {
        const struct pconf_route *rt = &c->routes[i];
        if (!rt->host || !rt->n_ports || (rt->token_ref && !rt->secret) ||
            (rt->secret && strcmp(rt->secret->name, rt->token_ref)))
            abort();
    }
    for (size_t i = 0; c && i < c->n_tunnels; i++) {
        const struct pconf_tunnel *t = &c->tunnels[i];
        if (!t->host || !*t->host || t->port < 1 || t->port > 65535)
            abort();
        for (size_t j = 0; j < i; j++)
            if (c->tunnels[j].port == t->port && !strcmp(c->tunnels[j].host, t->host))
                abort();
    }
    pconf_unref(c);
    diag_list_release(&d);
    return 0;
}
