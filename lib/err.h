/*
 * err.h - the project's error codes.
 *
 * Fallible functions return int: 0 on success or one of these negative
 * codes.  Outputs are written through trailing ret_* pointers and only on
 * success.  Details for the user travel separately, in a diag_list (parsers)
 * or in the log line of the top layer that gives up; there is no global
 * "last error".
 */
#ifndef BOTTLED_ERR_H
#define BOTTLED_ERR_H

enum bd_err {
    BD_OK = 0,
    BD_E_INVAL = -1,     /* bad argument or malformed input */
    BD_E_TOO_BIG = -2,   /* a size cap was hit */
    BD_E_IO = -3,        /* read/write/stat failed; errno tells more */
    BD_E_NOTFOUND = -4,  /* no such file, bottle, key ... */
    BD_E_PARSE = -5,     /* input rejected; diagnostics were added */
    BD_E_EXISTS = -6,    /* already there */
    BD_E_LIMIT = -7,     /* a structural limit (depth, aliases, nodes) was hit */
    BD_E_INTERNAL = -8,  /* a library we call failed unexpectedly */
    BD_E_BUSY = -9,      /* in use (a network with containers attached, ...) */
    BD_E_UNAVAIL = -10,  /* a peer (engine, forge) did not answer */
    BD_E_PROTO = -11,    /* a peer answered something we cannot use */
    BD_E_NOIMAGE = -12,  /* the container image does not exist */
    BD_E_LOCKED = -13,   /* held by another process (the state dir lock, a busy database) */
    BD_E_PERM = -14,     /* unsafe ownership or mode (state dir, key files) */
    BD_E_MISMATCH = -15, /* identity differs from the recorded one (--instance) */
    BD_E_VERSION = -16,  /* data in a format newer (or older) than this binary handles */
};

/* Short lowercase description of an error code; never NULL. */
const char *bd_strerror(int err);

#endif
