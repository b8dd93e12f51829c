/*
 * urlpath.h - small shared rules for URL paths and percent-escapes.
 *
 * Shared by the reconciler (route paths in manifests) and the sidecar
 * (its config loader and request normaliser), so that a path the manifest
 * accepts is exactly a path the sidecar accepts.
 */
#ifndef BOTTLED_URLPATH_H
#define BOTTLED_URLPATH_H

/* The value of one hex digit (0-15), or -1 if c is not one. */
int hex_digit(int c);

/*
 * Why a configured prefix/exact route path is not in the normalised form
 * the sidecar compares requests against, or NULL if it is: it must start
 * with '/', have no query or fragment, no empty, "." or ".." segment (also
 * when spelt with %2e), no backslash, space, control character, invalid
 * escape or %00.  A trailing '/' is allowed.  The reason is a static
 * lowercase phrase, e.g. "must not contain '//'".
 */
const char *urlpath_config_problem(const char *s);

#endif
