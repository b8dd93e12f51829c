/*
 * fuzz_target.h - the one entry point every fuzz_<name>.c defines.
 *
 * libFuzzer calls it with each generated input; replay_main.c calls it with
 * each file of a corpus.  It must return 0, release everything it
 * allocated, and abort() on a broken invariant so both drivers report it.
 */
#ifndef BOTTLED_FUZZ_TARGET_H
#define BOTTLED_FUZZ_TARGET_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
