/* model.precision = "bf16": the matrix products of the forward and
 * backward passes take bfloat16 inputs and accumulate in fp32 (oneDNN's
 * matmul), everything else stays fp32.
 *
 * A Bf16 belongs to a model. It keeps a bf16 mirror of the model's fp32
 * parameters (every matrix: the weights a product reads), refreshed from
 * them range by range after they change, and one Bf16Worker per worker of
 * the model's step: its oneDNN stream, its primitives (one per shape,
 * made at the first product of that shape and reused after), and the
 * scratch its activations are converted into. An operand that lies in the
 * parameters is read from the mirror; any other is converted at the call.
 *
 * Three paths compute the same thing:
 *   BF16_ONEDNN      bf16 primitives: needs a CPU with AVX512-BF16 or AMX
 *   BF16_EMULATE     inputs rounded to bf16, products by OpenBLAS's sgemm
 *                    in fp32: bf16's numbers on any CPU, slowly (a product
 *                    of two bf16 values is exact in fp32, so only the
 *                    order of the fp32 sums differs from BF16_ONEDNN)
 *   BF16_ONEDNN_F32  the oneDNN path with fp32 data: its shapes, strides
 *                    and caching checked on a CPU without bf16 (tests)
 * MNEME_BF16=emulate or MNEME_BF16=onednn-f32 chooses one of the last two. */
#ifndef MNEME_BF16_H
#define MNEME_BF16_H
#include <stddef.h>
#include <stdint.h>
#include "error.h"

enum { PRECISION_FP32, PRECISION_BF16 };

typedef enum { BF16_ONEDNN, BF16_EMULATE, BF16_ONEDNN_F32 } Bf16Path;

#define BF16_MAX_WORKERS 64

typedef struct Bf16 Bf16;
typedef struct Bf16Worker Bf16Worker;

/* "fp32" or "bf16" to PRECISION_*; -1 for anything else. */
int precision_parse(const char *s);
const char *precision_name(int precision);

/* Round to nearest even, as oneDNN and every bf16 unit do; a NaN stays a
 * (quiet) NaN. A select, not a branch, so that loops over it vectorise. */
static inline uint16_t bf16_from_float(float f)
{
    union { float f; uint32_t u; } v = { f };
    uint32_t rounded = (v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16;
    uint32_t nan = (v.u >> 16) | 0x40u;
    return (uint16_t)((v.u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

static inline float bf16_to_float(uint16_t h)
{
    union { uint32_t u; float f; } v = { (uint32_t)h << 16 };
    return v.f;
}

/* The path MNEME_BF16 asks for (BF16_ONEDNN when unset); -1 with why in e
 * for a value it does not know. */
int bf16_path_from_env(Bf16Path *path, MnError *e);
const char *bf16_path_name(Bf16Path path);

/* Whether this build and CPU can take the path; when not, e says why
 * (no oneDNN in this build, a CPU without bf16 products). isa gets the
 * instruction set oneDNN runs (for example "avx512_core_bf16"), or
 * "none" without oneDNN. */
int bf16_check(Bf16Path path, char *isa, size_t n, MnError *e);

/* The mirror of params[0, n) and a worker context for each of up to
 * BF16_MAX_WORKERS workers (made when first used). NULL with e on
 * failure. The whole mirror starts stale: call bf16_refresh. */
Bf16 *bf16_create(Bf16Path path, const float *params, size_t n, MnError *e);
void bf16_free(Bf16 *b);
Bf16Path bf16_path(const Bf16 *b);
/* What the products run as, for headers and reports: "fp32" for a NULL
 * b, else for example "bf16 avx512_core_amx", "bf16 emulated",
 * "bf16 onednn-f32". */
void bf16_describe(const Bf16 *b, char *out, size_t n);

/* The mirror of params[off, off + n) from the parameters. Threads may
 * refresh disjoint ranges at once. */
void bf16_refresh(Bf16 *b, size_t off, size_t n);
/* Elements refreshed so far (tests: frozen weights are not refreshed). */
size_t bf16_refreshed(const Bf16 *b);

/* Worker i's context, made on its first use: only worker i may use it.
 * NULL when it cannot be made (out of memory); bf16_gemm then computes
 * in fp32. */
Bf16Worker *bf16_worker(Bf16 *b, int i);
/* Threads each of worker's primitives may use: 0 leaves oneDNN's default
 * (OMP_NUM_THREADS); a model with several workers sets 1, since its
 * workers already take the cores. */
void bf16_set_primitive_threads(Bf16 *b, int n);

/* C[M, N] = op(A)[M, K] op(B)[K, N] + beta C, row-major as cblas_sgemm
 * with alpha 1: op(X) is X, or its transpose when tX. beta is 0 or 1.
 * With w NULL, OpenBLAS's sgemm in fp32. */
void bf16_gemm(Bf16Worker *w, int tA, int tB, int M, int N, int K, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc);

/* A linear layer's two backward products, din = din_beta din + dout W and
 * dW += dout^T in (row strides ldd, ldo, ldi; W [OC, IC]), its output
 * gradient converted once for both: the same numbers as two bf16_gemm. */
void bf16_linear_backward(Bf16Worker *w, float *din, int ldd, float din_beta, float *dW,
                          const float *dout, int ldo, const float *in, int ldi, const float *W,
                          int N, int IC, int OC);

/* Primitives this worker has made (tests: none is made twice). */
long bf16_primitives_made(const Bf16Worker *w);

#endif
