/* Where a training step's time goes: the step of `mneme bench` (zero the
 * gradients, forward, backward, clip, AdamW), each phase timed on its own,
 * on the model an experiment describes (base.from: config.json's shape,
 * random weights, as mneme bench builds it). Also times two plain memory
 * passes over all n_params floats on the step's workers, the size of what
 * the zeroing, the workers' gradient sum and AdamW move each step.
 * Not part of the build; from the build directory:
 *
 *   gcc -O2 -I/path/to/mneme/src -o step_phases /path/to/mneme/bench/step_phases.c \
 *       src/libmneme.a -L/usr/lib/x86_64-linux-gnu/openblas-pthread/ -lopenblas \
 *       -lconfig -ljansson -llua5.4 -lpthread -lm
 *   ./step_phases /path/to/mneme/bench/pretrained.cfg STEPS [--set KEY=VALUE]...
 *
 * Prints one JSON object: per-phase medians in ms, and the word
 * embedding's share of the parameters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas_core.h"
#include "config.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "run.h"
#include "strategy.h"
#include "tokenizer.h"

#define MAX_STEPS 64
#define WARMUP 2

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

typedef struct {
    float *dst, *src;
    size_t n;
    int add;
} Pass;

/* dst = 0 or dst += src over the worker's share, as the zeroing and the
 * workers' gradient sum do. */
static void pass_job(void *arg, int i, int nw)
{
    Pass *p = arg;
    size_t lo = p->n * (size_t)i / (size_t)nw, hi = p->n * (size_t)(i + 1) / (size_t)nw;
    if (p->add)
        for (size_t k = lo; k < hi; k++)
            p->dst[k] += p->src[k];
    else
        memset(p->dst + lo, 0, (hi - lo) * sizeof *p->dst);
}

int main(int argc, char **argv)
{
    blas_core_fix(argv);
    if (argc < 3) {
        fprintf(stderr, "usage: step_phases EXPERIMENT.cfg STEPS [--set KEY=VALUE]...\n");
        return 2;
    }
    int steps = atoi(argv[2]);
    if (steps < 1 || steps > MAX_STEPS)
        steps = 5;
    const char *sets[32];
    int n_sets = 0;
    for (int i = 3; i + 1 < argc && n_sets < 32; i += 2)
        if (strcmp(argv[i], "--set") == 0)
            sets[n_sets++] = argv[i + 1];
    Experiment x;
    MnError e;
    ModelConfig c;
    Model m;
    AdamW opt;
    Batch b;
    Rng rng;
    static const int n_labels[N_TASKS] = { 4, 4 };
    if (experiment_load(&x, argv[1], sets, n_sets, &e) < 0 ||
        run_model_config(&x, n_labels, &c, &e) < 0) {
        fprintf(stderr, "step_phases: %s\n", e.msg);
        return 1;
    }
    int B = x.finetune.recipe.batch, T = x.model.max_len;
    blas_set_threads(x.threads);
    memset(&b, 0, sizeof b);
    AdamConfig ac = { 0.9f, 0.999f, 1e-8f, 0.01f };
    if (model_create(&m, &c, B, &e) < 0 || model_set_threads(&m, x.threads, &e) < 0 ||
        adamw_create(&opt, &m, ac, &e) < 0 || batch_alloc(&b, B, T, &e) < 0) {
        fprintf(stderr, "step_phases: %s\n", e.msg);
        return 1;
    }
    rng_seed(&rng, x.seed);
    model_init_weights(&m, &rng, 0.02f);
    b.B = B;
    b.T = T;
    for (int r = 0; r < B; r++) {
        b.len[r] = T;
        b.task[r] = 1;
        b.label[r] = (int)rng_below(&rng, 4);
        for (int t = 0; t < T; t++)
            b.ids[r * T + t] = t == 0 ? TOK_CLS : TOK_BYTE0 + (int)rng_below(&rng, 256);
    }
    strategy_apply(&m, &x);

    enum { ZERO, FWD, BWD, CLIP, ADAM, STEP, MEMZERO, MEMADD, N_PH };
    static const char *const name[N_PH] = { "zero_grads", "forward", "backward_and_reduce",
                                            "clip", "adamw", "step", "pass_zero_all",
                                            "pass_add_all" };
    double t[N_PH][MAX_STEPS];
    float *scratch = calloc(m.n_params, sizeof *scratch);
    if (!scratch)
        return 1;
    for (int s = -WARMUP; s < steps; s++) {
        double t0 = now_s(), t1, t2, t3, t4, t5;
        model_zero_grads(&m);
        t1 = now_s();
        model_forward(&m, &b);
        t2 = now_s();
        model_backward(&m, &b);
        t3 = now_s();
        grad_clip(&m, 1.0);
        t4 = now_s();
        adamw_step(&opt, &m, 1e-4f);
        t5 = now_s();
        Pass pz = { scratch, NULL, m.n_params, 0 }, pa = { scratch, m.grads, m.n_params, 1 };
        double t6 = now_s();
        model_run_parallel(&m, pass_job, &pz);
        double t7 = now_s();
        model_run_parallel(&m, pass_job, &pa);
        double t8 = now_s();
        if (s < 0)
            continue;
        t[ZERO][s] = t1 - t0;
        t[FWD][s] = t2 - t1;
        t[BWD][s] = t3 - t2;
        t[CLIP][s] = t4 - t3;
        t[ADAM][s] = t5 - t4;
        t[STEP][s] = t5 - t0;
        t[MEMZERO][s] = t7 - t6;
        t[MEMADD][s] = t8 - t7;
    }
    int word = model_find_tensor(&m, "bert.embeddings.word_embeddings.weight");
    printf("{\"experiment\": \"%s\", \"hidden\": %d, \"layers\": %d, \"vocab\": %d, "
           "\"seq\": %d, \"batch\": %d, \"workers\": %d, \"steps\": %d, \"n_params\": %zu, "
           "\"word_embedding_params\": %zu",
           x.name, c.hidden, c.layers, c.vocab, T, B, model_threads(&m), steps, m.n_params,
           word >= 0 ? m.tensors[word].numel : (size_t)0);
    for (int p = 0; p < N_PH; p++)
        printf(", \"%s_ms\": %.2f", name[p], 1e3 * median(t[p], steps));
    printf("}\n");
    free(scratch);
    batch_free(&b);
    adamw_free(&opt);
    model_free(&m);
    return 0;
}
