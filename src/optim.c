#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int adamw_create(AdamW *o, const Model *model, AdamConfig cfg, MnError *e)
{
    memset(o, 0, sizeof *o);
    o->cfg = cfg;
    o->n = model->n_params;
    o->n_groups = model->n_groups;
    o->m = calloc(o->n ? o->n : 1, sizeof(float));
    o->v = calloc(o->n ? o->n : 1, sizeof(float));
    o->group_t = calloc((size_t)o->n_groups, sizeof(long));
    if (!o->m || !o->v || !o->group_t) {
        adamw_free(o);
        return mn_fail(e, "out of memory for optimizer state (%zu parameters)", model->n_params);
    }
    return 0;
}

void adamw_free(AdamW *o)
{
    free(o->m);
    free(o->v);
    free(o->group_t);
    memset(o, 0, sizeof *o);
}

void adamw_reset(AdamW *o)
{
    memset(o->m, 0, o->n * sizeof(float));
    memset(o->v, 0, o->n * sizeof(float));
    memset(o->group_t, 0, (size_t)o->n_groups * sizeof(long));
}

static void adamw_update(float *restrict p, const float *restrict g,
                         float *restrict m, float *restrict v, size_t n,
                         float lr, float b1, float b2, float eps, float c1,
                         float c2, float decay)
{
    /* Decoupled decay (Loshchilov & Hutter): shrink the weight by lr·wd
     * outside the adaptive step, so decay strength does not depend on the
     * gradient scale. */
    float shrink = 1.0f - lr * decay;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * shrink - lr * (mi * c1) / (sqrtf(vi * c2) + eps);
    }
}

void adamw_step(AdamW *o, Model *model, float lr)
{
    const AdamConfig *c = &o->cfg;
    for (int gi = 0; gi < model->n_groups; gi++) {
        ParamGroup *g = &model->groups[gi];
        if (!g->trainable)
            continue;
        long t = ++o->group_t[gi];
        float c1 = 1.0f / (1.0f - powf(c->beta1, (float)t));
        float c2 = 1.0f / (1.0f - powf(c->beta2, (float)t));
        float glr = lr * g->lr_scale;
        for (int ti = g->first; ti < g->first + g->count; ti++) {
            const ParamTensor *pt = &model->tensors[ti];
            size_t off = pt->offset;
            adamw_update(model->params + off, model->grads + off, o->m + off,
                         o->v + off, pt->numel, glr, c->beta1, c->beta2,
                         c->eps, c1, c2, pt->decay ? c->weight_decay : 0.0f);
        }
    }
}

double grad_norm(const Model *model)
{
    double sum = 0.0;
    for (int gi = 0; gi < model->n_groups; gi++) {
        const ParamGroup *g = &model->groups[gi];
        if (!g->trainable)
            continue;
        const float *p = model->grads + g->offset;
        for (size_t i = 0; i < g->numel; i++)
            sum += (double)p[i] * p[i];
    }
    return sqrt(sum);
}

double grad_clip(Model *model, double max_norm)
{
    double norm = grad_norm(model);
    if (max_norm <= 0.0 || norm <= max_norm || !isfinite(norm))
        return norm;
    float scale = (float)(max_norm / (norm + 1e-6));
    for (int gi = 0; gi < model->n_groups; gi++) {
        ParamGroup *g = &model->groups[gi];
        if (!g->trainable)
            continue;
        float *p = model->grads + g->offset;
        for (size_t i = 0; i < g->numel; i++)
            p[i] *= scale;
    }
    return norm;
}

static const char *const schedule_names[] = { "constant", "linear", "cosine",
                                              "slanted_triangular" };

int schedule_parse(const char *name, ScheduleKind *kind)
{
    for (int i = 0; i < (int)(sizeof schedule_names / sizeof schedule_names[0]); i++)
        if (strcmp(name, schedule_names[i]) == 0) {
            *kind = (ScheduleKind)i;
            return 0;
        }
    return -1;
}

const char *schedule_name(ScheduleKind kind)
{
    return schedule_names[kind];
}

static float slanted_triangular(const Schedule *s, long step)
{
    double cut = floor((double)s->total * s->cut_frac);
    double p;
    if (cut < 1)
        cut = 1;
    if (step < cut)
        p = (double)step / cut;
    else
        p = 1.0 - ((double)step - cut) / (cut * (1.0 / s->cut_frac - 1.0));
    if (p < 0)
        p = 0;
    return (float)(s->peak * (1.0 + p * (s->ratio - 1.0)) / s->ratio);
}

float schedule_lr(const Schedule *s, long step)
{
    if (s->kind == SCHED_SLANTED_TRIANGULAR)
        return slanted_triangular(s, step);
    if (step < s->warmup)
        return s->peak * (float)(step + 1) / (float)s->warmup;
    long span = s->total - s->warmup;
    if (s->kind == SCHED_CONSTANT || span <= 0)
        return s->peak;
    double progress = (double)(step - s->warmup) / (double)span;
    if (progress > 1.0)
        progress = 1.0;
    if (s->kind == SCHED_LINEAR)
        return (float)(s->peak * (1.0 - progress));
    return (float)(s->peak * 0.5 * (1.0 + cos(M_PI * progress)));
}
