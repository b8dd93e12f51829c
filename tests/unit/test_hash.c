/*
 * test_hash.c - SHA-256 hex against the FIPS 180-2 test vectors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"
#include "xalloc.h"

static void test_vectors(void **state)
{
    (void)state;
    char out[SHA256_HEX_LEN + 1];

    sha256_hex("abc", 3, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256_hex("", 0, out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex(NULL, 0, out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(two, strlen(two), out);
    assert_string_equal(out, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_million_a(void **state)
{
    (void)state;
    char out[SHA256_HEX_LEN + 1];
    char *a = xmalloc(1000000);

    memset(a, 'a', 1000000);
    sha256_hex(a, 1000000, out);
    assert_string_equal(out, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

static void test_binary_and_terminator(void **state)
{
    (void)state;
    char out[SHA256_HEX_LEN + 2];
    char other[SHA256_HEX_LEN + 1];

    memset(out, 'X', sizeof(out));
    sha256_hex("a\0b", 3, out);
    assert_int_equal(out[SHA256_HEX_LEN], '\0');
    assert_int_equal(out[SHA256_HEX_LEN + 1], 'X'); /* nothing written past the NUL */
    assert_int_equal(strspn(out, "0123456789abcdef"), SHA256_HEX_LEN);
    sha256_hex("a", 1, other); /* the embedded NUL and what follows are hashed */
    assert_string_not_equal(out, other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_binary_and_terminator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
