/*
 * injection.h - naive_injection_detection: a phrase list over decoded text.
 *
 * This is deliberately NAIVE.  It looks for a fixed list of phrases that
 * prompt-injection payloads commonly use, for HTML comments that address an
 * AI, and for invisible Unicode used to hide text from a human reader.  It
 * is a tripwire for the careless attack and an audit signal, not a defence:
 * a paraphrase, another language, an encoding the caller did not undo or
 * text split across two responses all pass.  It also fires on text that
 * merely discusses prompt injection, which is why routes with a `role` (LLM
 * providers) default to audit-only.
 *
 * Input is decoded text (the caller has undone Content-Encoding and
 * charset); matching is ASCII case-insensitive, and any run of whitespace
 * in the input matches one space of a phrase.  JSON "\uXXXX" escapes of the
 * hidden characters are recognised as such, since JSON bodies often carry
 * them escaped.
 *
 * Detector ids (static strings):
 *   ignore_instructions        "ignore (all )?(previous|prior|above...) instructions"
 *   disregard_instructions     "disregard|forget ... instructions"
 *   role_override              "you are now DAN", "from now on you are" ...
 *   new_instructions           "new instructions:", "updated instructions:" ...
 *   system_prompt              "reveal your system prompt", "<|im_start|>system" ...
 *   html_comment_instructions  an HTML comment containing words that address
 *                              an AI ("instructions", "assistant", "you must" ...)
 *   zero_width                 U+200B, U+2060, U+FEFF (not a leading BOM), and
 *                              U+200C/U+200D after an ASCII character (after
 *                              an emoji or a non-Latin letter they are normal)
 *   unicode_tags               U+E0000-U+E007F, except the tag sequence of a
 *                              subdivision flag (after U+1F3F4)
 *   bidi_override              U+202A-U+202E, U+2066-U+2069
 */
#ifndef BOTTLED_INJECTION_H
#define BOTTLED_INJECTION_H

#include <stddef.h>

struct injection_match {
    const char *detector; /* one of the ids above, static storage */
    size_t off, len;      /* the phrase, character or comment (up to the
                             word that triggered it) in the scanned bytes */
};

/*
 * Scans s[0..n) (any bytes).  Returns 1 and fills *ret (if non-NULL) with
 * the first detection in reading order (the one whose triggering text ends
 * first), 0 when nothing was found.  Thread-safe; the phrase automaton is
 * built on first use.
 */
int injection_scan(const char *s, size_t n, struct injection_match *ret);

/*
 * injection_scan() for a streaming scanner that rescans an overlap: when
 * open_back is not 0, the text begins inside an HTML comment whose "<!--"
 * began open_back bytes before s; *ret_open_back (if non-NULL) is the same
 * for the text up to mark (the hits that start before it): 0 when that
 * leaves no comment open, else how far before mark its "<!--" began.  The
 * next scan, starting at mark, passes that on, so a comment word arriving
 * later is judged as in the whole text.  When a detection stops the scan
 * early, *ret_open_back covers only the hits seen.
 */
int injection_scan_from(const char *s, size_t n, size_t open_back, size_t mark,
                        size_t *ret_open_back, struct injection_match *ret);

/* Number of phrases and sequences in the automaton (tests, benchmarks). */
size_t injection_pattern_count(void);

#endif
