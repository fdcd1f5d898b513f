/* LoRA: the table (unchanged without adapters, PEFT names with them), step
 * 0 equal to the base model, finite-difference gradients through the
 * adapters, frozen base weights bit-identical after training, one worker
 * against two, adapter off, and merging. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "config.h"
#include "gradcheck.h"
#include "lora.h"
#include "model.h"
#include "optim.h"
#include "strategy.h"
#include "tap.h"
#include "testmodel.h"
#include "tokenizer.h"

enum { B = 4, T = 8 };

static int ids[B * T], lens[B] = { 8, 5, 3, 6 }, tasks[B] = { 0, 1, 0, 1 };
static int labels[B] = { 2, 1, 0, 0 };

static const unsigned ALL = (1u << LORA_MODULES) - 1;

static void create(Model *m, int r, unsigned targets)
{
    ModelConfig c = test_model_config((TestShape){ 16, 2, 2, 32, T, 3, 2, B });
    c.lora_r = r;
    c.lora_alpha = 2.0f * (float)r;
    c.lora_targets = targets;
    test_model_create_cfg(m, &c, B);
}

/* Seeded init (BERT's normal, larger std so every path carries gradient). */
static void init(Model *m)
{
    Rng r;
    rng_seed(&r, 7);
    model_init_weights(m, &r, 0.2f);
}

/* Every B nonzero, so the adapters change the function. */
static void perturb_lora(Model *m, float scale)
{
    Rng r;
    rng_seed(&r, 99);
    for (int i = 0; i < m->n_tensors; i++)
        if (strstr(m->tensors[i].name, ".lora_B."))
            for (size_t j = 0; j < m->tensors[i].numel; j++)
                m->params[m->tensors[i].offset + j] = scale * rng_normal(&r);
}

static Batch make_batch(void)
{
    return test_batch(ids, lens, labels, tasks, B, T);
}

static size_t logits_size(const Model *m)
{
    return (size_t)B * m->act.max_labels * sizeof(float);
}

static void test_targets(void)
{
    unsigned k = 0;
    char why[256];
    ok(lora_parse_targets("query value", &k, why, sizeof why) == 0 &&
       k == ((1u << LORA_QUERY) | (1u << LORA_VALUE)), "\"query value\" selects query and value");
    ok(lora_parse_targets("output.dense", &k, why, sizeof why) == 0 &&
       k == ((1u << LORA_ATTN_OUT) | (1u << LORA_OUTPUT)),
       "\"output.dense\" selects attention.output.dense and output.dense, as PEFT");
    ok(lora_parse_targets("attention.output.dense,intermediate.dense", &k, why, sizeof why) == 0 &&
       k == ((1u << LORA_ATTN_OUT) | (1u << LORA_INTER)), "full module names");
    ok(lora_parse_targets("query quer", &k, why, sizeof why) < 0 && strstr(why, "\"quer\""),
       "unknown module rejected: %s", why);
    ok(lora_parse_targets("put.dense", &k, why, sizeof why) < 0,
       "a suffix must start at a dot");
    ok(lora_parse_targets(" ", &k, why, sizeof why) < 0, "empty list rejected");
}

static void test_table(void)
{
    Model p, l;
    create(&p, 0, 0);
    create(&l, 4, ALL);
    int same = l.n_tensors > p.n_tensors && l.n_groups == p.n_groups + 2;
    for (int i = 0; same && i < p.n_tensors; i++)
        same = strcmp(p.tensors[i].name, l.tensors[i].name) == 0 &&
               p.tensors[i].offset == l.tensors[i].offset && p.tensors[i].group == l.tensors[i].group;
    ok(same, "the base tensors keep their names, offsets and groups (%d + %d tensors)",
       p.n_tensors, l.n_tensors - p.n_tensors);
    int plain_has = 0;
    for (int i = 0; i < p.n_tensors; i++)
        plain_has |= strstr(p.tensors[i].name, "lora") != NULL;
    ok(!plain_has && p.lora_scale == 0.0f && !lora_present(&p), "no adapters without lora_r");
    int a = model_find_tensor(&l, "bert.encoder.layer.1.attention.self.query.lora_A.weight");
    int b = model_find_tensor(&l, "bert.encoder.layer.0.output.dense.lora_B.weight");
    int g = model_find_group(&l, "layer.1.lora");
    ok(a >= 0 && l.tensors[a].shape[0] == 4 && l.tensors[a].shape[1] == 16 && b >= 0 &&
       l.tensors[b].shape[0] == 16 && l.tensors[b].shape[1] == 4 && g >= 0 &&
       l.tensors[a].group == g && l.groups[g].lora_layer == 1,
       "PEFT names, A [r, in], B [out, r], group layer.<i>.lora");
    int t = model_find_tensor(&l, "bert.encoder.layer.0.intermediate.dense.lora_B.weight");
    int u = model_find_tensor(&l, "bert.encoder.layer.0.output.dense.lora_A.weight");
    ok(t >= 0 && l.tensors[t].shape[0] == 32 && u >= 0 && l.tensors[u].shape[1] == 32,
       "intermediate.dense B is [I, r], output.dense A is [r, I]");
    ok(l.n_groups - 2 == p.n_groups && l.lora_group[0] == p.n_groups, "adapter groups come last");

    init(&l);
    float bound = 1.0f / sqrtf(16.0f), amax = 0.0f, bmax = 0.0f;
    const ParamTensor *ta = &l.tensors[a], *tb = &l.tensors[b];
    for (size_t j = 0; j < ta->numel; j++)
        amax = fmaxf(amax, fabsf(l.params[ta->offset + j]));
    for (size_t j = 0; j < tb->numel; j++)
        bmax = fmaxf(bmax, fabsf(l.params[tb->offset + j]));
    ok(amax <= bound && amax > 0.5f * bound && bmax == 0.0f,
       "A uniform within 1/sqrt(in) = %.3f (max %.3f), B zero", bound, amax);
    model_free(&p);
    model_free(&l);
}

static void test_step0(void)
{
    Model p, l;
    Batch b = make_batch();
    create(&p, 0, 0);
    create(&l, 4, ALL);
    init(&p);
    init(&l);
    ok(memcmp(p.params, l.params, p.n_params * sizeof(float)) == 0,
       "same seed: the base weights are drawn as without adapters");
    float lp = model_forward(&p, &b), ll = model_forward(&l, &b);
    ok(lp == ll && memcmp(p.act.logits, l.act.logits, logits_size(&p)) == 0,
       "step 0 (B = 0): logits equal the base model's bit for bit");
    perturb_lora(&l, 0.3f);
    model_forward(&l, &b);
    ok(memcmp(p.act.logits, l.act.logits, logits_size(&p)) != 0, "with B != 0 the logits change");
    int was = lora_set_enabled(&l, 0);
    model_forward(&l, &b);
    ok(was && !lora_enabled(&l) && memcmp(p.act.logits, l.act.logits, logits_size(&p)) == 0,
       "adapter off: the base model's logits bit for bit");
    lora_set_enabled(&l, 1);
    ok(lora_enabled(&l) && l.lora_scale == 2.0f, "adapter back on at alpha / r");
    model_free(&p);
    model_free(&l);
}


static void test_gradients(void)
{
    Model m;
    Batch b = make_batch();
    TestLossCtx ctx = { &m, &b };
    create(&m, 3, ALL);
    init(&m);
    perturb_lora(&m, 0.3f);
    float *g = malloc(m.n_params * sizeof *g);
    test_backward_into(&m, &b, g);
    /* every tensor: the adapters' A and B, and the base tensors below
     * them, whose gradient flows back through the adapters too */
    int bad = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        const ParamTensor *t = &m.tensors[i];
        GcOpts o = { 1e-2, 1e-3, 12, (uint64_t)i + 1 };
        GcResult r = gc_check(test_model_loss, &ctx, m.params + t->offset, g + t->offset,
                              (long)t->numel, &o);
        if (m.groups[t->group].lora_layer >= 0 || strstr(t->name, "word_embeddings") ||
            strstr(t->name, "layer.0.attention.self.query.weight"))
            ok(r.max_rel < 2e-2, "gradient of %s (max rel err %.2e)", t->name, r.max_rel);
        else if (r.max_rel >= 2e-2) {
            bad++;
            diag("%s: %.2e", t->name, r.max_rel);
        }
    }
    ok(!bad, "every other base tensor's gradient within 2e-2 of finite differences");

    /* base frozen, adapters training: the same adapter gradients, and none
     * for the base */
    for (int k = 0; k < m.n_groups; k++)
        m.groups[k].trainable = m.groups[k].lora_layer >= 0 ||
                                strcmp(m.groups[k].name, "classifier.new") == 0;
    float *h = malloc(m.n_params * sizeof *h);
    test_backward_into(&m, &b, h);
    double worst = 0.0;
    int base_zero = 1;
    for (int k = 0; k < m.n_groups; k++) {
        const ParamGroup *pg = &m.groups[k];
        if (pg->trainable) {
            double d = gc_compare(g + pg->offset, h + pg->offset, (long)pg->numel, 1e-6);
            worst = d > worst ? d : worst;
        } else
            for (size_t j = 0; j < pg->numel; j++)
                base_zero &= h[pg->offset + j] == 0.0f;
    }
    ok(worst < 1e-5 && base_zero,
       "base frozen: adapter gradients as with everything training (%.1e), base none", worst);

    /* only the upper block's adapters train: the backward stops there */
    m.groups[m.lora_group[0]].trainable = 0;
    test_backward_into(&m, &b, h);
    double d1 = gc_compare(g + m.groups[m.lora_group[1]].offset,
                           h + m.groups[m.lora_group[1]].offset,
                           (long)m.groups[m.lora_group[1]].numel, 1e-6);
    ok(d1 < 1e-5, "layer.1.lora alone: same gradients (%.1e)", d1);

    /* two workers against one */
    for (int k = 0; k < m.n_groups; k++)
        m.groups[k].trainable = 1;
    MnError e;
    ok(model_set_threads(&m, 2, &e) == 0, "two workers");
    test_backward_into(&m, &b, h);
    /* a mask drawn differently moves gradients by O(0.1); the order of the
     * sums by ~1e-7 absolute, which near zero is more than 1e-4 relative */
    double dt = gc_compare(g, h, (long)m.n_params, 1e-3);
    ok(dt < 1e-4, "two workers: every gradient agrees with one worker (%.1e)", dt);
    free(g);
    free(h);
    model_free(&m);
}

/* In fp32, and in bf16 (emulated: its numbers on any CPU), where the
 * frozen base keeps its bf16 copy and only what trains is copied again. */
static void test_training(int precision)
{
    const char *pn = precision_name(precision);
    Model m;
    AdamW opt;
    MnError e;
    Experiment x;
    Batch b = make_batch();
    AdamConfig ac = { 0.9f, 0.999f, 1e-8f, 0.01f };
    create(&m, 4, (1u << LORA_QUERY) | (1u << LORA_VALUE) | (1u << LORA_OUTPUT));
    init(&m);
    experiment_defaults(&x);
    snprintf(x.finetune.method, sizeof x.finetune.method, "lora");
    strategy_apply(&m, &x);
    int ok_groups = 1;
    for (int g = 0; g < m.n_groups; g++) {
        int want = m.groups[g].lora_layer >= 0 || strcmp(m.groups[g].name, "classifier.new") == 0;
        ok_groups &= m.groups[g].trainable == want;
    }
    ok(ok_groups, "method lora: only the adapters and the new head train");
    ok(adamw_create(&opt, &m, ac, &e) == 0, "optimizer");
    ok(model_set_threads(&m, 2, &e) == 0, "two workers");
    setenv("MNEME_BF16", "emulate", 1);
    ok(model_set_precision(&m, precision, &e) == 0, "%s products", pn);
    float *before = malloc(m.n_params * sizeof *before);
    memcpy(before, m.params, m.n_params * sizeof *before);
    size_t copied = m.bf16 ? bf16_refreshed(m.bf16) : 0, trained = 0, matrices = 0;
    test_train_steps(&m, &b, &opt, 5, 1e-2f);
    for (int t = 0; t < m.n_tensors; t++)
        if (m.tensors[t].ndim == 2) {
            matrices += m.tensors[t].numel;
            if (m.groups[m.tensors[t].group].trainable)
                trained += m.tensors[t].numel;
        }
    /* every matrix once, at the first forward; then each step what it trained */
    if (m.bf16)
        ok(bf16_refreshed(m.bf16) - copied == matrices + 5 * trained,
           "bf16: the copy is made once, then 5 steps copy the adapters and the head only "
           "(%zu of %zu weights a step)", trained, matrices);
    int base_same = 1, lora_moved = 1;
    for (int g = 0; g < m.n_groups; g++) {
        const ParamGroup *pg = &m.groups[g];
        int same = memcmp(before + pg->offset, m.params + pg->offset, pg->numel * sizeof(float)) == 0;
        if (pg->lora_layer >= 0)
            lora_moved &= !same;
        else if (strcmp(pg->name, "classifier.new") != 0)
            base_same &= same;
    }
    ok(base_same, "%s: after 5 steps the base weights and the original head are bit-identical", pn);
    ok(lora_moved, "%s: every adapter group moved", pn);
    int bmoved = 0;
    int tb = model_find_tensor(&m, "bert.encoder.layer.0.attention.self.query.lora_B.weight");
    for (size_t j = 0; j < m.tensors[tb].numel; j++)
        bmoved |= m.params[m.tensors[tb].offset + j] != 0.0f;
    ok(bmoved, "B left zero");

    /* merging: plain linears compute the same function */
    model_forward(&m, &b);
    float *before_logits = malloc(logits_size(&m));
    memcpy(before_logits, m.act.logits, logits_size(&m));
    lora_merge(&m);
    int bzero = 1;
    for (size_t j = 0; j < m.tensors[tb].numel; j++)
        bzero &= m.params[m.tensors[tb].offset + j] == 0.0f;
    lora_set_enabled(&m, 0);
    model_forward(&m, &b);
    double d = gc_compare(before_logits, m.act.logits, B * m.act.max_labels, 1e-3);
    if (precision == PRECISION_BF16) {
        /* the merged weights are rounded where base and adapter were
         * rounded apart: against the logits' scale, bf16's few 2^-8 */
        double diff = 0.0, scale = 0.0;
        for (int i = 0; i < B * m.act.max_labels; i++) {
            diff = fmax(diff, fabs((double)before_logits[i] - m.act.logits[i]));
            scale = fmax(scale, fabs((double)before_logits[i]));
        }
        d = diff / scale;
    }
    ok(d < (precision == PRECISION_BF16 ? 2e-2 : 1e-5) && bzero,
       "%s: merged weights, adapter off: logits as the adapted model's (%.1e)", pn, d);
    free(before_logits);
    free(before);
    adamw_free(&opt);
    model_free(&m);
}

/* Dropout on the adapters' input: the mask is a function of the seed and
 * the position, so the gradient is exact for a fixed seed, workers agree,
 * and evaluation (training off) never drops. */
static void test_dropout(void)
{
    Model m, plain;
    Batch b = make_batch();
    TestLossCtx ctx = { &m, &b };
    MnError e;
    ModelConfig c;
    create(&plain, 3, ALL);
    init(&plain);
    perturb_lora(&plain, 0.3f);
    c = plain.cfg;
    c.lora_dropout = 0.3f;
    if (model_create(&m, &c, B, &e) < 0) {
        printf("Bail out! %s\n", e.msg);
        exit(1);
    }
    memcpy(m.params, plain.params, m.n_params * sizeof(float));
    size_t ls = logits_size(&m);
    float *l0 = malloc(ls), *l1 = malloc(ls);
    model_forward(&plain, &b);
    memcpy(l0, plain.act.logits, ls);
    model_forward(&m, &b);
    ok(memcmp(l0, m.act.logits, ls) == 0, "dropout 0.3, not training: exactly the model without dropout");
    m.training = 1;
    m.dropout_seed = 12345;
    model_forward(&m, &b);
    memcpy(l1, m.act.logits, ls);
    ok(memcmp(l0, l1, ls) != 0, "training: the adapters' input is dropped");
    model_forward(&m, &b);
    ok(memcmp(l1, m.act.logits, ls) == 0, "the same seed draws the same mask");

    float *g = malloc(m.n_params * sizeof *g);
    test_backward_into(&m, &b, g);
    double worst = 0.0;
    for (int i = 0; i < m.n_tensors; i++) {
        const ParamTensor *t = &m.tensors[i];
        if (m.groups[t->group].lora_layer < 0 && !strstr(t->name, "layer.0.output.dense.weight") &&
            !strstr(t->name, "layer.1.intermediate.dense.weight"))
            continue;
        GcOpts o = { 1e-2, 1e-3, 12, (uint64_t)i + 7 };
        GcResult r = gc_check(test_model_loss, &ctx, m.params + t->offset, g + t->offset, (long)t->numel, &o);
        if (r.max_rel > worst)
            worst = r.max_rel;
    }
    ok(worst < 2e-2, "with dropout, adapter and base gradients match finite differences (%.2e)", worst);
    float *h = malloc(m.n_params * sizeof *h);
    ok(model_set_threads(&m, 2, &e) == 0, "two workers");
    test_backward_into(&m, &b, h);
    /* a mask drawn differently moves gradients by O(0.1); the order of the
     * sums by ~1e-7 absolute, which near zero is more than 1e-4 relative */
    double dt = gc_compare(g, h, (long)m.n_params, 1e-3);
    ok(dt < 1e-4, "two workers draw the same masks (gradients agree to %.1e)", dt);
    free(g);
    free(h);
    free(l0);
    free(l1);
    model_free(&m);
    model_free(&plain);
}

static void test_config(void)
{
    Experiment x;
    experiment_defaults(&x);
    ok(x.finetune.lora.r == 8 && x.finetune.lora.alpha == 16.0 &&
       strcmp(x.finetune.lora.targets, "query value") == 0,
       "defaults: r 8, alpha 16, targets \"query value\"");
}

int main(void)
{
    test_targets();
    test_table();
    test_step0();
    test_gradients();
    test_training(PRECISION_FP32);
    test_training(PRECISION_BF16);
    test_dropout();
    test_config();
    return tap_done();
}
