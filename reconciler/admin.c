/*
 * admin.c - the sidecar's admin endpoint, read directly or through exec
 * (see admin.h).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "admin.h"
#include "buf.h"
#include "err.h"
#include "xalloc.h"

#define ADMIN_MAX_BODY 4096

static atomic_int direct_broken;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;
    return buf_append(b, p, size * n) == 0 ? size * n : 0;
}

/* One direct GET: no proxy, HTTP only, short timeouts, body into b. */
static void direct_options(CURL *c, const char *url, struct buf *b)
{
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 300L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
}

static int get_direct(const char *url, long *ret_code, char **ret_body)
{
    CURL *c = curl_easy_init();
    if (!c)
        return BD_E_INTERNAL;
    struct buf b;
    buf_init(&b, ADMIN_MAX_BODY);
    direct_options(c, url, &b);
    CURLcode cc = curl_easy_perform(c);
    int rc = 0;
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, ret_code);
        *ret_body = xmalloc(b.len + 1);
        memcpy(*ret_body, b.data ? b.data : "", b.len);
        (*ret_body)[b.len] = '\0';
    } else {
        long os_errno = 0;
        curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
        /* refused: the address is reachable, the sidecar not listening yet */
        rc = cc == CURLE_COULDNT_CONNECT && os_errno == ECONNREFUSED         ? BD_E_NOTFOUND
             : cc == CURLE_COULDNT_CONNECT || cc == CURLE_OPERATION_TIMEDOUT ? BD_E_UNAVAIL
                                                                             : BD_E_PROTO;
    }
    buf_release(&b);
    curl_easy_cleanup(c);
    return rc;
}

static int get_exec(struct engine *e, const char *container, const char *url, long *ret_code,
                    char **ret_body)
{
    struct engine_exec_spec spec = {0};
    static const char *const argv[] = {"curl", "-s", "--max-time", "2", "-w", "\n%{http_code}"};
    for (size_t i = 0; i < sizeof(argv) / sizeof(*argv); i++)
        engine_strv_add(&spec.cmd, argv[i]);
    engine_strv_add(&spec.cmd, url);
    spec.max_output = ADMIN_MAX_BODY + 16;
    spec.timeout_s = 10;
    struct engine_exec_result r = {0};
    int rc = engine_exec(e, container, &spec, &r);
    engine_strv_release(&spec.cmd);
    if (rc == 0 && (r.exit_code != 0 || !r.out.len))
        rc = BD_E_UNAVAIL;
    if (rc == 0) {
        /* body "\n" code */
        char *text = xmalloc(r.out.len + 1);
        memcpy(text, r.out.data, r.out.len);
        text[r.out.len] = '\0';
        char *nl = strrchr(text, '\n');
        char *end = NULL;
        long code = nl ? strtol(nl + 1, &end, 10) : 0;
        if (!nl || !end || *end || code < 100 || code > 599) {
            free(text);
            rc = BD_E_PROTO;
        } else {
            *nl = '\0';
            *ret_code = code;
            *ret_body = text;
        }
    }
    engine_exec_result_release(&r);
    return rc;
}

int sidecar_admin_get(struct engine *e, const char *container, const char *ip, const char *path,
                      long *ret_code, char **ret_body)
{
    char url[160];
    snprintf(url, sizeof(url), "http://%s:%d%s", ip ? ip : "127.0.0.1", ADMIN_PORT, path);
    if (ip && !atomic_load(&direct_broken)) {
        int rc = get_direct(url, ret_code, ret_body);
        if (rc == 0)
            return 0;
        if (rc == BD_E_NOTFOUND)
            return BD_E_UNAVAIL;
        if (rc == BD_E_UNAVAIL)
            atomic_store(&direct_broken, 1);
    }
    return get_exec(e, container, url, ret_code, ret_body);
}

struct multi_slot {
    CURL *c;
    struct buf b;
    size_t idx;
};

void sidecar_admin_get_many(struct engine *e, const char *path, struct admin_query *q, size_t n)
{
    enum { MAX_PARALLEL = 64 };
    for (size_t i = 0; i < n; i++) {
        q[i].code = 0;
        q[i].body = NULL;
        q[i].rc = BD_E_UNAVAIL;
    }
    CURLM *m = atomic_load(&direct_broken) ? NULL : curl_multi_init();
    size_t next = 0, running_n = 0;
    struct multi_slot slots[MAX_PARALLEL];
    memset(slots, 0, sizeof(slots));
    int broken = 0;
    while (m && (next < n || running_n)) {
        for (size_t s = 0; s < MAX_PARALLEL && next < n; s++) {
            if (slots[s].c)
                continue;
            while (next < n && !q[next].ip)
                next++;
            if (next >= n)
                break;
            char url[160];
            snprintf(url, sizeof(url), "http://%s:%d%s", q[next].ip, ADMIN_PORT, path);
            CURL *c = curl_easy_init();
            if (!c)
                break;
            buf_init(&slots[s].b, ADMIN_MAX_BODY);
            direct_options(c, url, &slots[s].b);
            curl_easy_setopt(c, CURLOPT_PRIVATE, &slots[s]);
            slots[s].c = c;
            slots[s].idx = next++;
            curl_multi_add_handle(m, c);
            running_n++;
        }
        int still = 0;
        if (curl_multi_perform(m, &still) != CURLM_OK)
            break;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct multi_slot *sl = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
            struct admin_query *qq = &q[sl->idx];
            if (msg->data.result == CURLE_OK) {
                curl_easy_getinfo(sl->c, CURLINFO_RESPONSE_CODE, &qq->code);
                qq->body = xmalloc(sl->b.len + 1);
                memcpy(qq->body, sl->b.data ? sl->b.data : "", sl->b.len);
                qq->body[sl->b.len] = '\0';
                qq->rc = 0;
            } else if (msg->data.result == CURLE_OPERATION_TIMEDOUT) {
                broken = 1; /* unroutable from here: exec below */
            }
            curl_multi_remove_handle(m, sl->c);
            curl_easy_cleanup(sl->c);
            buf_release(&sl->b);
            sl->c = NULL;
            running_n--;
        }
        if (running_n)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (size_t s = 0; s < MAX_PARALLEL; s++)
        if (slots[s].c) {
            curl_multi_remove_handle(m, slots[s].c);
            curl_easy_cleanup(slots[s].c);
            buf_release(&slots[s].b);
        }
    if (m)
        curl_multi_cleanup(m);
    if (broken)
        atomic_store(&direct_broken, 1);
    /* the rest, one by one (exec where the address is not routable) */
    for (size_t i = 0; i < n; i++)
        if (q[i].rc != 0 && (broken || !q[i].ip || atomic_load(&direct_broken)))
            q[i].rc = sidecar_admin_get(e, q[i].container, q[i].ip, path, &q[i].code, &q[i].body);
}
