/* A small model for the tests, with the two heads every run has. */
#ifndef MNEME_TESTMODEL_H
#define MNEME_TESTMODEL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "tokenizer.h"

typedef struct {
    int hidden, layers, heads, intermediate, max_len;
    int labels_original, labels_new;
    int max_batch;
} TestShape;

static inline void test_model_create(Model *m, TestShape s)
{
    ModelConfig c;
    MnError e;
    memset(&c, 0, sizeof c);
    c.vocab = TOKENIZER_VOCAB;
    c.hidden = s.hidden;
    c.layers = s.layers;
    c.heads = s.heads;
    c.intermediate = s.intermediate;
    c.max_len = s.max_len;
    c.type_vocab = 2;
    c.n_tasks = 2;
    strcpy(c.task_name[0], "original");
    strcpy(c.task_name[1], "new");
    c.n_labels[0] = s.labels_original;
    c.n_labels[1] = s.labels_new;
    if (model_create(m, &c, s.max_batch, &e) < 0) {
        printf("Bail out! %s\n", e.msg);
        exit(1);
    }
}

/* A batch over caller-owned arrays: row r has lens[r] tokens ([CLS] then
 * bytes that differ by row and position), padding after. */
static inline Batch test_batch(int *ids, int *lens, int *labels, int *tasks, int B, int T)
{
    Batch b;
    memset(&b, 0, sizeof b);
    b.B = B;
    b.T = T;
    b.ids = ids;
    b.len = lens;
    b.label = labels;
    b.task = tasks;
    for (int r = 0; r < B; r++)
        for (int t = 0; t < T; t++)
            ids[r * T + t] = t == 0 ? TOK_CLS : t < lens[r] ? TOK_BYTE0 + (r * 31 + t * 7) % 200 : TOK_PAD;
    return b;
}

#endif
