/*
 * fuzz_manifest.c - one manifest file, end to end: front matter split,
 * YAML tree, typed parse, merge onto an empty parent, canonical JSON.
 *
 * Invariants checked on every input:
 *   - no diagnostic contains anything the credential detectors match
 *     (secrets are masked, whatever part of the input echoes them);
 *   - a bottle that parsed cleanly has canonical JSON that is valid JSON
 *     and is byte-identical when produced twice (and after a merge onto an
 *     empty parent, which must change nothing).
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "canonical.h"
#include "detect.h"
#include "fuzz_target.h"
#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena a;
    struct diag_list diags;
    arena_init(&a);
    diag_list_init(&diags);

    struct bottle *b = NULL;
    int r = manifest_parse(&a, "fuzz.md", "fuzz", (const char *)data, size, &diags, &b);
    for (size_t i = 0; i < diags.n; i++) {
        char *text = diag_format(&diags.v[i]);
        if (detect_scan(text, strlen(text), NULL))
            abort(); /* a credential-looking value leaked into a diagnostic */
        free(text);
    }
    if (r == 0 && b && !b->failed) {
        char *one = bottle_canonical_text(b, 0);
        struct bottle *empty = arena_alloc(&a, sizeof(*empty));
        *empty = (struct bottle){.resources = {-1, -1, -1}};
        bottle_merge(&a, empty, b);
        empty->name = b->name;
        empty->abstract = b->abstract;
        empty->body = b->body;
        char *two = bottle_canonical_text(empty, 0);
        cJSON *parsed = cJSON_Parse(one);
        if (!parsed || strcmp(one, two))
            abort();
        cJSON_Delete(parsed);
        free(one);
        free(two);
    }
    diag_list_release(&diags);
    arena_release(&a);
    return 0;
}
