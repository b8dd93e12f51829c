/*
 * test_keys.c - SSH keys (state/sshkey.h, state/keys.h), checked against
 * the real OpenSSH client: ssh-keygen must read the private keys we
 * write (-y gives our public line, -Y sign makes a signature that -Y
 * verify accepts with our public key), print the fingerprints we compute
 * (-l), and we must read the keys it writes and refuse the encrypted ones.
 * Then the state dir's deploy keys (modes, idempotence, removal) and the
 * static key rules (relative, no "..", inside the keys dir after links).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "keys.h"
#include "sshkey.h"
#include "state.h"
#include "xalloc.h"

struct fixture {
    char *tmp; /* mkdtemp, 0700 */
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    char tmpl[] = "/tmp/test_keys.XXXXXX";

    assert_non_null(mkdtemp(tmpl));
    f->tmp = xstrdup(tmpl);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char *cmd = xasprintf("rm -rf '%s'", f->tmp);

    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f->tmp);
    free(f);
    return 0;
}

/* Runs cmd with sh; its stdout without the trailing newline; *ret_status the exit code. */
static char *run(const char *cmd, int *ret_status)
{
    struct buf out;
    char chunk[4096];
    size_t n;
    FILE *p = popen(cmd, "r");

    assert_non_null(p);
    buf_init(&out, 1 << 20);
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
        assert_int_equal(buf_append(&out, chunk, n), 0);
    int st = pclose(p);
    *ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    while (out.len > 0 && out.data[out.len - 1] == '\n')
        out.data[--out.len] = '\0';
    return buf_detach(&out, NULL);
}

/* Runs cmd, which must succeed; its stdout. */
static char *run_ok(const char *cmd)
{
    int status = -1;
    char *out = run(cmd, &status);

    if (status != 0)
        print_error("command failed (%d): %s\n", status, cmd);
    assert_int_equal(status, 0);
    return out;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static char *read_text(const char *path)
{
    struct buf b;

    buf_init(&b, 1 << 20);
    assert_int_equal(buf_read_file(&b, path), 0);
    return buf_detach(&b, NULL);
}

/* The "SHA256:..." field of ssh-keygen -l -f path. */
static char *keygen_fingerprint(const char *path)
{
    char *cmd = xasprintf("ssh-keygen -l -f '%s'", path);
    char *out = run_ok(cmd);
    char *sp = strchr(out, ' ');
    char *fp;

    assert_non_null(sp);
    fp = xstrndup(sp + 1, strcspn(sp + 1, " "));
    free(out);
    free(cmd);
    return fp;
}

/* ssh-keygen -q -t type [-b bits] -N pass -C comment -f dir/name [extra]; the path. */
static char *keygen(const char *dir, const char *name, const char *type, const char *pass,
                    const char *extra)
{
    char *path = xasprintf("%s/%s", dir, name);
    char *cmd = xasprintf("ssh-keygen -q -t %s -N '%s' -C 'made by ssh-keygen' -f '%s' %s "
                          "</dev/null",
                          type, pass, path, extra != NULL ? extra : "");

    free(run_ok(cmd));
    free(cmd);
    return path;
}

static int parse_file(const char *path, struct sshkey_private *k, struct buf *why)
{
    char *text = read_text(path);
    int rc = sshkey_parse_private(text, strlen(text), k, why);

    free(text);
    return rc;
}

/* ---- the format against ssh-keygen ---------------------------------------- */

static void test_generate_roundtrip(void **state)
{
    struct sshkey_ed25519 k, k2;
    struct sshkey_private p;
    uint8_t blob[SSHKEY_ED25519_BLOB_LEN];
    char fp[SSHKEY_FP_SIZE], *text = NULL, *line = NULL;

    (void)state;
    assert_int_equal(sshkey_ed25519_generate(&k), 0);
    assert_int_equal(sshkey_ed25519_generate(&k2), 0);
    assert_memory_not_equal(k.seed, k2.seed, sizeof(k.seed));
    assert_int_equal(sshkey_private_openssh(&k, "bottled test", &text), 0);
    assert_true(strncmp(text, "-----BEGIN OPENSSH PRIVATE KEY-----\n", 36) == 0);
    assert_non_null(strstr(text, "\n-----END OPENSSH PRIVATE KEY-----\n"));
    /* wrapped at 70 columns */
    for (const char *l = strchr(text, '\n') + 1; *l != '-'; l = strchr(l, '\n') + 1)
        assert_true(strcspn(l, "\n") <= 70);

    assert_int_equal(sshkey_parse_private(text, strlen(text), &p, NULL), 0);
    assert_true(p.is_ed25519);
    assert_string_equal(p.type, "ssh-ed25519");
    assert_string_equal(p.comment, "bottled test");
    assert_memory_equal(p.ed25519.seed, k.seed, sizeof(k.seed));
    assert_memory_equal(p.ed25519.pk, k.pk, sizeof(k.pk));
    sshkey_ed25519_blob(&k, blob);
    assert_int_equal(p.blob_len, sizeof(blob));
    assert_memory_equal(p.blob, blob, sizeof(blob));
    sshkey_fingerprint(blob, sizeof(blob), fp);
    assert_string_equal(p.fingerprint, fp);
    assert_int_equal(strlen(fp), SSHKEY_FP_SIZE - 1);
    assert_int_equal(sshkey_public_line(blob, sizeof(blob), "c", &line), 0);
    assert_true(strncmp(line, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", 37) == 0);
    assert_true(strlen(line) > 2 && strcmp(line + strlen(line) - 2, " c") == 0);

    /* comments: control characters and over-long ones are refused */
    char *bad = NULL;
    char long_comment[SSHKEY_COMMENT_MAX + 2];
    memset(long_comment, 'x', sizeof(long_comment) - 1);
    long_comment[sizeof(long_comment) - 1] = '\0';
    assert_int_equal(sshkey_private_openssh(&k, "a\nb", &bad), BD_E_INVAL);
    assert_int_equal(sshkey_private_openssh(&k, long_comment, &bad), BD_E_INVAL);
    assert_int_equal(sshkey_public_line(blob, sizeof(blob), "a\tb", &bad), BD_E_INVAL);
    long_comment[SSHKEY_COMMENT_MAX] = '\0';
    assert_int_equal(sshkey_private_openssh(&k, long_comment, &bad), 0);
    sshkey_text_free(bad);

    sshkey_private_release(&p);
    sshkey_text_free(text);
    free(line);
    sshkey_ed25519_cleanse(&k);
    sshkey_ed25519_cleanse(&k2);
}

/* ssh-keygen reads what we write: -y, -l, and -Y sign / -Y verify. */
static void test_ssh_keygen_reads_ours(void **state)
{
    struct fixture *f = *state;
    struct sshkey_ed25519 k;
    uint8_t blob[SSHKEY_ED25519_BLOB_LEN];
    char fp[SSHKEY_FP_SIZE], *text = NULL, *line = NULL, *cmd, *out;
    char *key = xasprintf("%s/id_ed25519", f->tmp);
    char *pub = xasprintf("%s/id_ed25519.pub", f->tmp);
    char *data = xasprintf("%s/data", f->tmp);
    char *allowed = xasprintf("%s/allowed_signers", f->tmp);

    for (int i = 0; i < 2; i++) {
        const char *comment = i == 0 ? "bottled web repo" : "";
        assert_int_equal(sshkey_ed25519_generate(&k), 0);
        assert_int_equal(sshkey_private_openssh(&k, comment, &text), 0);
        sshkey_ed25519_blob(&k, blob);
        assert_int_equal(sshkey_public_line(blob, sizeof(blob), comment, &line), 0);
        sshkey_fingerprint(blob, sizeof(blob), fp);
        (void)unlink(key);
        write_file(key, text, 0600);

        cmd = xasprintf("ssh-keygen -y -f '%s'", key);
        out = run_ok(cmd);
        assert_string_equal(out, line);
        free(out);
        free(cmd);

        char *pubtext = xasprintf("%s\n", line);
        write_file(pub, pubtext, 0600);
        free(pubtext);
        char *kfp = keygen_fingerprint(pub);
        assert_string_equal(kfp, fp);
        free(kfp);
        kfp = keygen_fingerprint(key); /* from the private file too */
        assert_string_equal(kfp, fp);
        free(kfp);

        /* The private half signs, the public half verifies. */
        write_file(data, "a commit to push\n", 0600);
        char *signers = xasprintf("deploy@bottled %s\n", line);
        write_file(allowed, signers, 0600);
        free(signers);
        cmd = xasprintf("rm -f '%s.sig' && ssh-keygen -q -Y sign -f '%s' -n file '%s' 2>&1 && "
                        "ssh-keygen -Y verify -f '%s' -I deploy@bottled -n file -s '%s.sig' "
                        "< '%s' 2>&1",
                        data, key, data, allowed, data, data);
        out = run_ok(cmd);
        assert_non_null(strstr(out, "Good \"file\" signature for deploy@bottled"));
        free(out);
        free(cmd);
        /* and a different message does not verify */
        write_file(data, "another commit\n", 0600);
        cmd = xasprintf("ssh-keygen -Y verify -f '%s' -I deploy@bottled -n file -s '%s.sig' "
                        "< '%s' >/dev/null 2>&1",
                        allowed, data, data);
        int status = 0;
        free(run(cmd, &status));
        assert_int_not_equal(status, 0);
        free(cmd);

        sshkey_text_free(text);
        free(line);
        sshkey_ed25519_cleanse(&k);
    }
    free(key);
    free(pub);
    free(data);
    free(allowed);
}

/* We read what ssh-keygen writes: ed25519 exactly, rsa and ecdsa by type and fingerprint. */
static void test_parse_ssh_keygen_keys(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *type, *extra, *want_type;
    } cases[] = {
        {"ed25519", NULL, "ssh-ed25519"},           {"rsa", "-b 2048", "ssh-rsa"},
        {"ecdsa", "-b 256", "ecdsa-sha2-nistp256"}, {"ecdsa", "-b 384", "ecdsa-sha2-nistp384"},
        {"ecdsa", "-b 521", "ecdsa-sha2-nistp521"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[32];
        struct sshkey_private k;
        struct buf why;
        char *line = NULL;

        buf_init(&why, 4096);
        snprintf(name, sizeof(name), "k%zu", i);
        char *path = keygen(f->tmp, name, cases[i].type, "", cases[i].extra);
        char *pubpath = xasprintf("%s.pub", path);
        int rc = parse_file(path, &k, &why);
        if (rc != 0)
            print_error("%s: %s\n", path, buf_cstr(&why));
        assert_int_equal(rc, 0);
        assert_string_equal(k.type, cases[i].want_type);
        assert_int_equal(k.is_ed25519, strcmp(cases[i].type, "ed25519") == 0);
        assert_string_equal(k.comment, "made by ssh-keygen");
        char *fp = keygen_fingerprint(pubpath);
        assert_string_equal(k.fingerprint, fp);
        free(fp);
        /* our public line is the .pub file's */
        assert_int_equal(sshkey_public_line(k.blob, k.blob_len, k.comment, &line), 0);
        char *pubtext = read_text(pubpath);
        pubtext[strcspn(pubtext, "\n")] = '\0';
        assert_string_equal(line, pubtext);
        free(pubtext);
        free(line);

        if (k.is_ed25519) {
            /* Re-serialised by us, the same key for ssh-keygen. */
            char *text = NULL, *out, *cmd;
            uint8_t blob[SSHKEY_ED25519_BLOB_LEN];
            assert_int_equal(sshkey_private_openssh(&k.ed25519, k.comment, &text), 0);
            sshkey_ed25519_blob(&k.ed25519, blob);
            assert_memory_equal(blob, k.blob, sizeof(blob));
            char *again = xasprintf("%s/again", f->tmp);
            write_file(again, text, 0600);
            cmd = xasprintf("ssh-keygen -y -f '%s'", again);
            out = run_ok(cmd);
            pubtext = read_text(pubpath);
            pubtext[strcspn(pubtext, "\n")] = '\0';
            assert_string_equal(out, pubtext);
            free(pubtext);
            free(out);
            free(cmd);
            free(again);
            sshkey_text_free(text);
        }
        sshkey_private_release(&k);
        buf_release(&why);
        free(pubpath);
        free(path);
    }
}

static void expect_refusal(const char *text, size_t len, int want_rc, const char *want_why)
{
    struct sshkey_private k;
    struct buf why;

    buf_init(&why, 4096);
    memset(&k, 0x5a, sizeof(k));
    int rc = sshkey_parse_private(text, len, &k, &why);
    if (rc != want_rc || strstr(buf_cstr(&why), want_why) == NULL)
        print_error("want %d '%s', got %d '%s'\n", want_rc, want_why, rc, buf_cstr(&why));
    assert_int_equal(rc, want_rc);
    assert_non_null(strstr(buf_cstr(&why), want_why));
    buf_release(&why);
}

/* Encrypted keys, other formats, public keys and damage are refused by name. */
static void test_parse_refusals(void **state)
{
    struct fixture *f = *state;
    char *path, *text;

    path = keygen(f->tmp, "enc", "ed25519", "secret", NULL);
    text = read_text(path);
    expect_refusal(text, strlen(text), BD_E_INVAL, "passphrase-protected (cipher 'aes256-ctr')");
    free(text);
    free(path);

    path = keygen(f->tmp, "encrsa", "rsa", "secret", "-b 2048");
    text = read_text(path);
    expect_refusal(text, strlen(text), BD_E_INVAL, "passphrase-protected");
    free(text);
    free(path);

    path = keygen(f->tmp, "pem", "rsa", "", "-b 2048 -m PEM");
    text = read_text(path);
    expect_refusal(text, strlen(text), BD_E_INVAL,
                   "not an OpenSSH private key but a PEM 'RSA PRIVATE KEY' block");
    free(text);
    free(path);

    path = keygen(f->tmp, "pkcs8", "ecdsa", "", "-m PKCS8");
    text = read_text(path);
    expect_refusal(text, strlen(text), BD_E_INVAL, "PEM 'PRIVATE KEY' block");
    free(text);
    free(path);

    path = keygen(f->tmp, "pub", "ed25519", "", NULL);
    char *pubpath = xasprintf("%s.pub", path);
    text = read_text(pubpath);
    expect_refusal(text, strlen(text), BD_E_INVAL, "a public key line");
    free(text);
    free(pubpath);

    /* A valid key, then damaged in ways a parser must notice. */
    text = read_text(path);
    size_t len = strlen(text);
    expect_refusal(text, len - 10, BD_E_INVAL, "no '-----END OPENSSH PRIVATE KEY-----' line");
    char *copy = xstrdup(text);
    char *body = strchr(copy, '\n') + 1;
    body[3] = '*';
    expect_refusal(copy, len, BD_E_INVAL, "bad base64");
    free(copy);
    copy = xasprintf("%sjunk\n", text);
    expect_refusal(copy, strlen(copy), BD_E_INVAL, "text after the END line");
    free(copy);
    expect_refusal("", 0, BD_E_INVAL, "no '-----BEGIN OPENSSH PRIVATE KEY-----' line");
    free(text);
    free(path);

    char big[SSHKEY_TEXT_MAX + 1];
    memset(big, ' ', sizeof(big));
    expect_refusal(big, sizeof(big), BD_E_TOO_BIG, "larger than");
}

/* Damage in the binary, through our own serialisation. */
static void test_parse_binary_damage(void **state)
{
    struct sshkey_ed25519 k;
    struct sshkey_private p;
    char *text = NULL;
    uint8_t bin[1024];
    size_t len;
    struct buf why;

    (void)state;
    buf_init(&why, 4096);
    assert_int_equal(sshkey_ed25519_generate(&k), 0);
    assert_int_equal(sshkey_private_openssh(&k, "x", &text), 0);
    /* Decode it with base64 -d, the long way round that does not trust our decoder. */
    FILE *pp;
    char tmpl[] = "/tmp/test_keys_bin.XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char *cmd = xasprintf("grep -v -- ----- '%s' | base64 -d", tmpl);
    pp = popen(cmd, "r");
    assert_non_null(pp);
    len = fread(bin, 1, sizeof(bin), pp);
    assert_int_equal(pclose(pp), 0);
    unlink(tmpl);
    free(cmd);

    assert_int_equal(sshkey_parse_private_binary(bin, len, &p, NULL), 0);
    assert_memory_equal(p.ed25519.seed, k.seed, sizeof(k.seed));
    sshkey_private_release(&p);

    /* layout: 15 magic, 8 "none", 8 "none", 4 "", 4 nkeys, 4+51 blob, 4 len, priv */
    const size_t off_nkeys = 15 + 8 + 8 + 4, off_blob = off_nkeys + 4;
    const size_t off_priv = off_blob + 4 + SSHKEY_ED25519_BLOB_LEN + 4;
    const size_t off_seed = off_priv + 8 + 4 + 11 + 4 + 32 + 4;
    const struct {
        size_t off;
        uint8_t mask;
        const char *why;
    } flips[] = {
        {0, 1, "bad magic"},
        {off_nkeys + 3, 3, "holds 2 keys"},
        {off_blob + 4 + 4 + 3, 0x20, "bad key type"}, /* '-' -> '\r' */
        {off_priv + 1, 1, "check integers differ"},
        {off_seed + 5, 1, "seed does not match"},
        {off_seed + 40, 1, "does not match its public key"},
    };
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        buf_reset(&why);
        bin[flips[i].off] ^= flips[i].mask;
        assert_int_equal(sshkey_parse_private_binary(bin, len, &p, &why), BD_E_INVAL);
        if (strstr(buf_cstr(&why), flips[i].why) == NULL)
            print_error("flip %zu: %s\n", i, buf_cstr(&why));
        assert_non_null(strstr(buf_cstr(&why), flips[i].why));
        /* no message carries a byte of the key: the body's first 16 characters */
        char chunk[17];
        const char *line4 = text;
        for (int l = 0; l < 4; l++) /* the BEGIN line, 3 lines, then the seed's bytes */
            line4 = strchr(line4, '\n') + 1;
        memcpy(chunk, line4, 16);
        chunk[16] = '\0';
        assert_null(strstr(buf_cstr(&why), chunk));
        bin[flips[i].off] ^= flips[i].mask;
    }
    /* every truncation is refused, none read past the end (ASan) */
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = xmalloc(n ? n : 1);
        memcpy(cut, bin, n);
        assert_int_equal(sshkey_parse_private_binary(cut, n, &p, NULL), BD_E_INVAL);
        free(cut);
    }
    /* an unknown key type is named */
    uint8_t dss[] = "openssh-key-v1\0"
                    "\0\0\0\4none\0\0\0\4none\0\0\0\0\0\0\0\1"
                    "\0\0\0\13\0\0\0\7ssh-dss"
                    "\0\0\0\0";
    buf_reset(&why);
    assert_int_equal(sshkey_parse_private_binary(dss, sizeof(dss) - 1, &p, &why), BD_E_INVAL);
    assert_non_null(strstr(buf_cstr(&why), "unsupported key type 'ssh-dss'"));

    buf_release(&why);
    sshkey_text_free(text);
    sshkey_ed25519_cleanse(&k);
    memset(bin, 0, sizeof(bin));
}

/* ---- deploy keys in the state dir ----------------------------------------- */

static struct state *open_state(const char *dir, enum state_mode mode)
{
    struct state_open_opts o = {.dir = dir, .mode = mode};
    struct state *st = NULL;
    struct buf why;

    buf_init(&why, 4096);
    int rc = state_open(&o, &st, &why);
    if (rc != 0)
        print_error("state_open: %s\n", buf_cstr(&why));
    assert_int_equal(rc, 0);
    buf_release(&why);
    return st;
}

static void assert_mode(const char *path, mode_t want_type, mode_t want_perm)
{
    struct stat sb;

    assert_int_equal(lstat(path, &sb), 0);
    assert_int_equal(sb.st_mode & S_IFMT, want_type);
    if ((sb.st_mode & 07777) != want_perm)
        print_error("%s: mode %o, want %o\n", path, sb.st_mode & 07777, want_perm);
    assert_int_equal(sb.st_mode & 07777, want_perm);
}

static void test_deploy_key_ensure(void **state)
{
    struct fixture *f = *state;
    char *dir = xasprintf("%s/state", f->tmp);
    struct state *st = open_state(dir, STATE_EXCLUSIVE);
    struct deploy_key a, b, c;
    struct buf why;
    char *p, *cmd, *out;

    buf_init(&why, 4096);
    assert_int_equal(state_deploy_key_ensure(st, "web", "app", "bottled web app", &a, &why), 0);
    assert_string_equal(a.type, "ssh-ed25519");
    assert_true(strncmp(a.fingerprint, "SHA256:", 7) == 0);
    assert_true(strncmp(a.public_line, "ssh-ed25519 AAAA", 16) == 0);
    assert_true(strcmp(a.public_line + strlen(a.public_line) - 16, " bottled web app") == 0);
    assert_true(strncmp(a.private_text, "-----BEGIN OPENSSH PRIVATE KEY-----\n", 36) == 0);

    /* Modes: every directory 0700, both files 0600. */
    p = xasprintf("%s/keys", dir);
    assert_mode(p, S_IFDIR, 0700);
    free(p);
    p = xasprintf("%s/keys/bottled", dir);
    assert_mode(p, S_IFDIR, 0700);
    free(p);
    p = xasprintf("%s/keys/bottled/web", dir);
    assert_mode(p, S_IFDIR, 0700);
    free(p);
    p = xasprintf("%s/keys/bottled/web/app", dir);
    assert_mode(p, S_IFDIR, 0700);
    free(p);
    char *key = xasprintf("%s/keys/bottled/web/app/id_ed25519", dir);
    char *pub = xasprintf("%s/keys/bottled/web/app/id_ed25519.pub", dir);
    assert_mode(key, S_IFREG, 0600);
    assert_mode(pub, S_IFREG, 0600);

    /* The files are what ssh-keygen expects. */
    cmd = xasprintf("ssh-keygen -y -f '%s'", key);
    out = run_ok(cmd);
    assert_string_equal(out, a.public_line);
    free(out);
    free(cmd);
    char *fp = keygen_fingerprint(pub);
    assert_string_equal(fp, a.fingerprint);
    free(fp);
    char *text = read_text(key);
    assert_string_equal(text, a.private_text);
    free(text);

    /* Idempotent: the same key again, whatever the comment asked for now. */
    assert_int_equal(state_deploy_key_ensure(st, "web", "app", "other", &b, &why), 0);
    assert_string_equal(b.fingerprint, a.fingerprint);
    assert_string_equal(b.public_line, a.public_line);
    assert_string_equal(b.private_text, a.private_text);
    deploy_key_release(&b);

    /* A lost or stale .pub is rewritten from the private key. */
    assert_int_equal(unlink(pub), 0);
    assert_int_equal(state_deploy_key_ensure(st, "web", "app", NULL, &b, &why), 0);
    assert_string_equal(b.fingerprint, a.fingerprint);
    deploy_key_release(&b);
    text = read_text(pub);
    char *want = xasprintf("%s\n", a.public_line);
    assert_string_equal(text, want);
    free(text);
    write_file(pub, "ssh-ed25519 AAAAwrong\n", 0600);
    assert_int_equal(state_deploy_key_ensure(st, "web", "app", NULL, &b, &why), 0);
    deploy_key_release(&b);
    text = read_text(pub);
    assert_string_equal(text, want);
    free(text);
    free(want);
    assert_mode(pub, S_IFREG, 0600);

    /* Another repo, another bottle: other keys. */
    assert_int_equal(state_deploy_key_ensure(st, "web", "lib.v2", NULL, &b, &why), 0);
    assert_string_not_equal(b.fingerprint, a.fingerprint);
    assert_int_equal(state_deploy_key_ensure(st, "api", "app", NULL, &c, &why), 0);
    assert_string_not_equal(c.fingerprint, a.fingerprint);
    assert_string_not_equal(c.fingerprint, b.fingerprint);
    assert_null(strchr(b.public_line, '\n')); /* no comment: "type base64" */
    assert_null(strchr(strchr(b.public_line, ' ') + 1, ' '));
    deploy_key_release(&b);
    deploy_key_release(&c);

    /* Names must be plain path components. */
    static const char *bad_bottles[] = {"", ".", "..", ".hidden", "a/b", "../web", "we b"};
    static const char *bad_repos[] = {"", ".", "..", "a/b", "../x", "a b", "x\n"};
    for (size_t i = 0; i < sizeof(bad_bottles) / sizeof(bad_bottles[0]); i++)
        assert_int_equal(state_deploy_key_ensure(st, bad_bottles[i], "app", NULL, &b, NULL),
                         BD_E_INVAL);
    for (size_t i = 0; i < sizeof(bad_repos) / sizeof(bad_repos[0]); i++)
        assert_int_equal(state_deploy_key_ensure(st, "web", bad_repos[i], NULL, &b, NULL),
                         BD_E_INVAL);
    assert_int_equal(state_deploy_key_ensure(st, "web", NULL, NULL, &b, NULL), BD_E_INVAL);
    assert_int_equal(state_deploy_key_ensure(st, "web", "app", "a\nb", &b, NULL), BD_E_INVAL);
    /* a leading dot is a valid repo name (only "." and ".." are not) */
    assert_int_equal(state_deploy_key_ensure(st, "web", ".dotfiles", NULL, &b, NULL), 0);
    deploy_key_release(&b);

    /* A private key file opened up to the group is refused, naming the path. */
    assert_int_equal(chmod(key, 0640), 0);
    buf_reset(&why);
    assert_int_equal(state_deploy_key_ensure(st, "web", "app", NULL, &b, &why), BD_E_PERM);
    assert_non_null(strstr(buf_cstr(&why), key));
    assert_int_equal(chmod(key, 0600), 0);
    /* So is a directory. */
    p = xasprintf("%s/keys/bottled/web", dir);
    assert_int_equal(chmod(p, 0750), 0);
    assert_int_equal(state_deploy_key_ensure(st, "web", "app", NULL, &b, NULL), BD_E_PERM);
    assert_int_equal(chmod(p, 0700), 0);
    free(p);
    /* A symlink in place of the repo directory is not followed. */
    p = xasprintf("%s/keys/bottled/web/linked", dir);
    char *target = xasprintf("%s/keys/bottled/web/app", dir);
    assert_int_equal(symlink(target, p), 0);
    assert_int_equal(state_deploy_key_ensure(st, "web", "linked", NULL, &b, NULL), BD_E_IO);
    assert_int_equal(unlink(p), 0);
    free(target);
    free(p);
    /* A file that is not an ed25519 key is refused and left alone. */
    assert_int_equal(state_deploy_key_ensure(st, "web", "rsa", NULL, &b, NULL), 0);
    deploy_key_release(&b);
    p = xasprintf("%s/keys/bottled/web/rsa", dir);
    char *rsa = keygen(p, "id_ed25519.new", "rsa", "", "-b 2048");
    char *rsa_dst = xasprintf("%s/id_ed25519", p);
    assert_int_equal(rename(rsa, rsa_dst), 0);
    buf_reset(&why);
    assert_int_equal(state_deploy_key_ensure(st, "web", "rsa", NULL, &b, &why), BD_E_INVAL);
    assert_non_null(strstr(buf_cstr(&why), "is a ssh-rsa key"));
    assert_mode(rsa_dst, S_IFREG, 0600);
    free(rsa_dst);
    free(rsa);
    free(p);

    /* Read-only: the same key; nothing created. */
    state_close(st);
    st = open_state(dir, STATE_RDONLY);
    assert_int_equal(state_deploy_key_ensure(st, "web", "app", NULL, &b, &why), 0);
    assert_string_equal(b.fingerprint, a.fingerprint);
    deploy_key_release(&b);
    assert_int_equal(state_deploy_key_ensure(st, "web", "new", NULL, &b, NULL), BD_E_NOTFOUND);
    assert_int_equal(state_deploy_key_ensure(st, "new", "app", NULL, &b, NULL), BD_E_NOTFOUND);
    p = xasprintf("%s/keys/bottled/new", dir);
    assert_int_equal(access(p, F_OK), -1);
    free(p);
    assert_int_equal(state_deploy_key_files_remove(st, "web", "app", NULL), BD_E_INVAL);
    state_close(st);

    deploy_key_release(&a);
    buf_release(&why);
    free(key);
    free(pub);
    free(dir);
}

static void test_deploy_key_remove(void **state)
{
    struct fixture *f = *state;
    char *dir = xasprintf("%s/state", f->tmp);
    struct state *st = open_state(dir, STATE_EXCLUSIVE);
    struct deploy_key a, b;
    struct buf why;
    char *p;

    buf_init(&why, 4096);
    assert_int_equal(state_deploy_key_ensure(st, "web", "app", NULL, &a, &why), 0);
    assert_int_equal(state_deploy_key_ensure(st, "web", "lib", NULL, &b, &why), 0);
    deploy_key_release(&b);
    /* a leftover of a killed write does not block the removal */
    p = xasprintf("%s/keys/bottled/web/app/.id_ed25519.tmp.12345", dir);
    write_file(p, "partial", 0600);
    free(p);

    assert_int_equal(state_deploy_key_files_remove(st, "web", "app", &why), 0);
    p = xasprintf("%s/keys/bottled/web/app", dir);
    assert_int_equal(access(p, F_OK), -1);
    free(p);
    p = xasprintf("%s/keys/bottled/web/lib/id_ed25519", dir);
    assert_int_equal(access(p, F_OK), 0); /* the other repo's key stays */
    free(p);
    /* missing is fine */
    assert_int_equal(state_deploy_key_files_remove(st, "web", "app", &why), 0);
    assert_int_equal(state_deploy_key_files_remove(st, "gone", "app", &why), 0);
    /* the bottle's directory goes with its last repo */
    assert_int_equal(state_deploy_key_files_remove(st, "web", "lib", &why), 0);
    p = xasprintf("%s/keys/bottled/web", dir);
    assert_int_equal(access(p, F_OK), -1);
    free(p);
    assert_int_equal(state_deploy_key_files_remove(st, "..", "app", NULL), BD_E_INVAL);
    assert_int_equal(state_deploy_key_files_remove(st, "web", "..", NULL), BD_E_INVAL);

    /* After removal, a new key. */
    assert_int_equal(state_deploy_key_ensure(st, "web", "app", NULL, &b, &why), 0);
    assert_string_not_equal(b.fingerprint, a.fingerprint);
    deploy_key_release(&b);
    deploy_key_release(&a);
    buf_release(&why);
    state_close(st);
    free(dir);
}

/* ---- static keys ----------------------------------------------------------- */

static void expect_static(const char *keys_dir, const char *rel, int want_rc, const char *want_why)
{
    struct deploy_key k;
    struct buf why;

    buf_init(&why, 4096);
    int rc = static_key_load(keys_dir, rel, &k, &why);
    if (rc != want_rc || strstr(buf_cstr(&why), want_why) == NULL)
        print_error("%s: want %d '%s', got %d '%s'\n", rel ? rel : "(null)", want_rc, want_why, rc,
                    buf_cstr(&why));
    assert_int_equal(rc, want_rc);
    assert_non_null(strstr(buf_cstr(&why), want_why));
    if (rc == 0)
        deploy_key_release(&k);
    buf_release(&why);
}

static void test_static_keys(void **state)
{
    struct fixture *f = *state;
    char *keys = xasprintf("%s/keys", f->tmp);
    char *outside = xasprintf("%s/outside", f->tmp);
    char *sub = xasprintf("%s/deploy", keys);
    struct deploy_key k;
    struct buf why;
    char *p, *q;

    buf_init(&why, 4096);
    assert_int_equal(mkdir(keys, 0700), 0);
    assert_int_equal(mkdir(outside, 0700), 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    char *ed = keygen(sub, "id_ed25519", "ed25519", "", NULL);
    char *ec = keygen(keys, "id_ecdsa", "ecdsa", "", NULL);
    char *enc = keygen(keys, "id_enc", "ed25519", "secret", NULL);
    char *far = keygen(outside, "id_far", "ed25519", "", NULL);

    /* A good one: the file's text, its fingerprint, its public line. */
    assert_int_equal(static_key_load(keys, "deploy/id_ed25519", &k, &why), 0);
    p = xasprintf("%s.pub", ed);
    char *fp = keygen_fingerprint(p);
    assert_string_equal(k.fingerprint, fp);
    free(fp);
    char *pubtext = read_text(p);
    pubtext[strcspn(pubtext, "\n")] = '\0';
    assert_string_equal(k.public_line, pubtext);
    free(pubtext);
    free(p);
    char *text = read_text(ed);
    assert_string_equal(k.private_text, text);
    free(text);
    deploy_key_release(&k);
    /* "./" and "//" are fine */
    expect_static(keys, "./deploy//id_ed25519", 0, "");
    /* ecdsa too */
    assert_int_equal(static_key_load(keys, "id_ecdsa", &k, &why), 0);
    assert_string_equal(k.type, "ecdsa-sha2-nistp256");
    p = xasprintf("%s.pub", ec);
    fp = keygen_fingerprint(p);
    assert_string_equal(k.fingerprint, fp);
    free(fp);
    free(p);
    deploy_key_release(&k);

    /* The manifest's rules. */
    expect_static(keys, "", BD_E_INVAL, "empty");
    expect_static(keys, NULL, BD_E_INVAL, "empty");
    expect_static(keys, far, BD_E_INVAL, "is absolute");
    expect_static(keys, "../outside/id_far", BD_E_INVAL, "'..' component");
    expect_static(keys, "deploy/../id_ecdsa", BD_E_INVAL, "'..' component");
    expect_static(keys, "deploy/..", BD_E_INVAL, "'..' component");
    expect_static(keys, "missing", BD_E_NOTFOUND, "static key 'missing' does not exist");
    expect_static(keys, "id_enc", BD_E_INVAL, "passphrase-protected");
    expect_static(keys, "deploy", BD_E_INVAL, "not a regular file");
    expect_static(keys, ".", BD_E_INVAL, "not a regular file");

    /* Links: inside is fine, out of the keys dir is not. */
    p = xasprintf("%s/inside-link", keys);
    assert_int_equal(symlink("deploy/id_ed25519", p), 0);
    free(p);
    expect_static(keys, "inside-link", 0, "");
    p = xasprintf("%s/escape", keys);
    assert_int_equal(symlink(far, p), 0);
    free(p);
    expect_static(keys, "escape", BD_E_INVAL, "outside the keys dir");
    p = xasprintf("%s/escape-dir", keys);
    assert_int_equal(symlink(outside, p), 0);
    free(p);
    expect_static(keys, "escape-dir/id_far", BD_E_INVAL, "outside the keys dir");
    /* a sibling whose name starts with the keys dir's is outside too */
    q = xasprintf("%s/keys2", f->tmp);
    assert_int_equal(mkdir(q, 0700), 0);
    char *sib = keygen(q, "id", "ed25519", "", NULL);
    p = xasprintf("%s/sibling", keys);
    assert_int_equal(symlink(sib, p), 0);
    free(p);
    expect_static(keys, "sibling", BD_E_INVAL, "outside the keys dir");
    free(sib);
    free(q);
    /* a dangling link */
    p = xasprintf("%s/dangling", keys);
    assert_int_equal(symlink("nowhere", p), 0);
    free(p);
    expect_static(keys, "dangling", BD_E_NOTFOUND, "does not exist");
    /* the keys dir itself may be a link */
    p = xasprintf("%s/keys-link", f->tmp);
    assert_int_equal(symlink(keys, p), 0);
    expect_static(p, "deploy/id_ed25519", 0, "");
    expect_static(p, "escape", BD_E_INVAL, "outside the keys dir");
    free(p);
    expect_static("/nonexistent/keys", "x", BD_E_NOTFOUND, "keys dir '/nonexistent/keys'");

    /* Generated keys are not static keys. */
    p = xasprintf("%s/bottled", keys);
    assert_int_equal(mkdir(p, 0700), 0);
    free(p);
    p = keygen(keys, "bottled/id_ed25519", "ed25519", "", NULL);
    free(p);
    expect_static(keys, "bottled/id_ed25519", BD_E_INVAL, "where bottled keeps its generated");

    /* Modes, as ssh demands them. */
    assert_int_equal(chmod(ed, 0644), 0);
    expect_static(keys, "deploy/id_ed25519", BD_E_PERM, "chmod 600");
    assert_int_equal(chmod(ed, 0400), 0);
    expect_static(keys, "deploy/id_ed25519", 0, "");

    /* Not a key at all; no byte of it in the message. */
    p = xasprintf("%s/notkey", keys);
    write_file(p,
               "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0c2VjcmV0\n"
               "-----END OPENSSH PRIVATE KEY-----\n",
               0600);
    buf_reset(&why);
    assert_int_equal(static_key_load(keys, "notkey", &k, &why), BD_E_INVAL);
    assert_non_null(strstr(buf_cstr(&why), "notkey"));
    assert_null(strstr(buf_cstr(&why), "c2VjcmV0"));
    assert_null(strstr(buf_cstr(&why), "secret"));
    free(p);
    /* A FIFO does not hang the load. */
    p = xasprintf("%s/fifo", keys);
    assert_int_equal(mkfifo(p, 0600), 0);
    free(p);
    expect_static(keys, "fifo", BD_E_INVAL, "not a regular file");

    free(ed);
    free(ec);
    free(enc);
    free(far);
    free(sub);
    free(outside);
    free(keys);
    buf_release(&why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_roundtrip),
        cmocka_unit_test_setup_teardown(test_ssh_keygen_reads_ours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_ssh_keygen_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_refusals, setup, teardown),
        cmocka_unit_test(test_parse_binary_damage),
        cmocka_unit_test_setup_teardown(test_deploy_key_ensure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deploy_key_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_static_keys, setup, teardown),
    };
    /* The point is to agree with the real client: no ssh-keygen, no test. */
    if (system("command -v ssh-keygen >/dev/null") != 0) {
        fprintf(stderr, "test_keys: ssh-keygen not found (install openssh-client)\n");
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
