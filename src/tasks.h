/* Built-in tasks: synthetic data sets generated deterministically from the
 * seed, so that mneme demonstrates forgetting without any download. */
#ifndef MNEME_TASKS_H
#define MNEME_TASKS_H

#include "data.h"
#include "error.h"
#include "tokenizer.h"

typedef struct {
    const char *name;
    const char *summary;       /* one line for README/man/errors */
} BuiltinInfo;

/* The list of built-in task names, NULL-terminated. */
const BuiltinInfo *builtin_tasks(void);
int builtin_exists(const char *name);

/* Generates n examples of task `name` into d, tokenized by tok (NULL:
 * byte-level) (allocating it), with labels
 * named in `labels` (set by the generator, same for every call). `split`
 * separates train (0) and eval (1) so they never share a stream. */
int builtin_generate(const char *name, const Tokenizer *tok, unsigned long long seed,
                     int split, int n, int max_len, Dataset *d, LabelSet *labels,
                     MnError *e);

#endif
