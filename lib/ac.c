/*
 * ac.c - the Aho-Corasick automaton behind ac.h.
 *
 * Build: the patterns go into a trie over byte classes; a breadth-first
 * walk sets each state's failure link and fills in the missing transitions
 * from it, which turns the trie into a complete DFA; each state's output
 * list is its own patterns followed by its failure state's list (so the
 * longest pattern comes first).  Transitions are stored premultiplied by
 * the class count (a state's row starts at its value) and the high bit of
 * a transition says "the target state has outputs", so the scan loop is
 * one load, one test and one add per byte.
 */
#include <stdlib.h>
#include <string.h>

#include "ac.h"
#include "err.h"
#include "xalloc.h"

#define HAS_OUT 0x80000000u

struct pattern {
    unsigned char *p;
    size_t len;
    uint32_t id;
};

struct ac {
    unsigned flags;
    int compiled;
    struct pattern *pat;
    size_t npat, cappat;

    uint16_t cls[256]; /* byte -> class */
    size_t ncls;
    size_t nstates;
    uint32_t *delta;      /* nstates * ncls, premultiplied, HAS_OUT flag */
    uint32_t *out_off;    /* per state: first index into outv */
    uint32_t *out_n;      /* per state: number of outputs */
    uint32_t *outv;       /* pattern indexes */
    int skip;             /* every pattern has 2+ bytes: the root may skip */
    uint8_t start2[8192]; /* bit (a << 8 | b): some pattern starts with a, b */
};

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static unsigned char fold(const struct ac *a, unsigned char c)
{
    if ((a->flags & AC_NOCASE) && c >= 'A' && c <= 'Z')
        return (unsigned char)(c - 'A' + 'a');
    return c;
}

struct ac *ac_new(unsigned flags)
{
    struct ac *a = xcalloc(1, sizeof(*a));
    a->flags = flags;
    return a;
}

int ac_add(struct ac *a, const void *p, size_t len, uint32_t id)
{
    const unsigned char *u = p;

    if (a->compiled || len == 0 || len > UINT32_MAX / 2)
        return BD_E_INVAL;
    if (a->flags & AC_SQUEEZE) {
        if (u[0] == ' ' || u[len - 1] == ' ')
            return BD_E_INVAL;
        for (size_t i = 0; i < len; i++) {
            if ((is_space(u[i]) && u[i] != ' ') || (i && u[i] == ' ' && u[i - 1] == ' '))
                return BD_E_INVAL;
        }
    }
    if (a->npat == a->cappat) {
        a->cappat = a->cappat ? a->cappat * 2 : 16;
        a->pat = xrealloc(a->pat, a->cappat * sizeof(*a->pat));
    }
    struct pattern *pt = &a->pat[a->npat++];
    pt->p = xmalloc(len);
    for (size_t i = 0; i < len; i++)
        pt->p[i] = fold(a, u[i]);
    pt->len = len;
    pt->id = id;
    return 0;
}

static void build_classes(struct ac *a)
{
    unsigned char used[256] = {0};

    for (size_t i = 0; i < a->npat; i++) {
        for (size_t k = 0; k < a->pat[i].len; k++)
            used[a->pat[i].p[k]] = 1;
    }
    a->ncls = 1; /* class 0: bytes no pattern contains */
    memset(a->cls, 0, sizeof(a->cls));
    for (int c = 0; c < 256; c++) {
        if (used[c])
            a->cls[c] = (uint16_t)a->ncls++;
    }
    for (int c = 0; c < 256; c++) {
        unsigned char f = fold(a, (unsigned char)c);
        if (f != c)
            a->cls[c] = a->cls[f];
        if ((a->flags & AC_SQUEEZE) && is_space((unsigned char)c))
            a->cls[c] = a->cls[' '];
    }
}

/*
 * The root-skip filter: the pairs of byte classes some pattern starts
 * with, expanded to a bitmap over byte pairs.  While the automaton is at
 * its root, a position whose two bytes start no pattern cannot begin a
 * match, and the state after it is the root again, so the scan steps over
 * it with one bit test instead of a dependent table load.
 */
static void build_start2(struct ac *a)
{
    uint8_t *pair = xcalloc(a->ncls * a->ncls, 1);

    a->skip = 1;
    for (size_t i = 0; i < a->npat; i++) {
        if (a->pat[i].len < 2) {
            a->skip = 0;
            break;
        }
        pair[a->cls[a->pat[i].p[0]] * a->ncls + a->cls[a->pat[i].p[1]]] = 1;
    }
    memset(a->start2, 0, sizeof(a->start2));
    for (unsigned x = 0; a->skip && x < 256; x++) {
        for (unsigned y = 0; y < 256; y++) {
            if (pair[a->cls[x] * a->ncls + a->cls[y]])
                a->start2[(x << 8 | y) >> 3] |= (uint8_t)(1u << (y & 7));
        }
    }
    free(pair);
}

int ac_compile(struct ac *a)
{
    size_t cap = 1, total = 0;
    int32_t *child;
    uint32_t *fail, *queue;
    uint16_t *in_cls; /* class of the transition into each state */

    if (a->compiled)
        return BD_E_INVAL;
    build_classes(a);
    for (size_t i = 0; i < a->npat; i++)
        total += a->pat[i].len;
    cap = total + 1;
    /* Premultiplied state numbers must stay below the HAS_OUT bit. */
    if (total >= AC_MAX_PATTERN_BYTES)
        return BD_E_TOO_BIG;
    a->compiled = 1;
    child = xmalloc(cap * a->ncls * sizeof(*child));
    in_cls = xcalloc(cap, sizeof(*in_cls));
    memset(child, -1, a->ncls * sizeof(*child));
    a->nstates = 1;

    /* Trie; own[] chains patterns ending at each state. */
    int32_t *own = xmalloc(cap * sizeof(*own));
    int32_t *next_own = xmalloc((a->npat ? a->npat : 1) * sizeof(*next_own));
    own[0] = -1;
    for (size_t i = 0; i < a->npat; i++) {
        size_t st = 0;
        for (size_t k = 0; k < a->pat[i].len; k++) {
            unsigned c = a->cls[a->pat[i].p[k]];
            int32_t *slot = &child[st * a->ncls + c];
            if (*slot < 0) {
                size_t ns = a->nstates++;
                memset(&child[ns * a->ncls], -1, a->ncls * sizeof(*child));
                own[ns] = -1;
                in_cls[ns] = (uint16_t)c;
                *slot = (int32_t)ns;
            }
            st = (size_t)*slot;
        }
        next_own[i] = own[st];
        own[st] = (int32_t)i;
    }

    /* Breadth-first: failure links, full transitions, output lists. */
    fail = xcalloc(a->nstates, sizeof(*fail));
    queue = xmalloc(a->nstates * sizeof(*queue));
    a->delta = xmalloc(a->nstates * a->ncls * sizeof(*a->delta));
    a->out_off = xcalloc(a->nstates, sizeof(*a->out_off));
    a->out_n = xcalloc(a->nstates, sizeof(*a->out_n));
    size_t outcap = a->npat + 16, nout = 0;
    a->outv = xmalloc(outcap * sizeof(*a->outv));

    size_t qh = 0, qt = 0;
    queue[qt++] = 0;
    while (qh < qt) {
        uint32_t st = queue[qh++];
        /* Outputs: own patterns, then the failure state's (done earlier). */
        size_t start = nout;
        for (int32_t i = own[st]; i >= 0; i = next_own[i]) {
            if (nout == outcap)
                a->outv = xrealloc(a->outv, (outcap *= 2) * sizeof(*a->outv));
            a->outv[nout++] = (uint32_t)i;
        }
        if (st != 0) {
            uint32_t f = fail[st];
            for (uint32_t k = 0; k < a->out_n[f]; k++) {
                if (nout == outcap)
                    a->outv = xrealloc(a->outv, (outcap *= 2) * sizeof(*a->outv));
                a->outv[nout++] = a->outv[a->out_off[f] + k];
            }
        }
        a->out_off[st] = (uint32_t)start;
        a->out_n[st] = (uint32_t)(nout - start);

        for (size_t c = 0; c < a->ncls; c++) {
            int32_t ch = child[st * a->ncls + c];
            if (ch >= 0) {
                fail[ch] = st == 0 ? 0 : (uint32_t)child[fail[st] * a->ncls + c];
                queue[qt++] = (uint32_t)ch;
            } else {
                /* Missing edge: follow the failure state's (complete) row. */
                child[st * a->ncls + c] = st == 0 ? 0 : child[fail[st] * a->ncls + c];
            }
        }
    }
    /* Squeeze: more whitespace after a state entered on ' ' stays there. */
    if (a->flags & AC_SQUEEZE) {
        unsigned sp = a->cls[' '];
        for (size_t st = 1; st < a->nstates; st++) {
            if (in_cls[st] == sp && sp != 0)
                child[st * a->ncls + sp] = (int32_t)st;
        }
    }
    build_start2(a);
    for (size_t st = 0; st < a->nstates; st++) {
        for (size_t c = 0; c < a->ncls; c++) {
            uint32_t t = (uint32_t)child[st * a->ncls + c];
            a->delta[st * a->ncls + c] = (uint32_t)(t * a->ncls) | (a->out_n[t] ? HAS_OUT : 0);
        }
    }
    free(child);
    free(in_cls);
    free(own);
    free(next_own);
    free(fail);
    free(queue);
    return 0;
}

size_t ac_state_count(const struct ac *a)
{
    return a->nstates;
}

int ac_scan(const struct ac *a, const void *s, size_t n, ac_hit_fn fn, void *ctx)
{
    const unsigned char *u = s;
    const uint32_t *delta = a->delta;
    const uint16_t *cls = a->cls;
    uint32_t st = 0;

    if (!a->compiled || a->npat == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (st == 0 && a->skip) {
            const uint8_t *s2 = a->start2;
            while (i + 1 < n && !(s2[(u[i] << 5) | (u[i + 1] >> 3)] & (1u << (u[i + 1] & 7))))
                i++;
            if (i + 1 >= n)
                break; /* no pattern of 2+ bytes starts at the last byte */
        }
        uint32_t nx = delta[st + cls[u[i]]];
        if (nx & HAS_OUT) {
            nx &= ~HAS_OUT;
            size_t state = nx / a->ncls;
            const uint32_t *o = a->outv + a->out_off[state];
            for (uint32_t k = 0; k < a->out_n[state]; k++) {
                const struct pattern *p = &a->pat[o[k]];
                if (fn(ctx, p->id, p->len, i + 1))
                    return 1;
            }
        }
        st = nx;
    }
    return 0;
}

void ac_free(struct ac *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->npat; i++) {
        explicit_bzero(a->pat[i].p, a->pat[i].len);
        free(a->pat[i].p);
    }
    free(a->pat);
    free(a->delta);
    free(a->out_off);
    free(a->out_n);
    free(a->outv);
    free(a);
}
