#include "optim.h"
#include "bf16.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The update and the norm run over every parameter each step. The norm
 * and the clipping scale are plain loops built for AVX-512, AVX2 and
 * baseline x86-64 (picked at load time) with the full vectoriser cost model
 * (gcc 12 at -O2 vectorises no loop of unknown length), as in layers.c.
 * The update needs sqrtf, which gcc keeps scalar because of errno (and
 * -fno-math-errno cannot be given per file), so it has explicit vector
 * versions below. No contraction into fused multiply-adds anywhere here:
 * every version of the update computes the same bits. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif
#include "vec_clones.h"
#ifdef HAVE_VEC_CLONES
#define ADAM_SIMD 1
#include <immintrin.h>
#endif

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

typedef struct {
    float lr, b1, b2, eps, c1, c2, shrink;
} AdamConsts;

/* One element, in the order every vector version follows. */
static inline void adamw_one(float *restrict p, const float *restrict g, float *restrict m,
                             float *restrict v, size_t i, const AdamConsts *k)
{
    float gi = g[i];
    float mi = k->b1 * m[i] + (1.0f - k->b1) * gi;
    float vi = k->b2 * v[i] + (1.0f - k->b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * k->shrink - k->lr * (mi * k->c1) / (sqrtf(vi * k->c2) + k->eps);
}

#ifdef ADAM_SIMD
/* Same arithmetic as adamw_one, 16 or 8 lanes at a time; vsqrtps is
 * correctly rounded like sqrtss. Return how many elements they did. */
__attribute__((target("avx512f")))
static size_t adamw_avx512(float *restrict p, const float *restrict g, float *restrict m,
                           float *restrict v, size_t n, const AdamConsts *k)
{
    const __m512 b1 = _mm512_set1_ps(k->b1), nb1 = _mm512_set1_ps(1.0f - k->b1);
    const __m512 b2 = _mm512_set1_ps(k->b2), nb2 = _mm512_set1_ps(1.0f - k->b2);
    const __m512 lr = _mm512_set1_ps(k->lr), c1 = _mm512_set1_ps(k->c1);
    const __m512 c2 = _mm512_set1_ps(k->c2), eps = _mm512_set1_ps(k->eps);
    const __m512 shrink = _mm512_set1_ps(k->shrink);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 gi = _mm512_loadu_ps(g + i);
        __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)),
                                  _mm512_mul_ps(nb1, gi));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)),
                                  _mm512_mul_ps(_mm512_mul_ps(nb2, gi), gi));
        _mm512_storeu_ps(m + i, mi);
        _mm512_storeu_ps(v + i, vi);
        __m512 den = _mm512_add_ps(_mm512_sqrt_ps(_mm512_mul_ps(vi, c2)), eps);
        __m512 step = _mm512_div_ps(_mm512_mul_ps(lr, _mm512_mul_ps(mi, c1)), den);
        _mm512_storeu_ps(p + i, _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(p + i), shrink),
                                              step));
    }
    return i;
}

__attribute__((target("avx")))
static size_t adamw_avx(float *restrict p, const float *restrict g, float *restrict m,
                        float *restrict v, size_t n, const AdamConsts *k)
{
    const __m256 b1 = _mm256_set1_ps(k->b1), nb1 = _mm256_set1_ps(1.0f - k->b1);
    const __m256 b2 = _mm256_set1_ps(k->b2), nb2 = _mm256_set1_ps(1.0f - k->b2);
    const __m256 lr = _mm256_set1_ps(k->lr), c1 = _mm256_set1_ps(k->c1);
    const __m256 c2 = _mm256_set1_ps(k->c2), eps = _mm256_set1_ps(k->eps);
    const __m256 shrink = _mm256_set1_ps(k->shrink);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gi = _mm256_loadu_ps(g + i);
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)),
                                  _mm256_mul_ps(nb1, gi));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)),
                                  _mm256_mul_ps(_mm256_mul_ps(nb2, gi), gi));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        __m256 den = _mm256_add_ps(_mm256_sqrt_ps(_mm256_mul_ps(vi, c2)), eps);
        __m256 step = _mm256_div_ps(_mm256_mul_ps(lr, _mm256_mul_ps(mi, c1)), den);
        _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(p + i), shrink),
                                              step));
    }
    return i;
}
#endif

static void adamw_update(float *restrict p, const float *restrict g,
                         float *restrict m, float *restrict v, size_t n,
                         float lr, float b1, float b2, float eps, float c1,
                         float c2, float decay)
{
    /* Decoupled decay (Loshchilov & Hutter): shrink the weight by lr·wd
     * outside the adaptive step, so decay strength does not depend on the
     * gradient scale. */
    const AdamConsts k = { lr, b1, b2, eps, c1, c2, 1.0f - lr * decay };
    size_t i = 0;
#ifdef ADAM_SIMD
    if (__builtin_cpu_supports("avx512f"))
        i = adamw_avx512(p, g, m, v, n, &k);
    else if (__builtin_cpu_supports("avx"))
        i = adamw_avx(p, g, m, v, n, &k);
#endif
    for (; i < n; i++)
        adamw_one(p, g, m, v, i, &k);
}

/* The optimizer's loops are elementwise over the parameters, so with the
 * model's workers (model_set_threads) each takes a contiguous share of
 * every tensor: the update gives the same bits however it is split. */
static void share(size_t numel, int i, int n, size_t *lo, size_t *hi)
{
    *lo = numel * (size_t)i / (size_t)n;
    *hi = numel * (size_t)(i + 1) / (size_t)n;
}

typedef struct {
    AdamW *o;
    Model *model;
    float lr;
} AdamJob;

static void adamw_job(void *arg, int i, int n)
{
    const AdamJob *j = arg;
    const AdamConfig *c = &j->o->cfg;
    Model *model = j->model;
    for (int gi = 0; gi < model->n_groups; gi++) {
        ParamGroup *g = &model->groups[gi];
        if (!g->trainable)
            continue;
        long t = j->o->group_t[gi];
        float c1 = 1.0f / (1.0f - powf(c->beta1, (float)t));
        float c2 = 1.0f / (1.0f - powf(c->beta2, (float)t));
        float glr = j->lr * g->lr_scale;
        for (int ti = g->first; ti < g->first + g->count; ti++) {
            const ParamTensor *pt = &model->tensors[ti];
            size_t lo, hi, off;
            share(pt->numel, i, n, &lo, &hi);
            off = pt->offset + lo;
            adamw_update(model->params + off, model->grads + off, j->o->m + off,
                         j->o->v + off, hi - lo, glr, c->beta1, c->beta2,
                         c->eps, c1, c2, pt->decay ? c->weight_decay : 0.0f);
            /* the bf16 copy of what was just updated, while it is in cache;
             * frozen groups keep theirs */
            if (model->bf16 && pt->ndim == 2)
                bf16_refresh(model->bf16, off, hi - lo);
        }
    }
}

void adamw_step(AdamW *o, Model *model, float lr)
{
    AdamJob j = { o, model, lr };
    for (int gi = 0; gi < model->n_groups; gi++)
        if (model->groups[gi].trainable)
            ++o->group_t[gi];
    model_run_parallel(model, adamw_job, &j);
}

/* Sum of squares in double, over 8 independent partial sums so that it
 * vectorises (the vectoriser may not reorder one running sum). */
VEC_CLONES
static double sum_sq(const float *restrict x, size_t n)
{
    double acc[8] = { 0 };
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += (double)x[i + l] * (double)x[i + l];
    double s = 0.0;
    for (; i < n; i++)
        s += (double)x[i] * (double)x[i];
    for (int l = 0; l < 8; l++)
        s += acc[l];
    return s;
}

VEC_CLONES
static void scale_by(float *restrict x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] *= scale;
}

typedef struct {
    Model *model;
    float scale;
    double sum[MODEL_MAX_THREADS];
} NormJob;

static void norm_job(void *arg, int i, int n)
{
    NormJob *j = arg;
    const Model *model = j->model;
    double sum = 0.0;
    for (int gi = 0; gi < model->n_groups; gi++) {
        const ParamGroup *g = &model->groups[gi];
        size_t lo, hi;
        if (!g->trainable)
            continue;
        share(g->numel, i, n, &lo, &hi);
        sum += sum_sq(model->grads + g->offset + lo, hi - lo);
    }
    j->sum[i] = sum;
}

static void scale_job(void *arg, int i, int n)
{
    NormJob *j = arg;
    Model *model = j->model;
    for (int gi = 0; gi < model->n_groups; gi++) {
        const ParamGroup *g = &model->groups[gi];
        size_t lo, hi;
        if (!g->trainable)
            continue;
        share(g->numel, i, n, &lo, &hi);
        scale_by(model->grads + g->offset + lo, hi - lo, j->scale);
    }
}

/* The workers' partial sums are added in worker order: the norm is the
 * same for a given number of workers. */
double grad_norm(const Model *model)
{
    NormJob j;
    double sum = 0.0;
    j.model = (Model *)model;      /* only read */
    model_run_parallel(j.model, norm_job, &j);
    for (int i = 0; i < model_threads(model); i++)
        sum += j.sum[i];
    return sqrt(sum);
}

double grad_clip(Model *model, double max_norm)
{
    double norm = grad_norm(model);
    if (max_norm <= 0.0 || norm <= max_norm || !isfinite(norm))
        return norm;
    NormJob j;
    j.model = model;
    j.scale = (float)(max_norm / (norm + 1e-6));
    model_run_parallel(model, scale_job, &j);
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
