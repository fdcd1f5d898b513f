/* AdamW against values computed by hand, clipping, and schedule shapes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "optim.h"
#include "tap.h"
#include "testmodel.h"
#include "tokenizer.h"

static void make_model(Model *m)
{
    test_model_create(m, (TestShape){ 8, 1, 2, 16, 4, 2, 2, 1 });
}

/* Reference AdamW for one scalar, in double. */
static double ref_adamw(double p, const double *g, int steps, double lr, double wd)
{
    double m = 0, v = 0, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    for (int t = 1; t <= steps; t++) {
        m = b1 * m + (1 - b1) * g[t - 1];
        v = b2 * v + (1 - b2) * g[t - 1] * g[t - 1];
        double mh = m / (1 - pow(b1, t)), vh = v / (1 - pow(b2, t));
        p = p * (1 - lr * wd) - lr * mh / (sqrt(vh) + eps);
    }
    return p;
}

static void test_adamw(void)
{
    Model m;
    AdamW o;
    MnError e;
    make_model(&m);
    AdamConfig ac = { 0.9f, 0.999f, 1e-8f, 0.1f };
    adamw_create(&o, &m, ac, &e);
    int w = model_find_tensor(&m, "bert.encoder.layer.0.intermediate.dense.weight");
    int b = model_find_tensor(&m, "bert.encoder.layer.0.intermediate.dense.bias");
    int ln = model_find_tensor(&m, "bert.encoder.layer.0.output.LayerNorm.weight");
    size_t iw = m.tensors[w].offset + 3, ib = m.tensors[b].offset + 1, il = m.tensors[ln].offset;
    double gs[3] = { 0.5, -0.25, 0.125 };
    m.params[iw] = 0.7f;
    m.params[ib] = -0.3f;
    m.params[il] = 1.0f;
    float lr = 0.01f;
    for (int t = 0; t < 3; t++) {
        model_zero_grads(&m);
        m.grads[iw] = (float)gs[t];
        m.grads[ib] = (float)gs[t];
        m.grads[il] = (float)gs[t];
        adamw_step(&o, &m, lr);
    }
    double want_w = ref_adamw(0.7, gs, 3, lr, 0.1);
    double want_b = ref_adamw(-0.3, gs, 3, lr, 0.0);
    double want_l = ref_adamw(1.0, gs, 3, lr, 0.0);
    ok(fabs(m.params[iw] - want_w) < 1e-6, "weight after 3 AdamW steps %.8f (hand: %.8f)", m.params[iw], want_w);
    ok(fabs(m.params[ib] - want_b) < 1e-6, "bias: no weight decay %.8f (hand: %.8f)", m.params[ib], want_b);
    ok(fabs(m.params[il] - want_l) < 1e-6, "LayerNorm: no weight decay %.8f (hand: %.8f)", m.params[il], want_l);
    /* A zero gradient still decays a weight: decoupled decay. */
    float before = m.params[iw + 1];
    m.params[iw + 1] = before = 0.5f;
    model_zero_grads(&m);
    adamw_step(&o, &m, lr);
    ok(fabs(m.params[iw + 1] - 0.5 * (1 - lr * 0.1)) < 1e-7, "decoupled decay acts without a gradient");

    /* Per-group learning rate multiplier. */
    int g = m.tensors[w].group;
    m.groups[g].lr_scale = 0.5f;
    adamw_reset(&o);
    m.params[iw] = 0.7f;
    model_zero_grads(&m);
    m.grads[iw] = 0.5f;
    adamw_step(&o, &m, lr);
    double g1[1] = { 0.5 };
    ok(fabs(m.params[iw] - ref_adamw(0.7, g1, 1, lr * 0.5, 0.1)) < 1e-6, "lr_scale multiplies the group's rate");

    /* Frozen: weights, moments and step count untouched. */
    float *p0 = malloc(m.n_params * sizeof *p0), *m0 = malloc(o.n * sizeof *m0);
    memcpy(p0, m.params, m.n_params * sizeof *p0);
    memcpy(m0, o.m, o.n * sizeof *m0);
    long t0 = o.group_t[g];
    m.groups[g].trainable = 0;
    for (size_t i = 0; i < m.n_params; i++)
        m.grads[i] = 1.0f;
    adamw_step(&o, &m, lr);
    const ParamGroup *pg = &m.groups[g];
    ok(memcmp(p0 + pg->offset, m.params + pg->offset, pg->numel * sizeof(float)) == 0 &&
       memcmp(m0 + pg->offset, o.m + pg->offset, pg->numel * sizeof(float)) == 0 &&
       o.group_t[g] == t0, "a frozen group's weights, moments and step count do not change");
    int other = model_find_group(&m, "pooler");
    ok(memcmp(p0 + m.groups[other].offset, m.params + m.groups[other].offset,
              m.groups[other].numel * sizeof(float)) != 0, "trainable groups still move in the same step");
    free(p0);
    free(m0);
    adamw_free(&o);
    model_free(&m);
}

static void test_clip(void)
{
    Model m;
    make_model(&m);
    model_zero_grads(&m);
    for (size_t i = 0; i < m.n_params; i++)
        m.grads[i] = (i % 3 == 0) ? 0.5f : -0.25f;
    double before = grad_norm(&m);
    double reported = grad_clip(&m, 1.0);
    ok(fabs(reported - before) < 1e-9, "grad_clip returns the norm before clipping (%.4f)", before);
    ok(fabs(grad_norm(&m) - 1.0) < 1e-4, "after clipping the norm is 1 (%.6f)", grad_norm(&m));
    double small = grad_clip(&m, 10.0);
    ok(fabs(grad_norm(&m) - small) < 1e-9, "no clipping below the limit");
    m.groups[0].trainable = 0;
    double only = grad_norm(&m);
    ok(only < small, "frozen groups do not count toward the norm");
    model_free(&m);
}

static void test_schedules(void)
{
    Schedule s = { SCHED_LINEAR, 1.0f, 10, 110, 0.1f, 32.0f };
    ok(fabsf(schedule_lr(&s, 0) - 0.1f) < 1e-6, "warmup starts at peak/warmup");
    ok(fabsf(schedule_lr(&s, 9) - 1.0f) < 1e-6, "warmup reaches the peak at its last step");
    ok(fabsf(schedule_lr(&s, 60) - 0.5f) < 1e-6, "linear decay is halfway at the middle");
    ok(schedule_lr(&s, 110) == 0.0f, "linear decay ends at 0");
    s.kind = SCHED_COSINE;
    ok(fabsf(schedule_lr(&s, 60) - 0.5f) < 1e-6, "cosine is at half the peak midway");
    ok(fabsf(schedule_lr(&s, 35) - 0.5f * (1 + cosf((float)M_PI * 0.25f))) < 1e-6, "cosine at a quarter");
    s.kind = SCHED_CONSTANT;
    ok(schedule_lr(&s, 100) == 1.0f, "constant after warmup");
    int mono = 1;
    s.kind = SCHED_LINEAR;
    for (long t = 10; t < 110; t++)
        if (schedule_lr(&s, t + 1) > schedule_lr(&s, t))
            mono = 0;
    ok(mono, "linear decay never rises");
    Schedule st = { SCHED_SLANTED_TRIANGULAR, 1.0f, 0, 1000, 0.1f, 32.0f };
    ok(fabsf(schedule_lr(&st, 0) - 1.0f / 32) < 1e-6, "slanted triangular starts at peak/ratio");
    ok(fabsf(schedule_lr(&st, 100) - 1.0f) < 1e-6, "slanted triangular peaks at cut = 0.1 total");
    ok(fabsf(schedule_lr(&st, 50) - (1 + 0.5f * 31) / 32) < 1e-6, "it rises linearly");
    ok(fabsf(schedule_lr(&st, 550) - (1 + 0.5f * 31) / 32) < 1e-5, "it falls linearly, halfway at 550");
    ok(fabsf(schedule_lr(&st, 1000) - 1.0f / 32) < 1e-6, "and ends at peak/ratio");
    ScheduleKind k;
    ok(schedule_parse("cosine", &k) == 0 && k == SCHED_COSINE && schedule_parse("cosin", &k) < 0,
       "schedule names parse, unknown ones are refused");
}

int main(void)
{
    test_adamw();
    test_clip();
    test_schedules();
    return tap_done();
}
