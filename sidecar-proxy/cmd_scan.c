/*
 * cmd_scan.c - `bottle-proxy scan`: the sidecar's detectors over a file,
 * for the git gate's pre-receive hook (see cmds.h).
 *
 * The input is read whole (up to the cap) and scanned with detect_scan_all(),
 * the same rules and engine the proxy's outbound DLP uses on request
 * bodies.  Output names detectors only: never an offset, a length or any
 * byte of the input.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cmds.h"
#include "detect.h"
#include "xalloc.h"

static const char scan_usage[] =
    "usage: bottle-proxy scan [--max-bytes N] [--label TEXT] [FILE|-]\n"
    "\n"
    "Runs the sidecar's credential detectors over FILE (default: stdin).\n"
    "  --max-bytes N  refuse an input longer than N bytes (default 16777216)\n"
    "  --label TEXT   what the output lines start with (default: FILE, or 'stdin')\n"
    "\n"
    "Output: one line '<label>: <detector>' per detector that matched; never the\n"
    "matched text.\n"
    "Exit status: 0 clean, 1 a credential found, 2 error (usage, unreadable,\n"
    "over --max-bytes).\n";

static int scan_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int scan_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bottle-proxy scan: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

/* A decimal byte count 1..2^40 with nothing after it; 0 on success. */
static int parse_bytes(const char *s, unsigned long long *ret)
{
    unsigned long long v = 0;
    if (!*s)
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > ((unsigned long long)1 << 40) / 10)
            return -1;
        v = v * 10 + (unsigned long long)(*p - '0');
    }
    if (v == 0 || v > ((unsigned long long)1 << 40))
        return -1;
    *ret = v;
    return 0;
}

/* Prints label with control bytes shown as '?': one output line per finding. */
static void put_label(const char *label)
{
    for (const unsigned char *p = (const unsigned char *)label; *p; p++)
        fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, stdout);
}

/*
 * Reads fd to EOF into a malloc'd buffer; at most max bytes.  Returns 0, 1
 * when the input is longer than max (nothing more is read), -1 on a read
 * error (errno set).
 */
static int read_all(int fd, unsigned long long max, char **ret, size_t *ret_len)
{
    size_t cap = 65536, len = 0;
    char *b = xmalloc(cap);
    for (;;) {
        if (len == cap) {
            if (cap > max) /* one byte past the cap was read: over */
                break;
            size_t ncap = cap * 2 > max + 1 ? (size_t)max + 1 : cap * 2;
            b = xrealloc(b, ncap);
            cap = ncap;
        }
        ssize_t n = read(fd, b + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            OPENSSL_cleanse(b, len);
            free(b);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > max) {
        OPENSSL_cleanse(b, len);
        free(b);
        return 1;
    }
    *ret = b;
    *ret_len = len;
    return 0;
}

int cmd_scan(int argc, char **argv)
{
    unsigned long long max = SCAN_MAX_DEFAULT;
    const char *label = NULL, *file = NULL, *max_arg = NULL;
    int status = 2, fd = -1;
    char *data = NULL;
    size_t len = 0;
    struct detect_match *m = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(scan_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--max-bytes") || !strcmp(a, "--label")) {
            if (i + 1 >= argc)
                return scan_error("%s needs a value\nTry 'bottle-proxy scan --help'.", a);
            if (a[2] == 'm')
                max_arg = argv[++i];
            else
                label = argv[++i];
        } else if (!strncmp(a, "--max-bytes=", 12)) {
            max_arg = a + 12;
        } else if (!strncmp(a, "--label=", 8)) {
            label = a + 8;
        } else if (a[0] == '-' && a[1] != '\0') {
            return scan_error("unknown option '%s'\nTry 'bottle-proxy scan --help'.", a);
        } else if (file) {
            return scan_error("one input at most ('%s' and '%s')", file, a);
        } else {
            file = a;
        }
    }
    if (max_arg && parse_bytes(max_arg, &max) < 0)
        return scan_error("--max-bytes: '%s' is not a byte count from 1 to 2^40", max_arg);
    int use_stdin = !file || !strcmp(file, "-");
    if (!label)
        label = use_stdin ? "stdin" : file;
    if (use_stdin) {
        fd = 0;
    } else {
        fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            scan_error("cannot open '%s': %s", file, strerror(errno));
            goto out;
        }
    }
    int r = read_all(fd, max, &data, &len);
    if (r < 0) {
        scan_error("cannot read '%s': %s", use_stdin ? "stdin" : file, strerror(errno));
        goto out;
    }
    if (r > 0) {
        scan_error("'%s' is over the --max-bytes cap of %llu bytes: not scanned",
                   use_stdin ? "stdin" : file, max);
        goto out;
    }
    size_t n = detect_scan_all(data, len, NULL, 0);
    status = 0;
    if (n == 0)
        goto out;
    m = xcalloc(n, sizeof(*m));
    detect_scan_all(data, len, m, n);
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < i && strcmp(m[j].detector, m[i].detector))
            j++;
        if (j < i)
            continue; /* each detector once */
        put_label(label);
        printf(": %s\n", m[i].detector);
    }
    status = 1;
    if (fflush(stdout) != 0) {
        scan_error("cannot write the findings: %s", strerror(errno));
        status = 2;
    }
out:
    if (fd > 0)
        close(fd);
    if (data) {
        OPENSSL_cleanse(data, len);
        free(data);
    }
    free(m);
    return status;
}
