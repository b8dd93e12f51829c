/*
 * tunnel.c - raw tunnel decisions (see tunnel.h).
 */
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "tunnel.h"

const struct pconf_tunnel *tunnel_find(const struct pconf *c, const char *host, int port)
{
    for (size_t i = 0; c && i < c->n_tunnels; i++)
        if (c->tunnels[i].port == port && !strcmp(c->tunnels[i].host, host))
            return &c->tunnels[i];
    return NULL;
}

/*
 * The token of a "Bearer <token>" credential (RFC 6750 2.1: the scheme is
 * case-insensitive, one or more spaces, then the token), or 0 when the
 * value is some other scheme or holds no token.
 */
static int bearer_token(struct slice v, struct slice *ret)
{
    if (v.len < 7 || strncasecmp(v.ptr, "Bearer", 6) || (v.ptr[6] != ' ' && v.ptr[6] != '\t'))
        return 0;
    size_t i = 7;
    while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t'))
        i++;
    if (i == v.len)
        return 0;
    ret->ptr = v.ptr + i;
    ret->len = v.len - i; /* trailing spaces are already trimmed by the parser */
    return 1;
}

enum tunnel_verdict tunnel_check(const struct pconf *c, const char *host, int port,
                                 const struct http_header *hdrs, size_t n,
                                 const struct pconf_tunnel **ret)
{
    const struct pconf_tunnel *t = tunnel_find(c, host, port);
    if (ret)
        *ret = t;
    if (!t)
        return TUNNEL_NONE;
    size_t n_auth = 0, n_bearer = 0;
    struct slice tok = {NULL, 0};
    for (size_t i = 0; i < n; i++) {
        struct slice nm = hdrs[i].name;
        if (nm.len != 19 || strncasecmp(nm.ptr, "proxy-authorization", 19))
            continue;
        n_auth++;
        n_bearer += bearer_token(hdrs[i].value, &tok);
    }
    if (n_bearer == 0)
        return TUNNEL_NO_TOKEN;
    if (n_auth != 1)
        return TUNNEL_BAD_TOKEN;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    enum tunnel_verdict v = TUNNEL_BAD_TOKEN;
    if (EVP_Digest(tok.ptr, tok.len, md, &md_len, EVP_sha256(), NULL) == 1 &&
        md_len == sizeof(t->token_sha256) &&
        CRYPTO_memcmp(md, t->token_sha256, sizeof(t->token_sha256)) == 0)
        v = TUNNEL_OK;
    OPENSSL_cleanse(md, sizeof(md));
    return v;
}

int tunnel_kept(const struct pconf *c, const char *host, int port,
                const unsigned char token_sha256[32])
{
    const struct pconf_tunnel *t = tunnel_find(c, host, port);
    return t && CRYPTO_memcmp(t->token_sha256, token_sha256, sizeof(t->token_sha256)) == 0;
}
