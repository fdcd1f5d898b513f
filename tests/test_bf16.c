/* model.precision = "bf16" (bf16.c): rounding, the products of each path
 * against exact ones within what bf16 allows, the weights' copy and when
 * it is refreshed, and a whole model's loss and gradient against fp32.
 *
 * The bound. bf16 keeps 8 significant bits (7 stored), so rounding to
 * nearest moves an input by at most 2^-8 of itself, and a product of two
 * rounded inputs by at most 2^-7 + 2^-16 of the exact product. Summed in
 * fp32 over K terms, element (i, j) of a product is within
 *     (2^-7 + 2^-16 + K 2^-23) * sum_k |a_ik| |b_kj|
 * of the exact one. Every path that rounds (emulate, oneDNN's bf16) is
 * held to it, and shown to round: it must differ from fp32. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/bf16.h"
#include "../src/layers.h"
#include "../src/rng.h"
#include "tap.h"
#include "testmodel.h"

#define MAXE 4096

static float uniform(Rng *r)
{
    return 2.0f * rng_uniform(r) - 1.0f;
}

static void test_rounding(void)
{
    ok(bf16_to_float(bf16_from_float(1.0f)) == 1.0f &&
       bf16_to_float(bf16_from_float(-2.5f)) == -2.5f, "bf16 values are kept exactly");
    ok(bf16_to_float(bf16_from_float(1.0f + 0x1p-8f)) == 1.0f,
       "a tie rounds to the even neighbour (1 + 2^-8 to 1)");
    ok(bf16_to_float(bf16_from_float(1.0f + 3 * 0x1p-8f)) == 1.0f + 0x1p-6f,
       "a tie rounds to the even neighbour (1 + 3*2^-8 to 1 + 2^-6)");
    ok(bf16_to_float(bf16_from_float(1.0f + 0x1p-8f + 0x1p-20f)) == 1.0f + 0x1p-7f,
       "past a tie rounds away");
    ok(isnan(bf16_to_float(bf16_from_float(NAN))) && isinf(bf16_to_float(bf16_from_float(INFINITY))),
       "NaN stays NaN and infinity infinity");
    Rng r;
    rng_seed(&r, 3);
    double worst = 0.0;
    for (int i = 0; i < 100000; i++) {
        float x = uniform(&r) * powf(10.0f, 6.0f * uniform(&r));
        double rel = fabs((double)bf16_to_float(bf16_from_float(x)) - x) / fabs((double)x);
        worst = rel > worst ? rel : worst;
    }
    ok(worst <= 0x1p-8 && worst > 0x1p-9, "rounding moves a value by at most 2^-8 of it "
       "(worst %.3g)", worst);
}

/* An op(X) of rows x cols stored with ld, as a plain array in double. */
static double at(const float *X, int t, int ld, int i, int k)
{
    return t ? X[(size_t)k * ld + i] : X[(size_t)i * ld + k];
}

typedef struct {
    int tA, tB, M, N, K, lda, ldb, ldc;
    float beta;
} Shape;

static const Shape shapes[] = {
    { 0, 1, 7, 24, 33, 33, 33, 24, 0.0f },       /* forward: x W^T */
    { 0, 1, 5, 16, 20, 24, 20, 19, 1.0f },       /* over a bias, strided rows */
    { 0, 0, 9, 20, 16, 16, 20, 20, 0.0f },       /* input gradient: dy W */
    { 1, 0, 16, 20, 9, 16, 28, 20, 1.0f },       /* weight gradient: dy^T x */
    { 1, 1, 6, 11, 13, 6, 13, 11, 0.0f },
};

/* Checks path p's bf16_gemm on every shape, with B in the parameters
 * (read from the copy) and A outside them (converted at the call). */
static void test_gemm(Bf16Path p)
{
    const char *pn = bf16_path_name(p);
    MnError e;
    Rng r;
    rng_seed(&r, 11);
    float *params = malloc(MAXE * sizeof *params);
    for (int i = 0; i < MAXE; i++)
        params[i] = uniform(&r);
    Bf16 *b = bf16_create(p, params, MAXE, &e);
    if (!ok(b != NULL, "%s: made", pn)) {
        diag("%s", e.msg);
        free(params);
        return;
    }
    bf16_refresh(b, 0, MAXE);
    Bf16Worker *w = bf16_worker(b, 0);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const Shape *h = &shapes[s];
        size_t na = (size_t)(h->tA ? h->K : h->M) * h->lda, nc = (size_t)h->M * h->ldc;
        float *A = malloc(na * sizeof *A), *C = malloc(nc * sizeof *C), *C0 = malloc(nc * sizeof *C);
        float *Ar = malloc(na * sizeof *A), *Cr = malloc(nc * sizeof *C);
        const float *B = params + 100 * s;
        for (size_t i = 0; i < na; i++) {
            A[i] = uniform(&r);
            Ar[i] = bf16_to_float(bf16_from_float(A[i]));
        }
        for (size_t i = 0; i < nc; i++)
            C[i] = C0[i] = Cr[i] = uniform(&r);
        bf16_gemm(w, h->tA, h->tB, h->M, h->N, h->K, A, h->lda, B, h->ldb, h->beta, C, h->ldc);
        /* the same with both inputs rounded, in fp32 */
        float *Br = malloc((size_t)MAXE * sizeof *Br);
        for (int i = 0; i < MAXE; i++)
            Br[i] = bf16_to_float(bf16_from_float(params[i]));
        bf16_gemm(NULL, h->tA, h->tB, h->M, h->N, h->K, Ar, h->lda, Br + 100 * s, h->ldb, h->beta,
                  Cr, h->ldc);
        double worst = 0.0, worst_r = 0.0, moved = 0.0;
        int untouched = 1;
        for (int i = 0; i < h->M; i++) {
            for (int j = 0; j < h->ldc; j++) {
                size_t c = (size_t)i * h->ldc + j;
                if (j >= h->N) {
                    untouched &= C[c] == C0[c];
                    continue;
                }
                double exact = h->beta * (double)C0[c], mag = h->beta * fabs((double)C0[c]);
                for (int k = 0; k < h->K; k++) {
                    double x = at(A, h->tA, h->lda, i, k), y = at(B, !h->tB, h->ldb, j, k);
                    exact += x * y;
                    mag += fabs(x * y);
                }
                double bound = p == BF16_ONEDNN_F32 ? (h->K + 2) * 0x1p-23 * mag
                                                    : (0x1p-7 + 0x1p-16 + (h->K + 2) * 0x1p-23) * mag;
                double err = fabs(C[c] - exact) / bound;
                worst = err > worst ? err : worst;
                double vs_rounded = fabs(C[c] - Cr[c]) / ((h->K + 2) * 0x1p-23 * mag);
                worst_r = vs_rounded > worst_r ? vs_rounded : worst_r;
                moved += fabs(C[c] - exact);
            }
        }
        ok(worst <= 1.0, "%s: product %zu (tA %d tB %d %dx%dx%d beta %g) within the bound (%.2f of it)",
           pn, s, h->tA, h->tB, h->M, h->N, h->K, h->beta, worst);
        ok(untouched, "%s: product %zu leaves C's columns past N alone", pn, s);
        if (p != BF16_ONEDNN_F32)
            ok(worst_r <= 1.0 && moved > 0.0,
               "%s: product %zu is fp32's of the rounded inputs but for the order of its sums "
               "(%.2f of K ulps), and not fp32's of the inputs", pn, s, worst_r);
        free(A), free(C), free(C0), free(Ar), free(Cr), free(Br);
    }
    if (p != BF16_EMULATE) {
        long made = bf16_primitives_made(w);
        const Shape *h = &shapes[0];
        float A[7 * 33], C[7 * 24];
        for (int i = 0; i < 7 * 33; i++)
            A[i] = uniform(&r);
        bf16_gemm(w, h->tA, h->tB, h->M, h->N, h->K, A, h->lda, params, h->ldb, 0.0f, C, h->ldc);
        ok(bf16_primitives_made(w) == made && made == (long)(sizeof shapes / sizeof shapes[0]),
           "%s: one primitive per shape, made once (%ld)", pn, made);
    }
    /* the operand in the parameters is read from the copy: a change the
     * copy has not seen does not reach the product until refreshed */
    float A[4] = { 1, 2, 3, 4 }, C1[1], C2[1], C3[1];
    params[0] = 0.5f, params[1] = 0.25f, params[2] = -0.75f, params[3] = 1.0f;
    bf16_refresh(b, 0, 4);
    bf16_gemm(w, 0, 1, 1, 1, 4, A, 4, params, 4, 0.0f, C1, 1);
    float keep = params[0];
    params[0] += 1.0f;
    bf16_gemm(w, 0, 1, 1, 1, 4, A, 4, params, 4, 0.0f, C2, 1);
    bf16_refresh(b, 0, 4);
    bf16_gemm(w, 0, 1, 1, 1, 4, A, 4, params, 4, 0.0f, C3, 1);
    params[0] = keep;
    if (p == BF16_ONEDNN_F32)
        ok(C3[0] == C2[0] && C2[0] != C1[0], "%s: reads the parameters themselves", pn);
    else
        ok(C2[0] == C1[0] && C3[0] - C1[0] == 1.0f,
           "%s: weights come from the copy, as of its last refresh", pn);
    bf16_free(b);
    free(params);
}

/* The linear layer's forward and backward at bf16 against fp32. */
static void test_linear(Bf16Path p)
{
    enum { N = 12, IC = 40, OC = 24 };
    MnError e;
    Rng r;
    rng_seed(&r, 5);
    float *P = malloc((OC * IC + OC) * sizeof *P);
    float x[N * IC], dy[N * OC], y1[N * OC], y2[N * OC], dx1[N * IC], dx2[N * IC];
    float *dW1 = calloc(OC * IC, sizeof(float)), *dW2 = calloc(OC * IC, sizeof(float));
    float db1[OC] = { 0 }, db2[OC] = { 0 };
    for (int i = 0; i < OC * IC + OC; i++)
        P[i] = uniform(&r);
    for (int i = 0; i < N * IC; i++)
        x[i] = uniform(&r);
    for (int i = 0; i < N * OC; i++)
        dy[i] = uniform(&r);
    Bf16 *b = bf16_create(p, P, OC * IC + OC, &e);
    bf16_refresh(b, 0, OC * IC);
    Bf16Worker *w = bf16_worker(b, 0);
    linear_forward(NULL, y1, x, P, P + OC * IC, N, IC, OC);
    linear_forward(w, y2, x, P, P + OC * IC, N, IC, OC);
    linear_backward_set(NULL, dx1, dW1, db1, dy, x, P, N, IC, OC);
    linear_backward_set(w, dx2, dW2, db2, dy, x, P, N, IC, OC);
    /* each element against the bound of its own sum of |products| */
    double wy = 0, wx = 0, ww = 0;
    const double u = 0x1p-7 + 0x1p-16;
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OC; o++) {
            double mag = fabs(P[OC * IC + o]);
            for (int k = 0; k < IC; k++)
                mag += fabs(x[i * IC + k] * P[o * IC + k]);
            double d = fabs(y2[i * OC + o] - y1[i * OC + o]) / ((u + 2 * (IC + 2) * 0x1p-23) * mag);
            wy = d > wy ? d : wy;
        }
    for (int i = 0; i < N; i++)
        for (int k = 0; k < IC; k++) {
            double mag = 0;
            for (int o = 0; o < OC; o++)
                mag += fabs(dy[i * OC + o] * P[o * IC + k]);
            double d = fabs(dx2[i * IC + k] - dx1[i * IC + k]) / ((u + 2 * (OC + 2) * 0x1p-23) * mag);
            wx = d > wx ? d : wx;
        }
    for (int o = 0; o < OC; o++)
        for (int k = 0; k < IC; k++) {
            double mag = 0;
            for (int i = 0; i < N; i++)
                mag += fabs(dy[i * OC + o] * x[i * IC + k]);
            double d = fabs(dW2[o * IC + k] - dW1[o * IC + k]) / ((u + 2 * (N + 2) * 0x1p-23) * mag);
            ww = d > ww ? d : ww;
        }
    const char *pn = bf16_path_name(p);
    ok(wy <= 1.0, "%s: linear forward within the bound of fp32 (%.2f of it)", pn, wy);
    ok(wx <= 1.0, "%s: linear input gradient within the bound (%.2f of it)", pn, wx);
    ok(ww <= 1.0, "%s: linear weight gradient within the bound (%.2f of it)", pn, ww);
    ok(memcmp(db1, db2, sizeof db1) == 0, "%s: the bias gradient is a sum in fp32, unchanged", pn);
    /* its output gradient converted once for both products: as two */
    float dx3[N * IC], *dW3 = calloc(OC * IC, sizeof(float));
    bf16_gemm(w, 0, 0, N, IC, OC, dy, OC, P, IC, 0.0f, dx3, IC);
    bf16_gemm(w, 1, 0, OC, IC, N, dy, OC, x, IC, 1.0f, dW3, IC);
    ok(memcmp(dx3, dx2, sizeof dx3) == 0 && memcmp(dW3, dW2, OC * IC * sizeof(float)) == 0,
       "%s: the linear backward's two products are bf16_gemm's, bit for bit", pn);
    free(dW3);
    bf16_free(b);
    free(P), free(dW1), free(dW2);
}

/* ---- a whole model ----------------------------------------------------------------- */

enum { B = 6, T = 12 };
static int ids[B * T], lens[B] = { 12, 9, 5, 12, 7, 3 }, labels[B] = { 0, 2, 1, 1, 0, 1 },
           tasks[B] = { 0, 0, 0, 1, 1, 1 };

static void make(Model *m, int threads)
{
    Rng r;
    MnError e;
    test_model_create(m, (TestShape){ 32, 2, 2, 64, T, 3, 2, B });
    rng_seed(&r, 9);
    model_init_weights(m, &r, 0.2f);
    if (model_set_threads(m, threads, &e) < 0) {
        printf("Bail out! %s\n", e.msg);
        exit(1);
    }
}

static double norm(const float *g, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * g[i];
    return sqrt(s);
}

static void test_model(Bf16Path p, int threads)
{
    const char *pn = bf16_path_name(p);
    MnError e;
    Model m32, m16;
    Batch b = test_batch(ids, lens, labels, tasks, B, T);
    make(&m32, threads);
    make(&m16, threads);
    if (!ok(model_set_precision(&m16, PRECISION_BF16, &e) == 0, "%s: a model takes bf16", pn)) {
        diag("%s", e.msg);
        model_free(&m32), model_free(&m16);
        return;
    }
    float *g32 = malloc(m32.n_params * sizeof *g32), *g16 = malloc(m32.n_params * sizeof *g16);
    float *again = malloc(m32.n_params * sizeof *again);
    model_zero_grads(&m32);
    double l32 = model_forward(&m32, &b);
    model_backward(&m32, &b);
    memcpy(g32, m32.grads, m32.n_params * sizeof *g32);
    model_zero_grads(&m16);
    double l16 = model_forward(&m16, &b);
    model_backward(&m16, &b);
    memcpy(g16, m16.grads, m16.n_params * sizeof *g16);
    long made = bf16_primitives_made(bf16_worker(m16.bf16, 0));
    test_backward_into(&m16, &b, again);
    if (p != BF16_EMULATE)
        ok(made > 0 && bf16_primitives_made(bf16_worker(m16.bf16, 0)) == made,
           "%s, %d threads: the second step makes no primitive (the first made %ld)", pn, threads,
           made);
    double dot = 0, n32 = norm(g32, m32.n_params), n16 = norm(g16, m32.n_params);
    for (size_t i = 0; i < m32.n_params; i++)
        dot += (double)g32[i] * g16[i];
    /* A step compounds the products' rounding through two blocks, the
     * softmax and the loss: a few times 2^-8 relative, stated here as 2%
     * for the loss and the gradient's norm, and a direction within 0.1. */
    double tol = p == BF16_ONEDNN_F32 ? 1e-4 : 2e-2;
    ok(fabs(l16 - l32) <= tol * fabs(l32), "%s, %d threads: loss %.6f against fp32's %.6f", pn,
       threads, l16, l32);
    ok(fabs(n16 - n32) <= tol * n32, "%s, %d threads: gradient norm %.6f against fp32's %.6f", pn,
       threads, n16, n32);
    ok(dot / (n16 * n32) >= 1.0 - (p == BF16_ONEDNN_F32 ? 1e-6 : 5e-3),
       "%s, %d threads: gradient direction, cosine %.6f", pn, threads, dot / (n16 * n32));
    if (p != BF16_ONEDNN_F32)
        ok(l16 != l32, "%s: the loss is not fp32's (the products did round)", pn);
    ok(memcmp(again, g16, m16.n_params * sizeof *g16) == 0, "%s, %d threads: the same step twice "
       "gives the same gradient, bit for bit", pn, threads);

    /* One AdamW step with layer.0 frozen: the copy of exactly the trainable
     * matrices is refreshed, by the step itself. */
    AdamW opt;
    AdamConfig ac = { 0.9f, 0.999f, 1e-8f, 0.0f };
    adamw_create(&opt, &m16, ac, &e);
    int frozen = model_find_group(&m16, "layer.0");
    m16.groups[frozen].trainable = 0;
    size_t want = 0;
    for (int t = 0; t < m16.n_tensors; t++)
        if (m16.tensors[t].ndim == 2 && m16.groups[m16.tensors[t].group].trainable)
            want += m16.tensors[t].numel;
    size_t before = bf16_refreshed(m16.bf16);
    adamw_step(&opt, &m16, 1e-2f);
    ok(bf16_refreshed(m16.bf16) - before == want,
       "%s: an optimizer step refreshes its trainable matrices' copy only (%zu of %zu weights)",
       pn, bf16_refreshed(m16.bf16) - before, m16.n_params);
    double after = model_forward(&m16, &b);
    /* a fresh model given the same weights: its copy is made whole */
    Model fresh;
    make(&fresh, threads);
    model_set_precision(&fresh, PRECISION_BF16, &e);
    memcpy(fresh.params, m16.params, m16.n_params * sizeof(float));
    model_params_changed(&fresh);
    ok(model_forward(&fresh, &b) == after && after != l16,
       "%s: after the step the copy is the new weights' (loss %.6f)", pn, after);
    /* weights written by anything else are copied before the next forward */
    for (size_t i = 0; i < m16.n_params; i++)
        m16.params[i] *= 0.9f;
    model_params_changed(&m16);
    Model fresh2;
    make(&fresh2, threads);
    model_set_precision(&fresh2, PRECISION_BF16, &e);
    memcpy(fresh2.params, m16.params, m16.n_params * sizeof(float));
    ok(model_forward(&m16, &b) == model_forward(&fresh2, &b), "%s: model_params_changed reaches "
       "the copy", pn);
    model_free(&fresh2);
    model_set_precision(&m16, PRECISION_FP32, &e);
    model_set_precision(&m32, PRECISION_FP32, &e);
    memcpy(m32.params, m16.params, m16.n_params * sizeof(float));
    ok(model_forward(&m16, &b) == model_forward(&m32, &b), "%s: back to fp32, fp32's numbers", pn);
    adamw_free(&opt);
    model_free(&fresh);
    model_free(&m32);
    model_free(&m16);
    free(g32), free(g16), free(again);
}

int main(void)
{
    char isa[32];
    MnError e;
    test_rounding();
    int real = bf16_check(BF16_ONEDNN, isa, sizeof isa, &e) == 0;
    int dnnl = bf16_check(BF16_ONEDNN_F32, isa, sizeof isa, &e) == 0;
    diag("oneDNN: %s; ISA %s; bf16 products %s", dnnl ? "built" : "not built", isa,
         real ? "available" : "not available here");
    if (!real)
        ok(strstr(e.msg, "bf16") && (dnnl ? strstr(e.msg, "avx512_core_bf16") != NULL
                                          : strstr(e.msg, "libdnnl-dev") != NULL),
           "bf16 is refused with the reason: %s", e.msg);
    Bf16Path paths[3] = { BF16_EMULATE, BF16_ONEDNN_F32, BF16_ONEDNN };
    for (int i = 0; i < 3; i++) {
        if ((paths[i] == BF16_ONEDNN_F32 && !dnnl) || (paths[i] == BF16_ONEDNN && !real)) {
            diag("skipped: the %s path (%s)", bf16_path_name(paths[i]),
                 dnnl ? "this CPU has no bf16 products" : "built without oneDNN");
            continue;
        }
        test_gemm(paths[i]);
        test_linear(paths[i]);
        /* the model follows MNEME_BF16 */
        setenv("MNEME_BF16", bf16_path_name(paths[i]), 1);
        test_model(paths[i], 1);
        test_model(paths[i], 2);
    }
    return tap_done();
}
