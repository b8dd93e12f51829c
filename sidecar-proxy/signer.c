/*
 * signer.c - the CA key's process: start, restart, one exchange per
 * signature, and the child's serving loop.  The design, the protocol and
 * who holds the key are described in signer.h.
 *
 * Invariants:
 *   - the parent holds the key only as the sealed memfd s->key_fd, which it
 *     writes once and never reads or maps;
 *   - at most one request is outstanding, and an exchange that fails in
 *     transport (timeout, EOF, EPIPE) always kills the child, so a late
 *     answer can never be taken for the answer to a later request;
 *   - s->pid > 0 exactly when s->fd >= 0 and a child is ours to reap.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "signer.h"
#include "xalloc.h"

#define REQ_SIGN 'S'

struct signer {
    int fd;     /* parent's end of the socketpair; -1 when no child */
    pid_t pid;  /* the child; -1 when none */
    int key_fd; /* sealed memfd: u32 cert length, cert PEM, key PEM */
    int timeout_ms;
    unsigned restarts;
};

/* ---- the parent's side ------------------------------------------------ */

static int exec_entry; /* this program calls signer_exec_entry() from main() */

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the absolute deadline; 0, or BD_E_IO. */
static int wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        long long left = deadline - now_ms();
        if (left <= 0)
            return BD_E_IO;
        int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return BD_E_IO;
        if (n > 0)
            return 0; /* readable, or HUP/ERR: the read says which */
    }
}

/*
 * Receives one record into buf (at least SIGNER_MSG_MAX bytes) before the
 * deadline.  Returns its length, BD_E_TOO_BIG (record discarded, the
 * stream stays in step) or BD_E_IO (EOF, error, timeout).
 */
static ssize_t recv_record(int fd, unsigned char *buf, long long deadline)
{
    for (;;) {
        if (wait_fd(fd, POLLIN, deadline) < 0)
            return BD_E_IO;
        ssize_t n = recv(fd, buf, SIGNER_MSG_MAX, MSG_TRUNC | MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return BD_E_IO;
        if (n > SIGNER_MSG_MAX)
            return BD_E_TOO_BIG;
        return n;
    }
}

static void kill_child(struct signer *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    s->pid = -1;
}

/* The child between fork and signer_child_main(): fds and signals. */
static void child_setup(int sock, int key_fd, pid_t parent) __attribute__((noreturn));
static void child_setup(int sock, int key_fd, pid_t parent)
{
    static const int reset[] = {SIGHUP,  SIGINT,  SIGTERM, SIGCHLD,
                                SIGUSR1, SIGUSR2, SIGALRM, SIGPIPE};
    sigset_t none;

    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(SIGNER_ST_BAD_KEY);
    /* Handlers and masks belong to the proxy's event loop, not to us. */
    for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
        signal(reset[i], SIG_DFL);
    signal(SIGINT, SIG_IGN); /* a terminal's ^C: the parent decides */
    signal(SIGHUP, SIG_IGN);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* Keep 0-2 (0 and 1 on /dev/null: stdout is the proxy's audit log),
     * the socket as 3 and the key as 4; close everything else. */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    int s2 = fcntl(sock, F_DUPFD, 5);
    int k2 = fcntl(key_fd, F_DUPFD, 5);
    if (s2 < 0 || k2 < 0)
        _exit(SIGNER_ST_BAD_KEY);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
    }
    if (dup2(s2, 3) < 0 || dup2(k2, 4) < 0)
        _exit(SIGNER_ST_BAD_KEY);
    if (close_range(5, ~0U, 0) < 0) {
        for (int fd = 5; fd < 65536; fd++)
            close(fd);
    }
    if (exec_entry) {
        /* A fresh image of this program: nothing of the parent's memory
         * (its config, its secrets) comes along. */
        char *const args[] = {"bottle-proxy-signer", SIGNER_CHILD_ARG, NULL};
        execv("/proc/self/exe", args);
        _exit(SIGNER_ST_BAD_KEY); /* no /proc: refuse rather than run as a copy */
    }
    _exit(signer_child_main(3, 4));
}

/* Forks a child serving on a new socketpair and waits for its ready byte. */
static int spawn(struct signer *s)
{
    int sv[2];
    unsigned char st[SIGNER_MSG_MAX];
    pid_t parent = getpid();

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return BD_E_IO;
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return BD_E_IO;
    }
    if (pid == 0) {
        close(sv[0]);
        child_setup(sv[1], s->key_fd, parent);
    }
    close(sv[1]);
    s->fd = sv[0];
    s->pid = pid;

    ssize_t n = recv_record(s->fd, st, now_ms() + s->timeout_ms);
    if (n == 1 && st[0] == SIGNER_ST_OK)
        return 0;
    kill_child(s);
    return n == 1 && st[0] == SIGNER_ST_BAD_KEY ? BD_E_INVAL : BD_E_IO;
}

static int restart(struct signer *s)
{
    kill_child(s);
    s->restarts++;
    return spawn(s);
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return BD_E_IO;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int signer_start(const char *ca_cert_pem, const char *ca_key_pem, int timeout_ms,
                 struct signer **ret)
{
    struct signer *s = NULL;
    int rc;

    if (ca_cert_pem == NULL || ca_key_pem == NULL)
        return BD_E_INVAL;
    size_t clen = strlen(ca_cert_pem), klen = strlen(ca_key_pem);
    if (clen == 0 || klen == 0)
        return BD_E_INVAL;
    if (clen > SIGNER_PEM_MAX || klen > SIGNER_PEM_MAX - clen)
        return BD_E_TOO_BIG;

    s = xcalloc(1, sizeof(*s));
    s->fd = -1;
    s->pid = -1;
    s->timeout_ms = timeout_ms > 0 ? timeout_ms : SIGNER_DEFAULT_TIMEOUT;
    s->key_fd = memfd_create("bottled-ca", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (s->key_fd < 0) {
        rc = BD_E_IO;
        goto out;
    }
    unsigned char hdr[4] = {(unsigned char)(clen >> 24), (unsigned char)(clen >> 16),
                            (unsigned char)(clen >> 8), (unsigned char)clen};
    if (write_all(s->key_fd, hdr, sizeof(hdr)) < 0 || write_all(s->key_fd, ca_cert_pem, clen) < 0 ||
        write_all(s->key_fd, ca_key_pem, klen) < 0 ||
        fcntl(s->key_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) <
            0) {
        rc = BD_E_IO;
        goto out;
    }
    rc = spawn(s);
    if (rc < 0)
        goto out;
    *ret = s;
    s = NULL;
out:
    if (s != NULL)
        signer_free(s);
    return rc;
}

/* One request/answer; transport failures come back as BD_E_IO. */
static ssize_t exchange(struct signer *s, const unsigned char *req, size_t len, unsigned char *ans)
{
    long long deadline = now_ms() + s->timeout_ms;

    if (s->fd < 0)
        return BD_E_IO;
    if (wait_fd(s->fd, POLLOUT, deadline) < 0)
        return BD_E_IO;
    ssize_t w;
    do
        w = send(s->fd, req, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)len)
        return BD_E_IO;
    return recv_record(s->fd, ans, deadline);
}

int signer_sign(struct signer *s, const unsigned char *der, size_t der_len, unsigned char **ret_der,
                size_t *ret_len)
{
    unsigned char *req = NULL, *ans = NULL;
    ssize_t n = BD_E_IO;
    int rc;

    if (der == NULL || der_len == 0)
        return BD_E_INVAL;
    if (der_len > SIGNER_MSG_MAX - 1)
        return BD_E_TOO_BIG;
    req = xmalloc(der_len + 1);
    req[0] = REQ_SIGN;
    memcpy(req + 1, der, der_len);
    ans = xmalloc(SIGNER_MSG_MAX);

    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt > 0 || s->fd < 0) {
            rc = restart(s);
            if (rc < 0)
                goto out;
        }
        n = exchange(s, req, der_len + 1, ans);
        if (n != BD_E_IO)
            break;
    }
    if (n == BD_E_TOO_BIG) {
        rc = BD_E_TOO_BIG;
        goto out;
    }
    if (n < 0) {
        kill_child(s); /* out of step or gone: start afresh next time */
        rc = BD_E_IO;
        goto out;
    }
    switch (ans[0]) {
    case SIGNER_ST_OK:
        if (n < 2) {
            rc = BD_E_INTERNAL;
            goto out;
        }
        break;
    case SIGNER_ST_TOO_BIG:
        rc = BD_E_TOO_BIG;
        goto out;
    case SIGNER_ST_SIGN_FAILED:
        rc = BD_E_INTERNAL;
        goto out;
    default:
        rc = BD_E_INVAL;
        goto out;
    }
    *ret_len = (size_t)n - 1;
    *ret_der = (unsigned char *)xmemdup0(ans + 1, (size_t)n - 1);
    rc = 0;
out:
    free(req);
    free(ans);
    return rc;
}

void signer_free(struct signer *s)
{
    if (s == NULL)
        return;
    if (s->fd >= 0) {
        /* EOF lets the child wipe the key and exit; SIGKILL if it lingers. */
        close(s->fd);
        s->fd = -1;
        for (int i = 0; i < 200 && s->pid > 0; i++) {
            pid_t r = waitpid(s->pid, NULL, WNOHANG);
            if (r == s->pid || (r < 0 && errno != EINTR))
                s->pid = -1;
            else
                usleep(1000);
        }
    }
    kill_child(s);
    if (s->key_fd >= 0)
        close(s->key_fd);
    free(s);
}

pid_t signer_pid(const struct signer *s)
{
    return s->pid;
}

unsigned signer_restarts(const struct signer *s)
{
    return s->restarts;
}

void signer_wipe_str(char **s)
{
    if (s == NULL || *s == NULL)
        return;
    OPENSSL_cleanse(*s, strlen(*s));
    free(*s);
    *s = NULL;
}

/* ---- the child's side ------------------------------------------------- */

/* Never prompt for a pass phrase: the bottle CA key is unencrypted. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* Reads "<u32 cert len><cert PEM><key PEM>" from key_fd. */
static int load_key(int key_fd, X509 **ret_ca, EVP_PKEY **ret_key)
{
    struct stat st;
    unsigned char *buf = NULL;
    size_t len = 0;
    BIO *cb = NULL, *kb = NULL;
    X509 *ca = NULL;
    EVP_PKEY *key = NULL;
    int rc = -1;

    if (fstat(key_fd, &st) < 0 || st.st_size < 4 || st.st_size > SIGNER_PEM_MAX + 4)
        goto out;
    len = (size_t)st.st_size;
    buf = xmalloc(len);
    for (size_t got = 0; got < len;) {
        ssize_t r = pread(key_fd, buf + got, len - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto out;
        got += (size_t)r;
    }
    size_t clen = (size_t)buf[0] << 24 | (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3];
    if (clen > len - 4)
        goto out;
    cb = BIO_new_mem_buf(buf + 4, (int)clen);
    kb = BIO_new_mem_buf(buf + 4 + clen, (int)(len - 4 - clen));
    if (cb == NULL || kb == NULL)
        goto out;
    ca = PEM_read_bio_X509(cb, NULL, no_passphrase, NULL);
    key = PEM_read_bio_PrivateKey(kb, NULL, no_passphrase, NULL);
    if (ca == NULL || key == NULL || X509_check_private_key(ca, key) != 1)
        goto out;
    *ret_ca = ca;
    *ret_key = key;
    ca = NULL;
    key = NULL;
    rc = 0;
out:
    BIO_free(cb);
    BIO_free(kb);
    if (buf != NULL) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
    X509_free(ca);
    EVP_PKEY_free(key);
    return rc;
}

/* The oracle's policy: only leaf certificates under this CA. */
static int policy_ok(X509 *x, X509 *ca)
{
    int days, secs;

    if (X509_get_version(x) != X509_VERSION_3)
        return 0;
    if (X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(ca)) != 0)
        return 0;
    uint32_t fl = X509_get_extension_flags(x);
    if ((fl & EXFLAG_INVALID) || !(fl & EXFLAG_BCONS) || (fl & EXFLAG_CA) || X509_check_ca(x) != 0)
        return 0;
    if ((fl & EXFLAG_KUSAGE) && (X509_get_key_usage(x) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)))
        return 0;
    const ASN1_TIME *nb = X509_get0_notBefore(x), *na = X509_get0_notAfter(x);
    if (!ASN1_TIME_diff(&days, &secs, nb, na))
        return 0;
    long long span = (long long)days * 86400 + secs;
    if (span <= 0 || span > SIGNER_MAX_VALIDITY_S)
        return 0;
    if (ASN1_TIME_compare(na, X509_get0_notAfter(ca)) > 0)
        return 0;
    EVP_PKEY *pub = X509_get0_pubkey(x);
    if (pub == NULL || EVP_PKEY_eq(pub, X509_get0_pubkey(ca)) == 1)
        return 0;
    return 1;
}

/* Serves one request in buf[0..n); writes the answer into ans. */
static size_t serve(const unsigned char *buf, size_t n, X509 *ca, EVP_PKEY *key, unsigned char *ans)
{
    X509 *x = NULL;
    size_t out = 1;

    ans[0] = SIGNER_ST_BAD_REQUEST;
    if (n < 2 || buf[0] != REQ_SIGN)
        goto out;
    const unsigned char *p = buf + 1;
    x = d2i_X509(NULL, &p, (long)(n - 1));
    if (x == NULL || p != buf + n) {
        ans[0] = x == NULL ? SIGNER_ST_BAD_CERT : SIGNER_ST_BAD_REQUEST;
        goto out;
    }
    if (!policy_ok(x, ca)) {
        ans[0] = SIGNER_ST_POLICY;
        goto out;
    }
    int id = EVP_PKEY_get_id(key);
    const EVP_MD *md = id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448 ? NULL : EVP_sha256();
    ans[0] = SIGNER_ST_SIGN_FAILED;
    if (X509_sign(x, key, md) <= 0)
        goto out;
    int len = i2d_X509(x, NULL);
    if (len <= 0 || (size_t)len > SIGNER_MSG_MAX - 1) {
        ans[0] = SIGNER_ST_TOO_BIG;
        goto out;
    }
    unsigned char *w = ans + 1;
    if (i2d_X509(x, &w) != len)
        goto out;
    ans[0] = SIGNER_ST_OK;
    out = 1 + (size_t)len;
out:
    X509_free(x);
    return out;
}

void signer_exec_entry(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], SIGNER_CHILD_ARG) == 0)
        exit(signer_child_main(3, 4));
    exec_entry = 1;
}

int signer_child_main(int sock, int key_fd)
{
    X509 *ca = NULL;
    EVP_PKEY *key = NULL;
    unsigned char *buf = NULL, *ans = NULL;
    unsigned char st;
    int rc = 1;

    /* Before the key is in memory: no ptrace, no core dump, no
     * /proc/pid/mem for processes of the same uid. */
    prctl(PR_SET_DUMPABLE, 0);
    if (load_key(key_fd, &ca, &key) < 0) {
        close(key_fd);
        st = SIGNER_ST_BAD_KEY;
        send(sock, &st, 1, MSG_NOSIGNAL);
        goto out;
    }
    close(key_fd);
    /* No new fds from here on: what we have is all we need. */
    struct rlimit rl = {.rlim_cur = (rlim_t)sock + 1, .rlim_max = (rlim_t)sock + 1};
    setrlimit(RLIMIT_NOFILE, &rl);

    st = SIGNER_ST_OK;
    if (send(sock, &st, 1, MSG_NOSIGNAL) != 1)
        goto out;
    buf = xmalloc(SIGNER_MSG_MAX);
    ans = xmalloc(SIGNER_MSG_MAX);
    for (;;) {
        ssize_t n = recv(sock, buf, SIGNER_MSG_MAX, MSG_TRUNC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n == 0 ? 0 : 1; /* EOF: the parent is done with us */
            break;
        }
        size_t alen = 1;
        if (n > SIGNER_MSG_MAX)
            ans[0] = SIGNER_ST_TOO_BIG;
        else
            alen = serve(buf, (size_t)n, ca, key, ans);
        if (send(sock, ans, alen, MSG_NOSIGNAL) != (ssize_t)alen)
            break;
    }
out:
    free(buf);
    free(ans);
    X509_free(ca);
    EVP_PKEY_free(key); /* OpenSSL clears private key material on free */
    close(sock);
    return rc;
}
