/*
 * frontmatter.c - split a manifest into its YAML front matter and body.
 *
 * A manifest starts with a line "---" (an optional UTF-8 BOM before it and
 * trailing blanks or a CR after it are tolerated) and its front matter ends
 * at the next line that is exactly "---" in the same sense.  Everything
 * after that line is the Markdown body.  The YAML text returned starts on
 * line 2 of the file, which is the line offset the caller hands to the
 * YAML parser.
 */
#include <string.h>

#include "err.h"
#include "manifest.h"

/* Length of the line starting at p (without its terminator), and of the terminator. */
static size_t line_len(const char *p, const char *end, size_t *ret_eol)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    *ret_eol = nl ? 1 : 0;
    return n;
}

/* 1 if line[0..n) is "---" followed only by spaces, tabs or a CR. */
static int is_marker(const char *line, size_t n)
{
    if (n < 3 || memcmp(line, "---", 3) != 0)
        return 0;
    for (size_t i = 3; i < n; i++)
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
            return 0;
    return 1;
}

int frontmatter_split(const char *path, const char *buf, size_t len, const char *bottle,
                      struct diag_list *diags, const char **ret_yaml, size_t *ret_yaml_len,
                      const char **ret_body, size_t *ret_body_len)
{
    const char *p = buf, *end = buf + len;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;

    size_t eol;
    size_t n = line_len(p, end, &eol);
    if (!is_marker(p, n)) {
        diag_error(diags, path, 1, 1, bottle, NULL,
                   "no front matter: the file must start with a '---' line");
        return BD_E_PARSE;
    }
    const char *yaml = p + n + eol;
    for (const char *q = yaml; q < end;) {
        n = line_len(q, end, &eol);
        if (is_marker(q, n)) {
            *ret_yaml = yaml;
            *ret_yaml_len = (size_t)(q - yaml);
            *ret_body = q + n + eol;
            *ret_body_len = (size_t)(end - *ret_body);
            return 0;
        }
        if (!eol)
            break;
        q += n + eol;
    }
    diag_error(diags, path, 1, 1, bottle, NULL, "front matter is not closed by a '---' line");
    return BD_E_PARSE;
}
