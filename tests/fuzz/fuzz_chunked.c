/*
 * fuzz_chunked.c - libFuzzer target for the chunked body decoder.
 *
 * The first byte picks the limits and seeds the split points; the rest is
 * a chunked body.  It is decoded in one call, then again in pieces cut at
 * pseudo-random points, and (for short inputs) one byte at a time.  Every
 * way must give the same result, the same consumed count and byte-identical
 * output; consumed never exceeds the input and, when the body completes,
 * everything after it is left alone.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_target.h"
#include "http.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

#define OUT_MAX ((size_t)1 << 20)

struct result {
    int r;
    size_t consumed;
};

/* Feeds in pieces of the lengths next_cut() gives until done or error. */
static struct result decode(const struct http_limits *lim, const char *in, size_t len,
                            uint32_t seed, int mode, struct buf *out)
{
    struct http_chunked c;
    struct result res = {0, 0};
    size_t pos = 0;

    http_chunked_init(&c, lim);
    do {
        size_t n;
        if (mode == 0)
            n = len - pos;
        else if (mode == 1)
            n = len - pos ? 1 : 0;
        else {
            seed = seed * 1103515245u + 12345u;
            n = (seed >> 16) % 9;
            if (n > len - pos)
                n = len - pos;
        }
        size_t used = (size_t)-1;
        int r = http_chunked_feed_buf(&c, in + pos, n, &used, out);
        if (r < 0) {
            res.r = r;
            res.consumed = pos;
            CHECK(c.state == HTTP_CHUNKED_ERROR && c.error == r);
            /* an error sticks */
            CHECK(http_chunked_feed_buf(&c, "0\r\n\r\n", 5, &used, out) == r);
            return res;
        }
        CHECK(used <= n);
        pos += used;
        if (r == 1) {
            res.r = 1;
            res.consumed = pos;
            CHECK(c.state == HTTP_CHUNKED_DONE && c.body_len == out->len);
            CHECK(http_chunked_feed_buf(&c, in + pos, len - pos, &used, out) == 1 && used == 0);
            return res;
        }
        CHECK(used == n);
    } while (pos < len);
    res.consumed = pos;
    return res;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_limits tiny = {.max_chunk_ext = 8, .max_trailer = 32};
    struct buf one, other;

    if (size < 1)
        return 0;
    const struct http_limits *lim = (data[0] & 1) ? &tiny : NULL;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;

    buf_init(&one, OUT_MAX);
    buf_init(&other, OUT_MAX);
    struct result a = decode(lim, in, len, 0, 0, &one);
    CHECK(a.r <= 1 && a.consumed <= len);
    if (a.r == HTTP_E_TOO_BIG)
        goto out;
    for (int mode = 1; mode <= 4; mode++) {
        if (mode == 1 && len > 4096)
            continue;
        buf_reset(&other);
        struct result b = decode(lim, in, len, data[0] + (uint32_t)mode * 7919u, mode, &other);
        CHECK(b.r == a.r);
        if (a.r >= 0)
            CHECK(b.consumed == a.consumed);
        CHECK(other.len == one.len && (one.len == 0 || memcmp(one.data, other.data, one.len) == 0));
    }
out:
    buf_release(&one);
    buf_release(&other);
    return 0;
}
