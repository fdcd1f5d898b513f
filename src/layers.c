#include "layers.h"
#include "bf16.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Gradient outputs are never aliased with the tensors they are computed
 * from (a backward reads its inputs after it starts writing), so backward
 * passes take restrict pointers. Forwards that may run in place do not. */

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

/* Vectorisation. At -O2 gcc 12 vectorises only loops whose trip count is a
 * known multiple of the vector width (the "very cheap" cost model): none of
 * ours. The pragma gives this file the full cost model; VEC_CLONES builds
 * the heaviest loops three times (AVX-512, AVX2, baseline SSE2) and picks
 * one at load time, so the binary still runs on any x86-64. fp-contract
 * lets the AVX2 and AVX-512 clones fuse multiply-adds (-std=c11 turns
 * contraction off), so their results may differ from the baseline clone's
 * in the last bit. no-trapping-math lets the AVX2 clone turn selects
 * into blends (without it gcc 12 left the GELU loops scalar there: 13 ns
 * an element instead of 3.5); mneme never reads floating-point exception
 * flags. Left out of unoptimised (debug) builds. Every loop below is written to vectorise:
 * no calls into libm, branches as selects, and reductions split over
 * LANES independent partial sums (the vectoriser may not reorder a float
 * sum by itself). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic", "fp-contract=fast", "no-trapping-math")
#endif
#include "vec_clones.h"

#define LANES 16

/* ---- vectorisable elementary functions ---------------------------------- */

/* e^x for x <= 0 (softmax after max subtraction, Gaussian densities).
 * x = n ln2 + r with |r| <= ln2/2 (ln2 split in two so n ln2 is exact),
 * e^r by its degree-7 Taylor polynomial (truncation below 1e-8), 2^n built
 * in the exponent bits. Relative error under 1e-7 on [-87, 0]; below
 * -87.3 the result would be subnormal and is flushed to 0. NaN stays NaN. */
/* The core of exp_nonpos for -87.3 < x <= 0 (no range checks). */
static inline float exp_in_range(float xc)
{
    /* Adding and removing 1.5 * 2^23 rounds to an integer, as a plain
     * add so that it vectorises without SSE4.1 (no rintf). */
    const float magic = 12582912.0f;
    const float n = (xc * 1.44269504088896341f + magic) - magic;
    const float r = (xc - n * 0.693145751953125f) - n * 1.428606765330187e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float exp_nonpos(float x)
{
    const float lo = -87.3f;
    const float v = exp_in_range(x > lo ? x : lo);
    return x > lo ? v : x <= lo ? 0.0f : x;
}

/* The normal CDF Phi(x) = erfc(-x / sqrt 2) / 2 as one branch-free
 * expression, with e^(-x^2/2) as a by-product for the GELU derivative.
 * For a = |x| / sqrt 2:  erfc(a) = e^(-a^2) t Q(t),  t = 1 / (1 + a/2),
 * Q a degree-8 polynomial fitted for relative error 4e-8 on a in
 * [0, 9.5] (bench/fit_erfc.py, which also checks this code's float
 * arithmetic: GELU within 4e-7 absolute of double erf). Phi(x) for
 * x >= 0 is 1 - erfc(a)/2, for x < 0 erfc(a)/2: the small tail is never
 * computed as a difference, so it keeps its relative accuracy.
 * a is capped at 9 (|x| about 12.7), where erfc(a) / 2 is about 1e-37,
 * still a normal float: past it the result stays at that value instead of
 * going on towards 0 (an absolute error below 1e-36), and the exponential
 * needs no range checks. Below the cap the result is exactly as without. */
static inline float normal_cdf(float x, float *gauss)
{
    const float ax = fabsf(x) * INV_SQRT2;
    const float a = ax < 9.0f ? ax : 9.0f;
    const float t = 1.0f / (1.0f + 0.5f * a);
    float q = -5.889915780e-02f;
    q = q * t + 2.837377546e-01f;
    q = q * t - 4.854473619e-01f;
    q = q * t + 2.760392575e-01f;
    q = q * t - 2.521193236e-02f;
    q = q * t + 2.020811419e-01f;
    q = q * t + 2.432589087e-01f;
    q = q * t + 2.823536761e-01f;
    q = q * t + 2.820876704e-01f;
    const float g = exp_in_range(-(a * a));
    const float half_erfc = 0.5f * g * t * q;
    *gauss = g;
    return x < 0.0f ? half_erfc : 1.0f - half_erfc;
}

static inline float max_of(const float *restrict x, int n)
{
    float m = x[0];
    int j = 0;
    if (n >= LANES) {
        float acc[LANES];
        for (int l = 0; l < LANES; l++)
            acc[l] = x[l];
        for (j = LANES; j + LANES <= n; j += LANES)
            for (int l = 0; l < LANES; l++)
                acc[l] = x[j + l] > acc[l] ? x[j + l] : acc[l];
        m = acc[0];
        for (int l = 1; l < LANES; l++)
            m = acc[l] > m ? acc[l] : m;
    }
    for (; j < n; j++)
        m = x[j] > m ? x[j] : m;
    return m;
}

static inline float dot_f(const float *restrict x, const float *restrict y,
                          int n)
{
    float acc[LANES] = { 0 };
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += x[j + l] * y[j + l];
    float s = 0.0f;
    for (; j < n; j++)
        s += x[j] * y[j];
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

static inline float sum_f(const float *restrict x, int n)
{
    float acc[LANES] = { 0 };
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += x[j + l];
    float s = 0.0f;
    for (; j < n; j++)
        s += x[j];
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

static inline float sum_sq_dev_f(const float *restrict x, float m, int n)
{
    float acc[LANES] = { 0 };
    int j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++) {
            const float d = x[j + l] - m;
            acc[l] += d * d;
        }
    float s = 0.0f;
    for (; j < n; j++) {
        const float d = x[j] - m;
        s += d * d;
    }
    for (int l = 0; l < LANES; l++)
        s += acc[l];
    return s;
}

/* ---- linear ------------------------------------------------------------ */

void linear_forward_ld(struct Bf16Worker *bw, float *out, int ldo, const float *in, int ldi,
                       const float *W, const float *b, int N, int IC, int OC)
{
    if (N <= 0 || OC <= 0)
        return;
    /* Seeding out with the bias lets sgemm add it for free (beta = 1)
     * instead of a second pass over out. */
    float beta = 0.0f;
    if (b) {
        for (int i = 0; i < N; i++)
            memcpy(out + (long)i * ldo, b, (size_t)OC * sizeof *out);
        beta = 1.0f;
    }
    bf16_gemm(bw, 0, 1, N, OC, IC, in, ldi, W, IC, beta, out, ldo);
}

void linear_forward(struct Bf16Worker *bw, float *out, const float *in, const float *W,
                    const float *b, int N, int IC, int OC)
{
    linear_forward_ld(bw, out, OC, in, IC, W, b, N, IC, OC);
}

VEC_CLONES
static void bias_grad(float *restrict db, const float *restrict dout, int N,
                      int OC, int ld)
{
    /* Row by row keeps the inner loop contiguous. */
    for (int i = 0; i < N; i++) {
        const float *restrict d = dout + (long)i * ld;
        for (int o = 0; o < OC; o++)
            db[o] += d[o];
    }
}

void linear_backward_ld(struct Bf16Worker *bw, float *din, int ldd, float *dW, float *db,
                        const float *dout, int ldo, const float *in, int ldi, const float *W,
                        int N, int IC, int OC, float din_beta)
{
    if (N <= 0 || IC <= 0)
        return;
    if (OC <= 0) {
        if (din && din_beta == 0.0f)
            for (int i = 0; i < N; i++)
                memset(din + (long)i * ldd, 0, (size_t)IC * sizeof *din);
        return;
    }
    bf16_linear_backward(bw, din, ldd, din_beta, dW, dout, ldo, in, ldi, W, N, IC, OC);
    if (db)
        bias_grad(db, dout, N, OC, ldo);
}

void linear_backward(struct Bf16Worker *bw, float *din, float *dW, float *db, const float *dout,
                     const float *in, const float *W, int N, int IC, int OC)
{
    linear_backward_ld(bw, din, IC, dW, db, dout, OC, in, IC, W, N, IC, OC, 1.0f);
}

void linear_backward_set(struct Bf16Worker *bw, float *din, float *dW, float *db, const float *dout,
                         const float *in, const float *W, int N, int IC, int OC)
{
    linear_backward_ld(bw, din, IC, dW, db, dout, OC, in, IC, W, N, IC, OC, 0.0f);
}

/* ---- LoRA adapter on a linear ------------------------------------------- */

void lora_forward(float *y, int ldy, float *u, const float *x, const float *A,
                  const float *Bw, float s, int N, int IC, int OC, int r)
{
    if (N <= 0)
        return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, IC, 1.0f, x, IC, A, IC,
                0.0f, u, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, r, s, u, r, Bw, r,
                1.0f, y, ldy);
}

void lora_backward(float *dx, float *dA, float *dB, float *du, const float *dy, int ldy,
                   const float *x, const float *u, const float *A, const float *Bw,
                   float s, int N, int IC, int OC, int r)
{
    if (N <= 0)
        return;
    if (dB)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, r, N, s, dy, ldy, u, r,
                    1.0f, dB, r);
    if (!dA && !dx)
        return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, OC, s, dy, ldy, Bw, r,
                0.0f, du, r);
    if (dA)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, IC, N, 1.0f, du, r, x, IC,
                    1.0f, dA, IC);
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, r, 1.0f, du, r, A, IC,
                    1.0f, dx, IC);
}

/* ---- layernorm --------------------------------------------------------- */

/* Two passes (the mean, then the squared deviations from it), so a row
 * whose mean is large against its spread keeps the spread; the sums are in
 * float over LANES partial sums, whose rounding (about 1e-7 relative for
 * rows of a few hundred) is below what rounding the mean to float already
 * costs. Half the width of double sums and no conversions. */

VEC_CLONES
void layernorm_forward_eps(float *out, float *mean, float *rstd, const float *in,
                           const float *gamma, const float *beta, int N, int C, float eps)
{
    if (C <= 0)
        return;
    const float invC = 1.0f / (float)C;
    for (int i = 0; i < N; i++) {
        const float *x = in + (long)i * C;
        float *y = out + (long)i * C;
        const float m = sum_f(x, C) * invC;
        const float r = 1.0f / sqrtf(sum_sq_dev_f(x, m, C) * invC + eps);
        for (int j = 0; j < C; j++)
            y[j] = (x[j] - m) * r * gamma[j] + beta[j];
        mean[i] = m;
        rstd[i] = r;
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                       const float *gamma, const float *beta, int N, int C)
{
    layernorm_forward_eps(out, mean, rstd, in, gamma, beta, N, C, LAYERNORM_EPS);
}

/* One row's parameter gradients and the two sums din needs, in one pass:
 * dgamma += dy * xhat, dbeta += dy, *sg = sum(g), *sgx = sum(g * xhat)
 * with g = dy * gamma. */
__attribute__((always_inline))
static inline void layernorm_row_sums(float *restrict dgamma, float *restrict dbeta,
                                      const float *restrict dy, const float *restrict x,
                                      const float *restrict gamma, float m, float r, int C,
                                      float *sg, float *sgx)
{
    float acc_g[LANES] = { 0 }, acc_gx[LANES] = { 0 };
    int j = 0;
    for (; j + LANES <= C; j += LANES)
        for (int l = 0; l < LANES; l++) {
            const float xh = (x[j + l] - m) * r, d = dy[j + l], g = d * gamma[j + l];
            dbeta[j + l] += d;
            dgamma[j + l] += d * xh;
            acc_g[l] += g;
            acc_gx[l] += g * xh;
        }
    float s = 0.0f, sx = 0.0f;
    for (; j < C; j++) {
        const float xh = (x[j] - m) * r, d = dy[j], g = d * gamma[j];
        dbeta[j] += d;
        dgamma[j] += d * xh;
        s += g;
        sx += g * xh;
    }
    for (int l = 0; l < LANES; l++) {
        s += acc_g[l];
        sx += acc_gx[l];
    }
    *sg = s;
    *sgx = sx;
}

/* As layernorm_row_sums without the parameter gradients. */
__attribute__((always_inline))
static inline void layernorm_row_sums_din(const float *restrict dy, const float *restrict x,
                                          const float *restrict gamma, float m, float r,
                                          int C, float *sg, float *sgx)
{
    float acc_g[LANES] = { 0 }, acc_gx[LANES] = { 0 };
    int j = 0;
    for (; j + LANES <= C; j += LANES)
        for (int l = 0; l < LANES; l++) {
            const float g = dy[j + l] * gamma[j + l];
            acc_g[l] += g;
            acc_gx[l] += g * ((x[j + l] - m) * r);
        }
    float s = 0.0f, sx = 0.0f;
    for (; j < C; j++) {
        const float g = dy[j] * gamma[j];
        s += g;
        sx += g * ((x[j] - m) * r);
    }
    for (int l = 0; l < LANES; l++) {
        s += acc_g[l];
        sx += acc_gx[l];
    }
    *sg = s;
    *sgx = sx;
}

/* accumulate: din += (1) or din = (0); the loops are written out so that
 * each vectorises without a select. dsum (NULL: none; only with
 * accumulate 0) += the column sums of din, in the pass that writes it. */
VEC_CLONES
static void layernorm_backward_mode(float *restrict din, float *restrict dgamma,
                                    float *restrict dbeta, float *restrict dsum,
                                    const float *restrict dout,
                                    const float *restrict in,
                                    const float *restrict gamma,
                                    const float *restrict mean,
                                    const float *restrict rstd, int N, int C,
                                    int accumulate)
{
    if (C <= 0)
        return;
    const float invC = 1.0f / (float)C;
    const int fused = din && dgamma && dbeta;
    for (int i = 0; i < N; i++) {
        const float *restrict x = in + (long)i * C;
        const float *restrict dy = dout + (long)i * C;
        const float m = mean[i], r = rstd[i];
        float sg, sgx;
        if (fused) {
            layernorm_row_sums(dgamma, dbeta, dy, x, gamma, m, r, C, &sg, &sgx);
        } else {
            if (dbeta)
                for (int j = 0; j < C; j++)
                    dbeta[j] += dy[j];
            if (dgamma)
                for (int j = 0; j < C; j++)
                    dgamma[j] += dy[j] * (x[j] - m) * r;
            if (!din)
                continue;
            layernorm_row_sums_din(dy, x, gamma, m, r, C, &sg, &sgx);
        }
        /* din = r * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma */
        const float mg = sg * invC, mgx = sgx * invC;
        float *restrict dx = din + (long)i * C;
        if (accumulate)
            for (int k = 0; k < C; k++) {
                const float xhat = (x[k] - m) * r;
                dx[k] += r * (dy[k] * gamma[k] - mg - xhat * mgx);
            }
        else if (dsum)
            for (int k = 0; k < C; k++) {
                const float xhat = (x[k] - m) * r;
                const float v = r * (dy[k] * gamma[k] - mg - xhat * mgx);
                dx[k] = v;
                dsum[k] += v;
            }
        else
            for (int k = 0; k < C; k++) {
                const float xhat = (x[k] - m) * r;
                dx[k] = r * (dy[k] * gamma[k] - mg - xhat * mgx);
            }
    }
}

void layernorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                        const float *in, const float *gamma, const float *mean,
                        const float *rstd, int N, int C)
{
    layernorm_backward_mode(din, dgamma, dbeta, NULL, dout, in, gamma, mean, rstd, N, C, 1);
}

void layernorm_backward_set(float *din, float *dgamma, float *dbeta, const float *dout,
                            const float *in, const float *gamma, const float *mean,
                            const float *rstd, int N, int C)
{
    layernorm_backward_mode(din, dgamma, dbeta, NULL, dout, in, gamma, mean, rstd, N, C, 0);
}

void layernorm_backward_set_sum(float *din, float *dgamma, float *dbeta, float *dsum,
                                const float *dout, const float *in, const float *gamma,
                                const float *mean, const float *rstd, int N, int C)
{
    layernorm_backward_mode(din, dgamma, dbeta, din ? dsum : NULL, dout, in, gamma, mean, rstd,
                            N, C, 0);
}

/* ---- elementwise --------------------------------------------------------- */

/* gelu(x) = x Phi(x), Phi the standard normal CDF (= the erf form). */
VEC_CLONES
void gelu_forward(float *out, const float *in, int n)
{
    for (int i = 0; i < n; i++) {
        float gauss;
        const float x = in[i];
        out[i] = x * normal_cdf(x, &gauss);
    }
}

/* gelu'(x) = Phi(x) + x phi(x); one exponential serves both terms. */
static inline float gelu_grad(float x)
{
    float gauss;
    const float cdf = normal_cdf(x, &gauss);
    return cdf + x * (INV_SQRT_2PI * gauss);
}

/* Forward that also keeps gelu'(in) for the backward: the exponential and
 * the division it needs are computed once, here, instead of again in the
 * backward. */
VEC_CLONES
void gelu_forward_grad(float *out, float *deriv, const float *in, int n)
{
    for (int i = 0; i < n; i++) {
        float gauss;
        const float x = in[i];
        const float cdf = normal_cdf(x, &gauss);
        out[i] = x * cdf;
        deriv[i] = cdf + x * (INV_SQRT_2PI * gauss);
    }
}

/* The tanh form (Hugging Face "gelu_new"):
 * 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), and its
 * derivative 0.5 (1 + t) + 0.5 x (1 - t^2) u'(x). */
/* tanh(u) = (1 - e) / (1 + e) with e = e^(-2|u|), sign restored: one
 * exponential of a non-positive argument, which vectorises where libm's
 * tanhf does not. |u| is capped at 40, where tanh is 1 in float. */
static inline float tanh_vec(float u)
{
    const float a = fabsf(u) < 40.0f ? fabsf(u) : 40.0f;
    const float e = exp_in_range(-2.0f * a);
    const float t = (1.0f - e) / (1.0f + e);
    return u < 0.0f ? -t : t;
}

VEC_CLONES
void gelu_tanh_forward_grad(float *out, float *deriv, const float *in, int n)
{
    const float k = 0.7978845608028654f, c = 0.044715f;
    for (int i = 0; i < n; i++) {
        const float x = in[i];
        const float t = tanh_vec(k * (x + c * x * x * x));
        out[i] = 0.5f * x * (1.0f + t);
        deriv[i] = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * c * x * x);
    }
}

void relu_forward(float *out, const float *in, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void relu_backward(float *restrict din, const float *restrict dout, const float *restrict out,
                   int n)
{
    for (int i = 0; i < n; i++)
        din[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}

VEC_CLONES
void gelu_backward_cached(float *restrict d, const float *restrict deriv, int n)
{
    for (int i = 0; i < n; i++)
        d[i] *= deriv[i];
}

/* The bias gradient's column sums ride along with the multiply instead of
 * reading d again. */
VEC_CLONES
void gelu_backward_cached_bias(float *restrict d, float *restrict db,
                               const float *restrict deriv, int N, int K)
{
    for (long r = 0; r < N; r++) {
        float *restrict dr = d + r * K;
        const float *restrict dv = deriv + r * K;
        if (db)
            for (int i = 0; i < K; i++) {
                const float v = dr[i] * dv[i];
                dr[i] = v;
                db[i] += v;
            }
        else
            for (int i = 0; i < K; i++)
                dr[i] *= dv[i];
    }
}

VEC_CLONES
void gelu_backward(float *restrict din, const float *restrict dout,
                   const float *restrict in, int n)
{
    for (int i = 0; i < n; i++)
        din[i] += dout[i] * gelu_grad(in[i]);
}

VEC_CLONES
void gelu_backward_set(float *restrict din, const float *restrict dout,
                       const float *restrict in, int n)
{
    for (int i = 0; i < n; i++)
        din[i] = dout[i] * gelu_grad(in[i]);
}

void tanh_forward(float *out, const float *in, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = tanhf(in[i]);
}

void tanh_backward(float *restrict din, const float *restrict dout,
                   const float *restrict out, int n)
{
    for (int i = 0; i < n; i++)
        din[i] += dout[i] * (1.0f - out[i] * out[i]);
}

/* ---- embeddings -------------------------------------------------------- */

void embedding_forward(float *restrict out, const int *restrict ids,
                       const int *restrict types, const float *restrict word,
                       const float *restrict pos, const float *restrict type, int B,
                       int T, int C)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const long row = (long)b * T + t;
            const float *restrict w = word + (long)ids[row] * C;
            const float *restrict p = pos + (long)t * C;
            float *restrict y = out + row * C;
            if (type) {
                const float *restrict ty = type + (types ? (long)types[row] * C : 0);
                for (int j = 0; j < C; j++)
                    y[j] = w[j] + p[j] + ty[j];
            } else
                for (int j = 0; j < C; j++)
                    y[j] = w[j] + p[j];
        }
}

static void add_row(float *restrict dst, const float *restrict src, int C)
{
    for (int j = 0; j < C; j++)
        dst[j] += src[j];
}

void embedding_backward(float *restrict dword, float *restrict dpos,
                        float *restrict dtype, const float *restrict dout,
                        const int *restrict ids, const int *restrict types, int B, int T,
                        int C)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const long row = (long)b * T + t;
            const float *restrict d = dout + row * C;
            if (dword)
                add_row(dword + (long)ids[row] * C, d, C);
            if (dpos)
                add_row(dpos + (long)t * C, d, C);
            if (dtype)
                add_row(dtype + (types ? (long)types[row] * C : 0), d, C);
        }
}

/* Sequences of T + np rows: [CLS] (row 0, position 0), the np soft tokens
 * (rows 1..np: the learned vectors alone), then tokens 1..T-1 at rows
 * np+1.. with their own positions 1..T-1. */
void embedding_forward_prompt(float *restrict out, const int *restrict ids,
                              const int *restrict types, const float *restrict word,
                              const float *restrict pos, const float *restrict type,
                              const float *restrict prompt, int np, int B, int T, int C)
{
    const int Te = T + np;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Te; t++) {
            float *restrict y = out + ((long)b * Te + t) * C;
            if (t >= 1 && t <= np) {
                memcpy(y, prompt + (long)(t - 1) * C, (size_t)C * sizeof *y);
                continue;
            }
            const int s = t == 0 ? 0 : t - np;
            const long src = (long)b * T + s;
            const float *restrict w = word + (long)ids[src] * C;
            const float *restrict p = pos + (long)s * C;
            if (type) {
                const float *restrict ty = type + (types ? (long)types[src] * C : 0);
                for (int j = 0; j < C; j++)
                    y[j] = w[j] + p[j] + ty[j];
            } else
                for (int j = 0; j < C; j++)
                    y[j] = w[j] + p[j];
        }
}

void embedding_backward_prompt(float *restrict dword, float *restrict dpos,
                               float *restrict dtype, float *restrict dprompt,
                               const float *restrict dout, const int *restrict ids,
                               const int *restrict types, int np, int B, int T, int C)
{
    const int Te = T + np;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Te; t++) {
            const float *restrict d = dout + ((long)b * Te + t) * C;
            if (t >= 1 && t <= np) {
                if (dprompt)
                    add_row(dprompt + (long)(t - 1) * C, d, C);
                continue;
            }
            const int s = t == 0 ? 0 : t - np;
            const long src = (long)b * T + s;
            if (dword)
                add_row(dword + (long)ids[src] * C, d, C);
            if (dpos)
                add_row(dpos + (long)s * C, d, C);
            if (dtype)
                add_row(dtype + (types ? (long)types[src] * C : 0), d, C);
        }
}

/* ---- attention --------------------------------------------------------- */

/* OpenBLAS's small-matrix kernel for row-major A B^T (the scores Q K^T and
 * the backward's dO V^T) runs at well under half the speed of its plain
 * A B kernel at the shapes of one head (T, D <= 64: 1.04 against 0.43 us at
 * T = D = 32). Transposing the T x D key or value slice first (an exact
 * copy in 8 x 8 tiles) turns both into plain products: 1.17 -> 0.64 us at
 * T = D = 32, 3.03 -> 2.37 at T = 64, D = 32 (transpose included, operands
 * from a whole batch's qkv). Past the small-matrix kernel's range
 * (M N K > 100^3) OpenBLAS packs both operands anyway and the transpose
 * is pure cost (T = 128, D = 64: 19.0 -> 21.0 us), so it is skipped. */

static int transpose_pays(int M, int N, int K)
{
    return (double)M * N * K <= 1e6;
}

#ifdef HAVE_VEC_CLONES
#define TRANSPOSE_AVX 1
#include <immintrin.h>

/* dst rows j = src columns j of one 8 x 8 tile. */
__attribute__((target("avx"), always_inline))
static inline void transpose8_avx(float *dst, int ldd, const float *src, int lds)
{
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps(src + (long)i * lds);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(dst + (long)i * ldd, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
        _mm256_storeu_ps(dst + (long)(i + 4) * ldd,
                         _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
    }
}

/* The whole 8-row bands of rows x cols; returns the rows it did. */
__attribute__((target("avx")))
static int transpose_avx(float *dst, int ldd, const float *src, int lds, int rows, int cols)
{
    int r = 0;
    for (; r + 8 <= rows; r += 8) {
        int c = 0;
        for (; c + 8 <= cols; c += 8)
            transpose8_avx(dst + (long)c * ldd + r, ldd, src + (long)r * lds + c, lds);
        for (; c < cols; c++)
            for (int i = r; i < r + 8; i++)
                dst[(long)c * ldd + i] = src[(long)i * lds + c];
    }
    return r;
}
#endif

/* dst[c, r] = src[r, c] for a rows x cols block. */
static void transpose(float *restrict dst, int ldd, const float *restrict src, int lds,
                      int rows, int cols)
{
    int r = 0;
#ifdef TRANSPOSE_AVX
    if (__builtin_cpu_supports("avx"))
        r = transpose_avx(dst, ldd, src, lds, rows, cols);
#endif
    for (; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dst[(long)c * ldd + r] = src[(long)r * lds + c];
}

static int valid_len(const int *len, int b, int T)
{
    const int L = len[b];
    return L < 0 ? 0 : L > T ? T : L;
}

/* Softmax over the first L entries of each of n rows of length T; the
 * rest become exactly 0 so that padding keys neither receive probability
 * nor pass gradient. */
VEC_CLONES
static void softmax_rows_prefix(float *restrict P, int n, int L, int T)
{
    for (int t = 0; t < n; t++) {
        float *restrict p = P + (long)t * T;
        const float mx = max_of(p, L);
        /* the exponentials and their sum in one pass */
        float acc[LANES] = { 0 }, sum = 0.0f;
        int j = 0;
        for (; j + LANES <= L; j += LANES)
            for (int l = 0; l < LANES; l++) {
                const float e = exp_nonpos(p[j + l] - mx);
                p[j + l] = e;
                acc[l] += e;
            }
        for (; j < L; j++) {
            p[j] = exp_nonpos(p[j] - mx);
            sum += p[j];
        }
        for (int l = 0; l < LANES; l++)
            sum += acc[l];
        const float inv = 1.0f / sum;
        for (j = 0; j < L; j++)
            p[j] *= inv;
        for (j = L; j < T; j++)
            p[j] = 0.0f;
    }
}

/* dS = P * (dP - rowsum(dP * P)) over the first L columns of n rows: the
 * softmax backward, in place on dP. */
VEC_CLONES
static void softmax_rows_backward(float *restrict dS, const float *restrict P,
                                  int n, int L, int T)
{
    for (int t = 0; t < n; t++) {
        const float *restrict p = P + (long)t * T;
        float *restrict s = dS + (long)t * T;
        const float dot = dot_f(s, p, L);
        for (int j = 0; j < L; j++)
            s[j] = p[j] * (s[j] - dot);
    }
}

/* The attention of one batch, with np prefix keys and values (rows of pk
 * and pv, stride C) before each sequence's own: probabilities are rows of
 * width W = np + T, the prefix columns first. np = 0 is the plain
 * attention, the same products in the same order. Only the first nq
 * positions of each sequence query (nq = T: all of them); out and att
 * hold nq rows a sequence. */
static void attention_forward_np(float *out, float *att, const float *qkv, const int *len,
                                 const float *pk, const float *pv, int np, float *scratch,
                                 int B, int T, int nq, int C, int H)
{
    const int D = C / H, ld = 3 * C, W = np + T;
    const float scale = 1.0f / sqrtf((float)D);
    for (int b = 0; b < B; b++) {
        const int L = valid_len(len, b, T), Lt = np + L;
        const float *base = qkv + (long)b * T * ld;
        for (int h = 0; h < H; h++) {
            const float *q = base + h * D, *k = q + C, *v = q + 2 * C;
            float *P = att + ((long)b * H + h) * nq * W;
            float *o = out + (long)b * nq * C + h * D;
            if (Lt == 0) {
                /* No key to attend to: define the context as zero. */
                memset(P, 0, (size_t)nq * W * sizeof *P);
                for (int t = 0; t < nq; t++)
                    memset(o + (long)t * C, 0, (size_t)D * sizeof *o);
                continue;
            }
            /* Only the prefix and the L valid keys are scored; masked
             * columns are set to zero by the softmax. */
            if (np)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, np, D,
                            scale, q, ld, pk + h * D, C, 0.0f, P, W);
            if (L && transpose_pays(nq, L, D)) {
                float *kt = scratch;  /* K^T, D x L */
                transpose(kt, L, k, ld, L, D);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, L, D,
                            scale, q, ld, kt, L, 0.0f, P + np, W);
            } else if (L)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, L, D,
                            scale, q, ld, k, ld, 0.0f, P + np, W);
            softmax_rows_prefix(P, nq, Lt, W);
            if (np)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, np,
                            1.0f, P, W, pv + h * D, C, 0.0f, o, C);
            if (L)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, L,
                            1.0f, P + np, W, v, ld, np ? 1.0f : 0.0f, o, C);
        }
    }
}

void attention_forward(float *out, float *att, const float *qkv,
                       const int *len, float *scratch, int B, int T, int C, int H)
{
    attention_forward_np(out, att, qkv, len, NULL, NULL, 0, scratch, B, T, T, C, H);
}

void attention_forward_prefix(float *out, float *att, const float *qkv, const int *len,
                              const float *pk, const float *pv, int np, float *scratch,
                              int B, int T, int C, int H)
{
    attention_forward_np(out, att, qkv, len, pk, pv, np, scratch, B, T, T, C, H);
}

void attention_forward_first(float *out, float *att, const float *qkv, const int *len,
                             const float *pk, const float *pv, int np, float *scratch,
                             int B, int T, int nq, int C, int H)
{
    attention_forward_np(out, att, qkv, len, pk, pv, np, scratch, B, T, nq, C, H);
}

/* beta: 1 accumulates into dqkv, 0 overwrites it (then the entries that
 * no product reaches, keys past the valid length and queries past nq, are
 * zeroed here). One T x W scratch (dS) and one D x T (V^T) serve every
 * (sequence, head) in turn, so they stay in cache.
 * dpk, dpv (the prefix's gradients, stride C) always accumulate; NULL
 * skips them. dout and att hold nq rows a sequence, as the forward's. */
static void attention_backward_beta(float *dqkv, float *dpk, float *dpv, const float *dout,
                                    const float *qkv, const float *att, const int *len,
                                    const float *pk, const float *pv, int np, float *scratch,
                                    int B, int T, int nq, int C, int H, float beta)
{
    const int D = C / H, ld = 3 * C, W = np + T;
    const float scale = 1.0f / sqrtf((float)D);
    float *dS = scratch, *vt = scratch + (long)T * W;
    for (int b = 0; b < B; b++) {
        const int L = valid_len(len, b, T), Lt = np + L;
        const float *base = qkv + (long)b * T * ld;
        float *dbase = dqkv + (long)b * T * ld;
        if (beta == 0.0f) {
            for (int t = L; t < T; t++)
                memset(dbase + (long)t * ld + C, 0, 2 * (size_t)C * sizeof *dbase);
            for (int t = Lt == 0 ? 0 : nq; t < T; t++)
                memset(dbase + (long)t * ld, 0, (size_t)C * sizeof *dbase);
        }
        if (Lt == 0)
            continue;
        for (int h = 0; h < H; h++) {
            const float *q = base + h * D, *k = q + C, *v = q + 2 * C;
            float *dq = dbase + h * D, *dk = dq + C, *dv = dq + 2 * C;
            const float *P = att + ((long)b * H + h) * nq * W;
            const float *dO = dout + (long)b * nq * C + h * D;

            /* Masked keys have zero probability, so only the first L rows
             * of dK, dV and columns of dP, dS can be nonzero. */
            if (L)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, D, nq,
                            1.0f, P + np, W, dO, C, beta, dv, ld);
            if (np && dpv)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, np, D, nq,
                            1.0f, P, W, dO, C, 1.0f, dpv + h * D, C);
            if (np)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, np, D,
                            1.0f, dO, C, pv + h * D, C, 0.0f, dS, W);
            if (L && transpose_pays(nq, L, D)) {
                transpose(vt, L, v, ld, L, D);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, L, D,
                            1.0f, dO, C, vt, L, 0.0f, dS + np, W);
            } else if (L)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, L, D,
                            1.0f, dO, C, v, ld, 0.0f, dS + np, W);
            softmax_rows_backward(dS, P, nq, Lt, W);
            if (np)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, np,
                            scale, dS, W, pk + h * D, C, beta, dq, ld);
            if (L)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, D, L,
                            scale, dS + np, W, k, ld, np ? 1.0f : beta, dq, ld);
            if (L)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, D, nq,
                            scale, dS + np, W, q, ld, beta, dk, ld);
            if (np && dpk)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, np, D, nq,
                            scale, dS, W, q, ld, 1.0f, dpk + h * D, C);
        }
    }
}

void attention_backward(float *dqkv, const float *dout, const float *qkv,
                        const float *att, const int *len, float *scratch,
                        int B, int T, int C, int H)
{
    attention_backward_beta(dqkv, NULL, NULL, dout, qkv, att, len, NULL, NULL, 0, scratch,
                            B, T, T, C, H, 1.0f);
}

void attention_backward_set(float *dqkv, const float *dout, const float *qkv,
                            const float *att, const int *len, float *scratch,
                            int B, int T, int C, int H)
{
    attention_backward_beta(dqkv, NULL, NULL, dout, qkv, att, len, NULL, NULL, 0, scratch,
                            B, T, T, C, H, 0.0f);
}

void attention_backward_prefix_set(float *dqkv, float *dpk, float *dpv, const float *dout,
                                   const float *qkv, const float *att, const int *len,
                                   const float *pk, const float *pv, int np, float *scratch,
                                   int B, int T, int C, int H)
{
    attention_backward_beta(dqkv, dpk, dpv, dout, qkv, att, len, pk, pv, np, scratch,
                            B, T, T, C, H, 0.0f);
}

void attention_backward_first_set(float *dqkv, float *dpk, float *dpv, const float *dout,
                                  const float *qkv, const float *att, const int *len,
                                  const float *pk, const float *pv, int np, float *scratch,
                                  int B, int T, int nq, int C, int H)
{
    attention_backward_beta(dqkv, dpk, dpv, dout, qkv, att, len, pk, pv, np, scratch,
                            B, T, nq, C, H, 0.0f);
}

/* ---- softmax cross-entropy --------------------------------------------- */

double softmax_xent_forward(float *restrict probs,
                            const float *restrict logits,
                            const int *restrict labels, int N, int K)
{
    double loss = 0.0;
    for (int i = 0; i < N; i++) {
        const float *restrict z = logits + (long)i * K;
        float *restrict p = probs + (long)i * K;
        float mx = z[0];
        for (int j = 1; j < K; j++)
            mx = z[j] > mx ? z[j] : mx;
        float s = 0.0f;
        for (int j = 0; j < K; j++) {
            p[j] = expf(z[j] - mx);
            s += p[j];
        }
        const float inv = 1.0f / s;
        for (int j = 0; j < K; j++)
            p[j] *= inv;
        /* From the logits rather than log(p): stays finite when the
         * label's probability underflows. */
        if (labels[i] >= 0)
            loss += log((double)s) + (double)mx - (double)z[labels[i]];
    }
    return loss;
}

void softmax_xent_backward(float *restrict dlogits,
                           const float *restrict probs,
                           const int *restrict labels, int N, int K,
                           float scale)
{
    for (int i = 0; i < N; i++) {
        if (labels[i] < 0)
            continue;
        const float *restrict p = probs + (long)i * K;
        float *restrict d = dlogits + (long)i * K;
        for (int j = 0; j < K; j++)
            d[j] += scale * p[j];
        d[labels[i]] -= scale;
    }
}
