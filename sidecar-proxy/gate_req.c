/*
 * gate_req.c - what the gate's server reads (gate.h): the agent's request
 * mapped to a repo and a git service, and `git http-backend`'s CGI head
 * turned into an HTTP/1.1 response head.  Pure functions of their input,
 * fuzzed by tests/fuzz/fuzz_gate_req.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gate.h"
#include "xalloc.h"

int gate_route_request(const struct gate_conf *c, const struct http_request *req,
                       struct gate_route *rt)
{
    struct slice t = req->target;
    if (req->form != HTTP_FORM_ORIGIN)
        return 400;
    const char *q = memchr(t.ptr, '?', t.len);
    size_t plen = q ? (size_t)(q - t.ptr) : t.len;
    const char *path = t.ptr;
    if (plen < 2 || path[0] != '/')
        return 404;
    const char *dotgit = NULL;
    for (size_t i = 1; i + 5 <= plen; i++)
        if (!memcmp(path + i, ".git/", 5)) {
            dotgit = path + i;
            break;
        }
    if (!dotgit)
        return 404;
    rt->repo = gate_conf_repo(c, path + 1, (size_t)(dotgit - path - 1));
    if (!rt->repo)
        return 404;
    const char *rest = dotgit + 5;
    size_t rlen = plen - (size_t)(rest - path);
    struct slice qs = {q ? q + 1 : "", q ? t.len - plen - 1 : 0};
    int get = slice_eq_cstr(req->method, "GET"), post = slice_eq_cstr(req->method, "POST");
    if (rlen == 9 && !memcmp(rest, "info/refs", 9)) {
        if (!get)
            return 405;
        if (slice_eq_cstr(qs, "service=git-upload-pack"))
            rt->service = "git-upload-pack";
        else if (slice_eq_cstr(qs, "service=git-receive-pack"))
            rt->service = "git-receive-pack";
        else
            return 404; /* the dumb protocol is not served */
        rt->info_refs = 1;
    } else if (rlen == 15 && !memcmp(rest, "git-upload-pack", 15)) {
        rt->service = "git-upload-pack";
    } else if (rlen == 16 && !memcmp(rest, "git-receive-pack", 16)) {
        rt->service = "git-receive-pack";
    } else {
        return 404;
    }
    if (!rt->info_refs && !post)
        return 405;
    rt->path_info = xstrndup(path, plen);
    rt->query = xstrndup(qs.ptr, qs.len);
    return 0;
}

void gate_route_release(struct gate_route *rt)
{
    free(rt->path_info);
    free(rt->query);
    *rt = (struct gate_route){0};
}

/* No control byte but HTAB: a header line safe to forward as is. */
static int printable(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
            return 0;
    return 1;
}

long gate_cgi_head(const struct buf *b, struct buf *out)
{
    const char *p = b->data ? b->data : "", *end = p + b->len, *line = p;
    int status = 200;
    char reason[64] = "OK";
    struct buf hdr;
    buf_init(&hdr, GATE_CGI_HEAD);
    long used = 0;
    while (line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            goto out; /* need more */
        size_t n = (size_t)(eol - line);
        if (n && line[n - 1] == '\r')
            n--;
        if (n == 0) {
            used = (long)(eol + 1 - p);
            break;
        }
        const char *colon = memchr(line, ':', n);
        if (!colon || colon == line) {
            used = -1;
            goto out;
        }
        size_t nl = (size_t)(colon - line);
        const char *v = colon + 1;
        while (v < line + n && (*v == ' ' || *v == '\t'))
            v++;
        size_t vl = (size_t)(line + n - v);
        if (nl == 6 && !strncasecmp(line, "Status", 6)) {
            char *s = xstrndup(v, vl), *rest;
            long st = strtol(s, &rest, 10);
            if (st >= 100 && st <= 599) {
                status = (int)st;
                while (*rest == ' ')
                    rest++;
                snprintf(reason, sizeof(reason), "%s", *rest ? rest : "Status");
            }
            free(s);
        } else if (!(nl == 10 && !strncasecmp(line, "Connection", 10)) &&
                   !(nl == 17 && !strncasecmp(line, "Transfer-Encoding", 17)) &&
                   printable(line, n)) {
            buf_appendf(&hdr, "%.*s: %.*s\r\n", (int)nl, line, (int)vl, v);
        }
        line = eol + 1;
    }
    if (used > 0) {
        for (char *q = reason; *q; q++)
            if ((unsigned char)*q < 0x20)
                *q = ' ';
        buf_appendf(out, "HTTP/1.1 %d %s\r\n%sConnection: close\r\n\r\n", status, reason,
                    buf_cstr(&hdr));
    }
out:
    buf_release(&hdr);
    return used;
}
