/* bf16 matrix products: see bf16.h. */
/* The conversions run over every activation a product reads: vectorised
 * (gcc 12 at -O2 leaves loops of unknown length scalar), and built for
 * AVX-512, AVX2 and baseline x86-64 as layers.c's loops are. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif
#include "bf16.h"
#include "vec_clones.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif
#ifdef HAVE_OMP_SET_NUM_THREADS
/* OpenMP's own two calls (oneDNN's threads are OpenMP's in Debian's
 * build), declared here: omp.h is the compiler's, and not every compiler
 * that builds mneme ships one. */
void omp_set_num_threads(int n);
int omp_get_max_threads(void);
#endif

/* Shapes a worker meets: each linear of a block forward, its two
 * backward products, heads, the MLM decoder, for a few row counts (a
 * full batch, the last one, evaluation's). Past that the oldest goes. */
#define PRIM_CACHE 256

#ifdef HAVE_ONEDNN
typedef struct {
    int used;
    unsigned long last;                     /* clock of its last use */
    int tA, tB, M, N, K, lda, ldb, ldc, beta;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c, pad;
    size_t pad_size;
} Prim;
#endif

struct Bf16Worker {
    Bf16 *owner;
    void *abuf, *bbuf;                      /* converted activations */
    size_t acap, bcap;                      /* bytes */
    long made;
    int failed_once;
#ifdef HAVE_ONEDNN
    dnnl_stream_t stream;
    Prim cache[PRIM_CACHE];
    unsigned long clock;
    void *pad;
    size_t pad_cap;
#endif
};

struct Bf16 {
    Bf16Path path;
    const float *params;
    size_t n;
    void *mirror;                           /* uint16_t (ONEDNN), float (EMULATE), NULL */
    size_t refreshed;
    int primitive_threads;
    int default_threads;                    /* OpenMP's, when the Bf16 was made */
    char isa[32];
    Bf16Worker *workers[BF16_MAX_WORKERS];
#ifdef HAVE_ONEDNN
    dnnl_engine_t engine;
#endif
};

int precision_parse(const char *s)
{
    if (s && strcmp(s, "fp32") == 0)
        return PRECISION_FP32;
    if (s && strcmp(s, "bf16") == 0)
        return PRECISION_BF16;
    return -1;
}

const char *precision_name(int precision)
{
    return precision == PRECISION_BF16 ? "bf16" : "fp32";
}

const char *bf16_path_name(Bf16Path path)
{
    switch (path) {
    case BF16_EMULATE: return "emulate";
    case BF16_ONEDNN_F32: return "onednn-f32";
    default: return "onednn";
    }
}

int bf16_path_from_env(Bf16Path *path, MnError *e)
{
    const char *v = getenv("MNEME_BF16");
    if (!v || !*v || strcmp(v, "onednn") == 0)
        *path = BF16_ONEDNN;
    else if (strcmp(v, "emulate") == 0)
        *path = BF16_EMULATE;
    else if (strcmp(v, "onednn-f32") == 0)
        *path = BF16_ONEDNN_F32;
    else
        return mn_fail(e, "MNEME_BF16=%s: expected onednn, emulate or onednn-f32", v);
    return 0;
}

#ifdef HAVE_ONEDNN
static const char *isa_name(dnnl_cpu_isa_t isa)
{
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

/* The ISA values are nested bit sets: a CPU with AMX also has every bit
 * of avx512_core_bf16. */
static int isa_has_bf16(dnnl_cpu_isa_t isa)
{
    return ((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) ==
           (unsigned)dnnl_cpu_isa_avx512_core_bf16;
}
#endif

int bf16_check(Bf16Path path, char *isa, size_t n, MnError *e)
{
#ifdef HAVE_ONEDNN
    dnnl_cpu_isa_t got = dnnl_get_effective_cpu_isa();
    snprintf(isa, n, "%s", isa_name(got));
    if (path == BF16_ONEDNN && !isa_has_bf16(got))
        return mn_fail(e, "model.precision = \"bf16\": this CPU has no bfloat16 matrix product "
                          "(oneDNN runs %s here; bf16 needs avx512_core_bf16 or "
                          "avx512_core_amx, as on Intel Cooper Lake, Sapphire Rapids or AMD "
                          "Zen 4 and later). Use fp32 (a bf16 run goes on in fp32 as a fork: "
                          "mneme fork RUN_DIR --name NAME --set model.precision=fp32), or "
                          "MNEME_BF16=emulate to see bf16's numbers slowly", isa_name(got));
    return 0;
#else
    snprintf(isa, n, "none");
    if (path == BF16_EMULATE)
        return 0;
    return mn_fail(e, "model.precision = \"bf16\": this mneme was built without oneDNN "
                      "(apt-get install libdnnl-dev, then ./configure again). Use fp32 (a bf16 "
                      "run goes on in fp32 as a fork: mneme fork RUN_DIR --name NAME --set "
                      "model.precision=fp32), or MNEME_BF16=emulate to see bf16's numbers slowly");
#endif
}

Bf16 *bf16_create(Bf16Path path, const float *params, size_t n, MnError *e)
{
    char isa[32];
    if (bf16_check(path, isa, sizeof isa, e) < 0)
        return NULL;
    Bf16 *b = calloc(1, sizeof *b);
    if (!b) {
        mn_fail(e, "out of memory");
        return NULL;
    }
    b->path = path;
    b->params = params;
    b->n = n;
    snprintf(b->isa, sizeof b->isa, "%s", isa);
#ifdef HAVE_OMP_SET_NUM_THREADS
    b->default_threads = omp_get_max_threads();
#endif
    if (path == BF16_ONEDNN)
        b->mirror = malloc(n ? n * sizeof(uint16_t) : 1);
    else if (path == BF16_EMULATE)
        b->mirror = malloc(n ? n * sizeof(float) : 1);
    if (path != BF16_ONEDNN_F32 && !b->mirror) {
        free(b);
        mn_fail(e, "out of memory for the bf16 copy of %zu weights", n);
        return NULL;
    }
#ifdef HAVE_ONEDNN
    if (path != BF16_EMULATE && dnnl_engine_create(&b->engine, dnnl_cpu, 0) != dnnl_success) {
        bf16_free(b);
        mn_fail(e, "model.precision = \"bf16\": oneDNN could not make a CPU engine");
        return NULL;
    }
#endif
    return b;
}

#ifdef HAVE_ONEDNN
static void prim_clear(Prim *p)
{
    dnnl_memory_destroy(p->a);
    dnnl_memory_destroy(p->b);
    dnnl_memory_destroy(p->c);
    dnnl_memory_destroy(p->pad);
    dnnl_primitive_destroy(p->prim);
    memset(p, 0, sizeof *p);
}
#endif

static void worker_free(Bf16Worker *w)
{
    if (!w)
        return;
#ifdef HAVE_ONEDNN
    for (int i = 0; i < PRIM_CACHE; i++)
        if (w->cache[i].used)
            prim_clear(&w->cache[i]);
    if (w->stream)
        dnnl_stream_destroy(w->stream);
    free(w->pad);
#endif
    free(w->abuf);
    free(w->bbuf);
    free(w);
}

void bf16_free(Bf16 *b)
{
    if (!b)
        return;
    for (int i = 0; i < BF16_MAX_WORKERS; i++)
        worker_free(b->workers[i]);
#ifdef HAVE_ONEDNN
    if (b->engine)
        dnnl_engine_destroy(b->engine);
#endif
    free(b->mirror);
    free(b);
}

Bf16Path bf16_path(const Bf16 *b)
{
    return b->path;
}

void bf16_describe(const Bf16 *b, char *out, size_t n)
{
    if (!b)
        snprintf(out, n, "fp32");
    else if (b->path == BF16_EMULATE)
        snprintf(out, n, "bf16 emulated");
    else if (b->path == BF16_ONEDNN_F32)
        snprintf(out, n, "bf16 onednn-f32");
    else
        snprintf(out, n, "bf16 %s", b->isa);
}

void bf16_set_primitive_threads(Bf16 *b, int n)
{
    b->primitive_threads = n;
}

/* Element by element, so that it vectorises: the NaN test becomes a
 * blend. */
VEC_CLONES
static void to_bf16(uint16_t *restrict dst, const float *restrict src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = bf16_from_float(src[i]);
}

VEC_CLONES
static void to_bf16_values(float *restrict dst, const float *restrict src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = bf16_to_float(bf16_from_float(src[i]));
}

void bf16_refresh(Bf16 *b, size_t off, size_t n)
{
    if (off >= b->n)
        return;
    if (n > b->n - off)
        n = b->n - off;
    if (b->path == BF16_ONEDNN)
        to_bf16((uint16_t *)b->mirror + off, b->params + off, n);
    else if (b->path == BF16_EMULATE)
        to_bf16_values((float *)b->mirror + off, b->params + off, n);
    __atomic_add_fetch(&b->refreshed, n, __ATOMIC_RELAXED);
}

size_t bf16_refreshed(const Bf16 *b)
{
    return __atomic_load_n(&b->refreshed, __ATOMIC_RELAXED);
}

Bf16Worker *bf16_worker(Bf16 *b, int i)
{
    if (!b || i < 0 || i >= BF16_MAX_WORKERS)
        return NULL;
    if (b->workers[i])
        return b->workers[i];
    Bf16Worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->owner = b;
#ifdef HAVE_ONEDNN
    if (b->path != BF16_EMULATE &&
        dnnl_stream_create(&w->stream, b->engine, dnnl_stream_default_flags) != dnnl_success) {
        free(w);
        return NULL;
    }
#endif
    b->workers[i] = w;
    return w;
}

long bf16_primitives_made(const Bf16Worker *w)
{
    return w ? w->made : 0;
}

static int grow(void **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    void *p = realloc(*buf, need);
    if (!p)
        return -1;
    *buf = p;
    *cap = need;
    return 0;
}

/* The rows x cols block of X (ld apart) as a compact array of the path's
 * element type in *buf; NULL when out of memory. */
static const void *convert(Bf16Path path, void **buf, size_t *cap, const float *X, int rows,
                           int cols, int ld)
{
    size_t elem = path == BF16_ONEDNN ? sizeof(uint16_t) : sizeof(float);
    if (grow(buf, cap, (size_t)rows * (size_t)cols * elem) < 0)
        return NULL;
    for (int r = 0; r < rows; r++) {
        const float *src = X + (size_t)r * (size_t)ld;
        if (path == BF16_ONEDNN)
            to_bf16((uint16_t *)*buf + (size_t)r * cols, src, (size_t)cols);
        else if (path == BF16_EMULATE)
            to_bf16_values((float *)*buf + (size_t)r * cols, src, (size_t)cols);
        else
            memcpy((float *)*buf + (size_t)r * cols, src, (size_t)cols * sizeof(float));
    }
    return *buf;
}

/* An operand in the parameters is read from the mirror (the parameters
 * themselves for ONEDNN_F32); NULL for any other. */
static const void *mirrored(const Bf16 *b, const float *X)
{
    if (X < b->params || X >= b->params + b->n)
        return NULL;
    size_t off = (size_t)(X - b->params);
    if (b->path == BF16_ONEDNN)
        return (const uint16_t *)b->mirror + off;
    if (b->path == BF16_EMULATE)
        return (const float *)b->mirror + off;
    return X;
}

#ifdef HAVE_ONEDNN
/* The matmul of one shape: dst[M, N] (+)= src[M, K] wei[K, N] with the
 * operands' strides, a sum post-op for beta 1, and a scratchpad the
 * worker owns (oneDNN's own would be shared between threads). */
static int prim_make(Bf16Worker *w, Prim *p, dnnl_data_type_t dt)
{
    Bf16 *b = w->owner;
    dnnl_dims_t ad = { p->M, p->K }, bd = { p->K, p->N }, cd = { p->M, p->N };
    dnnl_dims_t as = { p->tA ? 1 : p->lda, p->tA ? p->lda : 1 };
    dnnl_dims_t bs = { p->tB ? 1 : p->ldb, p->tB ? p->ldb : 1 };
    dnnl_dims_t cs = { p->ldc, 1 };
    dnnl_memory_desc_t amd, bmd, cmd;
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int ok = dnnl_memory_desc_init_by_strides(&amd, 2, ad, dt, as) == dnnl_success &&
             dnnl_memory_desc_init_by_strides(&bmd, 2, bd, dt, bs) == dnnl_success &&
             dnnl_memory_desc_init_by_strides(&cmd, 2, cd, dnnl_f32, cs) == dnnl_success &&
             dnnl_matmul_desc_init(&md, &amd, &bmd, NULL, &cmd) == dnnl_success &&
             dnnl_primitive_attr_create(&attr) == dnnl_success &&
             dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) ==
                 dnnl_success;
    if (ok && p->beta)
        ok = dnnl_post_ops_create(&po) == dnnl_success &&
             dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    ok = ok && dnnl_primitive_desc_create(&pd, &md, attr, b->engine, NULL) == dnnl_success;
    const dnnl_memory_desc_t *pmd =
        ok ? dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0) : NULL;
    ok = ok && pmd && dnnl_primitive_create(&p->prim, pd) == dnnl_success &&
         dnnl_memory_create(&p->a, &amd, b->engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&p->b, &bmd, b->engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&p->c, &cmd, b->engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&p->pad, pmd, b->engine, DNNL_MEMORY_NONE) == dnnl_success;
    if (ok)
        p->pad_size = dnnl_memory_desc_get_size(pmd);
    if (po)
        dnnl_post_ops_destroy(po);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (!ok) {
        prim_clear(p);
        return -1;
    }
    p->used = 1;
    w->made++;
    return 0;
}

static Prim *prim_get(Bf16Worker *w, int tA, int tB, int M, int N, int K, int lda, int ldb,
                      int ldc, int beta, dnnl_data_type_t dt)
{
    Prim *free_slot = NULL, *oldest = NULL;
    w->clock++;
    for (int i = 0; i < PRIM_CACHE; i++) {
        Prim *p = &w->cache[i];
        if (!p->used) {
            if (!free_slot)
                free_slot = p;
            continue;
        }
        if (p->tA == tA && p->tB == tB && p->M == M && p->N == N && p->K == K &&
            p->lda == lda && p->ldb == ldb && p->ldc == ldc && p->beta == beta) {
            p->last = w->clock;
            return p;
        }
        if (!oldest || p->last < oldest->last)
            oldest = p;
    }
    Prim *p = free_slot ? free_slot : oldest;
    if (p->used)
        prim_clear(p);
    *p = (Prim){ .tA = tA, .tB = tB, .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb,
                 .ldc = ldc, .beta = beta, .last = w->clock };
    return prim_make(w, p, dt) < 0 ? NULL : p;
}

static int onednn_gemm(Bf16Worker *w, int tA, int tB, int M, int N, int K, const void *A,
                       int lda, const void *B, int ldb, int beta, float *C, int ldc)
{
    dnnl_data_type_t dt = w->owner->path == BF16_ONEDNN ? dnnl_bf16 : dnnl_f32;
    Prim *p = prim_get(w, tA, tB, M, N, K, lda, ldb, ldc, beta, dt);
    if (!p || grow(&w->pad, &w->pad_cap, p->pad_size ? p->pad_size : 1) < 0)
        return -1;
#ifdef HAVE_OMP_SET_NUM_THREADS
    /* per calling thread: a worker's cap is its own */
    int want = w->owner->primitive_threads > 0 ? w->owner->primitive_threads
                                               : w->owner->default_threads;
    if (want > 0 && omp_get_max_threads() != want)
        omp_set_num_threads(want);
#endif
    if (dnnl_memory_set_data_handle(p->a, (void *)A) != dnnl_success ||
        dnnl_memory_set_data_handle(p->b, (void *)B) != dnnl_success ||
        dnnl_memory_set_data_handle(p->c, C) != dnnl_success ||
        dnnl_memory_set_data_handle(p->pad, w->pad) != dnnl_success)
        return -1;
    dnnl_exec_arg_t args[4] = { { DNNL_ARG_SRC, p->a }, { DNNL_ARG_WEIGHTS, p->b },
                                { DNNL_ARG_DST, p->c }, { DNNL_ARG_SCRATCHPAD, p->pad } };
    if (dnnl_primitive_execute(p->prim, w->stream, 4, args) != dnnl_success ||
        dnnl_stream_wait(w->stream) != dnnl_success)
        return -1;
    return 0;
}
#endif

static void sgemm(int tA, int tB, int M, int N, int K, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans,
                M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

/* An operand as a product reads it: the fp32 original, and its form for
 * the path (the mirror's, or converted into a worker's scratch). */
typedef struct {
    const float *x;
    int ld;
    const void *low;           /* NULL: could not be converted (out of memory) */
    int low_ld;
} Operand;

/* The stored rows x cols of o->x in the path's form: from the mirror when
 * it lies in the parameters, else converted into *buf. */
static void prepare(Bf16Worker *w, Operand *o, void **buf, size_t *cap, int rows, int cols)
{
    o->low = mirrored(w->owner, o->x);
    o->low_ld = o->ld;
    if (!o->low) {
        o->low = convert(w->owner->path, buf, cap, o->x, rows, cols, o->ld);
        o->low_ld = cols;
    }
}

static void product(Bf16Worker *w, int tA, int tB, int M, int N, int K, const Operand *a,
                    const Operand *b, float beta, float *C, int ldc)
{
    int done = 0;
    if (a->low && b->low && w->owner->path == BF16_EMULATE) {
        sgemm(tA, tB, M, N, K, a->low, a->low_ld, b->low, b->low_ld, beta, C, ldc);
        done = 1;
    }
#ifdef HAVE_ONEDNN
    if (a->low && b->low && !done)
        done = onednn_gemm(w, tA, tB, M, N, K, a->low, a->low_ld, b->low, b->low_ld,
                           beta != 0.0f, C, ldc) == 0;
#endif
    if (!done) {
        /* Out of memory or a primitive oneDNN would not make: the product
         * still comes out, in fp32, and the run says so once. */
        if (!w->failed_once)
            fprintf(stderr, "mneme: a bf16 product of %dx%dx%d could not be made; "
                            "computing it in fp32\n", M, N, K);
        w->failed_once = 1;
        sgemm(tA, tB, M, N, K, a->x, a->ld, b->x, b->ld, beta, C, ldc);
    }
}

void bf16_gemm(Bf16Worker *w, int tA, int tB, int M, int N, int K, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (!w || K <= 0 || (beta != 0.0f && beta != 1.0f)) {
        sgemm(tA, tB, M, N, K, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* op(A) is stored M x K (K x M when transposed), op(B) K x N (N x K) */
    Operand a = { A, lda, NULL, 0 }, b = { B, ldb, NULL, 0 };
    prepare(w, &a, &w->abuf, &w->acap, tA ? K : M, tA ? M : K);
    prepare(w, &b, &w->bbuf, &w->bcap, tB ? N : K, tB ? K : N);
    product(w, tA, tB, M, N, K, &a, &b, beta, C, ldc);
}

void bf16_linear_backward(Bf16Worker *w, float *din, int ldd, float din_beta, float *dW,
                          const float *dout, int ldo, const float *in, int ldi, const float *W,
                          int N, int IC, int OC)
{
    if (!w || !din || !dW || N <= 0 || IC <= 0 || OC <= 0 ||
        (din_beta != 0.0f && din_beta != 1.0f)) {
        if (din)
            bf16_gemm(w, 0, 0, N, IC, OC, dout, ldo, W, IC, din_beta, din, ldd);
        if (dW)
            bf16_gemm(w, 1, 0, OC, IC, N, dout, ldo, in, ldi, 1.0f, dW, IC);
        return;
    }
    Operand d = { dout, ldo, NULL, 0 }, wt = { W, IC, NULL, 0 }, x = { in, ldi, NULL, 0 };
    prepare(w, &d, &w->abuf, &w->acap, N, OC);
    prepare(w, &wt, &w->bbuf, &w->bcap, OC, IC);
    product(w, 0, 0, N, IC, OC, &d, &wt, din_beta, din, ldd);
    prepare(w, &x, &w->bbuf, &w->bcap, N, IC);
    product(w, 1, 0, OC, IC, N, &d, &x, 1.0f, dW, IC);
}
