#include "lines.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

void line_reader_init(LineReader *r, FILE *f, const char *path)
{
    memset(r, 0, sizeof *r);
    r->f = f;
    r->path = path;
}

void line_reader_free(LineReader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
}

/* Bytes up to and with '\n' into r->buf: the count, 0 at the end, -1 on a
 * read error, -2 past LINE_MAX_BYTES (nothing more is read), -3 out of
 * memory. */
static long read_raw(LineReader *r)
{
    size_t n = 0;
    int c;
    while ((c = getc_unlocked(r->f)) != EOF) {
        if (n == LINE_MAX_BYTES)
            return -2;
        if (n + 2 > r->cap) {
            size_t want = r->cap ? r->cap * 2 : 256;
            char *p = realloc(r->buf, want);
            if (!p)
                return -3;
            r->buf = p;
            r->cap = want;
        }
        r->buf[n++] = (char)c;
        if (c == '\n')
            break;
    }
    if (ferror(r->f))
        return -1;
    if (n > 0)
        r->buf[n] = '\0';
    return (long)n;
}

int line_reader_next(LineReader *r, char **line, size_t *len, MnError *e)
{
    long got = read_raw(r);
    long at = r->lineno + 1;
    if (got == 0)
        return 0;
    if (got == -1 && errno == EINTR)
        return mn_fail(e, "%s:%ld: reading was interrupted by a signal", r->path, at);
    if (got == -1)
        return mn_fail(e, "%s:%ld: %s", r->path, at, strerror(errno));
    if (got == -2)
        return mn_fail(e, "%s:%ld: line longer than %d MiB: not text", r->path, at,
                       LINE_MAX_BYTES >> 20);
    if (got == -3)
        return mn_fail(e, "%s:%ld: out of memory for the line", r->path, at);
    r->lineno = at;
    char *s = r->buf;
    size_t n = (size_t)got;
    /* Editors on Windows begin UTF-8 files with a byte order mark. */
    if (at == 1 && n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
        s += 3;
        n -= 3;
    }
    if (n > 0 && s[n - 1] == '\n')
        s[--n] = '\0';
    while (!r->keep_cr && n > 0 && s[n - 1] == '\r')
        s[--n] = '\0';
    const char *nul = memchr(s, '\0', n);
    if (nul)
        return mn_fail(e, "%s:%ld: NUL byte at column %ld", r->path, at, (long)(nul - s) + 1);
    long bad = utf8_invalid_at(s, n);
    if (bad >= 0)
        return mn_fail(e, "%s:%ld: not valid UTF-8 (byte 0x%02X at column %ld); mneme reads "
                       "UTF-8 text", r->path, at, (unsigned char)s[bad], bad + 1);
    *line = s;
    *len = n;
    return 1;
}
