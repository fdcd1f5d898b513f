/* The machine's fp32 ceiling: fused multiply-adds per second with 1..N
 * threads, each keeping enough independent chains in flight to cover the
 * FMA latency. No product of any shape runs faster than this, so it says
 * whether a speed bar is reachable on this CPU at all. Uses AVX-512 where
 * the CPU has it, else AVX2 with FMA. Not part of the build:
 *
 *   gcc -O2 -o fma_peak /path/to/mneme/bench/fma_peak.c -lpthread
 *   ./fma_peak [MAX_THREADS]
 *
 * Prints one JSON line per thread count: the median of 5 repetitions. */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS 12 /* also the unroll count below */
#define ITERS 100000000L
#define REPS 5
#define MAX_THREADS 64

struct job {
    int wide;
    double sink;
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

__attribute__((target("avx2,fma"))) static double chains_avx2(long n)
{
    __m256 acc[CHAINS];
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm256_set1_ps((float)i);
    for (long k = 0; k < n; k++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], m, c);
    float out[8];
    double s = 0;
    for (int i = 0; i < CHAINS; i++) {
        _mm256_storeu_ps(out, acc[i]);
        s += out[0];
    }
    return s;
}

__attribute__((target("avx512f"))) static double chains_avx512(long n)
{
    __m512 acc[CHAINS];
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm512_set1_ps((float)i);
    for (long k = 0; k < n; k++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], m, c);
    return (double)_mm512_reduce_add_ps(acc[0]) + (double)_mm512_reduce_add_ps(acc[CHAINS - 1]);
}

static void *job_run(void *arg)
{
    struct job *j = arg;
    j->sink = j->wide ? chains_avx512(ITERS / 2) : chains_avx2(ITERS);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int max_threads = argc > 1 ? atoi(argv[1]) : 2;
    if (max_threads < 1 || max_threads > MAX_THREADS) {
        fprintf(stderr, "usage: fma_peak [MAX_THREADS 1..%d]\n", MAX_THREADS);
        return 2;
    }
    __builtin_cpu_init();
    int wide = __builtin_cpu_supports("avx512f");
    if (!wide && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
        fprintf(stderr, "fma_peak: this CPU has neither AVX-512 nor AVX2 with FMA\n");
        return 1;
    }
    /* Each iteration is CHAINS FMAs of 8 (AVX2) or 16 (AVX-512) lanes, 2 flops each. */
    double flops_per_thread = (double)ITERS * CHAINS * 8 * 2;
    struct job jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    for (int t = 1; t <= max_threads; t++) {
        double gflops[REPS];
        for (int r = 0; r < REPS; r++) {
            double t0 = now_s();
            for (int i = 0; i < t; i++) {
                jobs[i].wide = wide;
                if (pthread_create(&tids[i], NULL, job_run, &jobs[i]) != 0) {
                    perror("fma_peak: pthread_create");
                    return 1;
                }
            }
            for (int i = 0; i < t; i++)
                pthread_join(tids[i], NULL);
            gflops[r] = t * flops_per_thread / (now_s() - t0) / 1e9;
        }
        qsort(gflops, REPS, sizeof gflops[0], cmp_double);
        printf("{\"threads\": %d, \"isa\": \"%s\", \"peak_gflops\": %.1f, \"min\": %.1f, \"max\": %.1f}\n",
               t, wide ? "avx512f" : "avx2+fma", gflops[REPS / 2], gflops[0], gflops[REPS - 1]);
        fflush(stdout);
    }
    return 0;
}
