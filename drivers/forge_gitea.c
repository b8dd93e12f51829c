/*
 * forge_gitea.c - the "gitea" forge backend (Forgejo too): deploy keys
 * through Gitea's API v1, `Authorization: token <token>`.
 *
 *   add     POST   /repos/{owner}/{repo}/keys {title, key, read_only:false} -> 201
 *   list    GET    /repos/{owner}/{repo}/keys?page=N&limit=50 -> 200, X-Total-Count
 *   delete  DELETE /repos/{owner}/{repo}/keys/{id} -> 204 (404: gone)
 *
 * Pagination: Gitea caps `limit` at its MAX_RESPONSE_ITEMS setting, which
 * an admin may set below what we ask, so a short page proves nothing.
 * The list ends when X-Total-Count keys have arrived, or (without that
 * header) at the first empty page.
 * Duplicates are a 422 ("This key has already been added to this
 * repository", "A key with the same name already exists").
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

#define GITEA_LIMIT 50

static const char *const gitea_headers[] = {"Accept: application/json", NULL};

static char *page_url(struct forge *f, const char *repo, int page)
{
    char *path = xasprintf("/repos/%s/keys?page=%d&limit=%d", repo, page, GITEA_LIMIT);
    char *url = forge_url(f, path);
    free(path);
    return url;
}

static int gitea_add_key(struct forge *f, const char *repo, const char *title,
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
    if (resp.status != 201 && resp.status != 200) {
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

static char *gitea_next(struct forge *f, const char *repo, int page, const struct forge_resp *r,
                        size_t n_page, size_t n_total, int *err)
{
    char *end;
    (void)err;
    if (n_page == 0)
        return NULL;
    if (r->total_count) {
        unsigned long long total = strtoull(r->total_count, &end, 10);
        if (end != r->total_count && !*end && n_total >= total)
            return NULL;
    }
    return page_url(f, repo, page + 1);
}

static int gitea_list_keys(struct forge *f, const char *repo, struct forge_key_list *ret)
{
    int r = forge_check_repo(f, repo, false);
    if (r < 0)
        return r;
    return forge_get_pages(f, repo, page_url(f, repo, 1), false, gitea_next, ret);
}

static int gitea_delete_key(struct forge *f, const char *repo, int64_t id)
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
    if (resp.status != 204 && resp.status != 200 && resp.status != 404)
        r = forge_http_fail(f, &resp);
    forge_resp_release(&resp);
    return r;
}

const struct forge_ops forge_gitea_ops = {
    .name = "gitea",
    .auth_header = "Authorization: token ",
    .headers = gitea_headers,
    .add_key = gitea_add_key,
    .list_keys = gitea_list_keys,
    .delete_key = gitea_delete_key,
};
