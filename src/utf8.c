#include "utf8.h"

#include <utf8proc.h>

long utf8_invalid_at(const char *s, size_t n)
{
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        utf8proc_int32_t c;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &c);
        if (k <= 0)
            return (long)i;
        i += (size_t)k;
    }
    return -1;
}
