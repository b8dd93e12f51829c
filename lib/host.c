/*
 * host.c - route host names: normalisation to lowercase A-labels, IP
 * literal refusal and wildcard matching (see host.h).
 *
 * Normalisation order, each step on the result of the previous one:
 *   1. a leading "*." is split off (a '*' anywhere else is an error);
 *   2. the input itself is refused if it is an IP literal (brackets and
 *      IPv6 never reach libidn2), then one trailing dot is dropped;
 *   3. a name with non-ASCII bytes goes through libidn2 (UTS #46 mapping,
 *      non-transitional, NFC), which also lower-cases and maps full-width
 *      digits and dots, so
 *   4. the IP-literal test runs again on the ASCII result ("１２７.０.０.１");
 *   5. every label is lower-cased and checked as LDH, 1..63 bytes, no
 *      leading or trailing '-'; an "xn--" label must be exactly what
 *      libidn2 produces for it (so a hand-written A-label is validated like
 *      a converted U-label); other labels with "--" in positions 3-4 are
 *      accepted, since real hosts use them ("r3---sn-abc.googlevideo.com");
 *   6. a numeric last label is refused (all digits, or "0x" and hex digits,
 *      which URL parsers also read as IPv4); "*." needs at least two labels
 *      after it, so "*.com" is refused; the whole result, "*." included,
 *      is at most 253 bytes.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#include "host.h"
#include "xalloc.h"

#define HOST_MAX_LEN   253
#define HOST_MAX_LABEL 63
#define HOST_MAX_INPUT 1024 /* bytes accepted before any work is done */

const char *host_strerror(int err)
{
    switch (err) {
    case HOST_OK:
        return "valid host name";
    case HOST_E_EMPTY:
        return "empty host name";
    case HOST_E_IP_LITERAL:
        return "IP literals are not allowed";
    case HOST_E_BAD_WILDCARD:
        return "a wildcard is only allowed as a leading \"*.\" followed by at least two labels";
    case HOST_E_BAD_LABEL:
        return "each label must be 1 to 63 letters, digits or '-', not starting or ending "
               "with '-'";
    case HOST_E_TOO_LONG:
        return "host name longer than 253 bytes";
    case HOST_E_IDNA:
        return "not a valid internationalized domain name";
    case HOST_E_NUMERIC_TLD:
        return "the last label must not be numeric";
    }
    return "invalid host name";
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int host_is_ip_literal(const char *s, size_t len)
{
    char tmp[128];
    struct in6_addr a6;
    struct in_addr a4;

    if (!s || len == 0 || len >= sizeof(tmp) || memchr(s, '\0', len))
        return 0;
    if (s[0] == '[') {
        if (len < 3 || s[len - 1] != ']')
            return 0;
        s++;
        len -= 2;
    }
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    if (memchr(tmp, ':', len)) {
        char *zone = strchr(tmp, '%'); /* fe80::1%eth0 */
        if (zone)
            *zone = '\0';
        return inet_pton(AF_INET6, tmp, &a6) == 1;
    }
    if (tmp[len - 1] == '.') /* "127.0.0.1." is still an address to a resolver */
        tmp[--len] = '\0';
    if (len == 0)
        return 0;
    /*
     * inet_aton() reads every form a resolver or URL parser might: "127.1",
     * "0x7f.0.0.1", "0177.0.0.1", "2130706433".  glibc's also ignores
     * anything after whitespace, so only its own alphabet is handed over.
     */
    for (size_t i = 0; i < len; i++) {
        if (!is_hex(tmp[i]) && tmp[i] != '.' && tmp[i] != 'x' && tmp[i] != 'X')
            return 0;
    }
    return inet_aton(tmp, &a4) != 0;
}

/* Is the last label of name[0..len) numeric (digits, or 0x + hex)? */
static int numeric_tld(const char *name, size_t len)
{
    const char *dot = memrchr(name, '.', len);
    const char *l = dot ? dot + 1 : name;
    size_t n = len - (size_t)(l - name), i = 0;

    if (n >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X')) {
        for (i = 2; i < n && is_hex(l[i]); i++)
            ;
        return i == n;
    }
    for (i = 0; i < n && l[i] >= '0' && l[i] <= '9'; i++)
        ;
    return n > 0 && i == n;
}

/* An "xn--" label is valid when libidn2 gives it back unchanged. */
static int check_alabel(const char *label, size_t n)
{
    char tmp[HOST_MAX_LABEL + 1];
    char *out = NULL;
    int ok;

    memcpy(tmp, label, n);
    tmp[n] = '\0';
    ok = idn2_to_ascii_8z(tmp, &out, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT) == IDN2_OK &&
         strcmp(out, tmp) == 0;
    idn2_free(out);
    return ok;
}

/* Lower-cases name in place and checks its labels; counts them. */
static int check_labels(char *name, size_t len, size_t *ret_labels)
{
    size_t labels = 0;
    char *p = name, *end = name + len;

    for (char *q = name; q < end; q++) {
        if (*q >= 'A' && *q <= 'Z')
            *q = (char)(*q - 'A' + 'a');
    }
    while (p <= end) {
        char *dot = memchr(p, '.', (size_t)(end - p));
        char *lend = dot ? dot : end;
        size_t n = (size_t)(lend - p);

        if (n == 0 || n > HOST_MAX_LABEL || p[0] == '-' || lend[-1] == '-')
            return HOST_E_BAD_LABEL;
        for (char *q = p; q < lend; q++) {
            if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '-'))
                return HOST_E_BAD_LABEL;
        }
        if (n >= 4 && memcmp(p, "xn--", 4) == 0 && !check_alabel(p, n))
            return HOST_E_IDNA;
        labels++;
        p = lend + 1;
    }
    *ret_labels = labels;
    return HOST_OK;
}

static int has_non_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] >= 0x80)
            return 1;
    }
    return 0;
}

int host_normalize(const char *in, size_t len, int allow_wildcard, char **ret)
{
    const char *p = in;
    size_t n = len, nlen, labels = 0;
    int wildcard = 0, stripped = 0, err;
    char *name = NULL;

    if (!in || len == 0)
        return HOST_E_EMPTY;
    if (len > HOST_MAX_INPUT)
        return HOST_E_TOO_LONG;
    if (memchr(in, '\0', len))
        return HOST_E_BAD_LABEL;
    if (n >= 2 && p[0] == '*' && p[1] == '.') {
        if (!allow_wildcard)
            return HOST_E_BAD_WILDCARD;
        wildcard = 1;
        p += 2;
        n -= 2;
    }
    if (memchr(p, '*', n) || (wildcard && n == 0))
        return HOST_E_BAD_WILDCARD;
    if (host_is_ip_literal(p, n))
        return HOST_E_IP_LITERAL;
    if (n > 0 && p[n - 1] == '.') {
        n--;
        stripped = 1;
    }
    if (n == 0)
        return HOST_E_EMPTY;

    if (has_non_ascii(p, n)) {
        char *tmp = xmemdup0(p, n), *out = NULL;
        int r = idn2_to_ascii_8z(tmp, &out, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
        free(tmp);
        if (r != IDN2_OK) {
            idn2_free(out);
            return HOST_E_IDNA;
        }
        name = xstrdup(out);
        idn2_free(out);
    } else {
        name = xmemdup0(p, n);
    }
    nlen = strlen(name);
    if (!stripped && nlen > 0 && name[nlen - 1] == '.') /* a mapped full-width dot */
        name[--nlen] = '\0';

    if (nlen == 0) {
        err = HOST_E_EMPTY;
        goto out;
    }
    if (host_is_ip_literal(name, nlen)) {
        err = HOST_E_IP_LITERAL;
        goto out;
    }
    err = check_labels(name, nlen, &labels);
    if (err)
        goto out;
    if (numeric_tld(name, nlen)) {
        err = HOST_E_NUMERIC_TLD;
        goto out;
    }
    if (wildcard && labels < 2) {
        err = HOST_E_BAD_WILDCARD;
        goto out;
    }
    if (nlen + (wildcard ? 2 : 0) > HOST_MAX_LEN) {
        err = HOST_E_TOO_LONG;
        goto out;
    }
    if (wildcard) {
        *ret = xasprintf("*.%s", name);
    } else {
        *ret = name;
        name = NULL;
    }
    err = HOST_OK;
out:
    free(name);
    return err;
}

int host_pattern_match(const char *pattern, const char *host)
{
    size_t hl, sl;

    if (!pattern || !host)
        return 0;
    if (pattern[0] != '*' || pattern[1] != '.')
        return strcmp(pattern, host) == 0;
    /* "*.example.com" matches any host ending in ".example.com" with a
     * non-empty label in front, at any depth. */
    const char *suffix = pattern + 1;
    hl = strlen(host);
    sl = strlen(suffix);
    return hl > sl && host[0] != '.' && memcmp(host + hl - sl, suffix, sl) == 0;
}

size_t host_match_specificity(const char *pattern)
{
    if (!pattern)
        return 0;
    if (pattern[0] == '*' && pattern[1] == '.')
        return strlen(pattern) - 1; /* the suffix, leading dot included */
    return HOST_MAX_LEN + 1 + strlen(pattern);
}

int host_binding_covers(const char *const *binding, size_t n, const char *route_host)
{
    int wild = !strncmp(route_host, "*.", 2);
    for (size_t i = 0; i < n; i++) {
        const char *b = binding[i];
        if (!strcmp(b, "*") || !strcmp(b, route_host))
            return 1;
        if (!wild && !strncmp(b, "*.", 2) && host_pattern_match(b, route_host))
            return 1;
    }
    return 0;
}
