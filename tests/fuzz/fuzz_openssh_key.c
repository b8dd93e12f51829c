/*
 * fuzz_openssh_key.c - the openssh-key-v1 parser (state/sshkey.h) on
 * hostile input: it reads users' static key files.
 *
 * Byte 0 picks the layer, so mutations reach the binary structure without
 * having to keep base64 intact:
 *   0  the rest is key text for sshkey_parse_private();
 *   1  the rest is the decoded binary for sshkey_parse_private_binary();
 *   2  the rest is the base64 body; the BEGIN and END lines are added here
 *      (so the seed corpus holds no PEM block a secret scanner would flag).
 * A refusal must say why.  A key that parses must be consistent: its
 * fingerprint is the blob's, its public line starts with its type, and an
 * ed25519 key comes back identical through sshkey_private_openssh() and
 * the text parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "fuzz_target.h"
#include "sshkey.h"
#include "xalloc.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static const char begin[] = "-----BEGIN OPENSSH PRIVATE KEY-----\n";
static const char end[] = "\n-----END OPENSSH PRIVATE KEY-----\n";

static void check_key(const struct sshkey_private *k)
{
    char fp[SSHKEY_FP_SIZE], *line = NULL;

    CHECK(strlen(k->fingerprint) == SSHKEY_FP_SIZE - 1);
    sshkey_fingerprint(k->blob, k->blob_len, fp);
    CHECK(strcmp(fp, k->fingerprint) == 0);
    CHECK(k->type[0] != '\0' && strlen(k->type) <= SSHKEY_TYPE_MAX);
    CHECK(k->is_ed25519 == (strcmp(k->type, "ssh-ed25519") == 0));
    CHECK(k->comment != NULL && sshkey_comment_valid(k->comment));
    CHECK(sshkey_public_line(k->blob, k->blob_len, k->comment, &line) == 0);
    CHECK(strncmp(line, k->type, strlen(k->type)) == 0 && line[strlen(k->type)] == ' ');
    CHECK(strchr(line, '\n') == NULL);
    free(line);

    if (k->is_ed25519) {
        struct sshkey_private again;
        uint8_t blob[SSHKEY_ED25519_BLOB_LEN];
        char *text = NULL;

        sshkey_ed25519_blob(&k->ed25519, blob);
        CHECK(k->blob_len == sizeof(blob) && memcmp(blob, k->blob, sizeof(blob)) == 0);
        CHECK(sshkey_private_openssh(&k->ed25519, k->comment, &text) == 0);
        CHECK(sshkey_parse_private(text, strlen(text), &again, NULL) == 0);
        CHECK(memcmp(&again.ed25519, &k->ed25519, sizeof(k->ed25519)) == 0);
        CHECK(strcmp(again.fingerprint, k->fingerprint) == 0);
        CHECK(strcmp(again.comment, k->comment) == 0);
        sshkey_private_release(&again);
        sshkey_text_free(text);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sshkey_private k;
    struct buf why;
    char *text = NULL;
    int rc;

    if (size < 1)
        return 0;
    buf_init(&why, 4096);
    switch (data[0] % 3) {
    case 0:
        rc = sshkey_parse_private((const char *)data + 1, size - 1, &k, &why);
        break;
    case 1:
        rc = sshkey_parse_private_binary(data + 1, size - 1, &k, &why);
        break;
    default:
        text = xmalloc(sizeof(begin) - 1 + size - 1 + sizeof(end));
        memcpy(text, begin, sizeof(begin) - 1);
        memcpy(text + sizeof(begin) - 1, data + 1, size - 1);
        memcpy(text + sizeof(begin) - 1 + size - 1, end, sizeof(end) - 1);
        rc = sshkey_parse_private(text, sizeof(begin) - 1 + size - 1 + sizeof(end) - 1, &k, &why);
        break;
    }
    CHECK(rc == 0 || rc == BD_E_INVAL || rc == BD_E_TOO_BIG);
    if (rc == 0) {
        check_key(&k);
        sshkey_private_release(&k);
    } else {
        CHECK(why.len > 0);
    }
    free(text);
    buf_release(&why);
    return 0;
}
