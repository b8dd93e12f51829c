/* urlpath.c - shared URL path rules (see urlpath.h). */
#include <stddef.h>
#include <string.h>

#include "urlpath.h"

int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* 1 if p[0..n) is "." or "..", each dot possibly spelt "%2e" / "%2E". */
static int dot_segment(const char *p, size_t n)
{
    size_t dots = 0;
    for (size_t i = 0; i < n;) {
        if (p[i] == '.') {
            dots++;
            i++;
        } else if (n - i >= 3 && p[i] == '%' && p[i + 1] == '2' && (p[i + 2] | 0x20) == 'e') {
            dots++;
            i += 3;
        } else {
            return 0;
        }
    }
    return dots == 1 || dots == 2;
}

const char *urlpath_config_problem(const char *s)
{
    if (s[0] != '/')
        return "must start with '/'";
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '?' || ch == '#')
            return "must not contain a query or fragment";
        if (ch == '\\' || ch < 0x21 || ch == 0x7f)
            return "must not contain backslashes, spaces or control characters";
        if (ch == '%' && (hex_digit((unsigned char)p[1]) < 0 || hex_digit((unsigned char)p[2]) < 0))
            return "has an invalid percent-escape";
        if (ch == '%' && p[1] == '0' && p[2] == '0')
            return "must not contain %00";
    }
    const char *p = s + 1;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0)
            return "must not contain '//'";
        if (dot_segment(p, n))
            return "must not contain '.' or '..' segments";
        if (!e)
            break;
        p = e + 1;
    }
    return NULL;
}
