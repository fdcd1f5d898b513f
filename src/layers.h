/* Forward/backward pairs for every layer kind of the encoder.
 *
 * Conventions (as in PyTorch, so weights interchange):
 *  - activations are row-major [N, C] with N = batch * seq rows;
 *  - linear weights are [out, in]; y = x W^T + b;
 *  - every backward ACCUMULATES (+=) into its gradient outputs; the caller
 *    zeroes gradient buffers once per step. A NULL gradient output means
 *    "not needed": its work is skipped (frozen weights, or no input grad
 *    below the first trainable layer).
 *  - the *_set variants WRITE (=) their input-gradient output instead, so
 *    a caller with a fresh buffer need not zero it first (one pass less
 *    over activations that do not fit in cache); their weight gradients
 *    still accumulate.
 *  - nothing here allocates; scratch space is passed in.
 *  - the linears' bw is a worker's bf16 context (bf16.h): their matrix
 *    products then take bf16 inputs; NULL computes them in fp32. */
#ifndef MNEME_LAYERS_H
#define MNEME_LAYERS_H

struct Bf16Worker;

/* out[N, OC] = in[N, IC] @ W[OC, IC]^T + b[OC]  (b may be NULL) */
void linear_forward(struct Bf16Worker *bw, float *out, const float *in, const float *W,
                    const float *b, int N, int IC, int OC);
/* din[N, IC] += dout @ W;  dW[OC, IC] += dout^T @ in;  db[OC] += sum_rows dout */
void linear_backward(struct Bf16Worker *bw, float *din, float *dW, float *db, const float *dout,
                     const float *in, const float *W, int N, int IC, int OC);

/* The same with row strides (ldo, ldi, ldd: elements between rows of
 * out, in, din), for products over a subset of rows or columns, and
 * din = din_beta * din + dout @ W. */
void linear_forward_ld(struct Bf16Worker *bw, float *out, int ldo, const float *in, int ldi,
                       const float *W, const float *b, int N, int IC, int OC);
void linear_backward_ld(struct Bf16Worker *bw, float *din, int ldd, float *dW, float *db,
                        const float *dout, int ldo, const float *in, int ldi, const float *W,
                        int N, int IC, int OC, float din_beta);

/* din[N, IC] = dout @ W; dW, db as linear_backward */
void linear_backward_set(struct Bf16Worker *bw, float *din, float *dW, float *db, const float *dout,
                         const float *in, const float *W, int N, int IC, int OC);

/* LoRA on a linear (Hu et al.; as Hugging Face PEFT without dropout):
 *   y[N, OC] (row stride ldy) += s * (x[N, IC] @ A[r, IC]^T) @ B[OC, r]^T
 * u[N, r] = x @ A^T is written for the backward. */
void lora_forward(float *y, int ldy, float *u, const float *x, const float *A,
                  const float *Bw, float s, int N, int IC, int OC, int r);
/* Given dy = d(y) (stride ldy): dB += s dy^T u; du = s dy B (scratch
 * [N, r], written); dA += du^T x; dx[N, IC] += du A. dA, dB, dx may each be
 * NULL (not needed). */
void lora_backward(float *dx, float *dA, float *dB, float *du, const float *dy, int ldy,
                   const float *x, const float *u, const float *A, const float *Bw,
                   float s, int N, int IC, int OC, int r);

/* out = (in - mean) * rstd * gamma + beta over the last dim C; stores mean
 * and rstd [N] for the backward. eps as BERT: 1e-12. */
#define LAYERNORM_EPS 1e-12f
void layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                       const float *gamma, const float *beta, int N, int C);
/* The same with the model's own eps (config.json's layer_norm_eps). */
void layernorm_forward_eps(float *out, float *mean, float *rstd, const float *in,
                           const float *gamma, const float *beta, int N, int C, float eps);
void layernorm_backward(float *din, float *dgamma, float *dbeta,
                        const float *dout, const float *in, const float *gamma,
                        const float *mean, const float *rstd, int N, int C);
void layernorm_backward_set(float *din, float *dgamma, float *dbeta,
                            const float *dout, const float *in, const float *gamma,
                            const float *mean, const float *rstd, int N, int C);
/* layernorm_backward_set, and dsum[C] += the column sums of din (the bias
 * gradient of the linear layer whose output gradient din is), computed as
 * din is written. dsum may be NULL. */
void layernorm_backward_set_sum(float *din, float *dgamma, float *dbeta, float *dsum,
                                const float *dout, const float *in, const float *gamma,
                                const float *mean, const float *rstd, int N, int C);

/* GELU, erf form: 0.5 x (1 + erf(x / sqrt 2)). In-place allowed for forward. */
void gelu_forward(float *out, const float *in, int n);
/* din += dout * gelu'(in) */
void gelu_backward(float *din, const float *dout, const float *in, int n);
/* din = dout * gelu'(in) */
void gelu_backward_set(float *din, const float *dout, const float *in, int n);
/* out = gelu(in) and deriv = gelu'(in); deriv may be in (in place) */
void gelu_forward_grad(float *out, float *deriv, const float *in, int n);
/* The tanh approximation (Hugging Face's gelu_new and
 * gelu_pytorch_tanh), with its derivative as gelu_forward_grad. */
void gelu_tanh_forward_grad(float *out, float *deriv, const float *in, int n);
/* d *= deriv (from gelu_forward_grad): the backward in place, d holding
 * d(out) on entry and d(in) on return */
void gelu_backward_cached(float *d, const float *deriv, int n);
/* gelu_backward_cached over N rows of K, and db[K] += the column sums of
 * the result (the bias gradient); db may be NULL. */
void gelu_backward_cached_bias(float *d, float *db, const float *deriv, int N, int K);

/* max(x, 0); backward from the forward output: din += dout * (out > 0) */
void relu_forward(float *out, const float *in, int n);
void relu_backward(float *din, const float *dout, const float *out, int n);

/* tanh; backward uses the forward output: din += dout * (1 - out^2) */
void tanh_forward(float *out, const float *in, int n);
void tanh_backward(float *din, const float *dout, const float *out, int n);

/* Embeddings: out[b*T+t] = word[ids[b*T+t]] + pos[t] + type[types[b*T+t]].
 * types NULL: every token has type 0; type NULL: the model has no token
 * type embeddings (DistilBERT). */
void embedding_forward(float *out, const int *ids, const int *types, const float *word,
                       const float *pos, const float *type, int B, int T, int C);
/* Scatter-add of dout into the tables (each may be NULL when frozen). */
void embedding_backward(float *dword, float *dpos, float *dtype,
                        const float *dout, const int *ids, const int *types, int B, int T,
                        int C);

/* Prompt tuning: sequences of T + np rows, [CLS] at row 0, the np soft
 * tokens prompt[np, C] at rows 1..np (the vectors alone: no position or
 * token type added), then ids' tokens 1..T-1 at rows np+1.. with their
 * own position embeddings 1..T-1. ids are [B, T]. */
void embedding_forward_prompt(float *out, const int *ids, const int *types,
                              const float *word, const float *pos, const float *type,
                              const float *prompt, int np, int B, int T, int C);
/* As embedding_backward, dprompt[np, C] += the soft tokens' rows. */
void embedding_backward_prompt(float *dword, float *dpos, float *dtype, float *dprompt,
                               const float *dout, const int *ids, const int *types, int np,
                               int B, int T, int C);

/* Multi-head self-attention core (after the Q/K/V projections, before the
 * output dense):
 *   qkv  [B*T, 3C]  each row is q (C) | k (C) | v (C); head h uses columns
 *                   h*D .. h*D+D-1 of each part, D = C / H.
 *   len  [B]        valid length of each sequence; keys at t >= len[b] are
 *                   masked out (probability exactly 0). Query rows past len
 *                   are computed too but only ever attend to valid keys.
 *   att  [B, H, T, T] softmax probabilities, kept for the backward.
 *   out  [B*T, C]   context, heads concatenated.
 *   scratch          ATTENTION_SCRATCH(T, D) floats of workspace.
 * Scores are scaled by 1/sqrt(D). Matrix products through cblas_sgemm. */
void attention_forward(float *out, float *att, const float *qkv,
                       const int *len, float *scratch, int B, int T, int C, int H);
/* Prefix tuning: as attention_forward with np learned keys pk[np, C] and
 * values pv[np, C] (head h: columns h*D ..) before every sequence's own,
 * never masked; att is [B, H, T, np + T], the prefix columns first. */
void attention_forward_prefix(float *out, float *att, const float *qkv, const int *len,
                              const float *pk, const float *pv, int np, float *scratch,
                              int B, int T, int C, int H);
/* dqkv [B*T, 3C] += gradient w.r.t. qkv.
 * scratch: ATTENTION_SCRATCH(T, D) floats of workspace (a T x T and a
 * D x T matrix, reused for every sequence and head), D = C / H. */
#define ATTENTION_SCRATCH(T, D) ((long)(T) * ((T) + (D)))
void attention_backward(float *dqkv, const float *dout, const float *qkv,
                        const float *att, const int *len, float *scratch,
                        int B, int T, int C, int H);
/* dqkv [B*T, 3C] = gradient w.r.t. qkv (every entry written) */
void attention_backward_set(float *dqkv, const float *dout, const float *qkv,
                            const float *att, const int *len, float *scratch,
                            int B, int T, int C, int H);
/* dqkv = gradient w.r.t. qkv (written); dpk, dpv [np, C] += the prefix's
 * gradients (NULL: skipped). scratch: ATTENTION_PREFIX_SCRATCH(T, np, D),
 * which also serves attention_forward_prefix. */
#define ATTENTION_PREFIX_SCRATCH(T, np, D) ((long)(T) * ((T) + (np) + (D)))
void attention_backward_prefix_set(float *dqkv, float *dpk, float *dpv, const float *dout,
                                   const float *qkv, const float *att, const int *len,
                                   const float *pk, const float *pv, int np, float *scratch,
                                   int B, int T, int C, int H);

/* As attention_forward_prefix (np = 0: plain attention) with only the
 * first nq positions of each sequence as queries (nq = 1: the [CLS] row,
 * all the last block's output the pooler reads): out is [B*nq, C] and
 * att [B, H, nq, np + T]; keys and values are all T positions. */
void attention_forward_first(float *out, float *att, const float *qkv, const int *len,
                             const float *pk, const float *pv, int np, float *scratch,
                             int B, int T, int nq, int C, int H);
/* Its backward: dqkv [B*T, 3C] written (query rows past nq: zero), dout
 * [B*nq, C]; dpk, dpv as attention_backward_prefix_set. */
void attention_backward_first_set(float *dqkv, float *dpk, float *dpv, const float *dout,
                                  const float *qkv, const float *att, const int *len,
                                  const float *pk, const float *pv, int np, float *scratch,
                                  int B, int T, int nq, int C, int H);

/* Softmax cross-entropy over rows of logits [N, K]: writes probs [N, K]
 * (numerically stable) and returns the SUM of -log p[label] over rows with
 * label >= 0; rows with label < 0 are ignored (probs still written). */
double softmax_xent_forward(float *probs, const float *logits,
                            const int *labels, int N, int K);
/* dlogits += scale * (probs - onehot(label)), for rows with label >= 0 */
void softmax_xent_backward(float *dlogits, const float *probs,
                           const int *labels, int N, int K, float scale);

#endif
