/*
 * hash.c - SHA-256 through OpenSSL's EVP interface, as lowercase hex.
 *
 * EVP_Digest() only fails when OpenSSL itself is broken (no default
 * provider, allocation failure); hashing has no input errors, so a failure
 * aborts like an allocation failure would.
 */
#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>

#include "hash.h"

void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (!EVP_Digest(len ? data : "", len, md, &md_len, EVP_sha256(), NULL) || md_len != 32) {
        fprintf(stderr, "sha256_hex: EVP_Digest failed\n");
        abort();
    }
    for (unsigned int i = 0; i < md_len; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 0xf];
    }
    out[SHA256_HEX_LEN] = '\0';
}
