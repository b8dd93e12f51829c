/*
 * fuzz_detect.c - libFuzzer target for the DLP detectors.
 *
 * Arbitrary bytes go through:
 *   - detect_scan(): a match lies inside the input, carries a rule id and
 *     masks to a string revealing at most four bytes; scanned from each of
 *     the first few offsets to exercise the boundary rules at the edges;
 *   - detect_scan_all(): matches lie inside the input, come in order and do
 *     not overlap, the first one is detect_scan()'s;
 *   - a fixed secret set: scan results lie inside the input, and redacting
 *     the input leaves no raw secret value in the output;
 *   - injection_scan(): a detection lies inside the input.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "detect.h"
#include "fuzz_target.h"
#include "injection.h"
#include "secretscan.h"

static const char *const secret_values[] = {
    "hunter2hunter2", "s3cr3t-value/+=", "AKIAFUZZFUZZFUZZ", "\x01\x02\x03\x04\xff\xfe\xfd\xfc",
    "aaaaaaaa",
};

static struct secret_set *secrets;
static pthread_once_t secrets_once = PTHREAD_ONCE_INIT;

static void build_secrets(void)
{
    secrets = secret_set_new();
    for (size_t i = 0; i < sizeof(secret_values) / sizeof(*secret_values); i++) {
        char name[16] = "s0";
        name[1] = (char)('0' + i);
        if (secret_set_add(secrets, name, secret_values[i], strlen(secret_values[i])) != 0)
            abort();
    }
    if (secret_set_compile(secrets) != 0)
        abort();
}

static void check_mask(const char *s, size_t n, const struct detect_match *m)
{
    char *mask = detect_mask(s, n, m);
    const char *dots = strstr(mask, "... (");

    if (!dots || dots - mask > 4)
        abort();
    free(mask);
}

static void check_all(const char *s, size_t n)
{
    struct detect_match all[16], first;
    size_t k = detect_scan_all(s, n, all, 16);
    int have = detect_scan(s, n, &first);

    if ((k > 0) != have)
        abort();
    if (have && (all[0].off != first.off || all[0].len != first.len ||
                 strcmp(all[0].detector, first.detector) != 0))
        abort();
    for (size_t i = 0; i < k && i < 16; i++) {
        if (!all[i].detector || all[i].len == 0 || all[i].off > n || all[i].len > n - all[i].off)
            abort();
        if (i > 0 && all[i].off < all[i - 1].off + all[i - 1].len)
            abort();
    }
}

static void check_secrets(const char *s, size_t n)
{
    struct secret_match m[8];
    size_t k = secret_set_scan(secrets, s, n, m, 8);
    struct buf out;
    size_t count = 0;

    for (size_t i = 0; i < k && i < 8; i++) {
        if (!m[i].name || m[i].off > n || m[i].len > n - m[i].off)
            abort();
    }
    buf_init(&out, 4 * n + 4096);
    if (secret_set_redact(secrets, s, n, &out, &count) != 0)
        abort();
    if ((k > 0) != (count > 0))
        abort();
    for (size_t i = 0; i < sizeof(secret_values) / sizeof(*secret_values); i++) {
        if (out.len && memmem(out.data, out.len, secret_values[i], strlen(secret_values[i])))
            abort();
    }
    buf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct detect_match m;
    struct injection_match im;

    pthread_once(&secrets_once, build_secrets);
    for (size_t start = 0; start < size && start < 4; start++) {
        if (detect_scan(s + start, size - start, &m)) {
            if (!m.detector || m.len == 0 || m.off > size - start || m.len > size - start - m.off)
                abort();
            check_mask(s + start, size - start, &m);
        }
    }
    check_mask(s, size, NULL);
    check_all(s, size);
    check_secrets(s, size);
    if (injection_scan(s, size, &im)) {
        if (!im.detector || im.len == 0 || im.off > size || im.len > size - im.off)
            abort();
    }
    return 0;
}
