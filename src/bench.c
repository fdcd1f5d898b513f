#include "bench.h"
#include "bf16.h"

#include <cblas.h>
#include <jansson.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas_core.h"
#include "dist.h"
#include "model.h"
#include "optim.h"
#include "run.h"
#include "strategy.h"
#include "tokenizer.h"

#define BENCH_WARMUP 5
#define BENCH_BLOCK 5
#define BENCH_DEFAULT_STEPS 30
#define MAX_SHAPES 64

/* One matrix product of the training step, with how often it runs. */
typedef struct {
    int M, N, K;
    CBLAS_TRANSPOSE ta, tb;
    long count;
    int linear;                /* a linear layer's (bf16 in a bf16 step), not attention's */
} GemmShape;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void add_shape(GemmShape *s, int *n, int M, int N, int K, CBLAS_TRANSPOSE ta,
                      CBLAS_TRANSPOSE tb, long count)
{
    s[*n] = (GemmShape){ M, N, K, ta, tb, count, 0 };
    (*n)++;
}

static void add_linear(GemmShape *s, int *n, int M, int N, int K, CBLAS_TRANSPOSE ta,
                       CBLAS_TRANSPOSE tb, long count)
{
    s[*n] = (GemmShape){ M, N, K, ta, tb, count, 1 };
    (*n)++;
}

/* The products of `count` blocks whose first nq rows of each sequence
 * query (nq = T: every row, with q, k, v as one product): for each linear
 * layer y = x W^T (forward), dx = dy W, dW = dy^T x; for attention, per
 * sequence and head, the score and context products and their four
 * backward products. */
static void block_shapes(GemmShape *s, int *n, const ModelConfig *c, int B, int T, int nq,
                         long count)
{
    int BT = B * T, BQ = B * nq, C = c->hidden, IM = c->intermediate, D = C / c->heads;
    long BH = (long)B * c->heads * count;
    int lin[5][3] = { { BQ, C, C }, { BT, C, 2 * C }, { BQ, C, C }, { BQ, C, IM }, { BQ, IM, C } };
    if (nq == T) {
        lin[0][2] = 3 * C;     /* q, k, v */
        lin[1][0] = 0;
    }
    for (int i = 0; i < 5; i++) {
        int N = lin[i][0], IC = lin[i][1], OC = lin[i][2];
        if (N == 0)
            continue;
        add_linear(s, n, N, OC, IC, CblasNoTrans, CblasTrans, count);
        add_linear(s, n, N, IC, OC, CblasNoTrans, CblasNoTrans, count);
        add_linear(s, n, OC, IC, N, CblasTrans, CblasNoTrans, count);
    }
    add_shape(s, n, nq, T, D, CblasNoTrans, CblasTrans, BH);     /* Q K^T */
    add_shape(s, n, nq, D, T, CblasNoTrans, CblasNoTrans, BH);   /* P V */
    add_shape(s, n, T, D, nq, CblasTrans, CblasNoTrans, BH);     /* dV = P^T dO */
    add_shape(s, n, nq, T, D, CblasNoTrans, CblasTrans, BH);     /* dP = dO V^T */
    add_shape(s, n, nq, D, T, CblasNoTrans, CblasNoTrans, BH);   /* dQ = dS K */
    add_shape(s, n, T, D, nq, CblasTrans, CblasNoTrans, BH);     /* dK = dS^T Q */
}

/* The products of one forward and backward; with cls_last the last block
 * queries at [CLS] only, as model.c runs it. */
static int step_shapes(const ModelConfig *c, int B, int T, int cls_last, GemmShape *s)
{
    int n = 0, C = c->hidden;
    if (cls_last) {
        if (c->layers > 1)
            block_shapes(s, &n, c, B, T, T, c->layers - 1);
        block_shapes(s, &n, c, B, T, 1, 1);
    } else
        block_shapes(s, &n, c, B, T, T, c->layers);
    add_linear(s, &n, B, C, C, CblasNoTrans, CblasTrans, 1);     /* pooler */
    add_linear(s, &n, B, C, C, CblasNoTrans, CblasNoTrans, 1);
    add_linear(s, &n, C, C, B, CblasTrans, CblasNoTrans, 1);
    return n;
}

/* Plain cblas_sgemm over the step's shapes, dense operands: the ceiling
 * the training step is measured against. In a bf16 step the linear
 * layers' shapes go through bf16_gemm as the step's do (B as weights with
 * a bf16 copy, A converted at each call), on every core the step has.
 * Buffers are allocated once, before the timed loop (which must not
 * allocate). */
typedef struct {
    const GemmShape *s;
    int n;
    double flops;              /* of one pass over every shape */
    float *A, *B, *C;
    Bf16 *bf;                  /* bf16 steps only */
    Bf16Worker *w;
} GemmRef;

static int gemm_ref_init(GemmRef *g, const GemmShape *s, int n, const Model *m)
{
    size_t maxa = 0, maxb = 0, maxc = 0;
    memset(g, 0, sizeof *g);
    g->s = s;
    g->n = n;
    for (int i = 0; i < n; i++) {
        size_t a = (size_t)s[i].M * s[i].K, b = (size_t)s[i].K * s[i].N, c = (size_t)s[i].M * s[i].N;
        maxa = a > maxa ? a : maxa;
        maxb = b > maxb ? b : maxb;
        maxc = c > maxc ? c : maxc;
        g->flops += 2.0 * s[i].M * s[i].N * s[i].K * (double)s[i].count;
    }
    g->A = calloc(maxa, sizeof *g->A);
    g->B = calloc(maxb, sizeof *g->B);
    g->C = calloc(maxc, sizeof *g->C);
    if (!g->A || !g->B || !g->C)
        return -1;
    for (size_t i = 0; i < maxa; i++)
        g->A[i] = (float)(i % 7) * 0.01f;
    for (size_t i = 0; i < maxb; i++)
        g->B[i] = (float)(i % 5) * 0.01f;
    if (m->bf16) {
        MnError e;
        if (!(g->bf = bf16_create(bf16_path(m->bf16), g->B, maxb, &e)))
            return -1;
        bf16_refresh(g->bf, 0, maxb);
        bf16_set_primitive_threads(g->bf, model_threads(m));
        if (!(g->w = bf16_worker(g->bf, 0)))
            return -1;
    }
    return 0;
}

static void gemm_ref_free(GemmRef *g)
{
    free(g->A);
    free(g->B);
    free(g->C);
    bf16_free(g->bf);
    memset(g, 0, sizeof *g);
}

/* One pass over every product of a step; returns its duration. */
static double gemm_ref_pass(const GemmRef *g)
{
    double t0 = now_s();
    for (int i = 0; i < g->n; i++) {
        const GemmShape *s = &g->s[i];
        int lda = s->ta == CblasNoTrans ? s->K : s->M;
        int ldb = s->tb == CblasNoTrans ? s->N : s->K;
        for (long k = 0; k < s->count; k++)
            if (g->w && s->linear)
                bf16_gemm(g->w, s->ta != CblasNoTrans, s->tb != CblasNoTrans, s->M, s->N, s->K,
                          g->A, lda, g->B, ldb, 1.0f, g->C, s->N);
            else
                cblas_sgemm(CblasRowMajor, s->ta, s->tb, s->M, s->N, s->K, 1.0f, g->A, lda,
                            g->B, ldb, 1.0f, g->C, s->N);
    }
    return now_s() - t0;
}

/* One training step as `mneme run` takes it. */
static void train_step(Model *m, AdamW *opt, const Batch *b)
{
    model_zero_grads(m);
    model_forward(m, b);
    model_backward(m, b);
    grad_clip(m, 1.0);
    adamw_step(opt, m, 1e-4f);
}

int bench_run(const Experiment *x, long steps, int full_last_block, Dist *dist)
{
    ModelConfig c;
    Model m;
    AdamW opt;
    Batch b;
    Rng rng;
    MnError e;
    GemmShape shapes[MAX_SHAPES];
    int B = x->finetune.recipe.batch, T = x->model.max_len, status = 0;
    if (steps <= 0)
        steps = BENCH_DEFAULT_STEPS;
    blas_set_threads(x->threads);
    static const int n_labels[N_TASKS] = { 4, 4 };
    memset(&b, 0, sizeof b);
    if (run_model_config(x, n_labels, &c, &e) < 0 || model_create(&m, &c, B, &e) < 0) {
        fprintf(stderr, "mneme bench: %s\n", e.msg);
        return 1;
    }
    if (model_set_threads(&m, x->threads, &e) < 0 ||
        model_set_precision(&m, precision_parse(x->model.precision), &e) < 0) {
        fprintf(stderr, "mneme bench: %s\n", e.msg);
        model_free(&m);
        return 1;
    }
    AdamConfig ac = { 0.9f, 0.999f, 1e-8f, 0.01f };
    if (adamw_create(&opt, &m, ac, &e) < 0 || batch_alloc(&b, B, T, &e) < 0) {
        fprintf(stderr, "mneme bench: %s\n", e.msg);
        model_free(&m);
        adamw_free(&opt);
        return 1;
    }
    rng_seed(&rng, x->seed);
    model_init_weights(&m, &rng, 0.02f);
    /* Full-length rows: the benchmark measures the shapes it reports. A
     * WordPiece vocabulary's tokens are drawn as text uses them (Zipf's
     * law: the k-th most frequent about 1/k as often), for what the
     * rows a batch touches cost (the word embeddings' sum over ranks). */
    double *zipf = c.vocab > TOK_BYTE0 + 256 ? malloc((size_t)c.vocab * sizeof *zipf) : NULL;
    const int first = TOK_BYTE0;
    for (int k = first, n = 0; zipf && k < c.vocab; k++, n++)
        zipf[k] = (k > first ? zipf[k - 1] : 0.0) + 1.0 / (double)(n + 1);
    b.B = B;
    b.T = T;
    for (int r = 0; r < B; r++) {
        b.len[r] = T;
        b.task[r] = 1;
        b.label[r] = (int)rng_below(&rng, 4);
        for (int t = 0; t < T; t++) {
            int id = TOK_BYTE0 + (int)rng_below(&rng, 256);
            if (zipf) {
                double u = rng_uniform(&rng) * zipf[c.vocab - 1];
                int lo = first, hi = c.vocab - 1;
                while (lo < hi) {
                    int mid = lo + (hi - lo) / 2;
                    if (zipf[mid] < u)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
                id = lo;
            }
            b.ids[r * T + t] = t == 0 ? TOK_CLS : id;
        }
    }
    free(zipf);
    int distinct = 0;
    {
        unsigned char *seen = calloc((size_t)c.vocab, 1);
        for (int i = 0; seen && i < B * T; i++)
            if (!seen[b.ids[i]]) {
                seen[b.ids[i]] = 1;
                distinct++;
            }
        free(seen);
    }
    /* The fine-tuning step as the experiment sets it up: freezing, LoRA,
     * prompt or prefix change what a step costs. */
    strategy_apply(&m, x);
    m.full_last_block = full_last_block;
    m.dist = dist;
    const int ranks = dist ? dist->size : 1;

    /* Steps and reference passes alternate in blocks, so that a change in
     * the machine's load (other processes, frequency) hits both sides of
     * gemm_fraction alike; blocks rather than single steps keep the step's
     * weights as warm in cache as they are in training. */
    GemmRef ref = { 0 };
    const int cls_last = model_cls_last_block(&m, T);
    int n_shapes = step_shapes(&c, B, T, cls_last, shapes);
    double *times = calloc((size_t)steps, sizeof *times);
    double *ref_times = calloc((size_t)steps, sizeof *ref_times);
    if (!times || !ref_times || gemm_ref_init(&ref, shapes, n_shapes, &m) < 0) {
        fprintf(stderr, "mneme bench: out of memory\n");
        status = 1;
        goto out;
    }
    for (int w = 0; w < BENCH_WARMUP; w++) {
        train_step(&m, &opt, &b);
        if (model_threads(&m) > 1)
            blas_set_threads(model_threads(&m));
        gemm_ref_pass(&ref);
        if (model_threads(&m) > 1)
            blas_set_threads(1);
    }
    if (dist) {
        dist->reduce_s = dist->wait_s = 0.0;
        dist->reduces = 0;
    }
    struct mallinfo2 before = mallinfo2(), after;
    for (long done = 0; done < steps;) {
        long n = steps - done < BENCH_BLOCK ? steps - done : BENCH_BLOCK;
        for (long s = 0; s < n; s++) {
            double t0 = now_s();
            train_step(&m, &opt, &b);
            times[done + s] = now_s() - t0;
        }
        /* The reference gets the same cores as the step: with workers,
         * OpenBLAS's own threads (the model turns them back to one). */
        if (model_threads(&m) > 1)
            blas_set_threads(model_threads(&m));
        for (long s = 0; s < n; s++)
            ref_times[done + s] = gemm_ref_pass(&ref);
        if (model_threads(&m) > 1)
            blas_set_threads(1);
        done += n;
    }
    after = mallinfo2();
    double step_s = median(times, (int)steps);
    double gemm_flops = ref.flops, gemm_s = median(ref_times, (int)steps);
    double step_flops = model_step_flops(&c, B, T, cls_last);
    char core[256];
    blas_core_describe(core, sizeof core);
    json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:{s:i, s:i, s:i, s:i, s:i}, s:i, s:I}",
                          "experiment", x->name, "openblas_core", blas_core_current(),
                          "threads", x->threads, "workers", model_threads(&m),
                          "blas_threads", blas_get_threads(),
                          "model", "hidden", c.hidden, "layers", c.layers, "heads", c.heads,
                          "intermediate", c.intermediate, "seq", T,
                          "batch", B, "steps", (json_int_t)steps);
    json_object_set_new(o, "last_block", json_string(cls_last ? "cls" : "full"));
    char precision[48];
    bf16_describe(m.bf16, precision, sizeof precision);
    json_object_set_new(o, "precision", json_string(precision));
    /* what bf16 would run on here, whichever precision this was */
    char isa[32];
    MnError why;
    json_object_set_new(o, "bf16_available", json_boolean(bf16_check(BF16_ONEDNN, isa, sizeof isa,
                                                                      &why) == 0));
    json_object_set_new(o, "onednn_isa", json_string(isa));
    json_object_set_new(o, "step_ms_median", json_real(step_s * 1e3));
    json_object_set_new(o, "steps_per_s", json_real(1.0 / step_s));
    json_object_set_new(o, "tokens_per_s", json_real((double)B * T / step_s));
    json_object_set_new(o, "gflops", json_real(step_flops / step_s * 1e-9));
    json_object_set_new(o, "sgemm_gflops", json_real(gemm_flops / gemm_s * 1e-9));
    json_object_set_new(o, "gemm_reference",
                        json_string(m.bf16 ? "linear layers' shapes by bf16_gemm, attention's by "
                                             "cblas_sgemm" : "cblas_sgemm"));
    json_object_set_new(o, "gemm_fraction", json_real((step_flops / step_s) / (gemm_flops / gemm_s)));
    json_object_set_new(o, "heap_bytes_delta",
                        json_integer((json_int_t)after.uordblks - (json_int_t)before.uordblks));
    json_object_set_new(o, "core_note", json_string(core));
    json_object_set_new(o, "ranks", json_integer(ranks));
    json_object_set_new(o, "batch_words", json_pack("{s:i, s:i}", "distinct", distinct, "vocab",
                                                    c.vocab));
    /* rank 0's own time in the gradients' sum (the blocks of reference
     * passes between steps are not in it) */
    json_object_set_new(o, "reduce_ms_per_step", json_real(dist && ranks > 1 ?
                        dist->reduce_s * 1e3 / (double)steps : 0.0));
    /* of that, what the step waited for: all of it without overlap */
    json_object_set_new(o, "reduce_wait_ms_per_step", json_real(dist && ranks > 1 ?
                        dist->wait_s * 1e3 / (double)steps : 0.0));
    json_object_set_new(o, "overlap", json_boolean(dist && ranks > 1 && dist->overlap));
    if (dist && dist->link_bits_per_s > 0.0)
        json_object_set_new(o, "link", json_pack("{s:f, s:f}", "gbit_per_s",
                                                 dist->link_bits_per_s * 1e-9, "latency_us",
                                                 dist->link_latency_s * 1e6));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(5));
    json_decref(o);
    if (s && (!dist || dist->rank == 0))
        puts(s);
    free(s);
out:
    free(times);
    free(ref_times);
    gemm_ref_free(&ref);
    batch_free(&b);
    adamw_free(&opt);
    model_free(&m);
    return status;
}
