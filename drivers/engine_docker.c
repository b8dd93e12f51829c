/*
 * engine_docker.c - the "docker" engine backend: the Docker Engine HTTP API
 * over a unix socket with libcurl, serving Docker 20.10 and Podman 4.3's
 * Docker-compatible API (engine-here.md sections 3 and 6).
 *
 * Invariants:
 *   - one curl easy handle per struct engine, reused for every request so
 *     the connection stays alive; curl_easy_reset() between requests keeps
 *     the connection and drops every per-request option;
 *   - every response body goes into a struct buf with a cap (DK_RESP_MAX,
 *     or the caller's for archives); headers we keep are capped too;
 *   - paths are prefixed with the negotiated version, min(engine, 1.41),
 *     read from the Api-Version header of /_ping;
 *   - every request that changes engine state is counted once, before it
 *     is sent (engine_count_mutation), whatever its outcome;
 *   - error messages come from the engine's `message` field and the
 *     request's method and path (names and ids only), never from a body we
 *     sent.
 *
 * Podman quirks are handled where they bite, each marked "Quirk:".
 */
#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "b64.h"
#include "engine.h"
#include "engine_docker.h"
#include "fault.h"
#include "err.h"
#include "xalloc.h"

#define DK_RESP_MAX     ((size_t)64 << 20) /* JSON responses */
#define DK_HDR_MAX      4096               /* one kept header value */
#define DK_TIMEOUT_S    60L                /* ordinary requests */
#define DK_CONNECT_S    5L
#define DK_EXEC_OUT_DEF ((size_t)1 << 20)
#define DK_MSG_MAX      300
#define DK_BRIDGE_NAME  "com.docker.network.bridge.name"
#define DK_LIBPOD       "/v4.0.0/libpod" /* Podman's own API, where the compat one is slow */

struct dk {
    CURL *curl;
    char *sock;
    char prefix[16]; /* "/v1.41" */
    char api_version[16];
    bool podman; /* Libpod-Api-Version header present on /_ping */
    /* headers of the last response we care about */
    struct buf h_api;
    struct buf h_libpod;
    struct buf h_stat;
    /* response body sink */
    struct buf *resp;
    bool resp_too_big;
    struct dk_demux *demux; /* when set, the body goes here instead */
    /* the event stream (dk_events): its parser while it runs, and what
     * engine_events_cancel() needs from another thread, under ev_mu */
    struct dk_events *evp;
    struct buf *ev_err; /* the body of a refused stream request */
    pthread_mutex_t ev_mu;
    curl_socket_t ev_fd; /* the stream's socket while it is open */
    bool ev_cancel;
};

static struct dk *DK(struct engine *e)
{
    return e->impl;
}

/* ------------------------------------------------------------ pure helpers */

int dk_parse_api_version(const char *s, size_t len, int *ret_minor)
{
    size_t i = 0;
    int minor = 0;

    while (i < len && isspace((unsigned char)s[i]))
        i++;
    if (i + 2 > len || s[i] != '1' || s[i + 1] != '.')
        return BD_E_PROTO;
    i += 2;
    size_t start = i;
    while (i < len && isdigit((unsigned char)s[i]) && i - start < 4)
        minor = minor * 10 + (s[i++] - '0');
    if (i == start)
        return BD_E_PROTO;
    while (i < len && isspace((unsigned char)s[i]))
        i++;
    if (i != len)
        return BD_E_PROTO;
    *ret_minor = minor;
    return 0;
}

void dk_urlencode(struct buf *out, const char *s, const char *keep)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
            (keep && strchr(keep, c))) {
            buf_putc(out, (char)c);
        } else {
            buf_putc(out, '%');
            buf_putc(out, hex[c >> 4]);
            buf_putc(out, hex[c & 15]);
        }
    }
}

/* Quirk: filters are URL-encoded JSON on both engines; the list form
 * {"label":["k=v"]} is understood by both (Docker also takes a map). A
 * malformed filter is a 500 on both, so it is always built here. */
void dk_label_filter(const struct engine_strv *labels, char **ret)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "label");
    for (size_t i = 0; labels && i < labels->n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(labels->v[i]));
    char *json = cJSON_PrintUnformatted(root);
    if (!json)
        abort();
    struct buf b;
    buf_init(&b, 0);
    dk_urlencode(&b, json, NULL);
    *ret = buf_detach(&b, NULL);
    cJSON_free(json);
    cJSON_Delete(root);
}

void dk_error_message(const char *body, size_t len, char *out, size_t max)
{
    out[0] = '\0';
    if (!body || !len || !max)
        return;
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *m = root ? cJSON_GetObjectItemCaseSensitive(root, "message") : NULL;
    if (cJSON_IsString(m)) {
        snprintf(out, max, "%s", m->valuestring);
    } else {
        /* not JSON (a proxy, a plain-text 404): the first line, printable */
        size_t n = 0;
        for (size_t i = 0; i < len && n + 1 < max && body[i] != '\n'; i++)
            out[n++] = isprint((unsigned char)body[i]) ? body[i] : '?';
        out[n] = '\0';
    }
    cJSON_Delete(root);
}

static char *jstr(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) && v->valuestring ? xstrdup(v->valuestring) : NULL;
}

static int64_t jint(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static bool jbool(const cJSON *obj, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

static void jkvs(const cJSON *obj, const char *key, struct engine_kvs *out)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, key);
    const cJSON *it;
    if (!cJSON_IsObject(m))
        return;
    cJSON_ArrayForEach(it, m)
    {
        if (it->string && cJSON_IsString(it))
            engine_kvs_add(out, it->string, it->valuestring);
    }
}

static void jstrv(const cJSON *obj, const char *key, struct engine_strv *out)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
    const cJSON *it;
    if (!cJSON_IsArray(a))
        return;
    cJSON_ArrayForEach(it, a)
    {
        if (cJSON_IsString(it))
            engine_strv_add(out, it->valuestring);
    }
}

static void parse_network(const cJSON *n, bool podman, struct engine_network *out)
{
    memset(out, 0, sizeof(*out));
    out->id = jstr(n, "Id");
    out->name = jstr(n, "Name");
    out->internal = jbool(n, "Internal");
    jkvs(n, "Labels", &out->labels);
    const cJSON *ipam = cJSON_GetObjectItemCaseSensitive(n, "IPAM");
    const cJSON *cfg = ipam ? cJSON_GetObjectItemCaseSensitive(ipam, "Config") : NULL;
    const cJSON *c0 = cJSON_IsArray(cfg) ? cJSON_GetArrayItem(cfg, 0) : NULL;
    if (cJSON_IsObject(c0)) {
        out->subnet = jstr(c0, "Subnet");
        out->gateway = jstr(c0, "Gateway");
    }
    /* Quirk: Podman 4.3 applies the bridge name option but reports
     * Options {} (the name is only in the libpod API's network_interface),
     * so this stays NULL there. */
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(n, "Options");
    if (cJSON_IsObject(opts))
        out->bridge_name = jstr(opts, DK_BRIDGE_NAME);
    /* Quirk: the list call of Docker never fills Containers (API >= 1.28
     * leaves it out of the list form); Podman 4.3 fills it. */
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(n, "Containers");
    out->containers_known = podman && cJSON_IsObject(cs);
    if (out->containers_known) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cs)
        {
            if (it->string)
                engine_strv_add(&out->containers, it->string);
        }
    }
}

/* One network of the libpod API's list (Podman): lower-case fields, the
 * bridge name in network_interface, no attached containers. */
static void parse_libpod_network(const cJSON *n, struct engine_network *out)
{
    memset(out, 0, sizeof(*out));
    out->id = jstr(n, "id");
    out->name = jstr(n, "name");
    out->internal = jbool(n, "internal");
    jkvs(n, "labels", &out->labels);
    const cJSON *subs = cJSON_GetObjectItemCaseSensitive(n, "subnets");
    const cJSON *s0 = cJSON_IsArray(subs) ? cJSON_GetArrayItem(subs, 0) : NULL;
    if (cJSON_IsObject(s0)) {
        out->subnet = jstr(s0, "subnet");
        out->gateway = jstr(s0, "gateway");
    }
    out->bridge_name = jstr(n, "network_interface");
}

int dk_parse_libpod_networks(const char *json, size_t len, struct engine_network_list *ret)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return BD_E_PROTO;
    }
    struct engine_network_list l = {0};
    int n = cJSON_GetArraySize(root);
    l.v = xcalloc(n ? (size_t)n : 1, sizeof(*l.v));
    const cJSON *it;
    cJSON_ArrayForEach(it, root)
    {
        if (!cJSON_IsObject(it))
            continue;
        parse_libpod_network(it, &l.v[l.n]);
        l.n++;
        if (!l.v[l.n - 1].name) {
            engine_network_list_release(&l);
            cJSON_Delete(root);
            return BD_E_PROTO;
        }
    }
    cJSON_Delete(root);
    *ret = l;
    return 0;
}

int dk_parse_networks(const char *json, size_t len, bool podman, struct engine_network_list *ret)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return BD_E_PROTO;
    }
    struct engine_network_list l = {0};
    int n = cJSON_GetArraySize(root);
    l.v = xcalloc(n ? (size_t)n : 1, sizeof(*l.v));
    const cJSON *it;
    cJSON_ArrayForEach(it, root)
    {
        if (!cJSON_IsObject(it))
            continue;
        parse_network(it, podman, &l.v[l.n]);
        if (!l.v[l.n].name) {
            l.n++;
            engine_network_list_release(&l);
            cJSON_Delete(root);
            return BD_E_PROTO;
        }
        l.n++;
    }
    cJSON_Delete(root);
    *ret = l;
    return 0;
}

int dk_parse_volumes(const char *json, size_t len, struct engine_volume_list *ret)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *vols =
        cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "Volumes") : NULL;
    if (!cJSON_IsObject(root) || (vols && !cJSON_IsArray(vols) && !cJSON_IsNull(vols))) {
        cJSON_Delete(root);
        return BD_E_PROTO;
    }
    struct engine_volume_list l = {0};
    int n = cJSON_IsArray(vols) ? cJSON_GetArraySize(vols) : 0;
    l.v = xcalloc(n ? (size_t)n : 1, sizeof(*l.v));
    const cJSON *it;
    if (cJSON_IsArray(vols)) {
        cJSON_ArrayForEach(it, vols)
        {
            if (!cJSON_IsObject(it))
                continue;
            struct engine_volume *v = &l.v[l.n++];
            v->name = jstr(it, "Name");
            v->driver = jstr(it, "Driver");
            v->mountpoint = jstr(it, "Mountpoint");
            jkvs(it, "Labels", &v->labels);
            if (!v->name) {
                engine_volume_list_release(&l);
                cJSON_Delete(root);
                return BD_E_PROTO;
            }
        }
    }
    cJSON_Delete(root);
    *ret = l;
    return 0;
}

/* NetworkSettings.Networks of a list entry or an inspect. */
static void parse_endpoints(const cJSON *obj, bool podman, struct engine_container *c)
{
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(obj, "NetworkSettings");
    const cJSON *nets = ns ? cJSON_GetObjectItemCaseSensitive(ns, "Networks") : NULL;
    const cJSON *it;
    if (!cJSON_IsObject(nets))
        return;
    int n = cJSON_GetArraySize(nets);
    c->networks = xcalloc(n ? (size_t)n : 1, sizeof(*c->networks));
    cJSON_ArrayForEach(it, nets)
    {
        if (!it->string || !cJSON_IsObject(it))
            continue;
        struct engine_endpoint *ep = &c->networks[c->n_networks++];
        ep->network = xstrdup(it->string);
        ep->network_id = jstr(it, "NetworkID");
        /* Quirk: Podman reports the network's name as NetworkID; an id
         * that is the name is no id, so callers match on the name. */
        if (ep->network_id && (podman || strcmp(ep->network_id, ep->network) == 0)) {
            free(ep->network_id);
            ep->network_id = NULL;
        }
        ep->ipv4 = jstr(it, "IPAddress");
        if (ep->ipv4 && !*ep->ipv4) {
            free(ep->ipv4);
            ep->ipv4 = NULL;
        }
        jstrv(it, "Aliases", &ep->aliases);
    }
}

static void parse_mounts(const cJSON *obj, struct engine_container *c)
{
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(obj, "Mounts");
    const cJSON *it;
    if (!cJSON_IsArray(ms))
        return;
    int n = cJSON_GetArraySize(ms);
    c->mounts = xcalloc(n ? (size_t)n : 1, sizeof(*c->mounts));
    cJSON_ArrayForEach(it, ms)
    {
        if (!cJSON_IsObject(it))
            continue;
        struct engine_mount *m = &c->mounts[c->n_mounts++];
        m->type = jstr(it, "Type");
        m->name = jstr(it, "Name");
        m->source = jstr(it, "Source");
        m->destination = jstr(it, "Destination");
        m->rw = jbool(it, "RW");
        if (m->name && !*m->name) {
            free(m->name);
            m->name = NULL;
        }
    }
}

static void parse_container(const cJSON *it, bool podman, struct engine_container *c)
{
    memset(c, 0, sizeof(*c));
    c->id = jstr(it, "Id");
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(it, "Names");
    const cJSON *n0 = cJSON_IsArray(names) ? cJSON_GetArrayItem(names, 0) : NULL;
    if (cJSON_IsString(n0))
        c->name = xstrdup(n0->valuestring + (n0->valuestring[0] == '/'));
    c->image = jstr(it, "Image");
    c->image_id = jstr(it, "ImageID");
    c->state = jstr(it, "State");
    jkvs(it, "Labels", &c->labels);
    parse_endpoints(it, podman, c);
    parse_mounts(it, c);
}

int dk_parse_containers(const char *json, size_t len, bool podman,
                        struct engine_container_list *ret)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return BD_E_PROTO;
    }
    struct engine_container_list l = {0};
    int n = cJSON_GetArraySize(root);
    l.v = xcalloc(n ? (size_t)n : 1, sizeof(*l.v));
    const cJSON *it;
    cJSON_ArrayForEach(it, root)
    {
        if (!cJSON_IsObject(it))
            continue;
        parse_container(it, podman, &l.v[l.n++]);
        if (!l.v[l.n - 1].id) {
            engine_container_list_release(&l);
            cJSON_Delete(root);
            return BD_E_PROTO;
        }
    }
    cJSON_Delete(root);
    *ret = l;
    return 0;
}

/*
 * Docker's default capability set.  Quirk: Podman 4.3's compat inspect
 * reports CapDrop relative to this same set (a default container shows
 * CapDrop [AUDIT_WRITE, MKNOD, NET_RAW], the three its own default lacks;
 * CapDrop ALL + CapAdd CHOWN shows the other 13 dropped and CapAdd []),
 * so "this set minus CapDrop plus CapAdd" is the real set on both.
 */
static const char *const docker_default_caps[] = {
    "AUDIT_WRITE",      "CHOWN",   "DAC_OVERRIDE", "FOWNER", "FSETID",  "KILL",   "MKNOD",
    "NET_BIND_SERVICE", "NET_RAW", "SETFCAP",      "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
};

static const char *cap_base(const char *c)
{
    return strncasecmp(c, "CAP_", 4) == 0 ? c + 4 : c;
}

static bool cap_in(const struct engine_strv *sv, const char *cap)
{
    for (size_t i = 0; i < sv->n; i++)
        if (strcasecmp(cap_base(sv->v[i]), cap) == 0)
            return true;
    return false;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void effective_caps(const struct engine_strv *add, const struct engine_strv *drop,
                           struct engine_strv *out)
{
    bool all = cap_in(drop, "ALL");
    for (size_t i = 0; !all && i < sizeof(docker_default_caps) / sizeof(*docker_default_caps); i++)
        if (!cap_in(drop, docker_default_caps[i]))
            engine_strv_add(out, docker_default_caps[i]);
    for (size_t i = 0; i < add->n; i++) {
        char *c = xstrdup(cap_base(add->v[i]));
        for (char *p = c; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        if (strcmp(c, "ALL") != 0 && !cap_in(out, c))
            engine_strv_add(out, c);
        free(c);
    }
    if (out->n)
        qsort(out->v, out->n, sizeof(*out->v), cmp_str);
}

int dk_parse_inspect(const char *json, size_t len, bool podman, struct engine_container_info *ret)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    struct engine_container_info i;
    memset(&i, 0, sizeof(i));
    if (!cJSON_IsObject(root))
        goto bad;
    i.c.id = jstr(root, "Id");
    if (!i.c.id)
        goto bad;
    char *name = jstr(root, "Name");
    if (name) {
        i.c.name = xstrdup(name + (name[0] == '/'));
        free(name);
    }
    /* inspect: "Image" is the id, Config.Image the reference */
    i.c.image_id = jstr(root, "Image");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "State");
    if (cJSON_IsObject(st)) {
        i.c.state = jstr(st, "Status");
        i.running = jbool(st, "Running");
        i.pid = (int)jint(st, "Pid");
        i.exit_code = (int)jint(st, "ExitCode");
    }
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(root, "Config");
    if (cJSON_IsObject(cfg)) {
        i.c.image = jstr(cfg, "Image");
        jkvs(cfg, "Labels", &i.c.labels);
        i.user = jstr(cfg, "User");
        i.workdir = jstr(cfg, "WorkingDir");
        jstrv(cfg, "Env", &i.env);
    }
    const cJSON *hc = cJSON_GetObjectItemCaseSensitive(root, "HostConfig");
    if (cJSON_IsObject(hc)) {
        i.network_mode = jstr(hc, "NetworkMode");
        i.privileged = jbool(hc, "Privileged");
        jstrv(hc, "CapAdd", &i.cap_add);
        jstrv(hc, "CapDrop", &i.cap_drop);
        effective_caps(&i.cap_add, &i.cap_drop, &i.caps);
        jstrv(hc, "SecurityOpt", &i.security_opt);
        i.memory = jint(hc, "Memory");
        i.nano_cpus = jint(hc, "NanoCpus");
        i.pids_limit = jint(hc, "PidsLimit");
        jstrv(hc, "ExtraHosts", &i.extra_hosts);
        jkvs(hc, "Sysctls", &i.sysctls);
    }
    parse_endpoints(root, podman, &i.c);
    parse_mounts(root, &i.c);
    /* Quirk: Podman reports NetworkMode "bridge" for a container created on
     * a user network; report that network instead when there is exactly
     * one, else NULL ("look at the networks"). */
    if (podman && i.network_mode && strcmp(i.network_mode, "bridge") == 0 &&
        !(i.c.n_networks == 1 && strcmp(i.c.networks[0].network, "podman") == 0)) {
        free(i.network_mode);
        i.network_mode = i.c.n_networks == 1 ? xstrdup(i.c.networks[0].network) : NULL;
    }
    cJSON_Delete(root);
    *ret = i;
    return 0;
bad:
    engine_container_info_release(&i);
    cJSON_Delete(root);
    return BD_E_PROTO;
}

int dk_parse_path_stat(const char *b64, size_t len, struct engine_path_stat *ret)
{
    struct buf raw;
    unsigned acc = 0;
    int bits = 0;
    int r = BD_E_PROTO;
    cJSON *root = NULL;

    buf_init(&raw, DK_HDR_MAX);
    for (size_t i = 0; i < len; i++) {
        if (b64[i] == '=' || isspace((unsigned char)b64[i]))
            continue;
        int v = b64_digit((unsigned char)b64[i]);
        if (v < 0)
            goto out;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (buf_putc(&raw, (char)((acc >> bits) & 0xff)) < 0)
                goto out;
        }
    }
    root = cJSON_ParseWithLength(buf_cstr(&raw), raw.len);
    if (!cJSON_IsObject(root))
        goto out;
    struct engine_path_stat s = {0};
    s.name = jstr(root, "name");
    s.size = jint(root, "size");
    s.mode = (uint32_t)jint(root, "mode");
    s.mtime = jstr(root, "mtime");
    s.link_target = jstr(root, "linkTarget");
    *ret = s;
    r = 0;
out:
    cJSON_Delete(root);
    buf_release(&raw);
    return r;
}

void dk_demux_init(struct dk_demux *d, struct buf *out, struct buf *err, size_t max)
{
    memset(d, 0, sizeof(*d));
    d->out = out;
    d->err = err;
    d->max = max;
}

void dk_demux_feed(struct dk_demux *d, const char *p, size_t n)
{
    while (n > 0) {
        if (d->remaining == 0) {
            size_t take = 8 - d->hdr_len;
            if (take > n)
                take = n;
            memcpy(d->hdr + d->hdr_len, p, take);
            d->hdr_len += take;
            p += take;
            n -= take;
            if (d->hdr_len < 8)
                return;
            d->hdr_len = 0;
            d->stream = d->hdr[0];
            if (d->stream != 1 && d->stream != 2 && d->stream != 0)
                d->bad = true;
            d->remaining = (size_t)d->hdr[4] << 24 | (size_t)d->hdr[5] << 16 |
                           (size_t)d->hdr[6] << 8 | d->hdr[7];
            continue;
        }
        size_t take = d->remaining < n ? d->remaining : n;
        struct buf *b = d->stream == 2 ? d->err : d->stream == 1 ? d->out : NULL;
        if (b) {
            size_t room = b->len < d->max ? d->max - b->len : 0;
            size_t keep = take < room ? take : room;
            if (keep)
                buf_append(b, p, keep);
            if (keep < take)
                d->truncated = true;
        }
        d->remaining -= take;
        p += take;
        n -= take;
    }
}

/* ------------------------------------------------------------ event stream parser */

void dk_events_init(struct dk_events *p, bool podman, engine_event_fn fn, void *arg)
{
    memset(p, 0, sizeof(*p));
    buf_init(&p->line, DK_EVENT_LINE_MAX);
    p->podman = podman;
    p->fn = fn;
    p->arg = arg;
}

void dk_events_release(struct dk_events *p)
{
    buf_release(&p->line);
}

static const char *jsv(const cJSON *obj, const char *key)
{
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return cJSON_IsString(v) && v->valuestring && v->valuestring[0] ? v->valuestring : NULL;
}

static void deliver_event(struct dk_events *p, const struct engine_event *ev)
{
    if (ev->lost)
        p->lost++;
    else
        p->events++;
    if (p->fn(ev, p->arg))
        p->stopped = true;
}

static void deliver_lost(struct dk_events *p)
{
    struct engine_event ev = {.lost = true};
    deliver_event(p, &ev);
}

/*
 * One line of the stream.  Quirk: the engines lay network and volume
 * events out differently.  Docker: a network event's actor is the network
 * (Attributes name = its name, container = the container's id), a volume's
 * actor id is its name.  Podman 4.3 (compat): a network event's actor is
 * the container (Attributes name = the container's name; the network is
 * not named at all), a volume's actor id is "" with the name in
 * Attributes, and a removal is "remove" where Docker says "destroy".
 */
static void event_line(struct dk_events *p, const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (!n)
        return;
    cJSON *root = cJSON_ParseWithLength(s, n);
    const cJSON *actor =
        cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "Actor") : NULL;
    const char *type = jsv(root, "Type"), *action = jsv(root, "Action");
    if (!type || !action || !cJSON_IsObject(actor)) {
        cJSON_Delete(root);
        deliver_lost(p);
        return;
    }
    struct engine_kvs attrs = {0};
    jkvs(actor, "Attributes", &attrs);
    const char *aid = jsv(actor, "ID");
    const char *aname = engine_kvs_get(&attrs, "name");
    if (aname && !*aname)
        aname = NULL;
    struct engine_event ev = {.type = type, .action = action, .attrs = &attrs};
    const cJSON *tn = cJSON_GetObjectItemCaseSensitive(root, "timeNano");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(root, "time");
    if (cJSON_IsNumber(tn) && tn->valuedouble > 0 && tn->valuedouble < 9e18)
        ev.time_ns = (int64_t)tn->valuedouble;
    else if (cJSON_IsNumber(ts) && ts->valuedouble > 0 && ts->valuedouble < 9e9)
        ev.time_ns = (int64_t)ts->valuedouble * 1000000000;
    if (p->podman && !strcmp(action, "remove"))
        ev.action = "destroy";
    if (!strcmp(type, "container")) {
        ev.id = aid;
        ev.name = aname;
        ev.container = aid;
    } else if (!strcmp(type, "network")) {
        if (p->podman) {
            ev.container = aid;
            ev.container_name = aname;
        } else {
            ev.id = aid;
            ev.name = aname;
            ev.container = engine_kvs_get(&attrs, "container");
        }
    } else if (!strcmp(type, "volume")) {
        ev.name = p->podman ? aname : aid;
        ev.id = ev.name;
        if (!p->podman)
            ev.container = engine_kvs_get(&attrs, "container");
    } else {
        ev.id = aid;
        ev.name = aname;
    }
    if (ev.container && !*ev.container)
        ev.container = NULL;
    deliver_event(p, &ev);
    engine_kvs_release(&attrs);
    cJSON_Delete(root);
}

int dk_events_feed(struct dk_events *p, const char *data, size_t n)
{
    while (n && !p->stopped) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        if (!p->skipping && buf_append(&p->line, data, take) < 0) {
            /* over the cap: the rest of this line is dropped */
            p->skipping = true;
            buf_reset(&p->line);
        }
        data += take;
        n -= take;
        if (!nl)
            break;
        data++, n--; /* the newline */
        if (p->skipping)
            deliver_lost(p);
        else
            event_line(p, p->line.data ? p->line.data : "", p->line.len);
        p->skipping = false;
        buf_reset(&p->line);
    }
    return p->stopped ? 1 : 0;
}

/* ------------------------------------------------------------ transport */

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct dk *dk = ud;
    size_t n = size * nmemb;
    if (dk->demux) {
        dk_demux_feed(dk->demux, p, n);
        return n;
    }
    if (buf_append(dk->resp, p, n) < 0) {
        dk->resp_too_big = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    return n;
}

static void keep_header(struct buf *b, const char *line, size_t n, size_t namelen)
{
    const char *v = line + namelen;
    size_t vl = n - namelen;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    buf_reset(b);
    if (buf_append(b, v, vl) < 0)
        buf_reset(b); /* over the cap: as if absent */
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct dk *dk = ud;
    size_t n = size * nmemb;
    static const struct {
        const char *name;
        size_t off;
    } want[] = {
        {"Api-Version:", offsetof(struct dk, h_api)},
        {"Libpod-Api-Version:", offsetof(struct dk, h_libpod)},
        {"X-Docker-Container-Path-Stat:", offsetof(struct dk, h_stat)},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        size_t l = strlen(want[i].name);
        if (n >= l && strncasecmp(p, want[i].name, l) == 0)
            keep_header((struct buf *)((char *)dk + want[i].off), p, n, l);
    }
    return n;
}

enum { MUT = 1 };

struct req {
    const char *method;
    const char *path; /* below the version prefix, with the query */
    bool unversioned;
    const char *ctype;
    const void *body;
    size_t body_len;
    long timeout_s;
    size_t max;   /* response cap, 0 = DK_RESP_MAX */
    int mutating; /* MUT: counts as a mutating call */
};

/*
 * Sends one request; on a transport success *ret_code is the HTTP status
 * and resp holds the body (initialised here).  BD_E_UNAVAIL when the
 * engine does not answer, BD_E_TOO_BIG when the body exceeds the cap.
 */
static int request(struct engine *e, const struct req *rq, struct buf *resp, long *ret_code)
{
    struct dk *dk = DK(e);
    CURL *c = dk->curl;
    struct curl_slist *hdrs = NULL;
    struct buf url;
    int r = 0;

    buf_init(resp, rq->max ? rq->max : DK_RESP_MAX);
    buf_init(&url, 0);
    buf_appendf(&url, "http://d%s%s", rq->unversioned ? "" : dk->prefix, rq->path);
    buf_reset(&dk->h_api);
    buf_reset(&dk->h_libpod);
    buf_reset(&dk->h_stat);
    dk->resp = resp;
    dk->resp_too_big = false;

    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, dk->sock);
    curl_easy_setopt(c, CURLOPT_URL, buf_cstr(&url));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, DK_CONNECT_S);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, rq->timeout_s ? rq->timeout_s : DK_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, dk);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, dk);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (rq->ctype) {
        char h[96];
        snprintf(h, sizeof(h), "Content-Type: %s", rq->ctype);
        hdrs = curl_slist_append(hdrs, h);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (strcmp(rq->method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(rq->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(rq->method, "DELETE") != 0 || rq->body) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        }
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
    }
    if (rq->mutating) {
        char what[160];
        snprintf(what, sizeof(what), "engine %s %.140s", rq->method, rq->path);
        fault_point(what);
        engine_count_mutation(e);
    }

    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        if (dk->resp_too_big) {
            engine_set_errmsg(e, "%s %s: response larger than %zu bytes", rq->method, rq->path,
                              resp->max);
            r = BD_E_TOO_BIG;
        } else {
            engine_set_errmsg(e, "%s %s: engine at %s: %s", rq->method, rq->path, dk->sock,
                              curl_easy_strerror(cc));
            r = BD_E_UNAVAIL;
        }
        buf_release(resp);
        goto out;
    }
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    *ret_code = code;
out:
    dk->resp = NULL;
    curl_slist_free_all(hdrs);
    buf_release(&url);
    return r;
}

/* Records "<what>: HTTP <code>: <message>" and maps the status generically. */
static int http_fail(struct engine *e, const char *what, long code, const struct buf *body)
{
    char msg[DK_MSG_MAX];
    dk_error_message(body->data, body->len, msg, sizeof(msg));
    engine_set_errmsg(e, "%s: HTTP %ld%s%s", what, code, *msg ? ": " : "", msg);
    switch (code) {
    case 400:
        return BD_E_INVAL;
    case 404:
        return BD_E_NOTFOUND;
    case 409:
        return BD_E_EXISTS;
    default:
        return BD_E_PROTO;
    }
}

/* Does the error body's message contain needle (case-insensitive)? */
static bool msg_has(const struct buf *body, const char *needle)
{
    char msg[DK_MSG_MAX];
    dk_error_message(body->data, body->len, msg, sizeof(msg));
    return strcasestr(msg, needle) != NULL;
}

/* A path segment (name or id) for a URL; the caller frees. */
static char *seg(const char *s)
{
    struct buf b;
    buf_init(&b, 0);
    dk_urlencode(&b, s, NULL);
    return buf_detach(&b, NULL);
}

/* A JSON request body from root (consumed). */
static char *body_of(cJSON *root, size_t *ret_len)
{
    char *s = cJSON_PrintUnformatted(root);
    if (!s)
        abort();
    cJSON_Delete(root);
    *ret_len = strlen(s);
    return s;
}

static cJSON *strv_json(const struct engine_strv *sv)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < sv->n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(sv->v[i]));
    return a;
}

static cJSON *kvs_json(const struct engine_kvs *kvs)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < kvs->n; i++)
        cJSON_AddStringToObject(o, kvs->v[i].key, kvs->v[i].value);
    return o;
}

/* ------------------------------------------------------------ open */

static int dk_open(struct engine *e, const char *url)
{
    struct dk *dk = xcalloc(1, sizeof(*dk));
    struct buf body;
    long code = 0;
    int r, minor;

    buf_init(&body, 0);
    dk->sock = xstrdup(url + strlen("unix://"));
    pthread_mutex_init(&dk->ev_mu, NULL);
    dk->ev_fd = CURL_SOCKET_BAD;
    buf_init(&dk->h_api, DK_HDR_MAX);
    buf_init(&dk->h_libpod, DK_HDR_MAX);
    buf_init(&dk->h_stat, DK_HDR_MAX);
    /* refcounted and thread-safe in libcurl >= 7.84; paired in dk_close */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    dk->curl = curl_easy_init();
    if (!dk->curl)
        abort();
    e->impl = dk;
    if (dk->sock[0] != '/') {
        engine_set_errmsg(e, "engine URL \"%s\": expected unix:///absolute/path", url);
        r = BD_E_INVAL;
        goto out;
    }

    struct req rq = {
        .method = "GET", .path = "/_ping", .unversioned = true, .timeout_s = 10, .max = 4096};
    r = request(e, &rq, &body, &code);
    if (r < 0)
        goto out;
    if (code != 200) {
        r = http_fail(e, "GET /_ping", code, &body);
        r = BD_E_UNAVAIL;
        goto out;
    }
    if (dk_parse_api_version(dk->h_api.data, dk->h_api.len, &minor) < 0) {
        engine_set_errmsg(e, "engine at %s: no usable Api-Version header on /_ping", dk->sock);
        r = BD_E_PROTO;
        goto out;
    }
    if (minor < DK_API_MIN_MINOR) {
        engine_set_errmsg(e, "engine at %s speaks API 1.%d, at least 1.%d is needed", dk->sock,
                          minor, DK_API_MIN_MINOR);
        r = BD_E_PROTO;
        goto out;
    }
    if (minor > DK_API_MINOR)
        minor = DK_API_MINOR;
    snprintf(dk->prefix, sizeof(dk->prefix), "/v1.%d", minor);
    snprintf(dk->api_version, sizeof(dk->api_version), "1.%d", minor);
    /* Podman's quirks are keyed on this header, not on Server. */
    dk->podman = dk->h_libpod.len > 0;
    e->podman = dk->podman;
out:
    buf_release(&body);
    if (r < 0) {
        e->ops->close(e);
        e->impl = NULL;
    }
    return r;
}

static void dk_close(struct engine *e)
{
    struct dk *dk = DK(e);
    curl_easy_cleanup(dk->curl);
    free(dk->sock);
    buf_release(&dk->h_api);
    buf_release(&dk->h_libpod);
    buf_release(&dk->h_stat);
    pthread_mutex_destroy(&dk->ev_mu);
    free(dk);
    e->impl = NULL;
    curl_global_cleanup();
}

static int dk_version(struct engine *e, struct engine_version *ret)
{
    struct buf body;
    long code;
    struct req rq = {.method = "GET", .path = "/version"};
    int r = request(e, &rq, &body, &code);
    if (r < 0)
        return r;
    if (code != 200) {
        r = http_fail(e, "GET /version", code, &body);
        goto out;
    }
    cJSON *root = cJSON_ParseWithLength(body.data, body.len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        engine_set_errmsg(e, "GET /version: not a JSON object");
        r = BD_E_PROTO;
        goto out;
    }
    ret->engine_version = jstr(root, "Version");
    ret->api_version = xstrdup(DK(e)->api_version);
    ret->podman = DK(e)->podman;
    cJSON_Delete(root);
out:
    buf_release(&body);
    return r;
}

/* ------------------------------------------------------------ networks */

#define NET_CREATE_RETRIES 4 /* 50, 100, 200, 400 ms apart */

static int dk_network_create(struct engine *e, const struct engine_network_spec *spec,
                             char **ret_id)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "Name", spec->name);
    cJSON_AddStringToObject(root, "Driver", "bridge");
    cJSON_AddBoolToObject(root, "Internal", spec->internal);
    cJSON_AddBoolToObject(root, "CheckDuplicate", true);
    cJSON_AddItemToObject(root, "Labels", kvs_json(&spec->labels));
    if (spec->subnet) {
        cJSON *ipam = cJSON_AddObjectToObject(root, "IPAM");
        cJSON_AddStringToObject(ipam, "Driver", "default");
        cJSON *cfg = cJSON_AddArrayToObject(ipam, "Config");
        cJSON *c0 = cJSON_CreateObject();
        cJSON_AddStringToObject(c0, "Subnet", spec->subnet);
        if (spec->gateway)
            cJSON_AddStringToObject(c0, "Gateway", spec->gateway);
        cJSON_AddItemToArray(cfg, c0);
    }
    if (spec->bridge_name) {
        cJSON *opts = cJSON_AddObjectToObject(root, "Options");
        cJSON_AddStringToObject(opts, DK_BRIDGE_NAME, spec->bridge_name);
    }
    size_t len;
    char *json = body_of(root, &len);
    struct buf body;
    long code;
    struct req rq = {.method = "POST",
                     .path = "/networks/create",
                     .ctype = "application/json",
                     .body = json,
                     .body_len = len,
                     .mutating = MUT};
    /* Quirk: Podman checks a new subnet against the host's interface
     * addresses, and that scan fails (500 "route ip+net: no such network
     * interface") when an interface disappears while it runs, e.g. another
     * container's veth being removed.  Nothing was created: try again. */
    int r;
    for (int attempt = 0;; attempt++) {
        r = request(e, &rq, &body, &code);
        if (r < 0 || code != 500 || attempt == NET_CREATE_RETRIES ||
            !msg_has(&body, "no such network interface"))
            break;
        buf_release(&body);
        struct timespec ts = {0, (50L << attempt) * 1000000L};
        nanosleep(&ts, NULL);
    }
    free(json);
    if (r < 0)
        return r;
    if (code != 201 && code != 200) {
        r = http_fail(e, "POST /networks/create", code, &body);
        /* Quirk: a taken name is 409 "network with name ... already
         * exists" on Docker, 500 "network name ... already used: network
         * already exists" on Podman; an overlapping subnet is 403 "Pool
         * overlaps with other one" on Docker, 500 "subnet ... is already
         * used on the host or by another config" on Podman. */
        if (msg_has(&body, "already exists"))
            r = BD_E_EXISTS;
        else if (msg_has(&body, "overlaps") || msg_has(&body, "is already used"))
            r = BD_E_BUSY;
        goto out;
    }
    cJSON *resp = cJSON_ParseWithLength(body.data, body.len);
    char *id = resp ? jstr(resp, "Id") : NULL;
    cJSON_Delete(resp);
    if (!id) {
        engine_set_errmsg(e, "POST /networks/create: no Id in the answer");
        r = BD_E_PROTO;
        goto out;
    }
    *ret_id = id;
out:
    buf_release(&body);
    return r;
}

/*
 * GET base + "filters=<label filter>" (base ends in '?' or '&'); on 200 the
 * body is left in *ret_body for the caller's parser (who releases it), any
 * other answer is an error with the engine's message.  One list call per
 * resource kind goes through here.
 */
static int dk_get_filtered(struct engine *e, const char *base, const char *what,
                           const struct engine_strv *label_filter, struct buf *ret_body)
{
    char *f = NULL;
    long code;
    dk_label_filter(label_filter, &f);
    char *path = xasprintf("%sfilters=%s", base, f);
    struct req rq = {
        .method = "GET", .path = path, .unversioned = !strncmp(base, DK_LIBPOD, strlen(DK_LIBPOD))};
    int r = request(e, &rq, ret_body, &code);
    if (r == 0 && code != 200) {
        r = http_fail(e, what, code, ret_body);
        buf_release(ret_body);
    }
    free(path);
    free(f);
    return r;
}

static int dk_network_list(struct engine *e, const struct engine_strv *label_filter,
                           struct engine_network_list *ret)
{
    struct buf body;
    /* Quirk: Podman 4.3's compat list inspects every container per network
     * (36 s for 111 networks and 110 containers here); its own libpod list
     * answers the same in milliseconds and also names the bridge. */
    if (DK(e)->podman) {
        int r = dk_get_filtered(e, DK_LIBPOD "/networks/json?", "GET libpod networks", label_filter,
                                &body);
        if (r < 0)
            return r;
        if ((r = dk_parse_libpod_networks(body.data, body.len, ret)) < 0)
            engine_set_errmsg(e, "GET libpod networks: unexpected JSON");
        buf_release(&body);
        return r;
    }
    int r = dk_get_filtered(e, "/networks?", "GET /networks", label_filter, &body);
    if (r < 0)
        return r;
    if ((r = dk_parse_networks(body.data, body.len, DK(e)->podman, ret)) < 0)
        engine_set_errmsg(e, "GET /networks: unexpected JSON");
    buf_release(&body);
    return r;
}

static int dk_network_remove(struct engine *e, const char *network)
{
    char *s = seg(network);
    char *path = xasprintf("/networks/%s", s);
    struct buf body;
    long code;
    struct req rq = {.method = "DELETE", .path = path, .mutating = MUT};
    int r = request(e, &rq, &body, &code);
    if (r < 0)
        goto out;
    if (code == 404) {
        r = 0; /* already gone */
    } else if (code != 204 && code != 200) {
        r = http_fail(e, "DELETE network", code, &body);
        /* Quirk: a network with containers attached is 403 "has active
         * endpoints" on Docker, 500 "network is being used" on Podman. */
        if (code == 403 || msg_has(&body, "being used") || msg_has(&body, "active endpoints"))
            r = BD_E_BUSY;
    }
    buf_release(&body);
out:
    free(path);
    free(s);
    return r;
}

static cJSON *endpoint_json(const struct engine_endpoint_spec *ep)
{
    cJSON *o = cJSON_CreateObject();
    if (ep->ipv4) {
        cJSON *ipam = cJSON_AddObjectToObject(o, "IPAMConfig");
        cJSON_AddStringToObject(ipam, "IPv4Address", ep->ipv4);
    }
    if (ep->aliases.n)
        cJSON_AddItemToObject(o, "Aliases", strv_json(&ep->aliases));
    return o;
}

static int dk_network_connect(struct engine *e, const char *container,
                              const struct engine_endpoint_spec *ep)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "Container", container);
    cJSON_AddItemToObject(root, "EndpointConfig", endpoint_json(ep));
    size_t len;
    char *json = body_of(root, &len);
    char *s = seg(ep->network);
    char *path = xasprintf("/networks/%s/connect", s);
    struct buf body;
    long code;
    struct req rq = {.method = "POST",
                     .path = path,
                     .ctype = "application/json",
                     .body = json,
                     .body_len = len,
                     .mutating = MUT};
    int r = request(e, &rq, &body, &code);
    if (r < 0)
        goto out;
    if (code != 200 && code != 204)
        r = http_fail(e, "POST network connect", code, &body);
    buf_release(&body);
out:
    free(path);
    free(s);
    free(json);
    return r;
}

static int dk_network_disconnect(struct engine *e, const char *network, const char *container)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "Container", container);
    cJSON_AddBoolToObject(root, "Force", true);
    size_t len;
    char *json = body_of(root, &len);
    char *s = seg(network);
    char *path = xasprintf("/networks/%s/disconnect", s);
    struct buf body;
    long code;
    struct req rq = {.method = "POST",
                     .path = path,
                     .ctype = "application/json",
                     .body = json,
                     .body_len = len,
                     .mutating = MUT};
    int r = request(e, &rq, &body, &code);
    if (r < 0)
        goto out;
    if (code != 200 && code != 204) {
        r = http_fail(e, "POST network disconnect", code, &body);
        /* not attached: the goal is reached (Docker 403/500, Podman 500) */
        if (msg_has(&body, "not connected"))
            r = 0;
    }
    buf_release(&body);
out:
    free(path);
    free(s);
    free(json);
    return r;
}

/* ------------------------------------------------------------ volumes */

static int dk_volume_create(struct engine *e, const char *name, const struct engine_kvs *labels)
{
    char *s = seg(name);
    char *path = xasprintf("/volumes/%s", s);
    char *json = NULL;
    struct buf body;
    long code;
    /* Quirk: Docker answers a create of an existing name with 201 and the
     * old volume (labels and all); Podman with an error.  Both behave the
     * same when the name is looked up first. */
    struct req probe = {.method = "GET", .path = path};
    int r = request(e, &probe, &body, &code);
    if (r < 0)
        goto out;
    buf_release(&body);
    if (code == 200) {
        engine_set_errmsg(e, "volume \"%s\" already exists", name);
        r = BD_E_EXISTS;
        goto out;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "Name", name);
    cJSON_AddStringToObject(root, "Driver", "local");
    cJSON_AddItemToObject(root, "Labels", kvs_json(labels));
    size_t len;
    json = body_of(root, &len);
    struct req rq = {.method = "POST",
                     .path = "/volumes/create",
                     .ctype = "application/json",
                     .body = json,
                     .body_len = len,
                     .mutating = MUT};
    r = request(e, &rq, &body, &code);
    if (r < 0)
        goto out;
    if (code != 201 && code != 200) {
        r = http_fail(e, "POST /volumes/create", code, &body);
        if (msg_has(&body, "already exists"))
            r = BD_E_EXISTS;
    }
    buf_release(&body);
out:
    free(json);
    free(path);
    free(s);
    return r;
}

static int dk_volume_list(struct engine *e, const struct engine_strv *label_filter,
                          struct engine_volume_list *ret)
{
    struct buf body;
    int r = dk_get_filtered(e, "/volumes?", "GET /volumes", label_filter, &body);
    if (r < 0)
        return r;
    if ((r = dk_parse_volumes(body.data, body.len, ret)) < 0)
        engine_set_errmsg(e, "GET /volumes: unexpected JSON");
    buf_release(&body);
    return r;
}

static int dk_volume_remove(struct engine *e, const char *name)
{
    char *s = seg(name);
    char *path = xasprintf("/volumes/%s", s);
    struct buf body;
    long code;
    struct req rq = {.method = "DELETE", .path = path, .mutating = MUT};
    int r = request(e, &rq, &body, &code);
    if (r < 0)
        goto out;
    if (code == 404) {
        r = 0;
    } else if (code != 204 && code != 200) {
        r = http_fail(e, "DELETE volume", code, &body);
        if (code == 409 || msg_has(&body, "in use") || msg_has(&body, "being used"))
            r = BD_E_BUSY;
    }
    buf_release(&body);
out:
    free(path);
    free(s);
    return r;
}

/* ------------------------------------------------------------ containers */

/*
 * Quirk: Podman resolves a short name ("base:tag") to a local image while
 * Docker answers 404, so the driver takes only what both resolve the same:
 * an image id, or a reference whose first component names a registry
 * host (contains '.' or ':', or is "localhost").
 */
static bool full_ref(const char *ref)
{
    if (strncmp(ref, "sha256:", 7) == 0)
        return true;
    size_t n = strlen(ref);
    if (n == 64 && strspn(ref, "0123456789abcdef") == 64)
        return true;
    const char *slash = strchr(ref, '/');
    if (!slash)
        return false;
    size_t hl = (size_t)(slash - ref);
    return (hl == 9 && strncmp(ref, "localhost", 9) == 0) || memchr(ref, '.', hl) ||
           memchr(ref, ':', hl);
}

static int dk_container_create(struct engine *e, const struct engine_container_spec *spec,
                               char **ret_id)
{
    char *id = NULL, *json = NULL, *path = NULL, *nm = NULL;
    struct buf body;
    long code;
    int r;

    if (!full_ref(spec->image)) {
        engine_set_errmsg(e,
                          "image \"%s\": use the full reference (localhost/name:tag) or an "
                          "image id",
                          spec->image);
        return BD_E_INVAL;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "Image", spec->image);
    if (spec->cmd.n)
        cJSON_AddItemToObject(root, "Cmd", strv_json(&spec->cmd));
    if (spec->entrypoint.n)
        cJSON_AddItemToObject(root, "Entrypoint", strv_json(&spec->entrypoint));
    if (spec->env.n)
        cJSON_AddItemToObject(root, "Env", strv_json(&spec->env));
    cJSON_AddItemToObject(root, "Labels", kvs_json(&spec->labels));
    if (spec->user)
        cJSON_AddStringToObject(root, "User", spec->user);
    if (spec->workdir)
        cJSON_AddStringToObject(root, "WorkingDir", spec->workdir);

    cJSON *hc = cJSON_AddObjectToObject(root, "HostConfig");
    const char *mode = spec->n_endpoints ? spec->endpoints[0].network : spec->network_mode;
    if (mode)
        cJSON_AddStringToObject(hc, "NetworkMode", mode);
    if (spec->cap_drop_all) {
        cJSON *drop = cJSON_AddArrayToObject(hc, "CapDrop");
        cJSON_AddItemToArray(drop, cJSON_CreateString("ALL"));
    }
    if (spec->cap_add.n)
        cJSON_AddItemToObject(hc, "CapAdd", strv_json(&spec->cap_add));
    if (spec->no_new_privileges) {
        cJSON *so = cJSON_AddArrayToObject(hc, "SecurityOpt");
        cJSON_AddItemToArray(so, cJSON_CreateString("no-new-privileges"));
    }
    if (spec->memory)
        cJSON_AddNumberToObject(hc, "Memory", (double)spec->memory);
    if (spec->nano_cpus)
        cJSON_AddNumberToObject(hc, "NanoCpus", (double)spec->nano_cpus);
    if (spec->pids_limit)
        cJSON_AddNumberToObject(hc, "PidsLimit", (double)spec->pids_limit);
    if (spec->sysctls.n)
        cJSON_AddItemToObject(hc, "Sysctls", kvs_json(&spec->sysctls));
    if (spec->extra_hosts.n)
        cJSON_AddItemToObject(hc, "ExtraHosts", strv_json(&spec->extra_hosts));
    if (spec->dns.n)
        cJSON_AddItemToObject(hc, "Dns", strv_json(&spec->dns));
    /* Quirk: no Ulimits, ever.  Podman's compat API replaces its
     * default_ulimits with what is sent (instead of merging, as Docker
     * does), so a partial list leaves nproc at 1048576 and start fails
     * with "error setting rlimit type 6".  The engine defaults apply. */
    if (spec->n_mounts) {
        cJSON *ms = cJSON_AddArrayToObject(hc, "Mounts");
        for (size_t i = 0; i < spec->n_mounts; i++) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "Type", "volume");
            cJSON_AddStringToObject(m, "Source", spec->mounts[i].volume);
            cJSON_AddStringToObject(m, "Target", spec->mounts[i].target);
            cJSON_AddBoolToObject(m, "ReadOnly", spec->mounts[i].read_only);
            cJSON_AddItemToArray(ms, m);
        }
    }
    /* Quirk: Docker 20.10 refuses more than one EndpointsConfig entry at
     * create (400 "Container cannot be connected to network endpoints");
     * only the first goes here, the rest are connected below, before the
     * container is ever started.  Same on Podman, for one code path. */
    if (spec->n_endpoints) {
        cJSON *nc = cJSON_AddObjectToObject(root, "NetworkingConfig");
        cJSON *eps = cJSON_AddObjectToObject(nc, "EndpointsConfig");
        cJSON_AddItemToObject(eps, spec->endpoints[0].network, endpoint_json(&spec->endpoints[0]));
    }
    size_t len;
    json = body_of(root, &len);
    nm = seg(spec->name);
    path = xasprintf("/containers/create?name=%s", nm);
    struct req rq = {.method = "POST",
                     .path = path,
                     .ctype = "application/json",
                     .body = json,
                     .body_len = len,
                     .mutating = MUT};
    r = request(e, &rq, &body, &code);
    if (r < 0)
        goto out;
    if (code != 201 && code != 200) {
        r = http_fail(e, "POST /containers/create", code, &body);
        /* Docker: 404 "No such image: ..."; Podman: 404 "...: image not
         * known".  Any other 404 (a missing network) stays NOTFOUND. */
        if (code == 404 && (msg_has(&body, "no such image") || msg_has(&body, "image not known")))
            r = BD_E_NOIMAGE;
        /* Podman: 500 "... name is already in use" for a taken name */
        if (msg_has(&body, "already in use"))
            r = BD_E_EXISTS;
        buf_release(&body);
        goto out;
    }
    cJSON *resp = cJSON_ParseWithLength(body.data, body.len);
    id = resp ? jstr(resp, "Id") : NULL;
    cJSON_Delete(resp);
    buf_release(&body);
    if (!id) {
        engine_set_errmsg(e, "POST /containers/create: no Id in the answer");
        r = BD_E_PROTO;
        goto out;
    }
    for (size_t i = 1; i < spec->n_endpoints; i++) {
        r = dk_network_connect(e, id, &spec->endpoints[i]);
        if (r < 0) {
            /* leave nothing half-made behind; keep the connect's message */
            char saved[sizeof(e->errmsg)];
            memcpy(saved, e->errmsg, sizeof(saved));
            char *cs = seg(id);
            char *dpath = xasprintf("/containers/%s?force=true&v=true", cs);
            struct req del = {.method = "DELETE", .path = dpath, .mutating = MUT};
            if (request(e, &del, &body, &code) == 0)
                buf_release(&body);
            free(dpath);
            free(cs);
            memcpy(e->errmsg, saved, sizeof(saved));
            goto out;
        }
    }
    *ret_id = id;
    id = NULL;
out:
    free(id);
    free(path);
    free(nm);
    free(json);
    return r;
}

static int dk_container_list(struct engine *e, const struct engine_strv *label_filter,
                             struct engine_container_list *ret)
{
    struct buf body;
    int r = dk_get_filtered(e, "/containers/json?all=true&", "GET /containers/json", label_filter,
                            &body);
    if (r < 0)
        return r;
    if ((r = dk_parse_containers(body.data, body.len, DK(e)->podman, ret)) < 0)
        engine_set_errmsg(e, "GET /containers/json: unexpected JSON");
    buf_release(&body);
    return r;
}

static int dk_container_inspect(struct engine *e, const char *container,
                                struct engine_container_info *ret)
{
    char *s = seg(container);
    char *path = xasprintf("/containers/%s/json", s);
    struct buf body;
    long code;
    struct req rq = {.method = "GET", .path = path};
    int r = request(e, &rq, &body, &code);
    if (r < 0)
        goto out;
    if (code != 200)
        r = http_fail(e, "GET container", code, &body);
    else if ((r = dk_parse_inspect(body.data, body.len, DK(e)->podman, ret)) < 0)
        engine_set_errmsg(e, "GET container: unexpected JSON");
    buf_release(&body);
out:
    free(path);
    free(s);
    return r;
}

/* POST /containers/{id}/<verb><query>: 204 (and 304 "already so") is success. */
static int container_post(struct engine *e, const char *container, const char *verb,
                          const char *query, long timeout_s, int kill_409)
{
    char *s = seg(container);
    char *path = xasprintf("/containers/%s/%s%s", s, verb, query ? query : "");
    char what[64];
    struct buf body;
    long code;
    snprintf(what, sizeof(what), "POST container %s", verb);
    struct req rq = {.method = "POST", .path = path, .timeout_s = timeout_s, .mutating = MUT};
    int r = request(e, &rq, &body, &code);
    if (r < 0)
        goto out;
    if (code != 204 && code != 304 && code != 200) {
        r = http_fail(e, what, code, &body);
        /* Quirk: not running is 409 on Docker, 500 "can only kill
         * running containers ... container state improper" on Podman */
        if (kill_409 && (code == 409 || msg_has(&body, "state improper")))
            r = BD_E_INVAL;
    }
    buf_release(&body);
out:
    free(path);
    free(s);
    return r;
}

static int dk_container_start(struct engine *e, const char *container)
{
    return container_post(e, container, "start", NULL, 0, 0);
}

static int dk_container_stop(struct engine *e, const char *container, int timeout_s)
{
    char q[32];
    snprintf(q, sizeof(q), "?t=%d", timeout_s < 0 ? 0 : timeout_s);
    return container_post(e, container, "stop", q, DK_TIMEOUT_S + (timeout_s > 0 ? timeout_s : 0),
                          0);
}

static int dk_container_kill(struct engine *e, const char *container, const char *signal)
{
    struct buf q;
    buf_init(&q, 256);
    buf_puts(&q, "?signal=");
    dk_urlencode(&q, signal, NULL);
    int r = container_post(e, container, "kill", buf_cstr(&q), 0, 1);
    buf_release(&q);
    return r;
}

static int dk_container_remove(struct engine *e, const char *container)
{
    char *s = seg(container);
    char *path = xasprintf("/containers/%s?force=true&v=true", s);
    struct buf body;
    long code;
    struct req rq = {.method = "DELETE", .path = path, .timeout_s = 120, .mutating = MUT};
    int r = request(e, &rq, &body, &code);
    if (r < 0)
        goto out;
    if (code == 404)
        r = 0;
    else if (code != 204 && code != 200)
        r = http_fail(e, "DELETE container", code, &body);
    buf_release(&body);
out:
    free(path);
    free(s);
    return r;
}

static int dk_container_wait(struct engine *e, const char *container, int timeout_s,
                             int *ret_status)
{
    char *s = seg(container);
    char *path = xasprintf("/containers/%s/wait?condition=not-running", s);
    struct buf body;
    long code;
    struct req rq = {
        .method = "POST", .path = path, .timeout_s = timeout_s > 0 ? timeout_s : DK_TIMEOUT_S};
    int r = request(e, &rq, &body, &code);
    if (r < 0)
        goto out;
    if (code != 200) {
        r = http_fail(e, "POST container wait", code, &body);
    } else {
        cJSON *root = cJSON_ParseWithLength(body.data, body.len);
        const cJSON *sc = root ? cJSON_GetObjectItemCaseSensitive(root, "StatusCode") : NULL;
        if (cJSON_IsNumber(sc)) {
            *ret_status = (int)sc->valuedouble;
        } else {
            engine_set_errmsg(e, "POST container wait: no StatusCode");
            r = BD_E_PROTO;
        }
        cJSON_Delete(root);
    }
    buf_release(&body);
out:
    free(path);
    free(s);
    return r;
}

/* ------------------------------------------------------------ archives */

static char *archive_path(const char *container, const char *p)
{
    struct buf b;
    char *s = seg(container);
    buf_init(&b, 0);
    buf_appendf(&b, "/containers/%s/archive?path=", s);
    dk_urlencode(&b, p, "/");
    free(s);
    return buf_detach(&b, NULL);
}

static int dk_archive_put(struct engine *e, const char *container, const char *dir, const void *tar,
                          size_t len)
{
    char *path = archive_path(container, dir);
    struct buf body;
    long code;
    int r;

    /* Quirk: Podman 4.3 creates a missing target directory, Docker 20.10
     * answers 404.  Same behaviour on both: on Podman, stat it first (HEAD
     * is a read) and fail like Docker. */
    if (DK(e)->podman) {
        struct req probe = {.method = "HEAD", .path = path};
        r = request(e, &probe, &body, &code);
        if (r < 0)
            goto out;
        buf_release(&body);
        if (code != 200) {
            engine_set_errmsg(e, "PUT archive: HTTP 404: could not find \"%s\" in the container",
                              dir);
            r = code == 404 ? BD_E_NOTFOUND : BD_E_PROTO;
            goto out;
        }
    }
    struct req rq = {.method = "PUT",
                     .path = path,
                     .ctype = "application/x-tar",
                     .body = tar,
                     .body_len = len,
                     .timeout_s = 300,
                     .mutating = MUT};
    r = request(e, &rq, &body, &code);
    if (r < 0)
        goto out;
    if (code != 200 && code != 204)
        r = http_fail(e, "PUT archive", code, &body);
    buf_release(&body);
out:
    free(path);
    return r;
}

static int dk_archive_get(struct engine *e, const char *container, const char *p, size_t max,
                          struct buf *ret_tar, struct engine_path_stat *ret_stat)
{
    char *path = archive_path(container, p);
    struct buf body;
    long code;
    struct req rq = {
        .method = "GET", .path = path, .timeout_s = 300, .max = max ? max : DK_RESP_MAX};
    int r = request(e, &rq, &body, &code);
    if (r < 0)
        goto out;
    if (code != 200) {
        r = http_fail(e, "GET archive", code, &body);
        buf_release(&body);
        goto out;
    }
    struct engine_path_stat st = {0};
    if (DK(e)->h_stat.len && dk_parse_path_stat(DK(e)->h_stat.data, DK(e)->h_stat.len, &st) < 0) {
        engine_set_errmsg(e, "GET archive: bad X-Docker-Container-Path-Stat header");
        buf_release(&body);
        r = BD_E_PROTO;
        goto out;
    }
    *ret_tar = body;
    *ret_stat = st;
out:
    free(path);
    return r;
}

/* ------------------------------------------------------------ exec */

static int dk_exec(struct engine *e, const char *container, const struct engine_exec_spec *spec,
                   struct engine_exec_result *ret)
{
    char *s = seg(container), *path = NULL, *json = NULL, *eid = NULL, *es = NULL;
    struct buf body, out, err;
    struct dk_demux dm;
    long code;
    int r;

    buf_init(&out, 0);
    buf_init(&err, 0);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "Cmd", strv_json(&spec->cmd));
    if (spec->env.n)
        cJSON_AddItemToObject(root, "Env", strv_json(&spec->env));
    if (spec->user)
        cJSON_AddStringToObject(root, "User", spec->user);
    cJSON_AddBoolToObject(root, "AttachStdout", true);
    cJSON_AddBoolToObject(root, "AttachStderr", true);
    size_t len;
    json = body_of(root, &len);
    path = xasprintf("/containers/%s/exec", s);
    struct req rq = {
        .method = "POST", .path = path, .ctype = "application/json", .body = json, .body_len = len};
    r = request(e, &rq, &body, &code);
    if (r < 0)
        goto out;
    if (code != 201 && code != 200) {
        r = http_fail(e, "POST container exec", code, &body);
        if (code == 409)
            r = BD_E_INVAL; /* not running */
        buf_release(&body);
        goto out;
    }
    cJSON *resp = cJSON_ParseWithLength(body.data, body.len);
    eid = resp ? jstr(resp, "Id") : NULL;
    cJSON_Delete(resp);
    buf_release(&body);
    if (!eid) {
        engine_set_errmsg(e, "POST container exec: no Id in the answer");
        r = BD_E_PROTO;
        goto out;
    }
    es = seg(eid);
    free(path);
    path = xasprintf("/exec/%s/start", es);
    /* The answer is the raw multiplexed stream until the process exits
     * (Docker hijacks the connection and closes it at the end). */
    dk_demux_init(&dm, &out, &err, spec->max_output ? spec->max_output : DK_EXEC_OUT_DEF);
    DK(e)->demux = &dm;
    static const char start[] = "{\"Detach\":false,\"Tty\":false}";
    struct req st = {.method = "POST",
                     .path = path,
                     .ctype = "application/json",
                     .body = start,
                     .body_len = sizeof(start) - 1,
                     .timeout_s = spec->timeout_s > 0 ? spec->timeout_s : DK_TIMEOUT_S};
    r = request(e, &st, &body, &code);
    DK(e)->demux = NULL;
    if (r < 0)
        goto out;
    buf_release(&body);
    if (code != 200 && code != 101) {
        engine_set_errmsg(e, "POST exec start: HTTP %ld", code);
        r = BD_E_PROTO;
        goto out;
    }
    free(path);
    path = xasprintf("/exec/%s/json", es);
    struct req ins = {.method = "GET", .path = path};
    r = request(e, &ins, &body, &code);
    if (r < 0)
        goto out;
    if (code != 200) {
        r = http_fail(e, "GET exec", code, &body);
        buf_release(&body);
        goto out;
    }
    resp = cJSON_ParseWithLength(body.data, body.len);
    const cJSON *ec = resp ? cJSON_GetObjectItemCaseSensitive(resp, "ExitCode") : NULL;
    bool running = resp && jbool(resp, "Running");
    if (!cJSON_IsNumber(ec) || running) {
        engine_set_errmsg(e, "GET exec: no exit code");
        r = BD_E_PROTO;
    } else {
        ret->exit_code = (int)ec->valuedouble;
        ret->out = out;
        ret->err = err;
        ret->truncated = dm.truncated;
        buf_init(&out, 0);
        buf_init(&err, 0);
    }
    cJSON_Delete(resp);
    buf_release(&body);
out:
    buf_release(&out);
    buf_release(&err);
    free(es);
    free(eid);
    free(json);
    free(path);
    free(s);
    return r;
}

/* ------------------------------------------------------------ images */

static int dk_image_id(struct engine *e, const char *ref, char **ret_id)
{
    if (!full_ref(ref)) {
        engine_set_errmsg(e, "image \"%s\": use the full reference (localhost/name:tag)", ref);
        return BD_E_INVAL;
    }
    struct buf p;
    buf_init(&p, 0);
    buf_puts(&p, "/images/");
    dk_urlencode(&p, ref, "/:@");
    buf_puts(&p, "/json");
    struct buf body;
    long code;
    struct req rq = {.method = "GET", .path = buf_cstr(&p)};
    int r = request(e, &rq, &body, &code);
    if (r < 0)
        goto out;
    if (code == 404) {
        engine_set_errmsg(e, "image \"%s\" not found", ref);
        r = BD_E_NOIMAGE;
    } else if (code != 200) {
        r = http_fail(e, "GET image", code, &body);
    } else {
        cJSON *root = cJSON_ParseWithLength(body.data, body.len);
        char *id = root ? jstr(root, "Id") : NULL;
        cJSON_Delete(root);
        if (!id) {
            engine_set_errmsg(e, "GET image: no Id");
            r = BD_E_PROTO;
        } else {
            /* Podman's compat inspect gives the bare hex id; make it the
             * "sha256:..." form Docker and both list calls use. */
            *ret_id = strchr(id, ':') ? xstrdup(id) : xasprintf("sha256:%s", id);
            free(id);
        }
    }
    buf_release(&body);
out:
    buf_release(&p);
    return r;
}

/* ------------------------------------------------------------ events */

/*
 * The stream runs on a fresh connection of its own (never a kept-alive one,
 * never kept afterwards) whose socket we open ourselves, so that
 * dk_events_cancel() can shut it down from another thread: curl then sees
 * end of file at once, however quiet the stream is.
 *
 * Quirk: both engines take the `type` filter as a list and `since` in Unix
 * seconds.  Podman 4.3 (file event logger) ends the stream by itself when
 * it rotates its event log (1 MB by default: every few minutes on a busy
 * host; podman#17665 is about the same code): that is an ordinary end of
 * stream here, BD_E_UNAVAIL, and the caller reconnects.
 */
#define EV_IDLE_WAIT_MS (3600 * 1000) /* no timer of curl's pending: sleep on the socket */

static curl_socket_t ev_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct dk *dk = ud;
    (void)purpose;
    pthread_mutex_lock(&dk->ev_mu);
    curl_socket_t fd = CURL_SOCKET_BAD;
    if (!dk->ev_cancel) {
        fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
        dk->ev_fd = fd < 0 ? CURL_SOCKET_BAD : fd;
    }
    pthread_mutex_unlock(&dk->ev_mu);
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

static int ev_close_socket(void *ud, curl_socket_t fd)
{
    struct dk *dk = ud;
    pthread_mutex_lock(&dk->ev_mu);
    if (dk->ev_fd == fd)
        dk->ev_fd = CURL_SOCKET_BAD;
    int r = close(fd);
    pthread_mutex_unlock(&dk->ev_mu);
    return r;
}

static bool ev_cancelled(struct dk *dk)
{
    pthread_mutex_lock(&dk->ev_mu);
    bool c = dk->ev_cancel;
    pthread_mutex_unlock(&dk->ev_mu);
    return c;
}

static size_t on_event_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct dk *dk = ud;
    size_t n = size * nmemb;
    long code = 0;
    curl_easy_getinfo(dk->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200) {
        (void)buf_append(dk->ev_err, p, n); /* past its cap: the start is enough */
        return n;
    }
    if (ev_cancelled(dk) || dk_events_feed(dk->evp, p, n))
        return 0; /* ends the transfer (CURLE_WRITE_ERROR) */
    return n;
}

/*
 * curl_easy_perform() on a multi handle of its own that sleeps until the
 * socket or one of curl's own timers needs it: the easy interface would
 * wake once a second for as long as the stream lives, which an idle
 * watcher must not.  dk_events_cancel() shutting the socket down wakes it.
 */
static CURLcode ev_perform(CURL *c)
{
    CURLM *m = curl_multi_init();
    if (!m)
        return CURLE_OUT_OF_MEMORY;
    CURLcode cc = CURLE_OK;
    if (curl_multi_add_handle(m, c) != CURLM_OK) {
        curl_multi_cleanup(m);
        return CURLE_FAILED_INIT;
    }
    int running = 1;
    while (running) {
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            cc = CURLE_RECV_ERROR;
            break;
        }
        if (!running)
            break;
        long to = -1;
        (void)curl_multi_timeout(m, &to);
        int ms = to < 0 || to > EV_IDLE_WAIT_MS ? EV_IDLE_WAIT_MS : (int)to;
        if (curl_multi_poll(m, NULL, 0, ms, NULL) != CURLM_OK) {
            cc = CURLE_RECV_ERROR;
            break;
        }
    }
    int left = 0;
    for (CURLMsg *msg; (msg = curl_multi_info_read(m, &left)) != NULL;)
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == c)
            cc = msg->data.result;
    curl_multi_remove_handle(m, c);
    curl_multi_cleanup(m);
    return cc;
}

static int dk_events(struct engine *e, const struct engine_strv *types, int64_t since,
                     engine_event_fn fn, void *arg)
{
    struct dk *dk = DK(e);
    CURL *c = dk->curl;
    struct dk_events p;
    struct buf err, url;
    int r = 0;

    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "type", strv_json(types));
    size_t flen;
    char *fjson = body_of(root, &flen);
    buf_init(&url, 0);
    buf_appendf(&url, "http://d%s/events?filters=", dk->prefix);
    dk_urlencode(&url, fjson, NULL);
    if (since > 0)
        buf_appendf(&url, "&since=%" PRId64, since);
    free(fjson);
    buf_init(&err, 4096);
    dk_events_init(&p, dk->podman, fn, arg);
    dk->evp = &p;
    dk->ev_err = &err;

    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, dk->sock);
    curl_easy_setopt(c, CURLOPT_URL, buf_cstr(&url));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, DK_CONNECT_S);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 0L); /* for as long as it lives */
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_event_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, dk);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, ev_open_socket);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, dk);
    curl_easy_setopt(c, CURLOPT_CLOSESOCKETFUNCTION, ev_close_socket);
    curl_easy_setopt(c, CURLOPT_CLOSESOCKETDATA, dk);

    CURLcode cc = ev_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (p.stopped || ev_cancelled(dk)) {
        r = 0;
    } else if (code && code != 200) {
        r = http_fail(e, "GET /events", code, &err);
    } else if (cc != CURLE_OK) {
        engine_set_errmsg(e, "GET /events: engine at %s: %s", dk->sock, curl_easy_strerror(cc));
        r = BD_E_UNAVAIL;
    } else {
        engine_set_errmsg(e, "GET /events: engine at %s ended the stream", dk->sock);
        r = BD_E_UNAVAIL;
    }
    /* the next request must not run these callbacks */
    curl_easy_reset(c);
    dk->evp = NULL;
    dk->ev_err = NULL;
    dk_events_release(&p);
    buf_release(&err);
    buf_release(&url);
    return r;
}

static void dk_events_cancel(struct engine *e)
{
    struct dk *dk = DK(e);
    if (!dk)
        return;
    pthread_mutex_lock(&dk->ev_mu);
    dk->ev_cancel = true;
    if (dk->ev_fd != CURL_SOCKET_BAD)
        shutdown(dk->ev_fd, SHUT_RDWR);
    pthread_mutex_unlock(&dk->ev_mu);
}

const struct engine_ops engine_docker_ops = {
    .name = "docker",
    .open = dk_open,
    .close = dk_close,
    .version = dk_version,
    .network_create = dk_network_create,
    .network_list = dk_network_list,
    .network_remove = dk_network_remove,
    .network_connect = dk_network_connect,
    .network_disconnect = dk_network_disconnect,
    .volume_create = dk_volume_create,
    .volume_list = dk_volume_list,
    .volume_remove = dk_volume_remove,
    .container_create = dk_container_create,
    .container_list = dk_container_list,
    .container_inspect = dk_container_inspect,
    .container_start = dk_container_start,
    .container_stop = dk_container_stop,
    .container_kill = dk_container_kill,
    .container_remove = dk_container_remove,
    .container_wait = dk_container_wait,
    .archive_put = dk_archive_put,
    .archive_get = dk_archive_get,
    .exec = dk_exec,
    .image_id = dk_image_id,
    .events = dk_events,
    .events_cancel = dk_events_cancel,
};
