/* EWC and L2-SP: the penalty's gradient against finite differences, the
 * penalty against hand-computed values, the Fisher against per-example
 * gradients the test computes itself, what frozen groups and padding do,
 * and that the penalty holds high-Fisher weights back during fine-tuning. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas_core.h"
#include "ewc.h"
#include "gradcheck.h"
#include "model.h"
#include "tap.h"
#include "testmodel.h"

enum { MAXB = 4, MAXLEN = 16, ORIG_LABELS = 3, NEW_LABELS = 2 };

static void make_model(Model *m, uint64_t seed)
{
    Rng r;
    test_model_create(m, (TestShape){ 16, 2, 2, 32, MAXLEN, ORIG_LABELS, NEW_LABELS, MAXB });
    rng_seed(&r, seed);
    /* Larger than BERT's 0.02 so that every path carries a gradient well
     * above float rounding (as in test_model.c). */
    model_init_weights(m, &r, 0.2f);
    for (size_t i = 0; i < m->n_params; i++)
        if (m->params[i] == 0.0f || m->params[i] == 1.0f)
            m->params[i] += 0.1f * rng_normal(&r);
}

/* Marks the floats that belong to no tensor. */
static unsigned char *padding_mask(const Model *m, size_t *count)
{
    unsigned char *pad = malloc(m->n_params);
    memset(pad, 1, m->n_params);
    for (int t = 0; t < m->n_tensors; t++)
        memset(pad + m->tensors[t].offset, 0, m->tensors[t].numel);
    *count = 0;
    for (size_t i = 0; i < m->n_params; i++)
        *count += pad[i];
    return pad;
}

/* Short byte strings whose label follows from their letters, so that a few
 * gradient steps can learn something. */
static void make_data(Dataset *d, int n, int n_labels, char first, uint64_t seed)
{
    MnError e;
    Rng r;
    Tokenizer tok;
    tokenizer_bytes(&tok);
    rng_seed(&r, seed);
    if (dataset_alloc(d, n, MAXLEN, &e) < 0) {
        printf("Bail out! %s\n", e.msg);
        exit(1);
    }
    for (int i = 0; i < n; i++) {
        char text[16];
        int len = 2 + (int)rng_below(&r, 9), label = (int)rng_below(&r, (uint32_t)n_labels);
        for (int k = 0; k < len; k++)
            text[k] = (char)(first + label * 5 + (int)rng_below(&r, 5));
        text[len] = '\0';
        if (dataset_set(d, &tok, i, text, NULL, label, &e) < 0) {
            printf("Bail out! %s\n", e.msg);
            exit(1);
        }
    }
}

static float *fcopy(const float *src, size_t n)
{
    float *p = malloc(n * sizeof *p);
    memcpy(p, src, n * sizeof *p);
    return p;
}

/* A random Fisher in [0.1, 2.1) and an anchor 0.1-normal away from params. */
static void random_anchor_fisher(const Model *m, float *anchor, float *fisher, uint64_t seed)
{
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < m->n_params; i++) {
        anchor[i] = m->params[i] + 0.1f * rng_normal(&r);
        fisher[i] = 0.1f + 2.0f * rng_uniform(&r);
    }
}

static int fisher_ok(double a, double b)
{
    return fabs(a - b) <= 1e-5 * fabs(b) + 1e-12;
}

/* ---- the penalty's gradient ---- */

typedef struct {
    Model *m;
    const float *anchor, *fisher;
    double strength;
    Batch *b;                  /* when set, the model's loss is added */
} PenCtx;

static double pen_loss(void *ctx)
{
    PenCtx *c = ctx;
    double l = ewc_penalty(c->m, c->anchor, c->fisher, c->strength);
    if (c->b)
        l += model_forward(c->m, c->b);
    return l;
}

static double check_grad(Model *m, const float *anchor, const float *fisher,
                         double strength, const char *what)
{
    PenCtx ctx = { m, anchor, fisher, strength, NULL };
    model_zero_grads(m);
    ewc_add_grad(m, anchor, fisher, strength);
    float *g = fcopy(m->grads, m->n_params);
    double worst = 0.0;
    int all = 1;
    for (int t = 0; t < m->n_tensors; t++) {
        const ParamTensor *pt = &m->tensors[t];
        GcOpts o = { 1e-3, 1e-4, 8, (uint64_t)t + 11 };
        GcResult r = gc_check(pen_loss, &ctx, m->params + pt->offset,
                              g + pt->offset, (long)pt->numel, &o);
        if (!(r.max_rel < 1e-5)) {
            all = 0;
            diag("%s: %s rel err %.2e at %ld: %.8g vs %.8g", what, pt->name,
                 r.max_rel, r.worst, r.analytic, r.numeric);
        }
        if (r.max_rel > worst)
            worst = r.max_rel;
    }
    ok(all, "%s: ewc_add_grad matches finite differences of ewc_penalty in all %d tensors "
       "(worst rel err %.2e)", what, m->n_tensors, worst);
    free(g);
    return worst;
}

static void test_penalty_gradient(void)
{
    Model m;
    make_model(&m, 7);
    float *anchor = malloc(m.n_params * sizeof *anchor);
    float *fisher = malloc(m.n_params * sizeof *fisher);
    random_anchor_fisher(&m, anchor, fisher, 3);
    double w1 = check_grad(&m, anchor, fisher, 3.0, "EWC (lambda 3)");
    double w2 = check_grad(&m, anchor, NULL, 0.7, "L2-SP (alpha 0.7)");
    diag("largest finite-difference rel err: EWC %.2e, L2-SP %.2e", w1, w2);

    /* The gradient is added to what model_backward left, and together they
     * are the gradient of loss + penalty. */
    Dataset d;
    Batch b;
    MnError e;
    int idx[MAXB] = { 0, 1, 2, 3 };
    make_data(&d, MAXB, ORIG_LABELS, 'a', 5);
    batch_alloc(&b, MAXB, MAXLEN, &e);
    batch_fill(&b, &d, idx, MAXB, 0);
    model_zero_grads(&m);
    model_forward(&m, &b);
    model_backward(&m, &b);
    ewc_add_grad(&m, anchor, fisher, 0.05);
    float *g = fcopy(m.grads, m.n_params);
    PenCtx ctx = { &m, anchor, fisher, 0.05, &b };
    double worst = 0.0;
    const char *names[] = { "bert.embeddings.LayerNorm.weight",
                            "bert.encoder.layer.0.attention.self.query.weight",
                            "bert.encoder.layer.1.output.dense.weight",
                            "bert.pooler.dense.bias", "classifier.original.weight" };
    for (int k = 0; k < 5; k++) {
        const ParamTensor *pt = &m.tensors[model_find_tensor(&m, names[k])];
        GcOpts o = { 1e-2, 1e-3, 8, (uint64_t)k + 1 };
        GcResult r = gc_check(pen_loss, &ctx, m.params + pt->offset, g + pt->offset,
                              (long)pt->numel, &o);
        if (r.max_rel > worst)
            worst = r.max_rel;
    }
    ok(worst < 2e-2, "model_backward + ewc_add_grad is the gradient of loss + penalty "
       "(worst rel err %.2e over 5 tensors)", worst);
    free(g);
    batch_free(&b);
    dataset_free(&d);
    free(anchor);
    free(fisher);
    model_free(&m);
}

/* ---- the penalty's value, padding ---- */

static void test_penalty_values(void)
{
    Model m;
    make_model(&m, 8);
    float *anchor = fcopy(m.params, m.n_params);
    float *fisher = malloc(m.n_params * sizeof *fisher);
    Rng r;
    rng_seed(&r, 4);
    for (size_t i = 0; i < m.n_params; i++)
        fisher[i] = 0.1f + rng_uniform(&r);
    ok(ewc_penalty(&m, anchor, fisher, 1000.0) == 0.0 &&
       ewc_penalty(&m, anchor, NULL, 1000.0) == 0.0, "penalty is 0 at theta = theta*");

    /* Values exact in binary, so the expected sums are exact too. */
    const char *names[] = { "bert.embeddings.word_embeddings.weight",
                            "bert.encoder.layer.1.intermediate.dense.bias",
                            "classifier.new.weight" };
    const float delta[] = { 0.25f, -0.5f, 1.0f }, fval[] = { 2.0f, 0.5f, 3.0f };
    for (int k = 0; k < 3; k++) {
        size_t i = m.tensors[model_find_tensor(&m, names[k])].offset + 5;
        anchor[i] = 0.5f;
        m.params[i] = 0.5f + delta[k];
        fisher[i] = fval[k];
    }
    double ewc = ewc_penalty(&m, anchor, fisher, 4.0);
    double l2 = ewc_penalty(&m, anchor, NULL, 0.5);
    ok(ewc == 4.0 * (2.0 * 0.0625 + 0.5 * 0.25 + 3.0 * 1.0),
       "EWC penalty of three perturbed entries equals lambda sum F d^2 (%.17g)", ewc);
    ok(l2 == 0.5 * (0.0625 + 0.25 + 1.0), "L2-SP penalty equals alpha sum d^2 (%.17g)", l2);
    ok(ewc_penalty(&m, anchor, fisher, 8.0) == 2.0 * ewc, "penalty is linear in lambda");
    ok(ewc_penalty(&m, anchor, fisher, 0.0) == 0.0, "lambda 0 gives no penalty");

    size_t n_pad;
    unsigned char *pad = padding_mask(&m, &n_pad);
    ok(n_pad > 0, "the test model has %zu padding floats between tensors", n_pad);
    for (size_t i = 0; i < m.n_params; i++)
        if (pad[i]) {
            m.params[i] = 5.0f;
            fisher[i] = 1.0f;
        }
    ok(ewc_penalty(&m, anchor, fisher, 4.0) == ewc && ewc_penalty(&m, anchor, NULL, 0.5) == l2,
       "garbage in the padding floats does not change the penalty");
    model_zero_grads(&m);
    ewc_add_grad(&m, anchor, fisher, 4.0);
    ewc_add_grad(&m, anchor, NULL, 0.5);
    int pad_clean = 1;
    for (size_t i = 0; i < m.n_params; i++)
        if (pad[i] && m.grads[i] != 0.0f)
            pad_clean = 0;
    ok(pad_clean, "ewc_add_grad writes no gradient into padding floats");
    free(pad);
    free(anchor);
    free(fisher);
    model_free(&m);
}

/* ---- frozen groups ---- */

static double group_penalty(const Model *m, int gi, const float *anchor,
                            const float *fisher, double strength)
{
    double s = 0.0;
    for (int t = m->groups[gi].first; t < m->groups[gi].first + m->groups[gi].count; t++)
        for (size_t i = m->tensors[t].offset; i < m->tensors[t].offset + m->tensors[t].numel; i++) {
            double d = (double)m->params[i] - anchor[i];
            s += fisher[i] * d * d;
        }
    return strength * s;
}

static void test_frozen(void)
{
    Model m;
    make_model(&m, 9);
    float *anchor = malloc(m.n_params * sizeof *anchor);
    float *fisher = malloc(m.n_params * sizeof *fisher);
    random_anchor_fisher(&m, anchor, fisher, 6);
    double all = ewc_penalty(&m, anchor, fisher, 2.0);
    model_zero_grads(&m);
    ewc_add_grad(&m, anchor, fisher, 2.0);
    float *g_all = fcopy(m.grads, m.n_params);

    int g0 = model_find_group(&m, "layer.0"), gh = model_find_group(&m, "classifier.original");
    double part = group_penalty(&m, g0, anchor, fisher, 2.0) + group_penalty(&m, gh, anchor, fisher, 2.0);
    m.groups[g0].trainable = 0;
    m.groups[gh].trainable = 0;
    double some = ewc_penalty(&m, anchor, fisher, 2.0);
    ok(part > 0.0 && fabs(some - (all - part)) <= 1e-12 * all,
       "frozen groups contribute nothing to the penalty (%.6g = %.6g - %.6g)", some, all, part);
    model_zero_grads(&m);
    ewc_add_grad(&m, anchor, fisher, 2.0);
    int frozen_zero, trainable_same;
    test_frozen_grads(&m, g_all, &frozen_zero, &trainable_same);
    ok(frozen_zero, "frozen groups get no penalty gradient");
    ok(trainable_same, "trainable groups get the same penalty gradient as with nothing frozen");
    for (int gi = 0; gi < m.n_groups; gi++)
        m.groups[gi].trainable = 0;
    ok(ewc_penalty(&m, anchor, fisher, 2.0) == 0.0 && ewc_penalty(&m, anchor, NULL, 2.0) == 0.0,
       "everything frozen: no penalty");
    free(g_all);
    free(anchor);
    free(fisher);
    model_free(&m);
}

/* ---- the Fisher ---- */

/* The test's own Fisher: rows [0, n) in batches of `rows`, the squared
 * gradient of each batch's mean loss times its row count, squared, summed
 * in double, over n. rows = 1 is the empirical Fisher. */
static void hand_fisher(Model *m, const Dataset *d, int n, int rows, Batch *b, double *out)
{
    int idx[MAXB];
    memset(out, 0, m->n_params * sizeof *out);
    for (int start = 0; start < n; start += rows) {
        int k = n - start < rows ? n - start : rows;
        for (int r = 0; r < k; r++)
            idx[r] = start + r;
        model_zero_grads(m);
        batch_fill(b, d, idx, k, 0);
        model_forward(m, b);
        model_backward(m, b);
        for (size_t i = 0; i < m->n_params; i++) {
            double s = (double)k * m->grads[i];
            out[i] += s * s;
        }
    }
    for (size_t i = 0; i < m->n_params; i++)
        out[i] /= n;
    model_zero_grads(m);
}

static int all_close(const float *f, const double *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!fisher_ok(f[i], want[i])) {
            diag("Fisher %zu: %.9g, test's own %.9g", i, f[i], want[i]);
            return 0;
        }
    return 1;
}

static int grads_zero(const Model *m)
{
    for (size_t i = 0; i < m->n_params; i++)
        if (m->grads[i] != 0.0f)
            return 0;
    return 1;
}

static void test_fisher(void)
{
    Model m;
    Dataset d;
    Batch b, b1, big;
    MnError e;
    make_model(&m, 10);
    make_data(&d, 7, ORIG_LABELS, 'a', 12);
    batch_alloc(&b, 3, MAXLEN, &e);
    batch_alloc(&b1, 1, MAXLEN, &e);
    batch_alloc(&big, MAXB + 1, MAXLEN, &e);
    float *fisher = malloc(m.n_params * sizeof *fisher);
    float *emp = malloc(m.n_params * sizeof *emp);
    double *want = malloc(m.n_params * sizeof *want);
    size_t n_pad;
    unsigned char *pad = padding_mask(&m, &n_pad);

    hand_fisher(&m, &d, 5, 1, &b, want);
    int ge = model_find_group(&m, "embeddings"), g1 = model_find_group(&m, "layer.1");
    m.groups[ge].trainable = 0;
    m.groups[g1].trainable = 0;
    for (size_t i = 0; i < m.n_params; i++)
        m.grads[i] = 1.0f;                     /* stale gradients are discarded */
    int rc = ewc_fisher(&m, &d, 0, 5, FISHER_EMPIRICAL, &b, fisher, &e);
    ok(rc == 0 && all_close(fisher, want, m.n_params),
       "empirical Fisher of the first 5 rows = mean of per-example squared gradients");
    ok(!m.groups[ge].trainable && !m.groups[g1].trainable && m.groups[model_find_group(&m, "pooler")].trainable,
       "trainable flags are restored (frozen groups still got their Fisher)");
    ok(grads_zero(&m), "gradients are zero after the Fisher");
    int nonneg = 1, pad_zero = 1, every_tensor = 1, other_head_zero = 1;
    for (size_t i = 0; i < m.n_params; i++) {
        if (!(fisher[i] >= 0.0f))
            nonneg = 0;
        if (pad[i] && fisher[i] != 0.0f)
            pad_zero = 0;
    }
    for (int t = 0; t < m.n_tensors; t++) {
        const ParamTensor *pt = &m.tensors[t];
        float mx = 0.0f;
        for (size_t i = pt->offset; i < pt->offset + pt->numel; i++)
            mx = fmaxf(mx, fisher[i]);
        if (strncmp(pt->name, "classifier.new", 14) == 0)
            other_head_zero &= mx == 0.0f;
        else if (!(mx > 0.0f)) {
            every_tensor = 0;
            diag("no Fisher in %s", pt->name);
        }
    }
    ok(nonneg, "Fisher >= 0 everywhere");
    ok(pad_zero, "padding floats of the Fisher are 0 (%zu of them)", n_pad);
    ok(every_tensor, "every tensor the original task uses has some Fisher, frozen ones included");
    ok(other_head_zero, "the new task's head has no Fisher on original-task data");
    m.groups[ge].trainable = 1;
    m.groups[g1].trainable = 1;

    hand_fisher(&m, &d, 7, 1, &b, want);
    rc = ewc_fisher(&m, &d, 0, 100, FISHER_EMPIRICAL, &b, fisher, &e);
    ok(rc == 0 && all_close(fisher, want, m.n_params),
       "more samples than rows: the Fisher of the whole set");

    hand_fisher(&m, &d, 7, 3, &b, want);
    rc = ewc_fisher(&m, &d, 0, 7, FISHER_BATCH, &b, fisher, &e);
    ok(rc == 0 && all_close(fisher, want, m.n_params),
       "batch Fisher (batches 3+3+1) = mean over rows of (rows x batch gradient)^2 summed per batch");
    nonneg = 1;
    pad_zero = 1;
    for (size_t i = 0; i < m.n_params; i++) {
        if (!(fisher[i] >= 0.0f))
            nonneg = 0;
        if (pad[i] && fisher[i] != 0.0f)
            pad_zero = 0;
    }
    ok(nonneg && pad_zero && grads_zero(&m), "batch Fisher: >= 0, padding 0, gradients zero after");
    memcpy(emp, fisher, m.n_params * sizeof *emp);
    rc = ewc_fisher(&m, &d, 0, 7, FISHER_EMPIRICAL, &b, fisher, &e);
    double diff = 0.0;
    for (size_t i = 0; i < m.n_params; i++)
        diff = fmax(diff, gc_rel_err(emp[i], fisher[i], 1e-6));
    ok(rc == 0 && diff > 1e-2, "the batch estimate differs from the empirical Fisher (max rel %.2g)", diff);
    rc = ewc_fisher(&m, &d, 0, 7, FISHER_BATCH, &b1, emp, &e);
    ok(rc == 0 && memcmp(emp, fisher, m.n_params * sizeof *emp) == 0,
       "batches of one row give the empirical Fisher bit for bit");

    ok(ewc_fisher(&m, &d, 0, 0, FISHER_EMPIRICAL, &b, fisher, &e) < 0 && e.msg[0],
       "0 samples is an error: %s", e.msg);
    ok(ewc_fisher(&m, &d, 2, 5, FISHER_EMPIRICAL, &b, fisher, &e) < 0,
       "an unknown task is an error: %s", e.msg);
    ok(ewc_fisher(&m, &d, 0, 5, FISHER_BATCH, &big, fisher, &e) < 0,
       "a scratch batch larger than the model's is an error: %s", e.msg);
    d.label[3] = ORIG_LABELS;
    ok(ewc_fisher(&m, &d, 0, 5, FISHER_EMPIRICAL, &b, fisher, &e) < 0,
       "a label outside the task is an error: %s", e.msg);
    d.label[3] = -1;
    ok(ewc_fisher(&m, &d, 0, 5, FISHER_EMPIRICAL, &b, fisher, &e) < 0,
       "an unlabelled row is an error: %s", e.msg);
    ok(ewc_fisher(&m, &d, 0, 3, FISHER_EMPIRICAL, &b, fisher, &e) == 0,
       "rows past the selection are not looked at");

    free(pad);
    free(want);
    free(emp);
    free(fisher);
    batch_free(&b);
    batch_free(&b1);
    batch_free(&big);
    dataset_free(&d);
    model_free(&m);
}

/* ---- behaviour during fine-tuning ---- */

static double mean_loss(Model *m, const Dataset *d, int task, Batch *b)
{
    double s = 0.0;
    int idx[MAXB];
    for (int start = 0; start < d->n; start += MAXB) {
        int k = d->n - start < MAXB ? d->n - start : MAXB;
        for (int r = 0; r < k; r++)
            idx[r] = start + r;
        batch_fill(b, d, idx, k, task);
        s += model_forward(m, b) * k;
    }
    return s / d->n;
}

/* Plain gradient descent on the new task, strength 0 = unregularised. */
static void descend(Model *m, const Dataset *d, int task, Batch *b, const float *anchor,
                    const float *fisher, double strength, int steps, float lr)
{
    int idx[MAXB];
    for (int s = 0; s < steps; s++) {
        for (int r = 0; r < MAXB; r++)
            idx[r] = (s * MAXB + r) % d->n;
        model_zero_grads(m);
        batch_fill(b, d, idx, MAXB, task);
        model_forward(m, b);
        model_backward(m, b);
        ewc_add_grad(m, anchor, fisher, strength);
        for (int t = 0; t < m->n_tensors; t++) {
            const ParamTensor *pt = &m->tensors[t];
            if (!m->groups[pt->group].trainable)
                continue;
            for (size_t i = pt->offset; i < pt->offset + pt->numel; i++)
                m->params[i] -= lr * m->grads[i];
        }
    }
}

static int cmp_float_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Mean |theta - theta*| over the entries whose Fisher is at least thr. */
static double drift_above(const Model *m, const float *anchor, const float *fisher, float thr)
{
    double s = 0.0;
    long n = 0;
    for (int t = 0; t < m->n_tensors; t++)
        for (size_t i = m->tensors[t].offset; i < m->tensors[t].offset + m->tensors[t].numel; i++)
            if (fisher[i] >= thr) {
                s += fabs((double)m->params[i] - anchor[i]);
                n++;
            }
    return n ? s / n : 0.0;
}

static void test_behaviour(void)
{
    Model m;
    Dataset orig, neu;
    Batch b;
    MnError e;
    const int pretrain = 60, steps = 40;
    const float lr = 0.05f;
    make_model(&m, 11);
    make_data(&orig, 16, ORIG_LABELS, 'a', 21);
    make_data(&neu, 16, NEW_LABELS, 'p', 22);
    batch_alloc(&b, MAXB, MAXLEN, &e);
    float *fisher = malloc(m.n_params * sizeof *fisher);
    float *sorted = malloc(m.n_params * sizeof *sorted);
    /* The original task learned first, as a base model would have it. */
    diag("original loss before pretraining %.4f", mean_loss(&m, &orig, 0, &b));
    descend(&m, &orig, 0, &b, m.params, NULL, 0.0, pretrain, lr);
    if (ewc_fisher(&m, &orig, 0, orig.n, FISHER_EMPIRICAL, &b, fisher, &e) < 0) {
        printf("Bail out! %s\n", e.msg);
        exit(1);
    }
    m.groups[model_find_group(&m, "classifier.original")].trainable = 0;
    float *anchor = fcopy(m.params, m.n_params);

    memcpy(sorted, fisher, m.n_params * sizeof *sorted);
    qsort(sorted, m.n_params, sizeof *sorted, cmp_float_desc);
    float fmax = sorted[0], top = sorted[m.n_params / 100];
    /* Keeps lr * 2 * lambda * F below 1 so that descent stays stable
     * while the stiffest weights are held close to their anchor. */
    double lambda = 0.4 / (lr * 2.0 * fmax);

    double orig0 = mean_loss(&m, &orig, 0, &b), new0 = mean_loss(&m, &neu, 1, &b);
    descend(&m, &neu, 1, &b, anchor, fisher, 0.0, steps, lr);
    double drift_plain = drift_above(&m, anchor, fisher, top);
    double fw_plain = ewc_penalty(&m, anchor, fisher, 1.0);
    double orig_plain = mean_loss(&m, &orig, 0, &b), new_plain = mean_loss(&m, &neu, 1, &b);

    memcpy(m.params, anchor, m.n_params * sizeof *anchor);
    descend(&m, &neu, 1, &b, anchor, fisher, lambda, steps, lr);
    double drift_ewc = drift_above(&m, anchor, fisher, top);
    double fw_ewc = ewc_penalty(&m, anchor, fisher, 1.0);
    double orig_ewc = mean_loss(&m, &orig, 0, &b), new_ewc = mean_loss(&m, &neu, 1, &b);

    diag("lambda %.3g (F max %.3g, top-1%% threshold %.3g)", lambda, fmax, top);
    diag("original loss %.4f -> %.4f plain, %.4f EWC; new loss %.4f -> %.4f plain, %.4f EWC",
         orig0, orig_plain, orig_ewc, new0, new_plain, new_ewc);
    diag("top-1%% Fisher drift %.4g plain, %.4g EWC; Fisher-weighted drift %.4g plain, %.4g EWC",
         drift_plain, drift_ewc, fw_plain, fw_ewc);
    /* Margins that held for 11 of 12 model and data seeds (the twelfth
     * forgot nothing without EWC either). */
    ok(drift_ewc < 0.7 * drift_plain,
       "EWC: the top 1%% Fisher weights move less (%.3g vs %.3g)",
       drift_ewc, drift_plain);
    ok(fw_ewc < 0.5 * fw_plain, "EWC: the Fisher-weighted drift is less than half (%.3g vs %.3g)",
       fw_ewc, fw_plain);
    ok(orig_ewc - orig0 < orig_plain - orig0,
       "EWC: the original task's loss rises less (%+.4f vs %+.4f)", orig_ewc - orig0,
       orig_plain - orig0);
    ok(new_ewc < 0.5 * new0, "EWC: the new task is still learned (%.4f -> %.4f)", new0, new_ewc);

    free(anchor);
    free(sorted);
    free(fisher);
    batch_free(&b);
    dataset_free(&orig);
    dataset_free(&neu);
    model_free(&m);
}

int main(int argc, char **argv)
{
    char core[256];
    blas_core_fix(argv);
    blas_core_describe(core, sizeof core);
    diag("%s", core);
    test_penalty_gradient();
    test_penalty_values();
    test_frozen();
    test_fisher();
    test_behaviour();
    return tap_done();
}
