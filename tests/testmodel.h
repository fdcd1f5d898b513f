/* A small model for the tests, with the two heads every run has. */
#ifndef MNEME_TESTMODEL_H
#define MNEME_TESTMODEL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "optim.h"
#include "tokenizer.h"

typedef struct {
    int hidden, layers, heads, intermediate, max_len;
    int labels_original, labels_new;
    int max_batch;
} TestShape;

/* The config of a shape, for tests that add adapters or virtual tokens. */
static inline ModelConfig test_model_config(TestShape s)
{
    ModelConfig c;
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
    return c;
}

static inline void test_model_create_cfg(Model *m, const ModelConfig *c, int max_batch)
{
    MnError e;
    if (model_create(m, c, max_batch, &e) < 0) {
        printf("Bail out! %s\n", e.msg);
        exit(1);
    }
}

static inline void test_model_create(Model *m, TestShape s)
{
    ModelConfig c = test_model_config(s);
    test_model_create_cfg(m, &c, s.max_batch);
}

/* After a backward with some groups frozen: do frozen groups hold no
 * gradient, and trainable ones exactly ref (the unfrozen gradients)? */
static inline void test_frozen_grads(const Model *m, const float *ref, int *frozen_zero,
                                     int *trainable_same)
{
    *frozen_zero = *trainable_same = 1;
    for (int gi = 0; gi < m->n_groups; gi++) {
        const ParamGroup *g = &m->groups[gi];
        for (size_t i = g->offset; i < g->offset + g->numel; i++) {
            if (!g->trainable && m->grads[i] != 0.0f)
                *frozen_zero = 0;
            if (g->trainable && m->grads[i] != ref[i])
                *trainable_same = 0;
        }
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

/* A batch's loss, for the finite-difference checks (gc_check). */
typedef struct {
    Model *m;
    Batch *b;
} TestLossCtx;

static inline double test_model_loss(void *ctx)
{
    TestLossCtx *c = ctx;
    return model_forward(c->m, c->b);
}

/* The gradient of a batch's loss, copied into g. */
static inline void test_backward_into(Model *m, Batch *b, float *g)
{
    model_zero_grads(m);
    model_forward(m, b);
    model_backward(m, b);
    memcpy(g, m->grads, m->n_params * sizeof *g);
}

/* n plain training steps of AdamW on one batch. */
static inline void test_train_steps(Model *m, Batch *b, AdamW *opt, int n, float lr)
{
    for (int s = 0; s < n; s++) {
        model_zero_grads(m);
        model_forward(m, b);
        model_backward(m, b);
        adamw_step(opt, m, lr);
    }
}

#endif
