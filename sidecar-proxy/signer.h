/*
 * signer.h - the bottle CA key, kept in a small process of its own.
 *
 * Privilege separation in the OpenBSD manner (relayd's "ca" process): the
 * proxy parses TLS and HTTP from untrusted peers all day, so a memory
 * disclosure bug there must not be able to leak the key that every agent
 * trusts.  signer_start() forks a child that holds the CA key and nothing
 * else it needs; the proxy keeps a socket to it and asks it to sign leaf
 * certificates.
 *
 * Where the key lives:
 *   - signer_start() writes the CA certificate and key PEM into a sealed
 *     memfd (a kernel object, never mapped in the parent) and forks; the
 *     parent never decodes the key.  The memfd is what lets the parent
 *     restart a dead or hung child without holding the key in its own
 *     address space.  The caller must then wipe its own copy
 *     (signer_wipe_str() on pconf's ca_key_pem before the snapshot is
 *     published: the proxy's snapshot never carries the key).
 *   - The child: fd 0 and 1 on /dev/null, fd 2 kept for fatal diagnostics,
 *     the socket, nothing else (every other fd is closed, RLIMIT_NOFILE
 *     stops it opening more); PR_SET_DUMPABLE 0 (no ptrace, no core, no
 *     /proc/pid/mem by the same uid); PR_SET_PDEATHSIG SIGKILL.  It runs no
 *     threads and never returns into the caller's code.  In a program whose
 *     main() calls signer_exec_entry() first (bottle-proxy does), the child
 *     execs /proc/self/exe with SIGNER_CHILD_ARG after setting up its fds:
 *     a fresh image, holding nothing of the parent's memory (the config the
 *     key came with, the other secrets).  Elsewhere (tests, benchmarks that
 *     do not) it is a plain fork, whose address space starts as a copy of
 *     the parent's.  Either way start it from the thread that will live
 *     longest: PDEATHSIG follows the forking thread, and survives the exec.
 *   - The child is a constrained oracle, not a general one: it signs only
 *     leaf certificates issued by its CA (issuer = CA subject, v3,
 *     basicConstraints CA:FALSE, no keyCertSign/cRLSign, validity at most
 *     SIGNER_MAX_VALIDITY_S and not past the CA's notAfter), so even a
 *     compromised proxy cannot mint a sub-CA.
 *
 * Protocol (a SOCK_SEQPACKET socketpair: one message is one record, so no
 * framing bugs; every record is at most SIGNER_MSG_MAX bytes, checked with
 * MSG_TRUNC on both sides):
 *   child -> parent, once at start:  status byte (0: key and certificate
 *                                    loaded and matching)
 *   parent -> child:  'S' + DER of a complete X509 signed by any key
 *                     (the proxy pre-signs with the leaf key: an unsigned
 *                     X509 has no valid DER encoding)
 *   child -> parent:  status byte; on 0 the DER of the same certificate,
 *                     re-signed by the CA key (SHA-256; none for EdDSA)
 * Status bytes are SIGNER_ST_*.  A request that is not understood gets an
 * error status and the child keeps serving; the child exits on EOF.
 *
 * Failure handling: each exchange has a deadline (timeout_ms).  A child
 * that died (EPIPE, EOF) or missed the deadline is killed, reaped and
 * restarted from the memfd, and the request is retried once.  A request
 * the child refused is not retried.
 *
 * Not thread-safe: one struct signer belongs to one event-loop thread.  The
 * exchange is synchronous (a P-256 signature is tens of microseconds; the
 * leaf cache in certmint makes misses rare).  The signer reaps its own
 * child with waitpid(pid): do not reap with waitpid(-1) elsewhere.
 */
#ifndef BOTTLED_SIGNER_H
#define BOTTLED_SIGNER_H

#include <stddef.h>
#include <sys/types.h>

#define SIGNER_MSG_MAX         16384 /* any record, either direction */
#define SIGNER_PEM_MAX         65536 /* CA certificate + key PEM together */
#define SIGNER_MAX_VALIDITY_S  (8L * 24 * 3600 + 3600)
#define SIGNER_DEFAULT_TIMEOUT 2000 /* ms per exchange */

enum signer_status {
    SIGNER_ST_OK = 0,
    SIGNER_ST_BAD_REQUEST = 1, /* unknown type, empty record, trailing bytes */
    SIGNER_ST_TOO_BIG = 2,     /* record above SIGNER_MSG_MAX */
    SIGNER_ST_BAD_CERT = 3,    /* not DER of an X509 */
    SIGNER_ST_POLICY = 4,      /* a certificate this oracle will not sign */
    SIGNER_ST_SIGN_FAILED = 5, /* OpenSSL failed */
    SIGNER_ST_BAD_KEY = 6,     /* start: key or certificate unreadable, or not a pair */
};

struct signer;

/*
 * Starts the signer with the CA certificate and its (unencrypted) private
 * key, both PEM.  Waits until the child has loaded them; a key that does
 * not match the certificate, or an unreadable one, gives BD_E_INVAL and no
 * signer.  timeout_ms <= 0 means SIGNER_DEFAULT_TIMEOUT.  Errors:
 * BD_E_INVAL, BD_E_TOO_BIG (PEM above SIGNER_PEM_MAX), BD_E_IO (fork,
 * memfd, socketpair, or the child did not answer in time).
 */
int signer_start(const char *ca_cert_pem, const char *ca_key_pem, int timeout_ms,
                 struct signer **ret);

/*
 * Has the CA re-sign a certificate (DER of a complete X509, see above).
 * On success *ret_der is a malloc'd DER of the signed certificate.
 * Errors: BD_E_TOO_BIG (request or answer above SIGNER_MSG_MAX),
 * BD_E_INVAL (the child refused it: malformed or against its policy),
 * BD_E_INTERNAL (the child failed to sign), BD_E_IO (the child could not
 * be reached even after one restart).
 */
int signer_sign(struct signer *s, const unsigned char *der, size_t der_len, unsigned char **ret_der,
                size_t *ret_len);

/* Stops the child (EOF, then SIGKILL after a short grace) and frees s. */
void signer_free(struct signer *s);

/* The child's pid (tests, logs) and how often it was restarted. */
pid_t signer_pid(const struct signer *s);
unsigned signer_restarts(const struct signer *s);

/*
 * The child's side: serves requests on sock until EOF.  key_fd holds
 * "<u32 big-endian cert length><cert PEM><key PEM>"; it is read and closed.
 * Returns the process exit status.  signer_start() calls it after fork;
 * it is public for a fork+exec entry point and for tests.
 */
int signer_child_main(int sock, int key_fd);

#define SIGNER_CHILD_ARG "--signer-child"

/*
 * Call at the top of main(): run as the signer's child when argv is
 * {name, SIGNER_CHILD_ARG} (exits with signer_child_main(3, 4)), else note
 * that this program can be exec'd that way and return.
 */
void signer_exec_entry(int argc, char **argv);

/* OPENSSL_cleanse()s a NUL-terminated string, frees it, sets *s to NULL. */
void signer_wipe_str(char **s);

#endif
