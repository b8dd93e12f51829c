/*
 * fuzz_gate_req.c - the git gate's request routing and CGI head
 * translation (gate.h, gate_req.c) on hostile input.
 *
 * Byte 0 even: the rest is an HTTP request head for http_parse_request();
 * when it parses, gate_route_request() maps it against a fixed config of
 * two repos; an accepted route must name one of them, one of the two
 * services, a PATH_INFO that is exactly "/<repo>.git/info/refs" or
 * "/<repo>.git/<service>", and a query without control bytes or spaces.
 * Byte 0 odd: the rest is `git http-backend` output for gate_cgi_head();
 * an accepted head must be one "HTTP/1.1 NNN" line, CRLF-terminated lines
 * without other control bytes, ending in "Connection: close" and a blank line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_target.h"
#include "gate.h"
#include "http.h"

static struct gate_repo repos[] = {
    {.name = "proj", .url = "ssh://git@h/p", .host = "h", .port = 22, .host_key = ""},
    {.name = "other.x", .url = "ssh://git@h/q", .host = "h", .port = 22, .host_key = ""},
};
static struct gate_conf conf = {.repos = repos, .n_repos = 2};

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)

static void route(const char *p, size_t n)
{
    struct http_request req;
    if (http_parse_request(p, n, NULL, &req) <= 0)
        return;
    struct gate_route rt = {0};
    int st = gate_route_request(&conf, &req, &rt);
    if (st) {
        CHECK(st == 400 || st == 404 || st == 405);
        CHECK(!rt.path_info && !rt.query);
        return;
    }
    CHECK(rt.repo == &repos[0] || rt.repo == &repos[1]);
    CHECK(!strcmp(rt.service, "git-upload-pack") || !strcmp(rt.service, "git-receive-pack"));
    size_t nl = strlen(rt.repo->name);
    CHECK(rt.path_info[0] == '/' && !strncmp(rt.path_info + 1, rt.repo->name, nl) &&
          !strncmp(rt.path_info + 1 + nl, ".git/", 5));
    CHECK(!strstr(rt.path_info, "/../") && !strchr(rt.path_info, '?'));
    const char *tail = rt.path_info + 1 + nl + 5;
    CHECK(!strcmp(tail, rt.info_refs ? "info/refs" : rt.service));
    for (const char *q = rt.query; *q; q++)
        CHECK((unsigned char)*q > 0x20 && *q != 0x7f);
    gate_route_release(&rt);
}

static void cgi(const char *p, size_t n)
{
    struct buf in, out;
    buf_init(&in, GATE_CGI_HEAD);
    buf_init(&out, GATE_CGI_HEAD + 256);
    if (buf_append(&in, p, n) == 0) {
        long used = gate_cgi_head(&in, &out);
        CHECK(used >= -1 && used <= (long)n);
        if (used > 0) {
            const char *h = buf_cstr(&out);
            CHECK(!strncmp(h, "HTTP/1.1 ", 9) && h[9] >= '1' && h[9] <= '5');
            CHECK(out.len >= 21 && !memcmp(h + out.len - 21, "Connection: close\r\n\r\n", 21));
            for (size_t i = 0; i < out.len; i++) {
                unsigned char ch = (unsigned char)h[i];
                if (ch == '\r')
                    CHECK(i + 1 < out.len && h[i + 1] == '\n');
                else if (ch == '\n')
                    CHECK(i > 0 && h[i - 1] == '\r');
                else
                    CHECK(ch >= 0x20 || ch == '\t');
            }
        } else {
            CHECK(out.len == 0);
        }
    }
    buf_release(&in);
    buf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] % 2 == 0)
        route((const char *)data + 1, size - 1);
    else
        cgi((const char *)data + 1, size - 1);
    return 0;
}
