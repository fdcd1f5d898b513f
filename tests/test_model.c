/* Whole-model checks: the gradient of the loss with respect to a sample of
 * every parameter tensor against finite differences, padding invariance,
 * and what freezing does to the backward. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas_core.h"
#include "gradcheck.h"
#include "model.h"
#include "tap.h"
#include "testmodel.h"
#include "tokenizer.h"

enum { B = 4, T = 8 };

static int ids[B * T], lens[B] = { 8, 5, 3, 6 }, tasks[B] = { 0, 1, 0, 1 };
/* Rows of one task next to each other share one head product. */
static int task_runs[B] = { 0, 0, 1, 1 };
static int labels[B] = { 2, 1, 0, 0 };

/* The architecture differences: 0 BERT as mneme trains it; 1 DistilBERT's
 * shape (no token types, a pre_classifier + ReLU per head instead of the
 * pooler, more positions than max_len); 2 BERT with sentence pairs'
 * token types, the tanh GELU and LayerNorm eps 1e-6. */
static int variant;
static int pair_types[B * T];

/* lora_r > 0: adapters on all six modules, B drawn too (PEFT's zero B
 * would hide them), dropout 0.2 while training */
static void make_model_lora(Model *m, int layers, int lora_r)
{
    Rng r;
    ModelConfig c = test_model_config((TestShape){ 16, layers, 2, 32, T, 3, 2, B });
    if (variant == 1) {
        c.type_vocab = 0;
        c.head_pre = 1;
        c.max_positions = T + 4;
        c.arch = ARCH_DISTILBERT;
    } else if (variant == 2) {
        c.act = ACT_GELU_TANH;
        c.ln_eps = 1e-6f;
    }
    if (lora_r > 0) {
        c.lora_r = lora_r;
        c.lora_alpha = 2.0f * (float)lora_r;
        c.lora_targets = (1u << LORA_MODULES) - 1;
        c.lora_dropout = 0.2f;
    }
    test_model_create_cfg(m, &c, B);
    rng_seed(&r, 7);
    /* A larger init than BERT's 0.02 so that every path carries a
     * gradient well above float rounding. */
    model_init_weights(m, &r, 0.2f);
    for (size_t i = 0; i < m->n_params; i++)
        if (m->params[i] == 0.0f || m->params[i] == 1.0f)
            m->params[i] += 0.1f * rng_normal(&r);
}

static void make_model_layers(Model *m, int layers)
{
    make_model_lora(m, layers, 0);
}

static void make_model(Model *m)
{
    make_model_layers(m, 2);
}

static Batch make_batch(void)
{
    Batch b = test_batch(ids, lens, labels, tasks, B, T);
    if (variant == 2)
        b.types = pair_types;
    return b;
}


static void test_gradients(int *task)
{
    Model m;
    Batch b = test_batch(ids, lens, labels, task, B, T);
    if (variant == 2)
        b.types = pair_types;
    TestLossCtx ctx = { &m, &b };
    make_model(&m);
    model_zero_grads(&m);
    model_forward(&m, &b);
    model_backward(&m, &b);
    float *g = malloc(m.n_params * sizeof *g);
    memcpy(g, m.grads, m.n_params * sizeof *g);
    double worst = 0.0;
    for (int i = 0; i < m.n_tensors; i++) {
        const ParamTensor *t = &m.tensors[i];
        GcOpts o = { 1e-2, 1e-3, 12, (uint64_t)i + 1 };
        GcResult r = gc_check(test_model_loss, &ctx, m.params + t->offset, g + t->offset,
                              (long)t->numel, &o);
        ok(r.max_rel < 2e-2, "gradient of %s (max rel err %.2e at %ld: %.6g vs %.6g)",
           t->name, r.max_rel, r.worst, r.analytic, r.numeric);
        if (r.max_rel > worst)
            worst = r.max_rel;
    }
    diag("worst relative error over all tensors: %.2e", worst);
    free(g);
    model_free(&m);
}

/* Padding past a sequence's length must change nothing: the mask hides it. */
static void test_padding_invariance(void)
{
    Model m;
    Batch b = make_batch();
    make_model(&m);
    model_forward(&m, &b);
    float logits_short[3];
    memcpy(logits_short, m.act.logits + 2 * m.act.max_labels, sizeof logits_short);
    for (int t = lens[2]; t < T; t++)
        ids[2 * T + t] = TOK_BYTE0 + 99;     /* garbage where the mask hides it */
    model_forward(&m, &b);
    double diff = 0.0;
    for (int k = 0; k < 3; k++)
        diff = fmax(diff, fabs(logits_short[k] - m.act.logits[2 * m.act.max_labels + k]));
    ok(diff == 0.0, "tokens past a sequence's length do not change its logits (diff %.3g)", diff);
    model_free(&m);
}

/* Freezing: frozen tensors get no gradient, trainable ones get exactly
 * what they get without freezing. */
static void test_freezing(void)
{
    Model m;
    Batch b = make_batch();
    make_model(&m);
    model_zero_grads(&m);
    model_forward(&m, &b);
    model_backward(&m, &b);
    float *full = malloc(m.n_params * sizeof *full);
    memcpy(full, m.grads, m.n_params * sizeof *full);

    const char *frozen[] = { "embeddings", "layer.0", "classifier.original" };
    for (int i = 0; i < 3; i++)
        m.groups[model_find_group(&m, frozen[i])].trainable = 0;
    model_zero_grads(&m);
    model_forward(&m, &b);
    model_backward(&m, &b);
    int frozen_zero, trainable_same;
    test_frozen_grads(&m, full, &frozen_zero, &trainable_same);
    ok(frozen_zero, "frozen groups receive no gradient");
    ok(trainable_same, "trainable groups' gradients are bit-identical to the unfrozen backward");

    /* A frozen layer between trainable ones still passes the gradient down. */
    for (int gi = 0; gi < m.n_groups; gi++)
        m.groups[gi].trainable = 1;
    m.groups[model_find_group(&m, "layer.1")].trainable = 0;
    model_zero_grads(&m);
    model_forward(&m, &b);
    model_backward(&m, &b);
    int gi0 = model_find_group(&m, "layer.0");
    int below_same = 1;
    for (size_t i = m.groups[gi0].offset; i < m.groups[gi0].offset + m.groups[gi0].numel; i++)
        if (m.grads[i] != full[i])
            below_same = 0;
    ok(below_same, "a frozen block passes gradients through to the trainable block below");
    free(full);
    model_free(&m);
}

/* Shapes read from a file (a checkpoint's mneme.model, a config.json)
 * that model_create must refuse rather than try to allocate: found by
 * fuzz_checkpoint (corpus checkpoint/intermediate-negative,
 * checkpoint/max-len-negative). */
static void test_refused_shapes(void)
{
    static const struct {
        const char *what;
        int intermediate, max_len, max_positions;
    } bad[] = {
        { "a negative intermediate size", -4, 8, 0 },
        { "a negative max_len", 16, -3, 0 },
        { "max_len 0", 16, 0, 0 },
        { "negative max_positions", 16, 8, -1 },
    };
    TestShape s = { 8, 1, 2, 16, 8, 2, 2, 1 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ModelConfig c = test_model_config(s);
        Model m;
        MnError e;
        c.intermediate = bad[i].intermediate;
        c.max_len = bad[i].max_len;
        c.max_positions = bad[i].max_positions;
        ok(model_create(&m, &c, 1, &e) < 0 && strstr(e.msg, "must be"), "%s is refused: %s",
           bad[i].what, e.msg);
    }
}

static void test_layout(void)
{
    Model m;
    make_model(&m);
    int q = model_find_tensor(&m, "bert.encoder.layer.1.attention.self.query.weight");
    int k = model_find_tensor(&m, "bert.encoder.layer.1.attention.self.key.weight");
    int v = model_find_tensor(&m, "bert.encoder.layer.1.attention.self.value.weight");
    ok(q >= 0 && k >= 0 && v >= 0, "Hugging Face names for q/k/v");
    ok(m.tensors[k].offset == m.tensors[q].offset + 16 * 16 &&
       m.tensors[v].offset == m.tensors[k].offset + 16 * 16,
       "query, key and value weights form one [3C, C] matrix");
    ok(m.tensors[q].shape[0] == 16 && m.tensors[q].shape[1] == 16, "linear weights are [out, in]");
    int inter = model_find_tensor(&m, "bert.encoder.layer.0.intermediate.dense.weight");
    ok(inter >= 0 && m.tensors[inter].shape[0] == 32 && m.tensors[inter].shape[1] == 16,
       "intermediate.dense.weight is [intermediate, hidden]");
    ok(model_find_tensor(&m, "classifier.new.bias") >= 0 &&
       model_find_tensor(&m, "bert.pooler.dense.weight") >= 0 &&
       model_find_tensor(&m, "bert.embeddings.LayerNorm.weight") >= 0,
       "pooler, heads and embedding LayerNorm present");
    int decay_ok = 1;
    for (int i = 0; i < m.n_tensors; i++) {
        int want = m.tensors[i].ndim == 2;
        if (m.tensors[i].decay != want)
            decay_ok = 0;
    }
    ok(decay_ok, "weight decay on matrices only (not biases or LayerNorm)");
    model_free(&m);
}

/* The last block computes its queries and everything after them for the
 * [CLS] rows only: the loss, logits and every gradient must be those of
 * the block run over every row, for one and two blocks, split over two
 * workers, and with the blocks below frozen (no input gradient). */
static void test_last_block_cls(int layers, int threads, const char *frozen, int lora_r)
{
    Model m;
    MnError e;
    Batch b = make_batch();
    make_model_lora(&m, layers, lora_r);
    if (lora_r > 0) {
        /* every adapter, its dropout drawing the same mask for a row on
         * either path */
        m.training = 1;
        m.dropout_seed = 77;
    }
    if (threads > 1 && model_set_threads(&m, threads, &e) < 0) {
        ok(0, "model_set_threads: %s", e.msg);
        model_free(&m);
        return;
    }
    if (frozen) {
        /* the embeddings and the blocks up to `frozen` */
        for (int gi = 0; gi < m.n_groups; gi++)
            if (strncmp(m.groups[gi].name, "layer.", 6) == 0 &&
                strcmp(m.groups[gi].name, frozen) <= 0)
                m.groups[gi].trainable = 0;
        m.groups[model_find_group(&m, "embeddings")].trainable = 0;
    }
    float *g_cls = malloc(m.n_params * sizeof *g_cls);
    float *g_full = malloc(m.n_params * sizeof *g_full);
    float logits[B * 3];
    test_backward_into(&m, &b, g_cls);
    float loss_cls = model_forward(&m, &b);
    memcpy(logits, m.act.logits, sizeof logits);
    m.full_last_block = 1;
    test_backward_into(&m, &b, g_full);
    float loss_full = model_forward(&m, &b);
    double dl = 0.0;
    for (int i = 0; i < B * 3; i++)
        dl = fmax(dl, fabs(logits[i] - m.act.logits[i]));
    double worst = gc_compare(g_cls, g_full, (long)m.n_params, 1e-3);
    ok(fabsf(loss_cls - loss_full) <= 1e-6f * fabsf(loss_full) && dl < 1e-5 && worst < 1e-4,
       "%d block%s, %d worker%s%s%s%s: the [CLS]-only last block gives the full block's loss "
       "(%.7g vs %.7g), logits (max diff %.1e) and gradients (max rel %.1e)", layers,
       layers > 1 ? "s" : "", threads, threads > 1 ? "s" : "", frozen ? ", frozen up to " : "",
       frozen ? frozen : "", lora_r ? ", LoRA on all six modules with dropout" : "", loss_cls,
       loss_full, dl, worst);
    free(g_cls), free(g_full);
    model_free(&m);
}

int main(int argc, char **argv)
{
    char core[256];
    blas_core_fix(argv);
    blas_core_describe(core, sizeof core);
    diag("%s", core);
    test_refused_shapes();
    test_layout();
    test_gradients(tasks);
    test_gradients(task_runs);
    test_padding_invariance();
    test_freezing();
    test_last_block_cls(2, 1, NULL, 0);
    test_last_block_cls(1, 1, NULL, 0);
    test_last_block_cls(2, 2, NULL, 0);
    test_last_block_cls(2, 1, "layer.0", 0);
    test_last_block_cls(1, 1, "layer.0", 0);
    test_last_block_cls(2, 1, NULL, 2);
    test_last_block_cls(1, 2, NULL, 2);
    test_last_block_cls(2, 1, "layer.1", 2);
    for (int i = 0; i < B * T; i++)
        pair_types[i] = i % T >= 3;
    for (variant = 1; variant <= 2; variant++) {
        diag("%s", variant == 1 ? "DistilBERT's shape: no token types, pre_classifier + ReLU per head"
                                : "BERT with pair token types, gelu_new and LayerNorm eps 1e-6");
        test_gradients(tasks);
        test_gradients(task_runs);
        test_freezing();
        test_last_block_cls(2, 1, NULL, 0);
        test_last_block_cls(2, 2, NULL, 2);
    }
    return tap_done();
}
