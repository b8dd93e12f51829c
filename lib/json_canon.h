/*
 * json_canon.h - canonical JSON text of a cJSON tree.
 *
 * Canonical means: object keys sorted bytewise (memcmp order of their UTF-8
 * bytes), no insignificant whitespace, strings escaped minimally (only '"',
 * '\\' and control characters below 0x20, as \n \r \t \b \f or \u00xx with
 * lowercase hex; other bytes pass through unvalidated), numbers printed as
 * integers when they are integral and within +-2^53 (-0 as 0), else with
 * "%.17g"; NaN and infinities print as null.  Duplicate keys keep their
 * relative order.  Two trees that are equal as JSON values give identical
 * bytes, so the text can be hashed.
 *
 * The trees printed are the program's own, so a Raw or Invalid node, output
 * over 64 MiB or nesting over 10000 levels is a bug and aborts.
 *
 * With pretty != 0 the same ordering is printed indented by two spaces and
 * with a trailing newline (for `bottled show`).
 */
#ifndef BOTTLED_JSON_CANON_H
#define BOTTLED_JSON_CANON_H

#include <cjson/cJSON.h>

/* malloc'd, NUL-terminated; never NULL. */
char *json_canon_print(const cJSON *v, int pretty);

#endif
