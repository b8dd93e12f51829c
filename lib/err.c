/* err.c - text for the project's error codes. */
#include "err.h"

const char *bd_strerror(int err)
{
    switch (err) {
    case BD_OK:
        return "success";
    case BD_E_INVAL:
        return "invalid argument";
    case BD_E_TOO_BIG:
        return "size limit exceeded";
    case BD_E_IO:
        return "i/o error";
    case BD_E_NOTFOUND:
        return "not found";
    case BD_E_PARSE:
        return "parse error";
    case BD_E_EXISTS:
        return "already exists";
    case BD_E_LIMIT:
        return "structural limit exceeded";
    case BD_E_INTERNAL:
        return "internal error";
    case BD_E_BUSY:
        return "in use";
    case BD_E_UNAVAIL:
        return "peer unavailable";
    case BD_E_PROTO:
        return "unexpected answer from peer";
    case BD_E_NOIMAGE:
        return "no such image";
    case BD_E_LOCKED:
        return "locked by another process";
    case BD_E_PERM:
        return "unsafe ownership or permissions";
    case BD_E_MISMATCH:
        return "identity mismatch";
    case BD_E_VERSION:
        return "unsupported format version";
    }
    return "unknown error";
}
