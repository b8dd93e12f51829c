/*
 * canonical.c - a resolved bottle as canonical JSON (see canonical.h).
 */
#include <stdlib.h>
#include <string.h>

#include "canonical.h"
#include "json_canon.h"
#include "xalloc.h"

static cJSON *str_or_null(const char *s)
{
    return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static cJSON *int_or_null(int64_t v)
{
    return v >= 0 ? cJSON_CreateNumber((double)v) : cJSON_CreateNull();
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static cJSON *sorted_strings(const char **v, size_t n)
{
    const char **tmp = xcalloc(n ? n : 1, sizeof(*tmp));
    if (n)
        memcpy(tmp, v, n * sizeof(*tmp));
    qsort(tmp, n, sizeof(*tmp), cmp_str);
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        if (!i || strcmp(tmp[i - 1], tmp[i]))
            cJSON_AddItemToArray(arr, cJSON_CreateString(tmp[i]));
    free(tmp);
    return arr;
}

static cJSON *dlp_json(const struct dlp_setting *s, unsigned defaults, const char *default_action)
{
    unsigned bits = s->set ? s->detectors : defaults;
    const char *names[3];
    size_t n = 0;
    if (bits & DLP_KNOWN_SECRETS)
        names[n++] = "known_secrets";
    if (bits & DLP_NAIVE_INJECTION)
        names[n++] = "naive_injection_detection";
    if (bits & DLP_TOKEN_PATTERNS)
        names[n++] = "token_patterns";
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "action", !bits ? "off" : s->set ? "block" : default_action);
    cJSON_AddItemToObject(o, "detectors", sorted_strings(names, n));
    return o;
}

static const char *path_type_name(enum path_type t)
{
    return t == PATH_EXACT ? "exact" : t == PATH_REGEX ? "regex" : "prefix";
}

static cJSON *match_json(const struct m_match *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *headers = cJSON_AddArrayToObject(o, "headers");
    for (size_t i = 0; i < m->n_headers; i++) {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddStringToObject(h, "name", m->headers[i].name);
        cJSON_AddStringToObject(h, "type", m->headers[i].type == HEADER_REGEX ? "regex" : "exact");
        cJSON_AddStringToObject(h, "value", m->headers[i].value);
        cJSON_AddItemToArray(headers, h);
    }
    cJSON_AddItemToObject(o, "methods", sorted_strings(m->methods, m->n_methods));
    cJSON *paths = cJSON_AddArrayToObject(o, "paths");
    for (size_t i = 0; i < m->n_paths; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "type", path_type_name(m->paths[i].type));
        cJSON_AddStringToObject(p, "value", m->paths[i].value);
        cJSON_AddItemToArray(paths, p);
    }
    return o;
}

static cJSON *route_json(const struct m_route *r)
{
    cJSON *o = cJSON_CreateObject();
    if (r->auth_scheme) {
        cJSON *auth = cJSON_AddObjectToObject(o, "auth");
        cJSON_AddStringToObject(auth, "scheme", r->auth_scheme);
        cJSON_AddStringToObject(auth, "token_ref", r->token_ref);
    } else {
        cJSON_AddNullToObject(o, "auth");
    }
    cJSON *dlp = cJSON_AddObjectToObject(o, "dlp");
    cJSON_AddItemToObject(dlp, "inbound",
                          dlp_json(&r->dlp_in, DLP_NAIVE_INJECTION, r->role ? "audit" : "block"));
    cJSON_AddItemToObject(dlp, "outbound",
                          dlp_json(&r->dlp_out, DLP_TOKEN_PATTERNS | DLP_KNOWN_SECRETS, "block"));
    cJSON_AddBoolToObject(o, "git_fetch", r->git_fetch);
    cJSON_AddStringToObject(o, "host", r->host);
    cJSON *matches = cJSON_AddArrayToObject(o, "matches");
    for (size_t i = 0; i < r->n_matches; i++)
        cJSON_AddItemToArray(matches, match_json(&r->matches[i]));
    cJSON *ports = cJSON_AddArrayToObject(o, "ports");
    if (!r->ports)
        cJSON_AddItemToArray(ports, cJSON_CreateNumber(443));
    for (size_t i = 0; i < r->n_ports; i++)
        cJSON_AddItemToArray(ports, cJSON_CreateNumber(r->ports[i]));
    cJSON_AddItemToObject(o, "role", str_or_null(r->role));
    return o;
}

static int cmp_route(const void *a, const void *b)
{
    return strcmp((*(const struct m_route *const *)a)->host,
                  (*(const struct m_route *const *)b)->host);
}

static cJSON *repo_json(const struct m_repo *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "host", r->host);
    cJSON_AddItemToObject(o, "host_key", str_or_null(r->host_key));
    cJSON *key = cJSON_AddObjectToObject(o, "key");
    cJSON_AddStringToObject(key, "provider", key_provider_name(r->key.provider));
    if (r->key.provider == KEY_STATIC) {
        cJSON_AddStringToObject(key, "path", r->key.path);
    } else {
        cJSON_AddStringToObject(key, "forge_token_env", r->key.forge_token_env);
        char *url = r->key.api_url ? NULL
                    : r->key.provider == KEY_GITHUB
                        ? xstrdup("https://api.github.com")
                        : xasprintf("https://%s/api/%s", r->host,
                                    r->key.provider == KEY_GITEA ? "v1" : "v4");
        cJSON_AddStringToObject(key, "api_url", r->key.api_url ? r->key.api_url : url);
        free(url);
    }
    cJSON_AddStringToObject(o, "path", r->path);
    cJSON_AddNumberToObject(o, "port", r->port);
    cJSON_AddStringToObject(o, "repository", r->repository);
    cJSON_AddStringToObject(o, "url", r->url);
    cJSON_AddStringToObject(o, "user", r->user);
    return o;
}

cJSON *bottle_canonical(const struct bottle *b)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "abstract", b->abstract);

    cJSON *agent = cJSON_AddObjectToObject(o, "agent");
    if (b->has_command) {
        cJSON *cmd = cJSON_AddArrayToObject(agent, "command");
        for (size_t i = 0; i < b->n_command; i++)
            cJSON_AddItemToArray(cmd, cJSON_CreateString(b->command[i]));
    } else {
        cJSON_AddNullToObject(agent, "command");
    }
    cJSON_AddStringToObject(agent, "image", b->image ? b->image : DEFAULT_AGENT_IMAGE);
    if (b->has_resources) {
        cJSON *res = cJSON_AddObjectToObject(agent, "resources");
        cJSON_AddItemToObject(res, "cpus_millicores", int_or_null(b->resources.cpus_millicores));
        cJSON_AddItemToObject(res, "memory_bytes", int_or_null(b->resources.memory_bytes));
        cJSON_AddItemToObject(res, "pids", int_or_null(b->resources.pids));
    } else {
        cJSON_AddNullToObject(agent, "resources");
    }
    cJSON_AddItemToObject(agent, "user", str_or_null(b->user));
    cJSON_AddStringToObject(agent, "workdir", b->workdir ? b->workdir : DEFAULT_WORKDIR);

    cJSON_AddItemToObject(o, "agent_provider", str_or_null(b->agent_provider));

    cJSON *egress = cJSON_AddObjectToObject(o, "egress");
    cJSON_AddStringToObject(egress, "mode",
                            b->egress_mode == EGRESS_TRANSPARENT ? "transparent" : "proxy");
    const struct m_route **routes = xcalloc(b->n_routes ? b->n_routes : 1, sizeof(*routes));
    for (size_t i = 0; i < b->n_routes; i++)
        routes[i] = &b->routes[i];
    qsort(routes, b->n_routes, sizeof(*routes), cmp_route);
    cJSON *rarr = cJSON_AddArrayToObject(egress, "routes");
    for (size_t i = 0; i < b->n_routes; i++)
        cJSON_AddItemToArray(rarr, route_json(routes[i]));
    free(routes);

    cJSON *env = cJSON_AddObjectToObject(o, "env");
    for (size_t i = 0; i < b->n_env; i++)
        cJSON_AddStringToObject(env, b->env[i].name, b->env[i].value);

    cJSON *gate = cJSON_AddObjectToObject(o, "git_gate");
    cJSON *repos = cJSON_AddObjectToObject(gate, "repos");
    for (size_t i = 0; i < b->n_repos; i++)
        cJSON_AddItemToObject(repos, b->repos[i].name, repo_json(&b->repos[i]));
    if (b->has_gate_user) {
        cJSON *user = cJSON_AddObjectToObject(gate, "user");
        cJSON_AddItemToObject(user, "email", str_or_null(b->gate_user_email));
        cJSON_AddItemToObject(user, "name", str_or_null(b->gate_user_name));
    } else {
        cJSON_AddNullToObject(gate, "user");
    }

    cJSON_AddStringToObject(o, "name", b->name);
    cJSON_AddStringToObject(o, "prompt", b->body ? b->body : "");
    cJSON *skills = cJSON_AddArrayToObject(o, "skills");
    for (size_t i = 0; i < b->n_skills; i++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "digest", b->skills[i].digest);
        cJSON_AddStringToObject(s, "name", b->skills[i].name);
        cJSON_AddItemToArray(skills, s);
    }
    cJSON_AddBoolToObject(o, "supervise", b->supervise);
    return o;
}

char *bottle_canonical_text(const struct bottle *b, int pretty)
{
    cJSON *o = bottle_canonical(b);
    char *s = json_canon_print(o, pretty);
    cJSON_Delete(o);
    return s;
}
