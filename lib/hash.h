/*
 * hash.h - SHA-256 (OpenSSL EVP) as lowercase hex.
 */
#ifndef BOTTLED_HASH_H
#define BOTTLED_HASH_H

#include <stddef.h>

#define SHA256_HEX_LEN 64

/* Writes 64 hex characters and a NUL into out. */
void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1]);

#endif
