/*
 * banned.h - libc calls we do not use.
 *
 * Included last by every project .c file (through compat via the build's
 * -include flag).  Each of these has a bounded or checked replacement:
 * buf_appendf() for sprintf/strcat, xstrndup()/memcpy with a length for
 * strcpy/strncpy, parse_u64() and friends for atoi/atol/strtol without
 * end checks, strtok_r() is not needed because we split on slices.
 */
#ifndef BOTTLED_BANNED_H
#define BOTTLED_BANNED_H

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) BANNED(strncat)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef atoi
#define atoi(x) BANNED(atoi)
#undef atol
#define atol(x) BANNED(atol)
#undef atoll
#define atoll(x) BANNED(atoll)
#undef gets
#define gets(x) BANNED(gets)

#endif
