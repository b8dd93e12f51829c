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

static int get_direct(const char *url, long *ret_code, char **ret_body)
{
    CURL *c = curl_easy_init();
    if (!c)
        return BD_E_INTERNAL;
    struct buf b;
    buf_init(&b, ADMIN_MAX_BODY);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 300L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
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
