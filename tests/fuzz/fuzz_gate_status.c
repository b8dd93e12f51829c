/*
 * fuzz_gate_status.c - libFuzzer target for the gate's status file parser
 * (reconciler/gatestatus.c): whatever the input, the parser returns 0 or an
 * error, and on success every kept entry passes its checks.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "gatestatus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gate_status s;
    if (gate_status_parse((const char *)data, size, &s) != 0)
        return 0;
    if (s.n_auth > GATE_STATUS_MAX_ENTRIES || s.n_keys > GATE_STATUS_MAX_ENTRIES)
        abort();
    for (size_t i = 0; i < s.n_keys; i++)
        if (!strchr(s.keys[i].host_key, ' ') || strchr(s.keys[i].host_key, '\n') ||
            strlen(s.keys[i].repo) > 128)
            abort();
    for (size_t i = 0; i < s.n_auth; i++)
        if (s.auth[i].at < 0)
            abort();
    (void)gate_status_auth_at(&s, "r");
    gate_status_release(&s);
    return 0;
}
