/* An upper bound on the work of Lua's pattern matcher (string.find,
 * match, gmatch, gsub) for a pattern and a subject length. The matcher
 * backtracks in C, where no instruction budget can reach it, and some
 * patterns take time exponential in their repetitions; the sandbox
 * refuses a search whose bound is too large instead of starting it.
 *
 * The bound: each repetition (*, +, -, ?) chooses a length, and the
 * lengths of one attempt add up to at most the subject's n, so an attempt
 * explores at most C(n + k, k) endings of k repetitions; each node scans
 * at most n characters (%b and back-references once more each) plus the
 * pattern; an unanchored search tries n + 1 starts. */
#ifndef MNEME_PATTERN_COST_H
#define MNEME_PATTERN_COST_H

#include <stddef.h>

/* plain: string.find's fourth argument (a substring search, n * lp).
 * may_anchor: a leading '^' anchors (not for gmatch). */
double pattern_cost(const char *p, size_t lp, size_t n, int plain, int may_anchor);

#endif
