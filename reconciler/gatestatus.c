/*
 * gatestatus.c - the git gate's status file (see gatestatus.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "gatestatus.h"
#include "xalloc.h"

static const char *const key_types[] = {
    "ssh-ed25519",         "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521", NULL,
};

static int repo_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n && n <= 128 && strcmp(s, ".") && strcmp(s, "..") &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* "TYPE BASE64[ comment]" -> "TYPE BASE64" (malloc'd), or NULL. */
static char *host_key_norm(const char *s)
{
    if (!s || strlen(s) > GATE_HOST_KEY_MAX)
        return NULL;
    size_t t = strcspn(s, " ");
    int known = 0;
    for (size_t i = 0; key_types[i]; i++)
        known |= strlen(key_types[i]) == t && !strncmp(key_types[i], s, t);
    if (!known || s[t] != ' ')
        return NULL;
    const char *b = s + t + 1;
    size_t bl = strspn(b, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=");
    if (bl < 16 || (b[bl] != '\0' && b[bl] != ' '))
        return NULL;
    char *out = xmalloc(t + 1 + bl + 1);
    memcpy(out, s, t + 1 + bl);
    out[t + 1 + bl] = '\0';
    return out;
}

int gate_status_parse(const char *json, size_t len, struct gate_status *ret)
{
    if (len > GATE_STATUS_MAX)
        return BD_E_TOO_BIG;
    cJSON *o = cJSON_ParseWithLength(json, len);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return BD_E_PROTO;
    }
    struct gate_status s = {0};
    const cJSON *e;
    const cJSON *af = cJSON_GetObjectItemCaseSensitive(o, "auth_failures");
    if (cJSON_IsArray(af)) {
        cJSON_ArrayForEach(e, af)
        {
            if (s.n_auth == GATE_STATUS_MAX_ENTRIES)
                break;
            const cJSON *r = cJSON_GetObjectItemCaseSensitive(e, "repo");
            const cJSON *at = cJSON_GetObjectItemCaseSensitive(e, "at");
            if (!cJSON_IsString(r) || !repo_ok(r->valuestring) || !cJSON_IsNumber(at) ||
                !isfinite(at->valuedouble) || at->valuedouble < 0 || at->valuedouble > 1e12)
                continue;
            s.auth = xrealloc(s.auth, (s.n_auth + 1) * sizeof(*s.auth));
            s.auth[s.n_auth++] =
                (struct gate_auth_failure){xstrdup(r->valuestring), (int64_t)at->valuedouble};
        }
    }
    const cJSON *hk = cJSON_GetObjectItemCaseSensitive(o, "learned_host_keys");
    if (cJSON_IsArray(hk)) {
        cJSON_ArrayForEach(e, hk)
        {
            if (s.n_keys == GATE_STATUS_MAX_ENTRIES)
                break;
            const cJSON *r = cJSON_GetObjectItemCaseSensitive(e, "repo");
            const cJSON *k = cJSON_GetObjectItemCaseSensitive(e, "host_key");
            if (!cJSON_IsString(r) || !repo_ok(r->valuestring) || !cJSON_IsString(k))
                continue;
            char *norm = host_key_norm(k->valuestring);
            if (!norm)
                continue;
            s.keys = xrealloc(s.keys, (s.n_keys + 1) * sizeof(*s.keys));
            s.keys[s.n_keys++] = (struct gate_host_key){xstrdup(r->valuestring), norm};
        }
    }
    cJSON_Delete(o);
    *ret = s;
    return 0;
}

void gate_status_release(struct gate_status *s)
{
    for (size_t i = 0; i < s->n_auth; i++)
        free(s->auth[i].repo);
    for (size_t i = 0; i < s->n_keys; i++) {
        free(s->keys[i].repo);
        free(s->keys[i].host_key);
    }
    free(s->auth);
    free(s->keys);
    memset(s, 0, sizeof(*s));
}

int64_t gate_status_auth_at(const struct gate_status *s, const char *repo)
{
    int64_t t = 0;
    for (size_t i = 0; i < s->n_auth; i++)
        if (!strcmp(s->auth[i].repo, repo) && s->auth[i].at > t)
            t = s->auth[i].at;
    return t;
}
