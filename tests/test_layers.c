/* Layer tests: every backward against central differences of its forward,
 * every forward against a naive double-precision reference, plus the
 * accumulate (+=) and NULL-gradient contracts of layers.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "blas_core.h"
#include "layers.h"
#include "rng.h"
#include "tap.h"

/* Gradients here are O(0.1..3). The float32 forwards round each output to
 * about 1e-7, which a 1e-3 step turns into absolute noise near 3e-4 in the
 * numeric derivative; a 1e-2 step cuts that tenfold while the truncation
 * error stays near 1e-4. Observed errors are then below 5e-4 against a
 * tolerance of 5e-3, while a dropped term or a transposed product gives
 * errors from 0.1 to 1. */
#define GRAD_EPS 1e-2
#define GRAD_TOL 5e-3
#define GRAD_FLOOR 5e-2
/* Two accumulated calls differ from twice one call only by rounding (the
 * order of the additions changes), about 1e-7 absolute. */
#define SAME_FLOOR 1e-2
#define SAME_TOL 1e-4

/* ---- helpers ------------------------------------------------------------ */

static float *vec(long n)
{
    float *p = calloc((size_t)(n > 0 ? n : 1), sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static void fill_normal(Rng *r, float *x, long n, float mean, float sd)
{
    for (long i = 0; i < n; i++)
        x[i] = mean + sd * rng_normal(r);
}

static void fill_uniform(Rng *r, float *x, long n, float lo, float hi)
{
    for (long i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * rng_uniform(r);
}

static double dot(const float *a, const float *b, long n)
{
    double s = 0.0;
    for (long i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

static void scaled_copy(float *dst, const float *src, long n, float s)
{
    for (long i = 0; i < n; i++)
        dst[i] = s * src[i];
}

static int all_zero(const float *x, long n)
{
    for (long i = 0; i < n; i++)
        if (x[i] != 0.0f)
            return 0;
    return 1;
}

static int all_finite(const float *x, long n)
{
    for (long i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

static void check_grad(const char *what, gc_loss_fn f, void *ctx, float *x,
                       const float *g, long n)
{
    const GcOpts opt = {GRAD_EPS, GRAD_FLOOR, 1000, 7};
    GcResult r = gc_check(f, ctx, x, g, n, &opt);
    ok(r.max_rel < GRAD_TOL && r.checked > 0,
       "%s matches finite differences", what);
    diag("%s: %ld checked, max rel %.2e, max abs %.2e (worst [%ld] "
         "analytic %.6g numeric %.6g)", what, r.checked, r.max_rel,
         r.max_abs, r.worst, r.analytic, r.numeric);
}

/* g2 came from two identical backward calls into zeroed buffers, g1 from
 * one: accumulation means g2 == 2 g1. */
static void check_accum(const char *what, const float *g1, const float *g2,
                        long n)
{
    float *twice = vec(n);
    scaled_copy(twice, g1, n, 2.0f);
    double e = gc_compare(g2, twice, n, SAME_FLOOR);
    ok(e < SAME_TOL, "%s accumulates (two calls give twice)", what);
    if (e >= SAME_TOL)
        diag("%s: max rel %.2e", what, e);
    free(twice);
}

static void check_same(const char *what, const float *a, const float *b,
                       long n)
{
    double e = gc_compare(a, b, n, SAME_FLOOR);
    ok(e < SAME_TOL, "%s", what);
    if (e >= SAME_TOL)
        diag("%s: max rel %.2e", what, e);
}

/* A buffer full of NaN: whatever a *_set backward leaves unwritten shows. */
static float *nan_vec(long n)
{
    float *x = vec(n);
    for (long i = 0; i < n; i++)
        x[i] = NAN;
    return x;
}

/* ---- linear ------------------------------------------------------------- */

typedef struct {
    int N, IC, OC;
    float *x, *W, *b, *out, *R;
} LinCtx;

static double lin_loss(void *p)
{
    LinCtx *c = p;
    linear_forward(NULL, c->out, c->x, c->W, c->b, c->N, c->IC, c->OC);
    return dot(c->out, c->R, (long)c->N * c->OC);
}

/* Error of each output against the naive product, relative to the size of
 * the terms summed (the bound float rounding works to). */
static double lin_ref_err(const float *y, const float *x, const float *W,
                          const float *b, int N, int IC, int OC)
{
    double worst = 0.0;
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0, mag = b ? fabs(b[o]) : 0.0;
            for (int k = 0; k < IC; k++) {
                s += (double)x[(long)i * IC + k] * W[(long)o * IC + k];
                mag += fabs((double)x[(long)i * IC + k] * W[(long)o * IC + k]);
            }
            double e = fabs(y[(long)i * OC + o] - s) / (mag + 1e-30);
            if (!(e <= worst))
                worst = isnan(e) ? INFINITY : e;
        }
    return worst;
}

static void test_linear_forward(Rng *r)
{
    const int N = 37, IC = 70, OC = 45;
    float *x = vec((long)N * IC), *W = vec((long)OC * IC), *b = vec(OC);
    float *y = vec((long)N * OC);
    fill_normal(r, x, (long)N * IC, 0.1f, 1.0f);
    fill_normal(r, W, (long)OC * IC, 0.0f, 0.2f);
    fill_normal(r, b, OC, 0.5f, 1.0f);

    linear_forward(NULL, y, x, W, b, N, IC, OC);
    double e = lin_ref_err(y, x, W, b, N, IC, OC);
    ok(e < 1e-5, "linear forward with bias matches naive product");
    diag("linear forward %dx%d->%d: max rel %.2e", N, IC, OC, e);

    /* Activation buffers start uninitialised: without a bias, stale
     * contents (even NaN) must not leak into the result. */
    for (long i = 0; i < (long)N * OC; i++)
        y[i] = NAN;
    linear_forward(NULL, y, x, W, NULL, N, IC, OC);
    e = lin_ref_err(y, x, W, NULL, N, IC, OC);
    ok(e < 1e-5, "linear forward without bias overwrites out");
    diag("linear forward no bias: max rel %.2e", e);
    free(x), free(W), free(b), free(y);
}

static void test_linear_backward(Rng *r)
{
    const int N = 6, IC = 7, OC = 5;
    const long nx = (long)N * IC, nw = (long)OC * IC, ny = (long)N * OC;
    LinCtx c = {N, IC, OC, vec(nx), vec(nw), vec(OC), vec(ny), vec(ny)};
    fill_normal(r, c.x, nx, 0.0f, 1.0f);
    fill_normal(r, c.W, nw, 0.0f, 0.5f);
    fill_normal(r, c.b, OC, 0.0f, 0.5f);
    fill_normal(r, c.R, ny, 0.0f, 1.0f);

    float *din = vec(nx), *dW = vec(nw), *db = vec(OC);
    linear_backward(NULL, din, dW, db, c.R, c.x, c.W, N, IC, OC);
    check_grad("linear din", lin_loss, &c, c.x, din, nx);
    check_grad("linear dW", lin_loss, &c, c.W, dW, nw);
    check_grad("linear db", lin_loss, &c, c.b, db, OC);

    float *din2 = vec(nx), *dW2 = vec(nw), *db2 = vec(OC);
    linear_backward(NULL, din2, dW2, db2, c.R, c.x, c.W, N, IC, OC);
    linear_backward(NULL, din2, dW2, db2, c.R, c.x, c.W, N, IC, OC);
    check_accum("linear din", din, din2, nx);
    check_accum("linear dW", dW, dW2, nw);
    check_accum("linear db", db, db2, OC);

    /* NULL outputs skip their work: with W NULL the input gradient cannot
     * have been computed, with in NULL the weight gradient cannot. */
    memset(dW2, 0, nw * sizeof *dW2);
    memset(db2, 0, OC * sizeof *db2);
    linear_backward(NULL, NULL, dW2, db2, c.R, c.x, NULL, N, IC, OC);
    check_same("linear din NULL: dW, db still right", dW2, dW, nw);
    check_same("linear din NULL: db right", db2, db, OC);
    memset(din2, 0, nx * sizeof *din2);
    linear_backward(NULL, din2, NULL, NULL, c.R, NULL, c.W, N, IC, OC);
    check_same("linear dW, db NULL: din still right", din2, din, nx);
    memset(db2, 0, OC * sizeof *db2);
    linear_backward(NULL, NULL, NULL, db2, c.R, NULL, NULL, N, IC, OC);
    check_same("linear bias-only backward", db2, db, OC);
    linear_backward(NULL, NULL, NULL, NULL, c.R, NULL, NULL, N, IC, OC);
    ok(1, "linear backward with every output NULL does nothing");

    /* The overwrite variant: din written over NaN, dW and db still add. */
    float *din3 = nan_vec(nx);
    memcpy(dW2, dW, nw * sizeof *dW2);
    memcpy(db2, db, OC * sizeof *db2);
    linear_backward_set(NULL, din3, dW2, db2, c.R, c.x, c.W, N, IC, OC);
    check_grad("linear_backward_set din", lin_loss, &c, c.x, din3, nx);
    check_same("linear_backward_set din = linear_backward din", din3, din, nx);
    check_accum("linear_backward_set dW", dW, dW2, nw);
    check_accum("linear_backward_set db", db, db2, OC);
    free(din3);

    free(din), free(dW), free(db), free(din2), free(dW2), free(db2);
    free(c.x), free(c.W), free(c.b), free(c.out), free(c.R);
}

/* ---- layernorm ---------------------------------------------------------- */

typedef struct {
    int N, C;
    float *x, *g, *b, *out, *mean, *rstd, *R;
} LnCtx;

static double ln_loss(void *p)
{
    LnCtx *c = p;
    layernorm_forward(c->out, c->mean, c->rstd, c->x, c->g, c->b, c->N, c->C);
    return dot(c->out, c->R, (long)c->N * c->C);
}

static void test_layernorm_forward(Rng *r)
{
    const int N = 9, C = 64;
    float *x = vec((long)N * C), *g = vec(C), *b = vec(C);
    float *y = vec((long)N * C), *mean = vec(N), *rstd = vec(N);
    for (int i = 0; i < N; i++)
        fill_normal(r, x + (long)i * C, C, 3.0f * rng_normal(r),
                    0.1f + 2.0f * rng_uniform(r));
    /* A row whose mean dwarfs its spread: a one-pass float variance
     * (E[x^2] - mean^2) loses it. */
    fill_normal(r, x + 2L * C, C, 300.0f, 1.0f);
    fill_normal(r, g, C, 1.0f, 0.3f);
    fill_normal(r, b, C, 0.0f, 0.5f);

    layernorm_forward(y, mean, rstd, x, g, b, N, C);
    double ey = 0.0, em = 0.0, er = 0.0;
    for (int i = 0; i < N; i++) {
        const float *xi = x + (long)i * C;
        double m = 0.0, v = 0.0;
        for (int j = 0; j < C; j++)
            m += xi[j];
        m /= C;
        for (int j = 0; j < C; j++)
            v += (xi[j] - m) * (xi[j] - m);
        double rs = 1.0 / sqrt(v / C + 1e-12);
        for (int j = 0; j < C; j++) {
            double ref = (xi[j] - m) * rs * g[j] + b[j];
            ey = fmax(ey, fabs(y[(long)i * C + j] - ref));
        }
        em = fmax(em, fabs(mean[i] - m) / fmax(fabs(m), 1.0));
        er = fmax(er, fabs(rstd[i] - rs) / rs);
    }
    ok(ey < 1e-4, "layernorm forward matches two-pass double reference");
    ok(em < 1e-6 && er < 1e-5, "layernorm stores mean and rstd");
    diag("layernorm forward: max abs %.2e, mean rel %.2e, rstd rel %.2e",
         ey, em, er);
    free(x), free(g), free(b), free(y), free(mean), free(rstd);
}

/* C = 10 runs only the loops' scalar tails, C = 37 their vector bodies
 * too. */
static void test_layernorm_backward(Rng *r, int C)
{
    const int N = 4;
    const long n = (long)N * C;
    LnCtx c = {N, C, vec(n), vec(C), vec(C), vec(n), vec(N), vec(N), vec(n)};
    for (int i = 0; i < N; i++)
        fill_normal(r, c.x + (long)i * C, C, rng_normal(r),
                    0.5f + rng_uniform(r));
    fill_normal(r, c.g, C, 1.0f, 0.3f);
    fill_normal(r, c.b, C, 0.0f, 0.5f);
    fill_normal(r, c.R, n, 0.0f, 1.0f);

    float *din = vec(n), *dg = vec(C), *dbeta = vec(C);
    ln_loss(&c);
    layernorm_backward(din, dg, dbeta, c.R, c.x, c.g, c.mean, c.rstd, N, C);
    check_grad("layernorm din", ln_loss, &c, c.x, din, n);
    check_grad("layernorm dgamma", ln_loss, &c, c.g, dg, C);
    check_grad("layernorm dbeta", ln_loss, &c, c.b, dbeta, C);

    float *din2 = vec(n), *dg2 = vec(C), *db2 = vec(C);
    for (int k = 0; k < 2; k++)
        layernorm_backward(din2, dg2, db2, c.R, c.x, c.g, c.mean, c.rstd, N,
                           C);
    check_accum("layernorm din", din, din2, n);
    check_accum("layernorm dgamma", dg, dg2, C);
    check_accum("layernorm dbeta", dbeta, db2, C);

    /* gamma only feeds the input gradient. */
    memset(dg2, 0, C * sizeof *dg2);
    memset(db2, 0, C * sizeof *db2);
    layernorm_backward(NULL, dg2, db2, c.R, c.x, NULL, c.mean, c.rstd, N, C);
    check_same("layernorm din NULL: dgamma still right", dg2, dg, C);
    check_same("layernorm din NULL: dbeta still right", db2, dbeta, C);
    memset(din2, 0, n * sizeof *din2);
    layernorm_backward(din2, NULL, NULL, c.R, c.x, c.g, c.mean, c.rstd, N, C);
    check_same("layernorm dgamma, dbeta NULL: din still right", din2, din, n);

    float *din3 = nan_vec(n);
    memcpy(dg2, dg, C * sizeof *dg2);
    memcpy(db2, dbeta, C * sizeof *db2);
    layernorm_backward_set(din3, dg2, db2, c.R, c.x, c.g, c.mean, c.rstd, N, C);
    check_grad("layernorm_backward_set din", ln_loss, &c, c.x, din3, n);
    check_same("layernorm_backward_set din = layernorm_backward din", din3, din, n);
    check_accum("layernorm_backward_set dgamma", dg, dg2, C);
    check_accum("layernorm_backward_set dbeta", dbeta, db2, C);

    /* The variant that also sums din's columns (a bias gradient). */
    float *din4 = nan_vec(n), *dsum = vec(C), *sums = vec(C);
    memcpy(dg2, dg, C * sizeof *dg2);
    memcpy(db2, dbeta, C * sizeof *db2);
    for (int j = 0; j < C; j++)
        dsum[j] = 0.5f;
    layernorm_backward_set_sum(din4, dg2, db2, dsum, c.R, c.x, c.g, c.mean, c.rstd, N, C);
    check_same("layernorm_backward_set_sum din = layernorm_backward_set din", din4, din3, n);
    check_accum("layernorm_backward_set_sum dgamma", dg, dg2, C);
    check_accum("layernorm_backward_set_sum dbeta", dbeta, db2, C);
    for (int j = 0; j < C; j++) {
        sums[j] = 0.5f;
        for (int i = 0; i < N; i++)
            sums[j] += din3[(long)i * C + j];
    }
    check_same("layernorm_backward_set_sum dsum += column sums of din", dsum, sums, C);
    layernorm_backward_set_sum(din4, NULL, NULL, NULL, c.R, c.x, c.g, c.mean, c.rstd, N, C);
    check_same("layernorm_backward_set_sum with NULL dgamma, dbeta, dsum", din4, din3, n);
    free(din3), free(din4), free(dsum), free(sums);

    free(din), free(dg), free(dbeta), free(din2), free(dg2), free(db2);
    free(c.x), free(c.g), free(c.b), free(c.out), free(c.mean), free(c.rstd);
    free(c.R);
}

/* ---- GELU and tanh -------------------------------------------------------- */

typedef struct {
    int n, is_gelu;
    float *x, *out, *R;
} ActCtx;

static double act_loss(void *p)
{
    ActCtx *c = p;
    if (c->is_gelu)
        gelu_forward(c->out, c->x, c->n);
    else
        tanh_forward(c->out, c->x, c->n);
    return dot(c->out, c->R, c->n);
}

static void test_activation(Rng *r, int is_gelu)
{
    const char *name = is_gelu ? "gelu" : "tanh";
    const int n = 200;
    ActCtx c = {n, is_gelu, vec(n), vec(n), vec(n)};
    fill_uniform(r, c.x, n, -5.0f, 5.0f);
    c.x[0] = 0.0f, c.x[1] = 1.0f, c.x[2] = -1.0f, c.x[3] = 1e-3f;
    c.x[4] = -12.0f, c.x[5] = 12.0f;
    fill_normal(r, c.R, n, 0.0f, 1.0f);

    act_loss(&c);
    double e = 0.0;
    for (int i = 0; i < n; i++) {
        double x = c.x[i];
        double ref = is_gelu ? 0.5 * x * (1.0 + erf(x / sqrt(2.0))) : tanh(x);
        e = fmax(e, fabs(c.out[i] - ref) / fmax(fabs(ref), 1e-3));
    }
    ok(e < 1e-5, "%s forward matches double reference", name);
    diag("%s forward: max rel %.2e", name, e);
    if (is_gelu)
        ok(fabs(c.out[1] - 0.8413447460685429) < 1e-6 &&
               fabs(c.out[2] + 0.15865525393145707) < 1e-6,
           "gelu is the erf form (gelu(1) = 0.841345)");

    /* GELU may run in place. */
    if (is_gelu) {
        float *y = vec(n);
        memcpy(y, c.x, n * sizeof *y);
        gelu_forward(y, y, n);
        check_same("gelu forward in place", y, c.out, n);
        free(y);
    }

    float *din = vec(n), *din2 = vec(n);
    for (int k = 0; k < 3; k++) {
        float *dst = k == 0 ? din : din2;
        if (is_gelu)
            gelu_backward(dst, c.R, c.x, n);
        else
            tanh_backward(dst, c.R, c.out, n);
    }
    char what[32];
    snprintf(what, sizeof what, "%s din", name);
    check_grad(what, act_loss, &c, c.x, din, n);
    check_accum(what, din, din2, n);
    if (is_gelu) {
        float *din3 = nan_vec(n);
        gelu_backward_set(din3, c.R, c.x, n);
        check_grad("gelu_backward_set din", act_loss, &c, c.x, din3, n);
        check_same("gelu_backward_set din = gelu_backward din", din3, din, n);

        /* The forward that keeps the derivative, in place over its input,
         * and the backward from it. */
        float *y = nan_vec(n), *d = vec(n);
        memcpy(d, c.x, n * sizeof *d);
        gelu_forward_grad(y, d, d, n);
        check_same("gelu_forward_grad out = gelu_forward out", y, c.out, n);
        memcpy(din3, c.R, n * sizeof *din3);
        gelu_backward_cached(din3, d, n);
        check_grad("gelu_backward_cached din", act_loss, &c, c.x, din3, n);
        check_same("gelu_backward_cached din = gelu_backward din", din3, din, n);

        /* The same as rows of 40 with the bias gradient (column sums). */
        float *din4 = vec(n), *db = vec(40), *sums = vec(40);
        memcpy(din4, c.R, n * sizeof *din4);
        gelu_backward_cached_bias(din4, db, d, n / 40, 40);
        check_same("gelu_backward_cached_bias din = gelu_backward_cached din", din4, din3, n);
        for (long i = 0; i < n; i++)
            sums[i % 40] += din3[i];
        check_same("gelu_backward_cached_bias db = column sums of din", db, sums, 40);
        memcpy(din4, c.R, n * sizeof *din4);
        gelu_backward_cached_bias(din4, NULL, d, n / 40, 40);
        check_same("gelu_backward_cached_bias without db", din4, din3, n);
        free(din3), free(y), free(d), free(din4), free(db), free(sums);
    }
    free(din), free(din2), free(c.x), free(c.out), free(c.R);
}

/* ---- embeddings --------------------------------------------------------- */

enum { EB = 3, ET = 4, EC = 6, EV = 6, EP = 6, ETY = 3 };

typedef struct {
    const int *ids, *types;
    float *word, *pos, *type, *out, *R;
} EmbCtx;

static double emb_loss(void *p)
{
    EmbCtx *c = p;
    embedding_forward(c->out, c->ids, c->types, c->word, c->pos, c->type, EB, ET, EC);
    return dot(c->out, c->R, (long)EB * ET * EC);
}

static void test_embedding(Rng *r)
{
    /* Repeated ids (1, 3, 0), an unused one (5), two token types of a
     * pair, and tables larger than used (positions past T, token type 2)
     * whose gradients stay zero. */
    static const int ids[EB * ET] = {1, 3, 1, 1, 0, 3, 3, 2, 4, 1, 0, 0};
    static const int types[EB * ET] = {0, 0, 1, 1, 0, 0, 0, 1, 0, 1, 1, 0};
    const long nw = EV * EC, np = EP * EC, nt = ETY * EC, ny = EB * ET * EC;
    EmbCtx c = {ids, types, vec(nw), vec(np), vec(nt), vec(ny), vec(ny)};
    fill_normal(r, c.word, nw, 0.0f, 1.0f);
    fill_normal(r, c.pos, np, 0.0f, 1.0f);
    fill_normal(r, c.type, nt, 0.0f, 1.0f);
    fill_normal(r, c.R, ny, 0.0f, 1.0f);

    emb_loss(&c);
    double e = 0.0;
    for (int b = 0; b < EB; b++)
        for (int t = 0; t < ET; t++)
            for (int j = 0; j < EC; j++) {
                double ref = (double)c.word[ids[b * ET + t] * EC + j] +
                             c.pos[t * EC + j] + c.type[types[b * ET + t] * EC + j];
                e = fmax(e, fabs(c.out[(b * ET + t) * EC + j] - ref));
            }
    ok(e < 1e-6, "embedding forward is word + pos + type[types]");
    diag("embedding forward: max abs %.2e", e);

    float *dw = vec(nw), *dp = vec(np), *dt = vec(nt);
    embedding_backward(dw, dp, dt, c.R, ids, types, EB, ET, EC);
    check_grad("embedding dword", emb_loss, &c, c.word, dw, nw);
    check_grad("embedding dpos", emb_loss, &c, c.pos, dp, np);
    check_grad("embedding dtype", emb_loss, &c, c.type, dt, nt);
    ok(all_zero(dw + 5 * EC, EC) && all_zero(dp + ET * EC, np - ET * EC) &&
           all_zero(dt + 2 * EC, EC) && !all_zero(dt + EC, EC),
       "embedding rows never used get no gradient");

    float *dw2 = vec(nw), *dp2 = vec(np), *dt2 = vec(nt);
    embedding_backward(dw2, dp2, dt2, c.R, ids, types, EB, ET, EC);
    embedding_backward(dw2, dp2, dt2, c.R, ids, types, EB, ET, EC);
    check_accum("embedding dword", dw, dw2, nw);
    check_accum("embedding dpos", dp, dp2, np);
    check_accum("embedding dtype", dt, dt2, nt);

    memset(dw2, 0, nw * sizeof *dw2);
    embedding_backward(dw2, NULL, NULL, c.R, ids, types, EB, ET, EC);
    check_same("embedding dword alone", dw2, dw, nw);
    memset(dp2, 0, np * sizeof *dp2);
    embedding_backward(NULL, dp2, NULL, c.R, ids, types, EB, ET, EC);
    check_same("embedding dpos alone", dp2, dp, np);
    memset(dt2, 0, nt * sizeof *dt2);
    embedding_backward(NULL, NULL, dt2, c.R, ids, types, EB, ET, EC);
    check_same("embedding dtype alone", dt2, dt, nt);

    /* No token types at all (DistilBERT): word + pos, and types NULL is
     * type 0 everywhere. */
    float *y0 = vec(ny), *y1 = vec(ny);
    embedding_forward(y0, ids, types, c.word, c.pos, NULL, EB, ET, EC);
    double e0 = 0.0, e1 = 0.0;
    embedding_forward(y1, ids, NULL, c.word, c.pos, c.type, EB, ET, EC);
    for (int b = 0; b < EB; b++)
        for (int t = 0; t < ET; t++)
            for (int j = 0; j < EC; j++) {
                double wp = (double)c.word[ids[b * ET + t] * EC + j] + c.pos[t * EC + j];
                e0 = fmax(e0, fabs(y0[(b * ET + t) * EC + j] - wp));
                e1 = fmax(e1, fabs(y1[(b * ET + t) * EC + j] - wp - c.type[j]));
            }
    ok(e0 < 1e-6, "embedding without a type table is word + pos");
    ok(e1 < 1e-6, "embedding with types NULL adds type 0");
    free(y0), free(y1);

    free(dw), free(dp), free(dt), free(dw2), free(dp2), free(dt2);
    free(c.word), free(c.pos), free(c.type), free(c.out), free(c.R);
}

/* ---- GELU (tanh form) and ReLU ------------------------------------------- */

typedef struct {
    float *x, *out, *deriv, *R;
    int relu;
} Act2Ctx;

static double act2_loss(void *p)
{
    Act2Ctx *c = p;
    if (c->relu)
        relu_forward(c->out, c->x, 64);
    else
        gelu_tanh_forward_grad(c->out, c->deriv, c->x, 64);
    return dot(c->out, c->R, 64);
}

static void test_gelu_tanh_relu(Rng *r)
{
    enum { n = 64 };
    Act2Ctx c = {vec(n), vec(n), vec(n), vec(n), 0};
    fill_uniform(r, c.x, n, -4.0f, 4.0f);
    fill_normal(r, c.R, n, 0.0f, 1.0f);
    act2_loss(&c);
    double e = 0.0;
    for (int i = 0; i < n; i++) {
        double x = c.x[i];
        double ref = 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
        /* far left, 1 + tanh cancels in float, as in PyTorch's float
         * gelu_new: relative to 0.1 there */
        e = fmax(e, fabs(c.out[i] - ref) / fmax(fabs(ref), 0.1));
    }
    ok(e < 1e-5, "gelu_new forward matches the tanh formula in double");
    float one = 1.0f, y1, d1;
    gelu_tanh_forward_grad(&y1, &d1, &one, 1);
    ok(fabs(y1 - 0.8411919906082768) < 1e-6, "gelu_new(1) = 0.841192, not the erf form's 0.841345");
    /* the derivative it keeps, times dL/dy, is dL/dx */
    float *din = vec(n);
    for (int i = 0; i < n; i++)
        din[i] = c.deriv[i] * c.R[i];
    check_grad("gelu_new derivative", act2_loss, &c, c.x, din, n);

    c.relu = 1;
    for (int i = 0; i < n; i++)          /* keep away from the kink */
        if (fabsf(c.x[i]) < 0.05f)
            c.x[i] = 0.5f;
    act2_loss(&c);
    int relu_ok = 1;
    for (int i = 0; i < n; i++)
        relu_ok &= c.out[i] == (c.x[i] > 0 ? c.x[i] : 0.0f);
    ok(relu_ok, "relu forward is max(x, 0)");
    memset(din, 0, n * sizeof *din);
    relu_backward(din, c.R, c.out, n);
    check_grad("relu din", act2_loss, &c, c.x, din, n);
    free(din), free(c.x), free(c.out), free(c.deriv), free(c.R);
}

static void test_layernorm_eps(Rng *r)
{
    enum { N = 3, C = 8 };
    float x[N * C], g[C], b[C], y[N * C], m[N], rs[N];
    fill_normal(r, x, N * C, 0.0f, 0.01f);
    fill_normal(r, g, C, 1.0f, 0.1f);
    fill_normal(r, b, C, 0.0f, 0.1f);
    layernorm_forward_eps(y, m, rs, x, g, b, N, C, 1e-3f);
    double e = 0.0;
    for (int i = 0; i < N; i++) {
        double mean = 0, var = 0;
        for (int j = 0; j < C; j++)
            mean += x[i * C + j] / (double)C;
        for (int j = 0; j < C; j++)
            var += (x[i * C + j] - mean) * (x[i * C + j] - mean) / C;
        for (int j = 0; j < C; j++) {
            double ref = (x[i * C + j] - mean) / sqrt(var + 1e-3) * g[j] + b[j];
            e = fmax(e, fabs(y[i * C + j] - ref));
        }
    }
    ok(e < 1e-5, "layernorm with eps 1e-3 (small variance: eps matters)");
}

/* ---- attention ---------------------------------------------------------- */

typedef struct {
    int B, T, C, H;
    const int *len;
    float *qkv, *att, *out, *R, *scratch;
} AttCtx;

static double att_loss(void *p)
{
    AttCtx *c = p;
    attention_forward(c->out, c->att, c->qkv, c->len, c->scratch, c->B, c->T, c->C, c->H);
    return dot(c->out, c->R, (long)c->B * c->T * c->C);
}

/* Naive attention in double; returns the max abs error of out and att. */
static void att_reference(const AttCtx *c, double *eout, double *eatt)
{
    const int B = c->B, T = c->T, C = c->C, H = c->H, D = C / H;
    double *p = malloc((size_t)T * sizeof *p);
    *eout = *eatt = 0.0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const float *q = c->qkv + ((long)b * T + t) * 3 * C + h * D;
                double mx = -INFINITY, s = 0.0;
                for (int j = 0; j < c->len[b]; j++) {
                    const float *k = c->qkv + ((long)b * T + j) * 3 * C + C +
                                     h * D;
                    double d = 0.0;
                    for (int i = 0; i < D; i++)
                        d += (double)q[i] * k[i];
                    p[j] = d / sqrt((double)D);
                    mx = fmax(mx, p[j]);
                }
                for (int j = 0; j < c->len[b]; j++)
                    s += p[j] = exp(p[j] - mx);
                const float *a =
                    c->att + (((long)b * H + h) * T + t) * T;
                for (int j = 0; j < c->len[b]; j++) {
                    p[j] /= s;
                    *eatt = fmax(*eatt, fabs(a[j] - p[j]));
                }
                for (int i = 0; i < D; i++) {
                    double o = 0.0;
                    for (int j = 0; j < c->len[b]; j++)
                        o += p[j] * c->qkv[((long)b * T + j) * 3 * C +
                                           2 * C + h * D + i];
                    double got = c->out[((long)b * T + t) * C + h * D + i];
                    *eout = fmax(*eout, fabs(got - o));
                }
            }
    free(p);
}

/* Masked keys must get exactly zero; every row (padded queries too) is a
 * distribution over the valid keys. */
static void att_mask_stats(const AttCtx *c, int *masked_ok, double *sum_err)
{
    const int T = c->T;
    *masked_ok = 1;
    *sum_err = 0.0;
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->H; h++)
            for (int t = 0; t < T; t++) {
                const float *a = c->att + (((long)b * c->H + h) * T + t) * T;
                double s = 0.0;
                for (int j = 0; j < T; j++) {
                    if (j >= c->len[b] && a[j] != 0.0f)
                        *masked_ok = 0;
                    s += a[j];
                }
                *sum_err = fmax(*sum_err, fabs(s - 1.0));
            }
}

static AttCtx att_make(Rng *r, int B, int T, int C, int H, const int *len,
                       float sd)
{
    const long n = (long)B * T * C;
    AttCtx c = {B, T, C, H, len, vec(3 * n), vec((long)B * H * T * T),
                vec(n), vec(n), vec(ATTENTION_SCRATCH(T, C / H))};
    fill_normal(r, c.qkv, 3 * n, 0.0f, sd);
    fill_normal(r, c.R, n, 0.0f, 1.0f);
    return c;
}

static void att_free(AttCtx *c)
{
    free(c->qkv), free(c->att), free(c->out), free(c->R), free(c->scratch);
}

static void test_attention_forward(Rng *r)
{
    static const int len[2] = {33, 17};
    AttCtx c = att_make(r, 2, 33, 64, 4, len, 1.0f);
    /* Stale scores from an earlier batch must not survive the mask. */
    for (long i = 0; i < 2L * 4 * 33 * 33; i++)
        c.att[i] = NAN;
    att_loss(&c);
    double eo, ea, es;
    int mok;
    att_reference(&c, &eo, &ea);
    att_mask_stats(&c, &mok, &es);
    ok(eo < 1e-5 && ea < 1e-6, "attention forward matches naive attention");
    diag("attention forward B2 T33 C64 H4: out max abs %.2e, att max abs "
         "%.2e", eo, ea);
    ok(mok, "attention: masked keys get probability exactly 0");
    ok(es < 1e-5, "attention: every row sums to 1 (max err %.2e)", es);
    att_free(&c);

    /* Huge scores: the softmax must subtract the row maximum. */
    static const int len2[2] = {5, 3};
    c = att_make(r, 2, 5, 8, 2, len2, 30.0f);
    att_loss(&c);
    att_mask_stats(&c, &mok, &es);
    ok(all_finite(c.att, 2L * 2 * 5 * 5) && all_finite(c.out, 2L * 5 * 8) &&
           mok && es < 1e-5,
       "attention softmax is stable for scores in the thousands");
    att_free(&c);

    /* No valid key at all: the context is defined as zero, never NaN. */
    static const int len0[2] = {4, 0};
    c = att_make(r, 2, 4, 8, 2, len0, 1.0f);
    att_loss(&c);
    ok(all_finite(c.out, 2L * 4 * 8) && all_zero(c.out + 4 * 8, 4 * 8) &&
           all_zero(c.att + 2 * 16, 2 * 16),
       "attention with an empty sequence gives zeros");
    att_free(&c);
}

static void test_attention_backward(Rng *r)
{
    enum { B = 3, T = 6, C = 12, H = 3 };
    static const int len[B] = {6, 4, 1};
    AttCtx c = att_make(r, B, T, C, H, len, 1.0f);
    const long n = 3L * B * T * C;
    float *scratch = vec(ATTENTION_SCRATCH(T, C / H));
    float *dqkv = vec(n), *dqkv2 = vec(n);

    att_loss(&c);
    double eo, ea, es;
    int mok;
    att_reference(&c, &eo, &ea);
    att_mask_stats(&c, &mok, &es);
    ok(eo < 1e-5 && ea < 1e-6 && mok && es < 1e-5,
       "attention forward (lengths 6, 4, 1 of 6) matches naive attention, "
       "masks padding, rows sum to 1");
    attention_backward(dqkv, c.R, c.qkv, c.att, len, scratch, B, T, C, H);
    check_grad("attention dqkv", att_loss, &c, c.qkv, dqkv, n);

    int pad_ok = 1;
    for (int b = 0; b < B; b++)
        for (int t = len[b]; t < T; t++)
            if (!all_zero(dqkv + ((long)b * T + t) * 3 * C + C, 2 * C))
                pad_ok = 0;
    ok(pad_ok, "attention: padded keys and values get exactly zero gradient");

    for (long i = 0; i < ATTENTION_SCRATCH(T, C / H); i++)
        scratch[i] = NAN;
    attention_backward(dqkv2, c.R, c.qkv, c.att, len, scratch, B, T, C, H);
    attention_backward(dqkv2, c.R, c.qkv, c.att, len, scratch, B, T, C, H);
    check_accum("attention dqkv (NaN scratch)", dqkv, dqkv2, n);

    float *dqkv3 = nan_vec(n);
    attention_backward_set(dqkv3, c.R, c.qkv, c.att, len, scratch, B, T, C, H);
    check_grad("attention_backward_set dqkv", att_loss, &c, c.qkv, dqkv3, n);
    check_same("attention_backward_set dqkv = attention_backward dqkv", dqkv3, dqkv, n);
    free(scratch), free(dqkv), free(dqkv2), free(dqkv3);
    att_free(&c);

    /* An empty sequence: the overwrite variant must still write its rows. */
    static const int len0[B] = {5, 0, 6};
    AttCtx c0 = att_make(r, B, T, C, H, len0, 1.0f);
    scratch = vec(ATTENTION_SCRATCH(T, C / H));
    dqkv = vec(n);
    dqkv3 = nan_vec(n);
    att_loss(&c0);
    attention_backward(dqkv, c0.R, c0.qkv, c0.att, len0, scratch, B, T, C, H);
    attention_backward_set(dqkv3, c0.R, c0.qkv, c0.att, len0, scratch, B, T, C, H);
    ok(all_finite(dqkv3, n) && all_zero(dqkv3 + (long)T * 3 * C, (long)T * 3 * C),
       "attention_backward_set (lengths 5, 0, 6): every entry written, the "
       "empty sequence's zero");
    check_same("attention_backward_set = attention_backward with an empty sequence",
               dqkv3, dqkv, n);
    check_grad("attention_backward_set dqkv (empty sequence)", att_loss, &c0, c0.qkv,
               dqkv3, n);
    free(scratch), free(dqkv), free(dqkv3);
    att_free(&c0);
}

/* Heads past OpenBLAS's small-matrix range (T T D > 100^3) take Q K^T and
 * dO V^T as transposed products instead of transposing K and V first. */
static void test_attention_large(Rng *r)
{
    enum { B = 1, T = 130, C = 128, H = 2 };
    static const int len[B] = {121};
    AttCtx c = att_make(r, B, T, C, H, len, 1.0f);
    const long n = 3L * B * T * C;
    float *dqkv = vec(n), *dqkv3 = nan_vec(n);
    double eo, ea, es;
    int mok;
    /* The loss reads 8 query rows only: a sum over all 130 x 128 outputs
     * would bury the finite differences in its own rounding. Every key and
     * value still gets a gradient through them. */
    memset(c.R + 8L * C, 0, (size_t)(T - 8) * C * sizeof *c.R);
    att_loss(&c);
    att_reference(&c, &eo, &ea);
    att_mask_stats(&c, &mok, &es);
    ok(eo < 1e-5 && ea < 1e-6 && mok && es < 1e-5,
       "attention forward T130 D64 (lengths 121) matches naive attention");
    attention_backward(dqkv, c.R, c.qkv, c.att, len, c.scratch, B, T, C, H);
    check_grad("attention dqkv T130 D64", att_loss, &c, c.qkv, dqkv, n);
    attention_backward_set(dqkv3, c.R, c.qkv, c.att, len, c.scratch, B, T, C, H);
    check_same("attention_backward_set = attention_backward T130 D64", dqkv3, dqkv, n);
    free(dqkv), free(dqkv3);
    att_free(&c);
}

/* ---- softmax cross-entropy --------------------------------------------- */

enum { XN = 6, XK = 5 };

typedef struct {
    const int *labels;
    float *logits, *probs;
} XentCtx;

static double xent_loss(void *p)
{
    XentCtx *c = p;
    return softmax_xent_forward(c->probs, c->logits, c->labels, XN, XK);
}

static void test_xent(Rng *r)
{
    static const int labels[XN] = {0, 4, 2, -1, 1, 3};
    const long n = XN * XK;
    XentCtx c = {labels, vec(n), vec(n)};
    fill_normal(r, c.logits, n, 0.0f, 2.0f);

    double loss = xent_loss(&c), ref = 0.0, ep = 0.0;
    for (int i = 0; i < XN; i++) {
        const float *z = c.logits + i * XK;
        double mx = z[0], s = 0.0;
        for (int j = 1; j < XK; j++)
            mx = fmax(mx, z[j]);
        for (int j = 0; j < XK; j++)
            s += exp(z[j] - mx);
        for (int j = 0; j < XK; j++)
            ep = fmax(ep, fabs(c.probs[i * XK + j] - exp(z[j] - mx) / s));
        if (labels[i] >= 0)
            ref += log(s) + mx - z[labels[i]];
    }
    ok(fabs(loss - ref) < 1e-5 * ref, "xent forward: summed loss %.6f "
       "(reference %.6f, ignored row left out)", loss, ref);
    ok(ep < 1e-6, "xent forward: probabilities of every row, ignored too");
    diag("xent forward: loss err %.2e, probs max abs %.2e",
         fabs(loss - ref), ep);

    float *d = vec(n), *d2 = vec(n), *dq = vec(n);
    softmax_xent_backward(d, c.probs, labels, XN, XK, 1.0f);
    check_grad("xent dlogits", xent_loss, &c, c.logits, d, n);
    ok(all_zero(d + 3 * XK, XK), "xent: ignored row gets no gradient");
    softmax_xent_backward(d2, c.probs, labels, XN, XK, 1.0f);
    softmax_xent_backward(d2, c.probs, labels, XN, XK, 1.0f);
    check_accum("xent dlogits", d, d2, n);
    softmax_xent_backward(dq, c.probs, labels, XN, XK, 0.25f);
    scaled_copy(d2, d, n, 0.25f);
    check_same("xent backward applies its scale", dq, d2, n);

    /* Logits far apart: loss from logits directly, never log(0). */
    static const float big[2 * 3] = {1000.0f, 0.0f, -1000.0f,
                                     -1000.0f, 1000.0f, 0.0f};
    static const int big_lab[2] = {1, 1};
    float probs[6];
    double lb = softmax_xent_forward(probs, big, big_lab, 2, 3);
    ok(isfinite(lb) && fabs(lb - 1000.0) < 1e-3 && all_finite(probs, 6),
       "xent is stable for logits of +-1000 (loss %.4f)", lb);

    free(d), free(d2), free(dq), free(c.logits), free(c.probs);
}

/* Queries at the first nq positions only (the last block's [CLS] path):
 * the same rows as the full attention, with or without a prefix, and a
 * backward that matches finite differences and writes every entry. */
typedef struct {
    int B, T, nq, C, H, np;
    const int *len;
    float *qkv, *pk, *pv, *att, *out, *R, *scratch;
} FirstCtx;

static double first_loss(void *p)
{
    FirstCtx *c = p;
    attention_forward_first(c->out, c->att, c->qkv, c->len, c->np ? c->pk : NULL,
                            c->np ? c->pv : NULL, c->np, c->scratch, c->B, c->T, c->nq, c->C,
                            c->H);
    return dot(c->out, c->R, (long)c->B * c->nq * c->C);
}

static void test_attention_first_case(Rng *r, int nq, int np)
{
    enum { B = 3, T = 7, C = 12, H = 3 };
    static const int len[B] = {7, 4, 0};
    const long n = 3L * B * T * C, W = np + T;
    FirstCtx c = {B, T, nq, C, H, np, len, vec(n), vec(np * C + 1), vec(np * C + 1),
                  vec((long)B * H * T * W), vec((long)B * nq * C), vec((long)B * nq * C),
                  vec(ATTENTION_PREFIX_SCRATCH(T, np, C / H))};
    float *full_out = vec((long)B * T * C), *full_att = vec((long)B * H * T * W);
    float *full_R = vec((long)B * T * C), *first_rows = vec((long)B * nq * C);
    float *dqkv = nan_vec(n), *dfull = nan_vec(n);
    float *dpk = vec(np * C + 1), *dpv = vec(np * C + 1);
    float *dpk2 = vec(np * C + 1), *dpv2 = vec(np * C + 1);
    char what[160];

    fill_normal(r, c.qkv, n, 0.0f, 1.0f);
    fill_normal(r, c.pk, np * C, 0.0f, 1.0f);
    fill_normal(r, c.pv, np * C, 0.0f, 1.0f);
    fill_normal(r, c.R, (long)B * nq * C, 0.0f, 1.0f);
    first_loss(&c);
    if (np)
        attention_forward_prefix(full_out, full_att, c.qkv, len, c.pk, c.pv, np, c.scratch,
                                 B, T, C, H);
    else
        attention_forward(full_out, full_att, c.qkv, len, c.scratch, B, T, C, H);
    for (int b = 0; b < B; b++)
        memcpy(first_rows + (long)b * nq * C, full_out + (long)b * T * C,
               (size_t)nq * C * sizeof(float));
    snprintf(what, sizeof what, "attention, queries at the first %d of %d rows, prefix %d: "
             "the full attention's rows", nq, T, np);
    check_same(what, c.out, first_rows, (long)B * nq * C);

    /* the full backward with the other rows' gradients zero */
    for (int b = 0; b < B; b++)
        memcpy(full_R + (long)b * T * C, c.R + (long)b * nq * C, (size_t)nq * C * sizeof(float));
    attention_backward_first_set(dqkv, np ? dpk : NULL, np ? dpv : NULL, c.R, c.qkv, c.att,
                                 len, c.pk, c.pv, np, c.scratch, B, T, nq, C, H);
    if (np)
        attention_backward_prefix_set(dfull, dpk2, dpv2, full_R, c.qkv, full_att, len, c.pk,
                                      c.pv, np, c.scratch, B, T, C, H);
    else
        attention_backward_set(dfull, full_R, c.qkv, full_att, len, c.scratch, B, T, C, H);
    int zero_q = 1;
    for (int b = 0; b < B; b++)
        for (int t = nq; t < T; t++)
            zero_q &= all_zero(dqkv + ((long)b * T + t) * 3 * C, C);
    ok(all_finite(dqkv, n) && zero_q, "attention, queries at the first %d rows, prefix %d: every "
       "gradient entry written, later queries' zero", nq, np);
    snprintf(what, sizeof what, "attention, queries at the first %d rows, prefix %d: dqkv "
             "equals the full backward's", nq, np);
    check_same(what, dqkv, dfull, n);
    snprintf(what, sizeof what, "attention, queries at the first %d rows, prefix %d: dqkv", nq, np);
    check_grad(what, first_loss, &c, c.qkv, dqkv, n);
    if (np) {
        check_same("attention, first queries: prefix key gradient equals the full one's",
                   dpk, dpk2, np * C);
        check_grad("attention, first queries: prefix keys", first_loss, &c, c.pk, dpk, np * C);
        check_grad("attention, first queries: prefix values", first_loss, &c, c.pv, dpv,
                   np * C);
    }
    free(c.qkv), free(c.pk), free(c.pv), free(c.att), free(c.out), free(c.R), free(c.scratch);
    free(full_out), free(full_att), free(full_R), free(first_rows), free(dqkv), free(dfull);
    free(dpk), free(dpv), free(dpk2), free(dpv2);
}

static void test_attention_first(Rng *r)
{
    test_attention_first_case(r, 1, 0);
    test_attention_first_case(r, 3, 0);
    test_attention_first_case(r, 1, 2);
}

int main(int argc, char **argv)
{
    Rng r;
    char core[256];
    (void)argc;
    /* Check the layers under the kernels mneme itself would run. */
    blas_core_fix(argv);
    blas_core_describe(core, sizeof core);
    diag("%s", core);
    rng_seed(&r, 20240601);
    test_linear_forward(&r);
    test_linear_backward(&r);
    test_layernorm_forward(&r);
    test_layernorm_backward(&r, 10);
    test_layernorm_backward(&r, 37);
    test_activation(&r, 1);
    test_activation(&r, 0);
    test_embedding(&r);
    test_gelu_tanh_relu(&r);
    test_layernorm_eps(&r);
    test_attention_forward(&r);
    test_attention_backward(&r);
    test_attention_large(&r);
    test_attention_first(&r);
    test_xent(&r);
    return tap_done();
}
