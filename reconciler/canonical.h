/*
 * canonical.h - the canonical JSON form of a resolved bottle.
 *
 * Every key is always present, defaults are filled in, `extends` has been
 * applied (and is not part of the form), cpus are integer millicores and
 * memory is bytes, route lists are sorted by host and set-like lists
 * (ports, methods, detectors) are sorted.  The same bottle written
 * differently (key order, flow or block style, CRLF, comments) gives the
 * same bytes; the reconciler derives its per-resource specs and hashes
 * from this form, so a change to it is a change of the hash scheme.
 */
#ifndef BOTTLED_CANONICAL_H
#define BOTTLED_CANONICAL_H

#include <cjson/cJSON.h>

#include "manifest.h"

/* A new cJSON tree (caller frees with cJSON_Delete). */
cJSON *bottle_canonical(const struct bottle *b);

/* Canonical text: compact (pretty == 0, for hashing) or indented. malloc'd. */
char *bottle_canonical_text(const struct bottle *b, int pretty);

#endif
