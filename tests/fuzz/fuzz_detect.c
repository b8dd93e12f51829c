/*
 * fuzz_detect.c - libFuzzer target for the credential matcher.
 *
 * Arbitrary bytes go through detect_scan(); a reported match must lie
 * inside the input, carry a rule id, and mask to a string that reveals at
 * most four bytes.  The same input is also masked whole and scanned from
 * every offset of its first few bytes, which exercises the boundary rules
 * at the edges of the buffer.
 */
#include <stdlib.h>
#include <string.h>

#include "detect.h"
#include "fuzz_target.h"

static void check_mask(const char *s, size_t n, const struct detect_match *m)
{
    char *mask = detect_mask(s, n, m);
    const char *dots = strstr(mask, "... (");

    if (!dots || dots - mask > 4)
        abort();
    free(mask);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct detect_match m;

    for (size_t start = 0; start < size && start < 4; start++) {
        if (detect_scan(s + start, size - start, &m)) {
            if (!m.detector || m.len == 0 || m.off > size - start || m.len > size - start - m.off)
                abort();
            check_mask(s + start, size - start, &m);
        }
    }
    check_mask(s, size, NULL);
    return 0;
}
