#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int mn_fail(MnError *e, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int mn_wrap(MnError *e, const char *fmt, ...)
{
    if (e) {
        char prefix[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        size_t pl = strlen(prefix) + 2, ol = strnlen(e->msg, sizeof e->msg - 1);
        if (pl + ol >= sizeof e->msg)
            ol = sizeof e->msg - 1 - pl;
        memmove(e->msg + pl, e->msg, ol);
        memcpy(e->msg, prefix, pl - 2);
        e->msg[pl - 2] = ':';
        e->msg[pl - 1] = ' ';
        e->msg[pl + ol] = 0;
    }
    return -1;
}
