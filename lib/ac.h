/*
 * ac.h - Aho-Corasick multi-pattern matcher: find every occurrence of any of
 * a set of byte strings in one left-to-right pass over the input.
 *
 * The automaton is built once (ac_add() every pattern, then ac_compile())
 * and is then immutable: any number of threads may run ac_scan() on it
 * concurrently.  It is compiled to a full DFA over byte classes (bytes that
 * no pattern distinguishes share a class), so a scan costs one table load
 * per input byte plus the callback on each hit, whatever the number of
 * patterns.  Memory is states x classes x 4 bytes.
 *
 * Options given to ac_new():
 *   AC_NOCASE   ASCII letters match either case (patterns are folded too);
 *   AC_SQUEEZE  any run of ASCII whitespace in the input matches one ' ' in
 *               a pattern, so "ignore  previous\n instructions" matches the
 *               pattern "ignore previous instructions".  Patterns must not
 *               start or end with a space nor contain two in a row (the
 *               automaton would never match them); ac_add() refuses them.
 * With AC_SQUEEZE a hit's input length can exceed the pattern's, so the
 * callback gets the end offset and the caller finds the start itself.
 */
#ifndef BOTTLED_AC_H
#define BOTTLED_AC_H

#include <stddef.h>
#include <stdint.h>

#define AC_NOCASE  1u
#define AC_SQUEEZE 2u

struct ac;

/* An empty automaton with the given options; free with ac_free(). */
struct ac *ac_new(unsigned flags);

/*
 * Adds pattern p[0..len) reported with id.  The same bytes may be added
 * several times (each id is then reported).  Returns 0, or BD_E_INVAL for
 * an empty pattern, a pattern refused by AC_SQUEEZE (see above), or a call
 * after ac_compile().
 */
int ac_add(struct ac *a, const void *p, size_t len, uint32_t id);

/*
 * Builds the DFA; call once, after the last ac_add().  Returns 0,
 * BD_E_TOO_BIG when the patterns add up to AC_MAX_PATTERN_BYTES or more,
 * or BD_E_INVAL when a was already compiled.
 */
#define AC_MAX_PATTERN_BYTES ((size_t)1 << 22)
int ac_compile(struct ac *a);

/* Number of DFA states (for tests and benchmarks). */
size_t ac_state_count(const struct ac *a);

/*
 * Called for every hit: pattern id, its length in bytes as added, and end,
 * the offset just past the last input byte of the hit.  Hits come in order
 * of end; hits ending at the same byte come longest pattern first.  Return
 * nonzero to stop the scan.
 */
typedef int (*ac_hit_fn)(void *ctx, uint32_t id, size_t len, size_t end);

/*
 * Scans s[0..n) (any bytes).  Returns 1 when a callback stopped the scan,
 * else 0.  a must have been compiled.
 */
int ac_scan(const struct ac *a, const void *s, size_t n, ac_hit_fn fn, void *ctx);

/* Frees a and everything it holds (the patterns are wiped first). */
void ac_free(struct ac *a);

#endif
