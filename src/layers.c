#include "layers.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Gradient outputs are never aliased with the tensors they are computed
 * from (a backward reads its inputs after it starts writing), so backward
 * passes take restrict pointers. Forwards that may run in place do not. */

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

/* ---- linear ------------------------------------------------------------ */

void linear_forward(float *out, const float *in, const float *W,
                    const float *b, int N, int IC, int OC)
{
    if (N <= 0 || OC <= 0)
        return;
    /* Seeding out with the bias lets sgemm add it for free (beta = 1)
     * instead of a second pass over out. */
    float beta = 0.0f;
    if (b) {
        for (int i = 0; i < N; i++)
            memcpy(out + (long)i * OC, b, (size_t)OC * sizeof *out);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, IC, 1.0f,
                in, IC, W, IC, beta, out, OC);
}

static void bias_grad(float *restrict db, const float *restrict dout, int N,
                      int OC)
{
    /* Row by row keeps the inner loop contiguous. */
    for (int i = 0; i < N; i++) {
        const float *restrict d = dout + (long)i * OC;
        for (int o = 0; o < OC; o++)
            db[o] += d[o];
    }
}

void linear_backward(float *din, float *dW, float *db, const float *dout,
                     const float *in, const float *W, int N, int IC, int OC)
{
    if (N <= 0 || OC <= 0 || IC <= 0)
        return;
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, IC, OC,
                    1.0f, dout, OC, W, IC, 1.0f, din, IC);
    if (dW)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N,
                    1.0f, dout, OC, in, IC, 1.0f, dW, IC);
    if (db)
        bias_grad(db, dout, N, OC);
}

/* ---- layernorm --------------------------------------------------------- */

/* Statistics are summed in double: a row whose mean is large against its
 * spread would otherwise lose the spread to rounding in the mean, and a
 * scalar reduction costs the same in either precision. */

void layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                       const float *gamma, const float *beta, int N, int C)
{
    if (C <= 0)
        return;
    const double invC = 1.0 / C;
    for (int i = 0; i < N; i++) {
        const float *x = in + (long)i * C;
        float *y = out + (long)i * C;
        double s = 0.0;
        for (int j = 0; j < C; j++)
            s += x[j];
        const float m = (float)(s * invC);
        double ss = 0.0;
        for (int j = 0; j < C; j++) {
            const float d = x[j] - m;
            ss += (double)d * d;
        }
        const float r = (float)(1.0 / sqrt(ss * invC + LAYERNORM_EPS));
        for (int j = 0; j < C; j++)
            y[j] = (x[j] - m) * r * gamma[j] + beta[j];
        mean[i] = m;
        rstd[i] = r;
    }
}

void layernorm_backward(float *restrict din, float *restrict dgamma,
                        float *restrict dbeta, const float *restrict dout,
                        const float *restrict in,
                        const float *restrict gamma,
                        const float *restrict mean,
                        const float *restrict rstd, int N, int C)
{
    if (C <= 0)
        return;
    const float invC = 1.0f / (float)C;
    for (int i = 0; i < N; i++) {
        const float *restrict x = in + (long)i * C;
        const float *restrict dy = dout + (long)i * C;
        const float m = mean[i], r = rstd[i];
        if (dbeta)
            for (int j = 0; j < C; j++)
                dbeta[j] += dy[j];
        if (dgamma)
            for (int j = 0; j < C; j++)
                dgamma[j] += dy[j] * (x[j] - m) * r;
        if (!din)
            continue;
        /* din = r * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma */
        double sg = 0.0, sgx = 0.0;
        for (int j = 0; j < C; j++) {
            const float g = dy[j] * gamma[j];
            sg += g;
            sgx += (double)g * ((x[j] - m) * r);
        }
        const float mg = (float)sg * invC, mgx = (float)sgx * invC;
        float *restrict dx = din + (long)i * C;
        for (int j = 0; j < C; j++) {
            const float xhat = (x[j] - m) * r;
            dx[j] += r * (dy[j] * gamma[j] - mg - xhat * mgx);
        }
    }
}

/* ---- elementwise --------------------------------------------------------- */

/* 1 + erf(z) is computed as erfc(-z): the same value, without the
 * cancellation that leaves large negative inputs with no correct digits. */
void gelu_forward(float *out, const float *in, int n)
{
    for (int i = 0; i < n; i++) {
        const float x = in[i];
        out[i] = 0.5f * x * erfcf(-x * INV_SQRT2);
    }
}

void gelu_backward(float *restrict din, const float *restrict dout,
                   const float *restrict in, int n)
{
    for (int i = 0; i < n; i++) {
        const float x = in[i];
        const float cdf = 0.5f * erfcf(-x * INV_SQRT2);
        const float pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
        din[i] += dout[i] * (cdf + x * pdf);
    }
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
                       const float *restrict word, const float *restrict pos,
                       const float *restrict type, int B, int T, int C)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const long row = (long)b * T + t;
            const float *restrict w = word + (long)ids[row] * C;
            const float *restrict p = pos + (long)t * C;
            float *restrict y = out + row * C;
            for (int j = 0; j < C; j++)
                y[j] = w[j] + p[j] + type[j];
        }
}

static void add_row(float *restrict dst, const float *restrict src, int C)
{
    for (int j = 0; j < C; j++)
        dst[j] += src[j];
}

void embedding_backward(float *restrict dword, float *restrict dpos,
                        float *restrict dtype, const float *restrict dout,
                        const int *restrict ids, int B, int T, int C)
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
                add_row(dtype, d, C);
        }
}

/* ---- attention --------------------------------------------------------- */

static int valid_len(const int *len, int b, int T)
{
    const int L = len[b];
    return L < 0 ? 0 : L > T ? T : L;
}

/* Softmax over the first L entries of a row; the rest become exactly 0 so
 * that padding keys neither receive probability nor pass gradient. */
static void softmax_prefix(float *restrict p, int L, int T)
{
    float mx = p[0];
    for (int j = 1; j < L; j++)
        mx = p[j] > mx ? p[j] : mx;
    float s = 0.0f;
    for (int j = 0; j < L; j++) {
        p[j] = expf(p[j] - mx);
        s += p[j];
    }
    const float inv = 1.0f / s;
    for (int j = 0; j < L; j++)
        p[j] *= inv;
    for (int j = L; j < T; j++)
        p[j] = 0.0f;
}

void attention_forward(float *out, float *att, const float *qkv,
                       const int *len, int B, int T, int C, int H)
{
    const int D = C / H, ld = 3 * C;
    const float scale = 1.0f / sqrtf((float)D);
    for (int b = 0; b < B; b++) {
        const int L = valid_len(len, b, T);
        const float *base = qkv + (long)b * T * ld;
        for (int h = 0; h < H; h++) {
            const float *q = base + h * D, *k = q + C, *v = q + 2 * C;
            float *P = att + ((long)b * H + h) * T * T;
            float *o = out + (long)b * T * C + h * D;
            if (L == 0) {
                /* No key to attend to: define the context as zero. */
                memset(P, 0, (size_t)T * T * sizeof *P);
                for (int t = 0; t < T; t++)
                    memset(o + (long)t * C, 0, (size_t)D * sizeof *o);
                continue;
            }
            /* Only the L valid keys are scored; masked columns are set to
             * zero by the softmax. */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, L, D,
                        scale, q, ld, k, ld, 0.0f, P, T);
            for (int t = 0; t < T; t++)
                softmax_prefix(P + (long)t * T, L, T);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, L,
                        1.0f, P, T, v, ld, 0.0f, o, C);
        }
    }
}

void attention_backward(float *dqkv, const float *dout, const float *qkv,
                        const float *att, const int *len, float *scratch,
                        int B, int T, int C, int H)
{
    const int D = C / H, ld = 3 * C;
    const float scale = 1.0f / sqrtf((float)D);
    for (int b = 0; b < B; b++) {
        const int L = valid_len(len, b, T);
        if (L == 0)
            continue;
        const float *base = qkv + (long)b * T * ld;
        float *dbase = dqkv + (long)b * T * ld;
        for (int h = 0; h < H; h++) {
            const float *q = base + h * D, *k = q + C, *v = q + 2 * C;
            float *dq = dbase + h * D, *dk = dq + C, *dv = dq + 2 * C;
            const float *P = att + ((long)b * H + h) * T * T;
            const float *dO = dout + (long)b * T * C + h * D;
            float *dS = scratch + ((long)b * H + h) * T * T;

            /* Masked keys have zero probability, so only the first L rows
             * of dK, dV and columns of dP, dS can be nonzero. */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, D, T,
                        1.0f, P, T, dO, C, 1.0f, dv, ld);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, L, D,
                        1.0f, dO, C, v, ld, 0.0f, dS, T);
            for (int t = 0; t < T; t++) {
                const float *restrict p = P + (long)t * T;
                float *restrict s = dS + (long)t * T;
                float dot = 0.0f;
                for (int j = 0; j < L; j++)
                    dot += s[j] * p[j];
                for (int j = 0; j < L; j++)
                    s[j] = p[j] * (s[j] - dot);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, L,
                        scale, dS, T, k, ld, 1.0f, dq, ld);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, D, T,
                        scale, dS, T, q, ld, 1.0f, dk, ld);
        }
    }
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
