/*
 * forge_github.c - the "github" forge backend: deploy keys through the
 * REST API (2022-11-28), `Authorization: Bearer <token>`.
 *
 *   add     POST   /repos/{owner}/{repo}/keys {title, key, read_only:false} -> 201
 *   list    GET    /repos/{owner}/{repo}/keys?per_page=100 -> 200, Link rel="next"
 *   delete  DELETE /repos/{owner}/{repo}/keys/{id} -> 204 (404: gone)
 *
 * Pagination follows the Link header's rel="next" URL as given (GitHub
 * may point it at /repositories/{id}/keys); the transport refuses one
 * with another origin, so the token never leaves the API root's host.
 * A duplicate is a 422 "Validation Failed" whose errors[] says "key is
 * already in use".  Rate limits: 403 or 429 with x-ratelimit-remaining 0
 * (wait for x-ratelimit-reset) or retry-after (the secondary limit); the
 * transport handles both.  GitHub refuses requests without a User-Agent;
 * the transport always sends one.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "forge.h"
#include "forge_http.h"
#include "xalloc.h"

#define GITHUB_PER_PAGE 100

static const char *const github_headers[] = {
    "Accept: application/vnd.github+json",
    "X-GitHub-Api-Version: 2022-11-28",
    NULL,
};

static int github_add_key(struct forge *f, const char *repo, const char *title,
                          const char *pubkey_line, int64_t *ret_id)
{
    struct forge_resp resp;
    struct forge_key k;
    int r = forge_check_repo(f, repo, false);
    if (r < 0)
        return r;

    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "title", title);
    cJSON_AddStringToObject(o, "key", pubkey_line);
    cJSON_AddFalseToObject(o, "read_only");
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!body)
        abort();
    char *path = xasprintf("/repos/%s/keys", repo);
    char *url = forge_url(f, path);
    r = forge_http_request(f, "POST", url, body, &resp);
    free(path);
    free(url);
    cJSON_free(body);
    if (r < 0)
        return r;
    if (resp.status != 201) {
        r = forge_http_fail(f, &resp);
    } else if (forge_parse_key(resp.body.data, resp.body.len, false, &k) < 0) {
        forge_set_errmsg(f, "%s: the answer holds no key id", f->what);
        r = BD_E_PROTO;
    } else {
        *ret_id = k.id;
        forge_key_release(&k);
    }
    forge_resp_release(&resp);
    return r;
}

static char *github_next(struct forge *f, const char *repo, int page, const struct forge_resp *r,
                         size_t n_page, size_t n_total, int *err)
{
    char *next = NULL;
    (void)repo, (void)page, (void)n_page, (void)n_total;
    if (!r->link)
        return NULL;
    int pr = forge_parse_link_next(r->link, &next);
    if (pr == BD_E_NOTFOUND)
        return NULL;
    if (pr < 0) {
        forge_set_errmsg(f, "%s: malformed Link header", f->what);
        *err = BD_E_PROTO;
        return NULL;
    }
    return next;
}

static int github_list_keys(struct forge *f, const char *repo, struct forge_key_list *ret)
{
    int r = forge_check_repo(f, repo, false);
    if (r < 0)
        return r;
    char *path = xasprintf("/repos/%s/keys?per_page=%d", repo, GITHUB_PER_PAGE);
    char *url = forge_url(f, path);
    free(path);
    return forge_get_pages(f, repo, url, false, github_next, ret);
}

static int github_delete_key(struct forge *f, const char *repo, int64_t id)
{
    struct forge_resp resp;
    int r = forge_check_repo(f, repo, false);
    if (r < 0)
        return r;

    char *path = xasprintf("/repos/%s/keys/%" PRId64, repo, id);
    char *url = forge_url(f, path);
    r = forge_http_request(f, "DELETE", url, NULL, &resp);
    free(path);
    free(url);
    if (r < 0)
        return r;
    if (resp.status != 204 && resp.status != 404)
        r = forge_http_fail(f, &resp);
    forge_resp_release(&resp);
    return r;
}

const struct forge_ops forge_github_ops = {
    .name = "github",
    .auth_header = "Authorization: Bearer ",
    .headers = github_headers,
    .add_key = github_add_key,
    .list_keys = github_list_keys,
    .delete_key = github_delete_key,
};
