#include "tokenize_cmd.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

static const char usage[] = "usage: mneme tokenize MODEL_DIR [--pair] [--max-len N]\n";

typedef struct {
    const char *dir;
    int pair;
    int max_len;               /* 0: no truncation */
} TokenizeArgs;

static int parse_args(int argc, char **argv, TokenizeArgs *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--pair") == 0)
            a->pair = 1;
        else if (strcmp(s, "--max-len") == 0) {
            if (i + 1 == argc) {
                fprintf(stderr, "mneme tokenize: --max-len needs a value\n%s", usage);
                return 2;
            }
            const char *v = argv[++i];
            char *end;
            errno = 0;
            long n = strtol(v, &end, 10);
            if (end == v || *end || errno || n < 1 || n > INT_MAX) {
                fprintf(stderr, "mneme tokenize: --max-len: expected a positive whole number, not '%s'\n", v);
                return 2;
            }
            a->max_len = (int)n;
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "mneme tokenize: unknown option %s\n%s", s, usage);
            return 2;
        } else if (!a->dir)
            a->dir = s;
        else {
            fprintf(stderr, "mneme tokenize: unexpected argument %s\n%s", s, usage);
            return 2;
        }
    }
    if (!a->dir) {
        fprintf(stderr, "mneme tokenize: which model folder?\n%s", usage);
        return 2;
    }
    /* Room for [CLS] [SEP], and a second [SEP] with --pair. */
    if (a->max_len && a->max_len < 2 + a->pair) {
        fprintf(stderr, "mneme tokenize: --max-len %d leaves no room for the text: at least %d\n",
                a->max_len, 2 + a->pair);
        return 2;
    }
    return 0;
}

static void print_ids(const int *v, int n)
{
    putchar('[');
    for (int i = 0; i < n; i++)
        printf(i ? ", %d" : "%d", v[i]);
    putchar(']');
}

int tokenize_main(int argc, char **argv)
{
    TokenizeArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc;
    Tokenizer t;
    MnError e;
    if (tokenizer_load(&t, a.dir, &e) < 0) {
        fprintf(stderr, "mneme tokenize: %s\n", e.msg);
        return 2;
    }
    TokenSeq s = { 0 };
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    while (rc == 0 && (len = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = 0;
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = 0;
        if (strlen(line) != (size_t)len) {
            fprintf(stderr, "mneme tokenize: stdin:%ld: a NUL byte in the text\n", lineno);
            rc = 2;
            break;
        }
        char *b = NULL;
        if (a.pair) {
            b = strchr(line, '\t');
            if (!b || strchr(b + 1, '\t')) {
                fprintf(stderr, "mneme tokenize: stdin:%ld: expected text<TAB>text\n", lineno);
                rc = 2;
                break;
            }
            *b++ = 0;
        }
        if (tokenizer_encode(&t, line, b, a.max_len, &s, &e) < 0) {
            fprintf(stderr, "mneme tokenize: stdin:%ld: %s\n", lineno, e.msg);
            rc = 1;
            break;
        }
        if (a.pair) {
            fputs("{\"input_ids\": ", stdout);
            print_ids(s.ids, s.n);
            fputs(", \"token_type_ids\": ", stdout);
            print_ids(s.types, s.n);
            puts("}");
        } else {
            print_ids(s.ids, s.n);
            putchar('\n');
        }
    }
    if (rc == 0 && ferror(stdin)) {
        fprintf(stderr, "mneme tokenize: stdin: %s\n", strerror(errno));
        rc = 1;
    }
    if (fflush(stdout) != 0 && rc == 0) {
        fprintf(stderr, "mneme tokenize: stdout: %s\n", strerror(errno));
        rc = 1;
    }
    free(line);
    token_seq_free(&s);
    tokenizer_free(&t);
    return rc;
}
