/*
 * json_canon.h - canonical JSON text of a cJSON tree.
 *
 * Canonical means: object keys sorted bytewise (memcmp order of their UTF-8
 * bytes), no insignificant whitespace, strings escaped minimally (only '"',
 * '\\' and control characters below 0x20, as \n \r \t \b \f or \u00XX;
 * other UTF-8 passes through), numbers printed as integers when they are
 * integral and within +-2^53, else with "%.17g".  Two trees that are equal
 * as JSON values give identical bytes, so the text can be hashed.
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
