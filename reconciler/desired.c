/*
 * desired.c - one bottle's desired engine resources, their canonical specs
 * and spec hashes, and the /28 allocator (see desired.h).
 *
 * Invariant: a container's spec JSON is serialised from the very
 * engine_container_spec that will be sent to the engine (plus the hashes of
 * what it depends on), never assembled separately, so nothing can reach
 * the engine without being part of the hash.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "desired.h"
#include "err.h"
#include "json_canon.h"
#include "xalloc.h"

#define PROXY_URL "http://proxy:9099"
#define NO_PROXY  "localhost,127.0.0.1,::1,gate"
#define CA_FILE   DESIRED_FILES_DIR "/ca.pem"

#define HOST_GATEWAY 1
#define HOST_PROXY   2
#define HOST_GATE    3
#define HOST_AGENT   4

static const char *const role_names[ROLE__COUNT] = {"int",   "egr",  "work", "cfg",
                                                    "proxy", "gate", "agent"};

static const char *const agent_caps[] = {"CHOWN",  "DAC_OVERRIDE", "FOWNER",
                                         "SETUID", "SETGID",       "KILL"};

const char *desired_role_name(enum desired_role role)
{
    return (unsigned)role < ROLE__COUNT ? role_names[role] : "?";
}

char *desired_name(struct arena *a, const char *prefix, const char *bottle, enum desired_role role)
{
    return arena_printf(a, "%s-%s-%s", prefix ? prefix : DESIRED_DEFAULT_PREFIX, bottle,
                        desired_role_name(role));
}

void desired_bridge_name(const char *instance, const char *bottle, enum desired_role role,
                         char out[DESIRED_BRIDGE_LEN + 1])
{
    char *in = xasprintf("%s:%s:%s", instance, bottle, desired_role_name(role));
    char hex[SHA256_HEX_LEN + 1];
    sha256_hex(in, strlen(in), hex);
    free(in);
    memcpy(out, "bd", 2);
    memcpy(out + 2, hex, DESIRED_BRIDGE_LEN - 2);
    out[DESIRED_BRIDGE_LEN] = '\0';
}

/* ---- IPv4 CIDRs -------------------------------------------------------- */

/* 0: IPv4 "a.b.c.d/n"; 1: IPv6 (skipped by callers); -1: malformed. */
static int cidr4_parse(const char *s, uint32_t *ret_addr, unsigned *ret_prefix)
{
    char ip[INET_ADDRSTRLEN];
    struct in_addr in;
    const char *slash = strchr(s, '/');

    if (strchr(s, ':'))
        return 1;
    if (!slash || (size_t)(slash - s) >= sizeof(ip) || !slash[1] || strlen(slash + 1) > 2)
        return -1;
    memcpy(ip, s, (size_t)(slash - s));
    ip[slash - s] = '\0';
    if (inet_pton(AF_INET, ip, &in) != 1)
        return -1;
    unsigned p = 0;
    for (const char *c = slash + 1; *c; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        p = p * 10 + (unsigned)(*c - '0');
    }
    if (p > 32)
        return -1;
    *ret_addr = ntohl(in.s_addr);
    *ret_prefix = p;
    return 0;
}

static uint32_t mask_of(unsigned prefix)
{
    return prefix ? ~(uint32_t)0 << (32 - prefix) : 0;
}

static void addr_str(uint32_t a, char *out, size_t len)
{
    snprintf(out, len, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

struct range {
    uint64_t lo, hi; /* inclusive */
};

static int cmp_range(const void *a, const void *b)
{
    const struct range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

int subnet_alloc(const char *pool, const char *const *used, size_t n_used, size_t count,
                 char (*ret)[DESIRED_SUBNET_STR_MAX])
{
    uint32_t pa;
    unsigned pp;
    struct range *r = NULL;
    size_t nr = 0;
    int rc = BD_E_INVAL;

    if (!pool || cidr4_parse(pool, &pa, &pp) != 0 || pp > 28 || (pa & ~mask_of(pp)))
        return BD_E_INVAL;
    r = xcalloc(n_used ? n_used : 1, sizeof(*r));
    for (size_t i = 0; i < n_used; i++) {
        uint32_t a;
        unsigned p;
        if (!used[i])
            continue;
        int k = cidr4_parse(used[i], &a, &p);
        if (k < 0)
            goto out;
        if (k > 0)
            continue;
        a &= mask_of(p);
        r[nr++] = (struct range){a, (uint64_t)a + ((uint64_t)1 << (32 - p)) - 1};
    }
    qsort(r, nr, sizeof(*r), cmp_range);

    /* Sweep the pool's /28s upwards; r is sorted by lo, so every range
     * that could overlap a candidate is at or after j, except wide ones
     * that started earlier: track the highest end seen so far. */
    uint64_t pool_hi = (uint64_t)pa + ((uint64_t)1 << (32 - pp)) - 1;
    uint64_t cand = pa, covered = 0; /* covered: max hi of ranges before j, +1 */
    size_t j = 0, found = 0;
    char(*tmp)[DESIRED_SUBNET_STR_MAX] = xcalloc(count ? count : 1, sizeof(*tmp));
    while (found < count && cand + 15 <= pool_hi) {
        while (j < nr && r[j].lo <= cand + 15) {
            if (r[j].hi + 1 > covered)
                covered = r[j].hi + 1;
            j++;
        }
        if (covered > cand) {
            /* overlaps: jump past the covering range, aligned up to a /28 */
            cand = (covered + 15) & ~(uint64_t)15;
            continue;
        }
        char ip[INET_ADDRSTRLEN];
        addr_str((uint32_t)cand, ip, sizeof(ip));
        snprintf(tmp[found++], DESIRED_SUBNET_STR_MAX, "%s/28", ip);
        cand += 16;
    }
    if (found < count) {
        rc = BD_E_LIMIT;
    } else {
        memcpy(ret, tmp, count * sizeof(*tmp));
        rc = 0;
    }
    free(tmp);
out:
    free(r);
    return rc;
}

/* The host address N+host of a /28 given as "a.b.c.d/28", into the arena. */
static char *host_addr(struct arena *a, const char *subnet, unsigned host)
{
    uint32_t addr;
    unsigned p;
    char ip[INET_ADDRSTRLEN];
    if (cidr4_parse(subnet, &addr, &p) != 0)
        return NULL;
    addr_str(addr + host, ip, sizeof(ip));
    return arena_strdup(a, ip);
}

/* ---- JSON helpers ------------------------------------------------------ */

static cJSON *str_or_null(const char *s)
{
    return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static cJSON *strv_json(const struct engine_strv *sv)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < sv->n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(sv->v[i]));
    return a;
}

static cJSON *strv_or_null(const struct engine_strv *sv)
{
    return sv->n ? strv_json(sv) : cJSON_CreateNull();
}

static cJSON *kvs_json(const struct engine_kvs *kvs)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < kvs->n; i++)
        cJSON_AddStringToObject(o, kvs->v[i].key, kvs->v[i].value);
    return o;
}

/* Prints the spec, hashes it, and frees the tree. */
static void finish_spec(struct desired_resource *res, cJSON *spec)
{
    res->spec = json_canon_print(spec, 0);
    cJSON_Delete(spec);
    char *in = xasprintf("bottled-spec %d\n%s", DESIRED_HASH_SCHEME, res->spec);
    sha256_hex(in, strlen(in), res->spec_hash);
    free(in);
}

/* ---- resources --------------------------------------------------------- */

struct ctx {
    const struct bottle *b;
    const struct desired_opts *o;
    struct desired *d;
    const char *prefix;
};

/* The labels that are part of the spec (all but spec-hash, and the
 * provider only on the agent). */
static void spec_labels(const struct ctx *c, enum desired_role role, struct engine_kvs *kvs)
{
    char scheme[16];
    snprintf(scheme, sizeof(scheme), "%d", DESIRED_HASH_SCHEME);
    engine_kvs_add(kvs, LABEL_MANAGED, "true");
    engine_kvs_add(kvs, LABEL_INSTANCE, c->o->instance);
    engine_kvs_add(kvs, LABEL_BOTTLE, c->b->name);
    engine_kvs_add(kvs, LABEL_ROLE, desired_role_name(role));
    engine_kvs_add(kvs, LABEL_HASH_SCHEME, scheme);
    if (role == ROLE_AGENT && c->b->agent_provider)
        engine_kvs_add(kvs, LABEL_AGENT_PROVIDER, c->b->agent_provider);
}

/* Completes labels after hashing: spec-hash, and the provider elsewhere. */
static void final_labels(const struct ctx *c, struct desired_resource *res, struct engine_kvs *kvs)
{
    if (res->role != ROLE_AGENT && c->b->agent_provider)
        engine_kvs_add(kvs, LABEL_AGENT_PROVIDER, c->b->agent_provider);
    engine_kvs_add(kvs, LABEL_SPEC_HASH, res->spec_hash);
}

static void copy_kvs(struct engine_kvs *dst, const struct engine_kvs *src)
{
    for (size_t i = 0; i < src->n; i++)
        engine_kvs_add(dst, src->v[i].key, src->v[i].value);
}

static void build_network(struct ctx *c, enum desired_role role, const char *subnet)
{
    struct desired *d = c->d;
    struct desired_resource *res = &d->res[role];
    struct engine_network_spec *n = &res->network;
    char bridge[DESIRED_BRIDGE_LEN + 1];

    res->role = role;
    res->kind = DESIRED_NETWORK;
    res->name = desired_name(&d->arena, c->prefix, c->b->name, role);
    desired_bridge_name(c->o->instance, c->b->name, role, bridge);
    n->name = res->name;
    n->internal = role == ROLE_INT;
    n->subnet = arena_strdup(&d->arena, subnet);
    n->gateway = host_addr(&d->arena, subnet, HOST_GATEWAY);
    n->bridge_name = arena_strdup(&d->arena, bridge);
    spec_labels(c, role, &n->labels);
    engine_kvs_add(&n->labels, LABEL_SUBNET, subnet);

    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "kind", "network");
    cJSON_AddStringToObject(s, "name", n->name);
    cJSON_AddBoolToObject(s, "internal", n->internal);
    cJSON_AddStringToObject(s, "subnet", n->subnet);
    cJSON_AddStringToObject(s, "gateway", n->gateway);
    cJSON_AddStringToObject(s, "bridge_name", n->bridge_name);
    cJSON_AddItemToObject(s, "labels", kvs_json(&n->labels));
    finish_spec(res, s);
    final_labels(c, res, &n->labels);
    copy_kvs(&res->labels, &n->labels);
}

static void build_volume(struct ctx *c, enum desired_role role)
{
    struct desired *d = c->d;
    struct desired_resource *res = &d->res[role];

    res->role = role;
    res->kind = DESIRED_VOLUME;
    res->name = desired_name(&d->arena, c->prefix, c->b->name, role);
    spec_labels(c, role, &res->labels);

    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "kind", "volume");
    cJSON_AddStringToObject(s, "name", res->name);
    cJSON_AddItemToObject(s, "labels", kvs_json(&res->labels));
    finish_spec(res, s);
    final_labels(c, res, &res->labels);
}

/* The spec of a container: everything in its engine spec, and the spec
 * hashes of the networks and volumes it uses. */
static void container_spec(struct ctx *c, struct desired_resource *res, const char *files_dir,
                           const char *files_digest)
{
    const struct engine_container_spec *k = &res->container;
    const struct desired *d = c->d;
    cJSON *s = cJSON_CreateObject();

    cJSON_AddStringToObject(s, "kind", "container");
    cJSON_AddStringToObject(s, "name", k->name);
    cJSON_AddStringToObject(s, "image", k->image);
    cJSON_AddItemToObject(s, "cmd", strv_or_null(&k->cmd));
    cJSON_AddItemToObject(s, "entrypoint", strv_or_null(&k->entrypoint));
    cJSON_AddItemToObject(s, "env", strv_json(&k->env));
    cJSON_AddItemToObject(s, "labels", kvs_json(&k->labels));
    cJSON_AddItemToObject(s, "user", str_or_null(k->user));
    cJSON_AddItemToObject(s, "workdir", str_or_null(k->workdir));
    cJSON *nets = cJSON_AddArrayToObject(s, "networks");
    for (size_t i = 0; i < k->n_endpoints; i++) {
        const struct engine_endpoint_spec *ep = &k->endpoints[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", ep->network);
        cJSON_AddItemToObject(e, "ipv4", str_or_null(ep->ipv4));
        cJSON_AddItemToObject(e, "aliases", strv_json(&ep->aliases));
        const char *h = NULL;
        for (int r = 0; r < ROLE__COUNT; r++)
            if (d->res[r].kind == DESIRED_NETWORK && d->res[r].name &&
                !strcmp(d->res[r].name, ep->network))
                h = d->res[r].spec_hash;
        cJSON_AddItemToObject(e, "spec_hash", str_or_null(h));
        cJSON_AddItemToArray(nets, e);
    }
    cJSON_AddItemToObject(s, "network_mode", str_or_null(k->network_mode));
    cJSON_AddBoolToObject(s, "cap_drop_all", k->cap_drop_all);
    cJSON_AddItemToObject(s, "cap_add", strv_json(&k->cap_add));
    cJSON_AddBoolToObject(s, "no_new_privileges", k->no_new_privileges);
    cJSON_AddBoolToObject(s, "privileged", 0);
    cJSON_AddStringToObject(s, "restart", "no");
    cJSON_AddNumberToObject(s, "memory", (double)k->memory);
    cJSON_AddNumberToObject(s, "nano_cpus", (double)k->nano_cpus);
    cJSON_AddNumberToObject(s, "pids_limit", (double)k->pids_limit);
    cJSON_AddItemToObject(s, "sysctls", kvs_json(&k->sysctls));
    cJSON_AddItemToObject(s, "extra_hosts", strv_json(&k->extra_hosts));
    cJSON_AddItemToObject(s, "dns", strv_json(&k->dns));
    cJSON *mounts = cJSON_AddArrayToObject(s, "mounts");
    for (size_t i = 0; i < k->n_mounts; i++) {
        const struct engine_mount_spec *m = &k->mounts[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "volume", m->volume);
        cJSON_AddStringToObject(e, "target", m->target);
        cJSON_AddBoolToObject(e, "read_only", m->read_only);
        const char *h = NULL;
        for (int r = 0; r < ROLE__COUNT; r++)
            if (d->res[r].kind == DESIRED_VOLUME && d->res[r].name &&
                !strcmp(d->res[r].name, m->volume))
                h = d->res[r].spec_hash;
        cJSON_AddItemToObject(e, "spec_hash", str_or_null(h));
        cJSON_AddItemToArray(mounts, e);
    }
    if (files_digest) {
        cJSON *f = cJSON_AddObjectToObject(s, "files");
        cJSON_AddStringToObject(f, "dir", files_dir);
        cJSON_AddStringToObject(f, "sha256", files_digest);
    } else {
        cJSON_AddNullToObject(s, "files");
    }
    finish_spec(res, s);
}

static void build_proxy(struct ctx *c)
{
    struct desired *d = c->d;
    struct desired_resource *res = &d->res[ROLE_PROXY];
    struct engine_container_spec *k = &res->container;

    res->role = ROLE_PROXY;
    res->kind = DESIRED_CONTAINER;
    res->name = desired_name(&d->arena, c->prefix, c->b->name, ROLE_PROXY);
    k->name = res->name;
    k->image = arena_strdup(&d->arena, c->o->proxy_image_id);
    engine_strv_add(&k->cmd, "--config");
    engine_strv_add(&k->cmd, "/cfg");
    /* the admin endpoint on the egress side only: the agent cannot reach it */
    engine_strv_add(&k->cmd, "--admin");
    engine_strv_add(&k->cmd, arena_printf(&d->arena, "%s:%d",
                                          host_addr(&d->arena, c->o->egr_subnet, HOST_PROXY),
                                          DESIRED_ADMIN_PORT));
    spec_labels(c, ROLE_PROXY, &k->labels);
    /* egress first: the first network is the default route and resolver */
    k->endpoints[0].network = d->res[ROLE_EGR].name;
    k->endpoints[0].ipv4 = host_addr(&d->arena, c->o->egr_subnet, HOST_PROXY);
    k->endpoints[1].network = d->res[ROLE_INT].name;
    k->endpoints[1].ipv4 = host_addr(&d->arena, c->o->int_subnet, HOST_PROXY);
    k->n_endpoints = 2;
    k->cap_drop_all = true;
    k->no_new_privileges = true;
    engine_kvs_add(&k->sysctls, "net.ipv4.ip_forward", "0");
    engine_kvs_add(&k->sysctls, "net.ipv6.conf.all.forwarding", "0");
    if (c->o->gateway_dns)
        engine_strv_add(&k->dns, host_addr(&d->arena, c->o->egr_subnet, HOST_GATEWAY));
    k->mounts[0] = (struct engine_mount_spec){d->res[ROLE_CFG].name, "/cfg", false};
    k->n_mounts = 1;
    container_spec(c, res, NULL, NULL);
    final_labels(c, res, &k->labels);
    copy_kvs(&res->labels, &k->labels);
}

/* /gate/config.json: what the gate needs to know, nothing secret. */
static const char *gate_config(struct ctx *c)
{
    struct desired *d = c->d;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "proxy",
                            arena_printf(&d->arena, "%s:%d",
                                         host_addr(&d->arena, c->o->int_subnet, HOST_PROXY),
                                         DESIRED_PROXY_PORT));
    cJSON *rs = cJSON_AddArrayToObject(o, "repos");
    for (size_t i = 0; i < c->o->n_repos; i++) {
        const struct desired_gate_repo *r = &c->o->repos[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", r->name);
        cJSON_AddStringToObject(e, "url", r->url);
        cJSON_AddStringToObject(e, "host", r->host);
        cJSON_AddNumberToObject(e, "port", r->port ? r->port : 22);
        cJSON_AddStringToObject(e, "host_key", r->host_key ? r->host_key : "");
        cJSON_AddItemToArray(rs, e);
    }
    char *text = json_canon_print(o, 0);
    cJSON_Delete(o);
    const char *ret = arena_strdup(&d->arena, text);
    free(text);
    return ret;
}

static void build_gate(struct ctx *c)
{
    struct desired *d = c->d;
    struct desired_resource *res = &d->res[ROLE_GATE];
    struct engine_container_spec *k = &res->container;

    res->role = ROLE_GATE;
    res->kind = DESIRED_CONTAINER;
    res->name = desired_name(&d->arena, c->prefix, c->b->name, ROLE_GATE);
    k->name = res->name;
    k->image = arena_strdup(&d->arena, c->o->gate_image_id);
    spec_labels(c, ROLE_GATE, &k->labels);
    k->endpoints[0].network = d->res[ROLE_INT].name;
    k->endpoints[0].ipv4 = host_addr(&d->arena, c->o->int_subnet, HOST_GATE);
    k->n_endpoints = 1;
    k->cap_drop_all = true;
    k->no_new_privileges = true;
    k->pids_limit = 256;
    k->memory = (int64_t)1 << 30;
    engine_strv_add(
        &k->extra_hosts,
        arena_printf(&d->arena, "proxy:%s", host_addr(&d->arena, c->o->int_subnet, HOST_PROXY)));
    d->gate_config = gate_config(c);
    struct buf all;
    buf_init(&all, 0);
    buf_puts(&all, d->gate_config);
    for (size_t i = 0; i < c->o->n_repos; i++)
        buf_appendf(&all, "\nkey %s %s", c->o->repos[i].name,
                    c->o->repos[i].fingerprint ? c->o->repos[i].fingerprint : "-");
    char digest[SHA256_HEX_LEN + 1];
    sha256_hex(all.data, all.len, digest);
    buf_release(&all);
    container_spec(c, res, DESIRED_GATE_DIR, digest);
    final_labels(c, res, &k->labels);
    copy_kvs(&res->labels, &k->labels);
}

static int cmp_env(const void *a, const void *b)
{
    return strcmp((*(const struct m_env *const *)a)->name, (*(const struct m_env *const *)b)->name);
}

static void agent_env(const struct bottle *b, struct engine_strv *env)
{
    static const char *const fixed[] = {
        "http_proxy=" PROXY_URL,
        "https_proxy=" PROXY_URL,
        "no_proxy=" NO_PROXY,
        "HTTP_PROXY=" PROXY_URL,
        "HTTPS_PROXY=" PROXY_URL,
        "NO_PROXY=" NO_PROXY,
        "SSL_CERT_FILE=" CA_FILE,
        "NODE_EXTRA_CA_CERTS=" CA_FILE,
        "REQUESTS_CA_BUNDLE=" CA_FILE,
        "GIT_SSL_CAINFO=" CA_FILE,
        "CURL_CA_BUNDLE=" CA_FILE,
        "GIT_CONFIG_SYSTEM=" DESIRED_FILES_DIR "/gitconfig",
        "BOTTLE_PROMPT_FILE=" DESIRED_FILES_DIR "/prompt.md",
        "BOTTLE_SKILLS_DIR=" DESIRED_FILES_DIR "/skills",
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        engine_strv_add(env, fixed[i]);

    const struct m_env **v = xcalloc(b->n_env ? b->n_env : 1, sizeof(*v));
    for (size_t i = 0; i < b->n_env; i++)
        v[i] = &b->env[i];
    qsort(v, b->n_env, sizeof(*v), cmp_env);
    for (size_t i = 0; i < b->n_env; i++) {
        char *kv = xasprintf("%s=%s", v[i]->name, v[i]->value);
        engine_strv_add(env, kv);
        free(kv);
    }
    free(v);
}

static void build_agent(struct ctx *c)
{
    const struct bottle *b = c->b;
    struct desired *d = c->d;
    struct desired_resource *res = &d->res[ROLE_AGENT];
    struct engine_container_spec *k = &res->container;
    const char *workdir = b->workdir ? b->workdir : DEFAULT_WORKDIR;

    res->role = ROLE_AGENT;
    res->kind = DESIRED_CONTAINER;
    res->name = desired_name(&d->arena, c->prefix, b->name, ROLE_AGENT);
    k->name = res->name;
    k->image = arena_strdup(&d->arena, c->o->agent_image_id);
    if (b->has_command)
        for (size_t i = 0; i < b->n_command; i++)
            engine_strv_add(&k->cmd, b->command[i]);
    agent_env(b, &k->env);
    spec_labels(c, ROLE_AGENT, &k->labels);
    k->user = b->user ? arena_strdup(&d->arena, b->user) : NULL;
    k->workdir = arena_strdup(&d->arena, workdir);
    k->endpoints[0].network = d->res[ROLE_INT].name;
    k->endpoints[0].ipv4 = host_addr(&d->arena, c->o->int_subnet, HOST_AGENT);
    k->n_endpoints = 1;
    k->cap_drop_all = true;
    for (size_t i = 0; i < sizeof(agent_caps) / sizeof(agent_caps[0]); i++)
        engine_strv_add(&k->cap_add, agent_caps[i]);
    k->no_new_privileges = true;
    k->pids_limit = DESIRED_DEFAULT_PIDS;
    k->memory = DESIRED_DEFAULT_MEMORY;
    k->nano_cpus = 0;
    if (b->has_resources) {
        if (b->resources.pids >= 0)
            k->pids_limit = b->resources.pids;
        if (b->resources.memory_bytes >= 0)
            k->memory = b->resources.memory_bytes;
        if (b->resources.cpus_millicores >= 0)
            k->nano_cpus = b->resources.cpus_millicores * 1000000;
    }
    char *h =
        arena_printf(&d->arena, "proxy:%s", host_addr(&d->arena, c->o->int_subnet, HOST_PROXY));
    engine_strv_add(&k->extra_hosts, h);
    h = arena_printf(&d->arena, "gate:%s", host_addr(&d->arena, c->o->int_subnet, HOST_GATE));
    engine_strv_add(&k->extra_hosts, h);
    k->mounts[0] = (struct engine_mount_spec){d->res[ROLE_WORK].name, k->workdir, false};
    k->n_mounts = 1;
    container_spec(c, res, DESIRED_ARCHIVE_DIR, d->agent_tar_digest);
    final_labels(c, res, &k->labels);
    copy_kvs(&res->labels, &k->labels);
}

/* ---- checks ------------------------------------------------------------ */

static int is_hex(const char *s, size_t len)
{
    if (!s || strlen(s) != len)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!strchr("0123456789abcdef", s[i]))
            return 0;
    return 1;
}

/* Engine names: [a-zA-Z0-9][a-zA-Z0-9_.-]*; ours start lower-case. */
static int prefix_valid(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > DESIRED_PREFIX_MAX || !strchr("abcdefghijklmnopqrstuvwxyz0123456789", s[0]))
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

static int subnet28_valid(const char *s)
{
    uint32_t a;
    unsigned p;
    return s && cidr4_parse(s, &a, &p) == 0 && p == 28 && !(a & 15);
}

#define REFUSE(...) diag_error(diags, b->path, 0, 0, b->name, NULL, __VA_ARGS__)

static int check(const struct bottle *b, const struct desired_opts *o, struct diag_list *diags)
{
    size_t before = diags->n_errors;

    if (b->egress_mode == EGRESS_TRANSPARENT)
        REFUSE("egress.mode transparent is not supported yet: the bottle is not started (use "
               "egress.mode proxy)");
    if (b->supervise)
        REFUSE("supervise: true is not supported yet: the bottle is not started");
    if (b->n_repos && (!o->gate_image_id || !*o->gate_image_id))
        REFUSE("no image id for the gate image '%s'", o->gate_image ? o->gate_image : "(unset)");
    if (b->n_repos && o->n_repos != b->n_repos)
        REFUSE("the gate's repos were not resolved (%zu of %zu)", o->n_repos, b->n_repos);
    if (!is_hex(o->instance, DESIRED_INSTANCE_LEN))
        REFUSE("instance id '%s' is not 12 lower-case hex digits", o->instance);
    if (o->name_prefix && !prefix_valid(o->name_prefix))
        REFUSE("name prefix '%s' is not a valid engine name (a-z or 0-9 first, then letters, "
               "digits, '_', '.', '-'; at most %d)",
               o->name_prefix, DESIRED_PREFIX_MAX);
    if (!o->proxy_image_id || !*o->proxy_image_id)
        REFUSE("no image id for the sidecar image '%s'",
               o->proxy_image ? o->proxy_image : "(unset)");
    if (!o->agent_image_id || !*o->agent_image_id)
        REFUSE("no image id for the agent image '%s'", b->image ? b->image : DEFAULT_AGENT_IMAGE);
    if (!subnet28_valid(o->int_subnet))
        REFUSE("internal subnet '%s' is not an IPv4 /28", o->int_subnet ? o->int_subnet : "");
    if (!subnet28_valid(o->egr_subnet))
        REFUSE("egress subnet '%s' is not an IPv4 /28", o->egr_subnet ? o->egr_subnet : "");
    if (o->int_subnet && o->egr_subnet && !strcmp(o->int_subnet, o->egr_subnet))
        REFUSE("the internal and egress networks need different subnets");
    if (o->config_hash && !is_hex(o->config_hash, SHA256_HEX_LEN))
        REFUSE("config hash '%s' is not a SHA-256", o->config_hash);
    return diags->n_errors > before ? BD_E_PARSE : 0;
}

/* ---- the bottle -------------------------------------------------------- */

int desired_bottle(const struct bottle *b, const struct desired_opts *o, struct diag_list *diags,
                   struct desired **ret)
{
    struct desired *d = NULL;
    char *err = NULL;
    int r;

    if (!b || !o || !diags || !ret || b->abstract || b->failed || !b->name)
        return BD_E_INVAL;
    r = check(b, o, diags);
    if (r)
        return r;

    d = xcalloc(1, sizeof(*d));
    arena_init(&d->arena);
    d->bottle = arena_strdup(&d->arena, b->name);
    d->instance = arena_strdup(&d->arena, o->instance);
    if (o->config_hash)
        memcpy(d->config_hash, o->config_hash, SHA256_HEX_LEN + 1);
    d->n = ROLE__COUNT;

    const char **skills = xcalloc(b->n_skills ? b->n_skills : 1, sizeof(*skills));
    for (size_t i = 0; i < b->n_skills; i++)
        skills[i] = b->skills[i].name;
    struct agent_files_in in = {
        .prompt = b->body,
        .ca_cert_pem = o->ca_cert_pem,
        .ca_cert_len = o->ca_cert_len,
        .git_user_name = b->has_gate_user ? b->gate_user_name : NULL,
        .git_user_email = b->has_gate_user ? b->gate_user_email : NULL,
        .skills_root = o->skills_root,
        .skills = skills,
        .n_skills = b->n_skills,
        .repos = o->repos,
        .n_repos = b->n_repos ? o->n_repos : 0,
    };
    r = agent_files_tar(&in, &d->agent_tar, &d->agent_tar_len, &err);
    free(skills);
    if (r) {
        diag_error(diags, b->path, 0, 0, b->name, NULL, "cannot build /etc/bottle: %s", err);
        free(err);
        desired_free(d);
        return BD_E_PARSE;
    }
    sha256_hex(d->agent_tar, d->agent_tar_len, d->agent_tar_digest);

    struct ctx c = {b, o, d, o->name_prefix ? o->name_prefix : DESIRED_DEFAULT_PREFIX};
    build_network(&c, ROLE_INT, o->int_subnet);
    build_network(&c, ROLE_EGR, o->egr_subnet);
    build_volume(&c, ROLE_WORK);
    build_volume(&c, ROLE_CFG);
    build_proxy(&c);
    if (b->n_repos)
        build_gate(&c);
    build_agent(&c);
    *ret = d;
    return 0;
}

void desired_free(struct desired *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < ROLE__COUNT; i++) {
        struct desired_resource *res = &d->res[i];
        free(res->spec);
        engine_kvs_release(&res->labels);
        engine_kvs_release(&res->network.labels);
        struct engine_container_spec *k = &res->container;
        engine_strv_release(&k->cmd);
        engine_strv_release(&k->entrypoint);
        engine_strv_release(&k->env);
        engine_kvs_release(&k->labels);
        engine_strv_release(&k->cap_add);
        engine_kvs_release(&k->sysctls);
        engine_strv_release(&k->extra_hosts);
        engine_strv_release(&k->dns);
        for (size_t j = 0; j < ENGINE_MAX_ENDPOINTS; j++)
            engine_strv_release(&k->endpoints[j].aliases);
    }
    free(d->agent_tar);
    arena_release(&d->arena);
    free(d);
}
