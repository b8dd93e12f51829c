/*
 * render.c - a bottle's sidecar config generation (see render.h).
 *
 * secrets.json is written by hand into a buffer sized exactly beforehand:
 * a growing buffer would leave copies of secret values in freed memory
 * that nothing wipes.  Everything else goes through cJSON and
 * json_canon_print(), like `bottled show`.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "buf.h"
#include "canonical.h"
#include "err.h"
#include "host.h"
#include "json_canon.h"
#include "render.h"
#include "xalloc.h"

/* --- knobs ------------------------------------------------------------- */

/* Parses an IP literal into bytes; returns its family or 0. */
static int parse_ip(const char *s, size_t n, unsigned char addr[16])
{
    char tmp[INET6_ADDRSTRLEN + 1];
    if (n == 0 || n >= sizeof(tmp))
        return 0;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (inet_pton(AF_INET, tmp, addr) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, tmp, addr) == 1)
        return AF_INET6;
    return 0;
}

static char *ip_text(int family, const unsigned char addr[16])
{
    char out[INET6_ADDRSTRLEN];
    inet_ntop(family, addr, out, sizeof(out));
    return xstrdup(out);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_host(const void *a, const void *b)
{
    const struct render_host *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->ip, y->ip);
}

static int parse_cidr(const char *s, char **ret)
{
    const char *slash = strchr(s, '/');
    unsigned char addr[16];
    int family = slash ? parse_ip(s, (size_t)(slash - s), addr) : 0;
    if (!family)
        return -1;
    const char *p = slash + 1;
    size_t nd = strspn(p, "0123456789");
    if (nd == 0 || nd > 3 || p[nd])
        return -1;
    int prefix = (int)strtol(p, NULL, 10);
    int bits = family == AF_INET ? 32 : 128;
    if (prefix > bits)
        return -1;
    for (int i = prefix; i < bits; i++)
        if (addr[i / 8] & (0x80 >> (i % 8)))
            return -1;
    char *ip = ip_text(family, addr);
    *ret = xasprintf("%s/%d", ip, prefix);
    free(ip);
    return 0;
}

static int read_upstream_ca(const char *path, struct render_knobs *k, struct diag_list *diags)
{
    struct buf b;
    buf_init(&b, RENDER_UPSTREAM_CA_MAX);
    int rc = buf_read_file(&b, path);
    if (rc == BD_E_TOO_BIG) {
        diag_error(diags, "--proxy-upstream-ca", 0, 0, NULL, NULL, "'%s' is over %zu bytes", path,
                   RENDER_UPSTREAM_CA_MAX);
        goto out;
    }
    if (rc) {
        diag_error(diags, "--proxy-upstream-ca", 0, 0, NULL, NULL, "cannot read '%s': %s", path,
                   strerror(errno));
        goto out;
    }
    BIO *bio = BIO_new_mem_buf(buf_cstr(&b), (int)b.len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    if (!x) {
        diag_error(diags, "--proxy-upstream-ca", 0, 0, NULL, NULL, "'%s' holds no PEM certificate",
                   path);
        rc = BD_E_PARSE;
    }
    X509_free(x);
    BIO_free(bio);
    if (!rc) {
        k->upstream_ca_len = b.len;
        k->upstream_ca = buf_detach(&b, NULL);
    }
out:
    buf_release(&b);
    return rc;
}

int render_knobs_init(struct render_knobs *k, const char *dns, const char *const *add_hosts,
                      size_t n_add_hosts, const char *const *allow_private, size_t n_allow_private,
                      const char *upstream_ca_path, struct diag_list *diags)
{
    memset(k, 0, sizeof(*k));
    size_t errors = diags->n_errors;
    unsigned char addr[16];
    int family;
    int rc = 0;

    if (dns) {
        if ((family = parse_ip(dns, strlen(dns), addr)))
            k->dns = ip_text(family, addr);
        else
            diag_error(diags, "--proxy-dns", 0, 0, NULL, NULL,
                       "'%s' is not an IPv4 or IPv6 address", dns);
    }

    k->hosts = xcalloc(n_add_hosts ? n_add_hosts : 1, sizeof(*k->hosts));
    for (size_t i = 0; i < n_add_hosts; i++) {
        const char *s = add_hosts[i], *colon = strchr(s, ':');
        char *name = NULL;
        int herr = colon ? host_normalize(s, (size_t)(colon - s), 0, &name) : HOST_E_EMPTY;
        family = colon ? parse_ip(colon + 1, strlen(colon + 1), addr) : 0;
        if (!colon)
            diag_error(diags, "--proxy-add-host", 0, 0, NULL, NULL, "'%s': expected NAME:IP", s);
        else if (herr != HOST_OK)
            diag_error(diags, "--proxy-add-host", 0, 0, NULL, NULL, "'%s': invalid name: %s", s,
                       host_strerror(herr));
        else if (!family)
            diag_error(diags, "--proxy-add-host", 0, 0, NULL, NULL,
                       "'%s': '%s' is not an IPv4 or IPv6 address", s, colon + 1);
        if (herr != HOST_OK || !family) {
            free(name);
            continue;
        }
        k->hosts[k->n_hosts++] = (struct render_host){name, ip_text(family, addr)};
    }
    qsort(k->hosts, k->n_hosts, sizeof(*k->hosts), cmp_host);
    size_t w = 0;
    for (size_t i = 0; i < k->n_hosts; i++) {
        struct render_host *h = &k->hosts[i];
        if (w && !strcmp(k->hosts[w - 1].name, h->name)) {
            if (strcmp(k->hosts[w - 1].ip, h->ip))
                diag_error(diags, "--proxy-add-host", 0, 0, NULL, NULL,
                           "'%s' is given two addresses ('%s' and '%s')", h->name,
                           k->hosts[w - 1].ip, h->ip);
            free(h->name);
            free(h->ip);
            continue;
        }
        k->hosts[w++] = *h;
    }
    k->n_hosts = w;

    k->allow_private = xcalloc(n_allow_private ? n_allow_private : 1, sizeof(*k->allow_private));
    for (size_t i = 0; i < n_allow_private; i++) {
        char *c = NULL;
        if (parse_cidr(allow_private[i], &c) < 0)
            diag_error(diags, "--proxy-allow-private", 0, 0, NULL, NULL,
                       "'%s' is not a CIDR range ADDRESS/PREFIX with the host bits zero",
                       allow_private[i]);
        else
            k->allow_private[k->n_allow_private++] = c;
    }
    qsort(k->allow_private, k->n_allow_private, sizeof(char *), cmp_str);
    w = 0;
    for (size_t i = 0; i < k->n_allow_private; i++) {
        if (w && !strcmp(k->allow_private[w - 1], k->allow_private[i])) {
            free(k->allow_private[i]);
            continue;
        }
        k->allow_private[w++] = k->allow_private[i];
    }
    k->n_allow_private = w;

    if (upstream_ca_path)
        rc = read_upstream_ca(upstream_ca_path, k, diags);
    if (!rc && diags->n_errors > errors)
        rc = BD_E_PARSE;
    if (rc)
        render_knobs_release(k);
    return rc;
}

void render_knobs_release(struct render_knobs *k)
{
    free(k->dns);
    for (size_t i = 0; i < k->n_hosts; i++) {
        free(k->hosts[i].name);
        free(k->hosts[i].ip);
    }
    free(k->hosts);
    for (size_t i = 0; i < k->n_allow_private; i++)
        free(k->allow_private[i]);
    free(k->allow_private);
    free(k->upstream_ca);
    memset(k, 0, sizeof(*k));
}

/* --- secrets.json ------------------------------------------------------ */

/* Writes into p (cap bytes) or, when p is NULL, only counts. */
struct writer {
    char *p;
    size_t len, cap;
};

static void w_put(struct writer *w, const char *s, size_t n)
{
    if (w->p) {
        if (w->len + n > w->cap)
            abort(); /* the counting pass was wrong: a bug */
        memcpy(w->p + w->len, s, n);
    }
    w->len += n;
}

static void w_str(struct writer *w, const char *s)
{
    w_put(w, s, strlen(s));
}

/* A JSON string; values hold no control characters (secrets.h), only '"' and '\\' need escaping. */
static void w_json_string(struct writer *w, const char *s, size_t n)
{
    w_put(w, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '"' || s[i] == '\\') {
            w_put(w, s + start, i - start);
            w_put(w, "\\", 1);
            start = i;
        }
    w_put(w, s + start, n - start);
    w_put(w, "\"", 1);
}

static void w_secrets(struct writer *w, const struct secret *const *v, size_t n, int masked)
{
    w_str(w, "{\"secrets\":[");
    for (size_t i = 0; i < n; i++) {
        w_str(w, i ? ",{\"hosts\":[" : "{\"hosts\":[");
        for (size_t j = 0; j < v[i]->n_hosts; j++) {
            if (j)
                w_put(w, ",", 1);
            w_json_string(w, v[i]->hosts[j], strlen(v[i]->hosts[j]));
        }
        w_str(w, "],\"name\":");
        w_json_string(w, v[i]->name, strlen(v[i]->name));
        w_str(w, ",\"value\":");
        if (masked)
            w_str(w, "\"<masked>\"");
        else
            w_json_string(w, v[i]->value, v[i]->value_len);
        w_put(w, "}", 1);
    }
    w_str(w, "],\"version\":1}");
}

static char *secrets_doc(const struct secret *const *v, size_t n, int masked, size_t *ret_len)
{
    struct writer w = {0};
    w_secrets(&w, v, n, masked);
    size_t len = w.len;
    w = (struct writer){xmalloc(len + 1), 0, len};
    w_secrets(&w, v, n, masked);
    w.p[len] = '\0';
    *ret_len = len;
    return w.p;
}

/* --- routes.json and the hash ------------------------------------------ */

static void hex(const unsigned char *p, size_t n, char *out);

void render_gate_token(const unsigned char *hmac_key, size_t key_len, const char *bottle,
                       char out[RENDER_GATE_TOKEN_LEN + 1])
{
    static const char label[] = "gate-tunnel"; /* sizeof includes the NUL: "gate-tunnel\0" */
    static const unsigned char zero = 0;
    size_t blen = strlen(bottle);
    unsigned char *msg = xmalloc(sizeof(label) + blen);
    memcpy(msg, label, sizeof(label));
    memcpy(msg + sizeof(label), bottle, blen);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), key_len ? hmac_key : &zero, (int)key_len, msg, sizeof(label) + blen,
              mac, &mac_len) ||
        mac_len != RENDER_GATE_TOKEN_LEN / 2)
        abort(); /* OpenSSL cannot compute SHA-256: nothing sensible to do */
    free(msg);
    hex(mac, mac_len, out);
    OPENSSL_cleanse(mac, sizeof(mac));
}

/* The sidecar's raw tunnels for the gate: one per distinct repo host:port,
 * sorted, each with sha256 of the gate's token.  Added only when the bottle
 * has repos, so other bottles' routes.json (and config hash) stay as they
 * were. */
static void tunnels_doc(cJSON *o, const struct bottle *b, const unsigned char *key, size_t key_len)
{
    if (!b->n_repos)
        return;
    char token[RENDER_GATE_TOKEN_LEN + 1], digest[SHA256_HEX_LEN + 1];
    render_gate_token(key, key_len, b->name, token);
    sha256_hex(token, strlen(token), digest);
    OPENSSL_cleanse(token, sizeof(token));
    char **v = xcalloc(b->n_repos, sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; i < b->n_repos; i++) {
        char *h = NULL;
        if (!b->repos[i].host ||
            host_normalize(b->repos[i].host, strlen(b->repos[i].host), 0, &h) != 0)
            continue;
        char *e = xasprintf("%s %05d", h, b->repos[i].port ? b->repos[i].port : 22);
        free(h);
        int dup = 0;
        for (size_t j = 0; j < n; j++)
            dup |= !strcmp(v[j], e);
        if (dup)
            free(e);
        else
            v[n++] = e;
    }
    qsort(v, n, sizeof(*v), cmp_str);
    cJSON *t = cJSON_AddArrayToObject(o, "tunnels");
    for (size_t i = 0; i < n; i++) {
        char *sp = strrchr(v[i], ' ');
        *sp = '\0';
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "host", v[i]);
        cJSON_AddNumberToObject(e, "port", (double)strtol(sp + 1, NULL, 10));
        cJSON_AddStringToObject(e, "token_sha256", digest);
        cJSON_AddItemToArray(t, e);
        free(v[i]);
    }
    free(v);
}

static cJSON *routes_doc(const struct bottle *b, const struct render_knobs *k,
                         const unsigned char *key, size_t key_len)
{
    cJSON *canon = bottle_canonical(b);
    cJSON *egress = cJSON_GetObjectItemCaseSensitive(canon, "egress");
    cJSON *routes = cJSON_DetachItemFromObjectCaseSensitive(egress, "routes");
    cJSON_Delete(canon);

    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddStringToObject(o, "bottle", b->name);
    cJSON_AddItemToObject(o, "routes", routes ? routes : cJSON_CreateArray());
    if (k && k->dns)
        cJSON_AddStringToObject(o, "dns", k->dns);
    else
        cJSON_AddNullToObject(o, "dns");
    cJSON *hosts = cJSON_AddArrayToObject(o, "hosts");
    for (size_t i = 0; k && i < k->n_hosts; i++) {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddStringToObject(h, "name", k->hosts[i].name);
        cJSON_AddStringToObject(h, "ip", k->hosts[i].ip);
        cJSON_AddItemToArray(hosts, h);
    }
    cJSON *ap = cJSON_AddArrayToObject(o, "allow_private");
    for (size_t i = 0; k && i < k->n_allow_private; i++)
        cJSON_AddItemToArray(ap, cJSON_CreateString(k->allow_private[i]));
    tunnels_doc(o, b, key, key_len);
    return o;
}

static void hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static void config_hash(const char *routes, size_t routes_len, const struct secret *const *v,
                        size_t n, const struct render_knobs *k, const unsigned char *key,
                        size_t key_len, char out[SHA256_HEX_LEN + 1])
{
    struct buf pre;
    buf_init(&pre, 0);
    buf_puts(&pre, "bottled-config-hash 1\n");
    buf_append(&pre, routes, routes_len);
    for (size_t i = 0; i < n; i++) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        char mac_hex[2 * EVP_MAX_MD_SIZE + 1];
        static const unsigned char zero = 0;
        if (!HMAC(EVP_sha256(), key_len ? key : &zero, (int)key_len,
                  (const unsigned char *)v[i]->value, v[i]->value_len, mac, &mac_len))
            abort(); /* OpenSSL cannot compute SHA-256: nothing sensible to do */
        hex(mac, mac_len, mac_hex);
        buf_appendf(&pre, "\nsecret %s ", v[i]->name);
        for (size_t j = 0; j < v[i]->n_hosts; j++)
            buf_appendf(&pre, "%s%s", j ? "," : "", v[i]->hosts[j]);
        buf_appendf(&pre, " %s", mac_hex);
    }
    if (k && k->upstream_ca) {
        char ca_hex[SHA256_HEX_LEN + 1];
        sha256_hex(k->upstream_ca, k->upstream_ca_len, ca_hex);
        buf_appendf(&pre, "\nupstream-ca %s", ca_hex);
    }
    sha256_hex(pre.data, pre.len, out);
    buf_release(&pre);
}

static int cmp_secret(const void *a, const void *b)
{
    return strcmp((*(const struct secret *const *)a)->name,
                  (*(const struct secret *const *)b)->name);
}

static void add_file(struct render_output *r, const char *name, const char *data, size_t len,
                     int private)
{
    r->files[r->n_files++] = (struct render_file){name, data, len, private};
}

int render_bottle(const struct bottle *b, const struct secret_store *store,
                  const struct render_knobs *knobs, const unsigned char *hmac_key, size_t key_len,
                  const struct render_ca *ca, struct diag_list *diags, struct render_output **ret)
{
    const struct secret **used = xcalloc(b->n_routes ? b->n_routes : 1, sizeof(*used));
    size_t n_used = 0;
    int failed = 0;
    for (size_t i = 0; i < b->n_routes; i++) {
        const struct m_route *rt = &b->routes[i];
        if (!rt->token_ref)
            continue;
        const struct secret *sec = NULL;
        int err = secret_store_lookup(store, rt->token_ref, rt->host, &sec);
        if (err) {
            char *msg = secret_lookup_message(store, err, rt->token_ref, rt->host);
            diag_error(diags, rt->pos.src ? rt->pos.src : b->path, rt->pos.line, rt->pos.col,
                       b->name, NULL, "%s", msg);
            free(msg);
            failed = 1;
            continue;
        }
        int seen = 0;
        for (size_t j = 0; j < n_used; j++)
            seen |= used[j] == sec;
        if (!seen)
            used[n_used++] = sec;
    }
    if (failed) {
        free(used);
        return BD_E_PARSE;
    }
    qsort(used, n_used, sizeof(*used), cmp_secret);

    struct render_output *r = xcalloc(1, sizeof(*r));
    cJSON *doc = routes_doc(b, knobs, hmac_key, key_len);
    r->routes_json = json_canon_print(doc, 0);
    r->routes_len = strlen(r->routes_json);
    cJSON_Delete(doc);
    r->secrets_json = secrets_doc(used, n_used, 0, &r->secrets_len);
    size_t masked_len;
    r->secrets_masked = secrets_doc(used, n_used, 1, &masked_len);
    config_hash(r->routes_json, r->routes_len, used, n_used, knobs, hmac_key, key_len,
                r->config_hash);

    add_file(r, "routes.json", r->routes_json, r->routes_len, 0);
    add_file(r, "secrets.json", r->secrets_json, r->secrets_len, 1);
    if (ca && ca->cert)
        add_file(r, "ca.pem", ca->cert, ca->cert_len, 0);
    if (ca && ca->key)
        add_file(r, "ca-key.pem", ca->key, ca->key_len, 1);
    if (knobs && knobs->upstream_ca)
        add_file(r, "upstream-ca.pem", knobs->upstream_ca, knobs->upstream_ca_len, 0);

    struct buf m;
    buf_init(&m, 0);
    buf_appendf(&m, "bottled-proxy-config 1\nconfig-hash %s\n", r->config_hash);
    for (size_t i = 0; i < r->n_files; i++) {
        char digest[SHA256_HEX_LEN + 1];
        sha256_hex(r->files[i].data, r->files[i].len, digest);
        buf_appendf(&m, "file %s %s\n", digest, r->files[i].name);
    }
    r->manifest = buf_detach(&m, &r->manifest_len);
    add_file(r, "MANIFEST", r->manifest, r->manifest_len, 1);
    free(used);
    *ret = r;
    return 0;
}

void render_output_free(struct render_output *r)
{
    if (!r)
        return;
    if (r->secrets_json)
        OPENSSL_cleanse(r->secrets_json, r->secrets_len);
    free(r->secrets_json);
    free(r->secrets_masked);
    free(r->routes_json);
    free(r->manifest);
    free(r);
}
