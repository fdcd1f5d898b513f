/* Lines of UTF-8 text from a file or stdin, as mneme reads its inputs
 * (data files, MLM text, predict's stdin). Each line is checked before it
 * is used, so that nothing is read without bound (/dev/zero, a binary
 * file), cut short at a NUL byte, or dropped later for bytes JSON cannot
 * hold: every problem is an error naming the line. */
#ifndef MNEME_LINES_H
#define MNEME_LINES_H

#include <stddef.h>
#include <stdio.h>

#include "error.h"

/* The longest line accepted: past it the input is not text. */
#define LINE_MAX_BYTES (16 << 20)

typedef struct {
    FILE *f;
    const char *path;          /* in messages: "PATH:LINE: ..." */
    long lineno;               /* of the line last returned */
    int keep_cr;               /* 1: only "\n" ends a line; "\r" stay in it */
    char *buf;
    size_t cap;
} LineReader;

void line_reader_init(LineReader *r, FILE *f, const char *path);
void line_reader_free(LineReader *r);

/* The next line without its end ("\n", "\r\n", or "\r\r\n" as a CRLF file
 * converted twice has it) and, on the first line, without a UTF-8 byte
 * order mark. 1: *line (NUL-terminated, *len bytes, valid until the next
 * call); 0: the end of the input; -1: an error "PATH:LINE: ..." for a line
 * longer than LINE_MAX_BYTES, a NUL byte, invalid UTF-8 (with the byte's
 * column) or a failed read (a signal's interruption included). */
int line_reader_next(LineReader *r, char **line, size_t *len, MnError *e);

#endif
