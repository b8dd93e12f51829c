/*
 * forge_gitlab.c - the "gitlab" forge backend: project deploy keys
 * through API v4, `PRIVATE-TOKEN: <token>`.  The project id is the
 * repository path URL-encoded whole, subgroups included
 * ("group/sub/project" -> "group%2Fsub%2Fproject").
 *
 *   add     POST   /projects/{id}/deploy_keys {title, key, can_push:true} -> 201
 *   list    GET    /projects/{id}/deploy_keys?per_page=100&page=N -> 200, X-Next-Page
 *   delete  DELETE /projects/{id}/deploy_keys/{key_id} -> 204 (404: gone)
 *
 * An add of a key the project already has is no error at GitLab: it
 * answers 201 with the existing key, whatever its can_push.  We return its
 * id when it can push and BD_E_EXISTS when it cannot (a key the gate
 * cannot push with is no success).
 * Pagination: X-Next-Page (empty on the last page); without it, Link
 * rel="next" (GitLab leaves the X-Total* headers out of large results,
 * never X-Next-Page, but a proxy might strip it).
 * Rate limits: 429 with RateLimit-Remaining/RateLimit-Reset (epoch) and
 * usually Retry-After; the transport handles them.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "forge.h"
#include "forge_http.h"
#include "xalloc.h"

#define GITLAB_PER_PAGE 100

static const char *const gitlab_headers[] = {"Accept: application/json", NULL};

/* The URL-encoded project id (the repo is checked: only '/' needs it). */
static char *project_id(const char *repo)
{
    struct buf b;
    buf_init(&b, 0);
    for (const char *p = repo; *p; p++) {
        if (*p == '/')
            buf_puts(&b, "%2F");
        else
            buf_putc(&b, *p);
    }
    return buf_detach(&b, NULL);
}

static char *page_url(struct forge *f, const char *repo, long page)
{
    char *id = project_id(repo);
    char *path =
        xasprintf("/projects/%s/deploy_keys?per_page=%d&page=%ld", id, GITLAB_PER_PAGE, page);
    char *url = forge_url(f, path);
    free(id);
    free(path);
    return url;
}

static int gitlab_add_key(struct forge *f, const char *repo, const char *title,
                          const char *pubkey_line, int64_t *ret_id)
{
    struct forge_resp resp;
    struct forge_key k;
    int r = forge_check_repo(f, repo, true);
    if (r < 0)
        return r;

    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "title", title);
    cJSON_AddStringToObject(o, "key", pubkey_line);
    cJSON_AddTrueToObject(o, "can_push");
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!body)
        abort();
    char *id = project_id(repo);
    char *path = xasprintf("/projects/%s/deploy_keys", id);
    char *url = forge_url(f, path);
    r = forge_http_request(f, "POST", url, body, &resp);
    free(id);
    free(path);
    free(url);
    cJSON_free(body);
    if (r < 0)
        return r;
    if (resp.status != 201) {
        r = forge_http_fail(f, &resp);
    } else if (forge_parse_key(resp.body.data, resp.body.len, true, &k) < 0) {
        forge_set_errmsg(f, "%s: the answer holds no key id", f->what);
        r = BD_E_PROTO;
    } else {
        if (k.read_only) {
            forge_set_errmsg(
                f, "%s: the project already has this key (id %" PRId64 ") without push access",
                f->what, k.id);
            r = BD_E_EXISTS;
        } else {
            *ret_id = k.id;
        }
        forge_key_release(&k);
    }
    forge_resp_release(&resp);
    return r;
}

static char *gitlab_next(struct forge *f, const char *repo, int page, const struct forge_resp *r,
                         size_t n_page, size_t n_total, int *err)
{
    (void)page, (void)n_page, (void)n_total;
    if (r->next_page) {
        const char *s = r->next_page;
        long v = 0;
        size_t i = 0;
        for (; isdigit((unsigned char)s[i]) && i < 9; i++)
            v = v * 10 + (s[i] - '0');
        if (!*s)
            return NULL; /* the last page */
        if (s[i] || v < 1) {
            forge_set_errmsg(f, "%s: malformed X-Next-Page header", f->what);
            *err = BD_E_PROTO;
            return NULL;
        }
        return page_url(f, repo, v);
    }
    char *next = NULL;
    int pr = r->link ? forge_parse_link_next(r->link, &next) : BD_E_NOTFOUND;
    if (pr == BD_E_NOTFOUND)
        return NULL;
    if (pr < 0) {
        forge_set_errmsg(f, "%s: malformed Link header", f->what);
        *err = BD_E_PROTO;
        return NULL;
    }
    return next;
}

static int gitlab_list_keys(struct forge *f, const char *repo, struct forge_key_list *ret)
{
    int r = forge_check_repo(f, repo, true);
    if (r < 0)
        return r;
    return forge_get_pages(f, repo, page_url(f, repo, 1), true, gitlab_next, ret);
}

static int gitlab_delete_key(struct forge *f, const char *repo, int64_t key_id)
{
    struct forge_resp resp;
    int r = forge_check_repo(f, repo, true);
    if (r < 0)
        return r;

    char *id = project_id(repo);
    char *path = xasprintf("/projects/%s/deploy_keys/%" PRId64, id, key_id);
    char *url = forge_url(f, path);
    r = forge_http_request(f, "DELETE", url, NULL, &resp);
    free(id);
    free(path);
    free(url);
    if (r < 0)
        return r;
    if (resp.status != 204 && resp.status != 200 && resp.status != 404)
        r = forge_http_fail(f, &resp);
    forge_resp_release(&resp);
    return r;
}

const struct forge_ops forge_gitlab_ops = {
    .name = "gitlab",
    .auth_header = "PRIVATE-TOKEN: ",
    .headers = gitlab_headers,
    .add_key = gitlab_add_key,
    .list_keys = gitlab_list_keys,
    .delete_key = gitlab_delete_key,
};
