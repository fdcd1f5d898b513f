/* Errors travel as a message buffer filled by the function that failed. */
#ifndef MNEME_ERROR_H
#define MNEME_ERROR_H

#include <stddef.h>

typedef struct {
    char msg[1024];
} MnError;

/* Formats the message into e (when e is not NULL) and returns -1, so a
 * failing function can end with `return mn_fail(e, "...", ...);`. */
int mn_fail(MnError *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an existing message (context on the way up). */
int mn_wrap(MnError *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
