/*
 * b64.h - base64 digits, either alphabet.
 */
#ifndef BOTTLED_B64_H
#define BOTTLED_B64_H

/*
 * The value of a base64 digit in the standard or the URL-safe alphabet
 * (RFC 4648 sections 4 and 5: '+' and '-' are 62, '/' and '_' are 63), or
 * -1 for any other byte ('=' included).
 */
int b64_digit(unsigned char c);

#endif
