/* UTF-8 validity of the text mneme reads (data files, experiment strings,
 * predict's input, vocabularies) and writes back as JSON, which holds only
 * valid UTF-8: a string that is not would be dropped by the writer. */
#ifndef MNEME_UTF8_H
#define MNEME_UTF8_H

#include <stddef.h>

/* The offset of the first byte of s[0..n) that starts no valid UTF-8
 * sequence (a stray continuation byte, a cut sequence, an overlong form, a
 * surrogate, a code point past U+10FFFF), or -1 when all of it is valid.
 * NUL is valid UTF-8: callers that hold C strings refuse it themselves. */
long utf8_invalid_at(const char *s, size_t n);

#endif
