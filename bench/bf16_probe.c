/* What this machine's bfloat16 can do, before model.precision = "bf16"
 * is built on it: the CPU's bf16 flags, the ISA oneDNN picks, and the
 * GFLOP/s of a matrix product of the step's shapes in OpenBLAS's sgemm,
 * oneDNN's fp32 matmul and oneDNN's bf16 matmul (bf16 inputs, fp32
 * output), the weights stored as mneme stores them ([out, in]). One JSON
 * line per shape; a product oneDNN cannot create here says why.
 *
 *   cc -O2 -DHAVE_ONEDNN -Isrc bench/bf16_probe.c src/bf16.c src/error.c -o bf16_probe \
 *       -ldnnl -lopenblas
 *   OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 ./bf16_probe
 *
 * It always exits 0: CI runs it to report the machine, not to judge it. */
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bf16.h"

#define REPS 7

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return v[n / 2];
}

/* The flags of /proc/cpuinfo's first processor that bf16 depends on. */
static void cpu_flags(char *out, size_t n)
{
    static const char *const want[] = { "avx2", "avx512f", "avx512_bf16", "amx_bf16",
                                        "amx_tile", NULL };
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192];
    out[0] = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        for (int i = 0; want[i]; i++) {
            char word[32];
            snprintf(word, sizeof word, " %s", want[i]);
            char *at = strstr(line, word);
            if (at && (at[strlen(word)] == ' ' || at[strlen(word)] == '\n'))
                snprintf(out + strlen(out), n - strlen(out), "%s%s", out[0] ? " " : "", want[i]);
        }
        break;
    }
    if (f)
        fclose(f);
}

static void cpu_model(char *out, size_t n)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(out, n, "unknown");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *v = strchr(line, ':');
            if (v) {
                v += 2;
                v[strcspn(v, "\n")] = 0;
                snprintf(out, n, "%s", v);
            }
            break;
        }
    if (f)
        fclose(f);
}

/* GFLOP/s of oneDNN's matmul [M, K] x [K, N] (weights stored [N, K]) with
 * inputs of type dt, or < 0 with why filled. */
static double dnnl_gflops(dnnl_engine_t eng, dnnl_stream_t st, int M, int N, int K,
                          dnnl_data_type_t dt, char *why, size_t nwhy)
{
    dnnl_memory_desc_t src_md, wei_md, dst_md;
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_memory_t src = NULL, wei = NULL, dst = NULL;
    dnnl_dims_t sd = { M, K }, wd = { K, N }, dd = { M, N };
    double result = -1.0;
    dnnl_status_t s;
    if ((s = dnnl_memory_desc_init_by_tag(&src_md, 2, sd, dt, dnnl_ab)) ||
        (s = dnnl_memory_desc_init_by_tag(&wei_md, 2, wd, dt, dnnl_ba)) ||
        (s = dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, dnnl_f32, dnnl_ab)) ||
        (s = dnnl_matmul_desc_init(&md, &src_md, &wei_md, NULL, &dst_md))) {
        snprintf(why, nwhy, "descriptor: status %d", (int)s);
        return -1.0;
    }
    if ((s = dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL))) {
        snprintf(why, nwhy, "no implementation on this CPU (status %d)", (int)s);
        return -1.0;
    }
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    if ((s = dnnl_primitive_create(&prim, pd)) ||
        (s = dnnl_memory_create(&src, &src_md, eng, DNNL_MEMORY_ALLOCATE)) ||
        (s = dnnl_memory_create(&wei, &wei_md, eng, DNNL_MEMORY_ALLOCATE)) ||
        (s = dnnl_memory_create(&dst, &dst_md, eng, DNNL_MEMORY_ALLOCATE))) {
        snprintf(why, nwhy, "create: status %d", (int)s);
        goto out;
    }
    void *p = NULL;
    dnnl_memory_get_data_handle(src, &p);
    memset(p, 0x3c, (size_t)M * K * (dt == dnnl_f32 ? 4 : 2));   /* small finite values */
    dnnl_memory_get_data_handle(wei, &p);
    memset(p, 0x3c, (size_t)K * N * (dt == dnnl_f32 ? 4 : 2));
    dnnl_exec_arg_t args[3] = { { DNNL_ARG_SRC, src }, { DNNL_ARG_WEIGHTS, wei },
                                { DNNL_ARG_DST, dst } };
    double t[REPS];
    for (int r = -2; r < REPS; r++) {
        double t0 = now_s();
        if ((s = dnnl_primitive_execute(prim, st, 3, args)) || (s = dnnl_stream_wait(st))) {
            snprintf(why, nwhy, "execute: status %d", (int)s);
            goto out;
        }
        if (r >= 0)
            t[r] = now_s() - t0;
    }
    result = 2.0 * M * N * K / median(t, REPS) * 1e-9;
    snprintf(why, nwhy, "%s", impl ? impl : "");
out:
    dnnl_memory_destroy(src);
    dnnl_memory_destroy(wei);
    dnnl_memory_destroy(dst);
    dnnl_primitive_destroy(prim);
    dnnl_primitive_desc_destroy(pd);
    return result;
}

static double sgemm_gflops(int M, int N, int K)
{
    float *a = calloc((size_t)M * K, 4), *b = calloc((size_t)K * N, 4), *c = calloc((size_t)M * N, 4);
    double t[REPS], result = -1.0;
    if (a && b && c) {
        for (int r = -2; r < REPS; r++) {
            double t0 = now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f,
                        c, N);
            if (r >= 0)
                t[r] = now_s() - t0;
        }
        result = 2.0 * M * N * K / median(t, REPS) * 1e-9;
    }
    free(a);
    free(b);
    free(c);
    return result;
}

int main(void)
{
    static const struct { const char *name; int M, N, K; } shapes[] = {
        { "bert-base qkv-sized (16 x 128 rows)", 2048, 768, 768 },
        { "bert-base intermediate", 2048, 3072, 768 },
        { "MiniLM-L6-H384 (32 x 128 rows)", 4096, 384, 384 },
        { "MiniLM-L6-H384 intermediate", 4096, 1536, 384 },
    };
    char flags[256], model[256];
    cpu_flags(flags, sizeof flags);
    cpu_model(model, sizeof model);
    dnnl_engine_t eng = NULL;
    dnnl_stream_t st = NULL;
    const dnnl_version_t *v = dnnl_version();
    char isa[32];
    MnError e;
    bf16_check(BF16_ONEDNN, isa, sizeof isa, &e);
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) || dnnl_stream_create(&st, eng, dnnl_stream_default_flags)) {
        printf("{\"cpu\": \"%s\", \"flags\": \"%s\", \"onednn\": \"cannot create a CPU engine\"}\n",
               model, flags);
        return 0;
    }
    printf("{\"cpu\": \"%s\", \"flags\": \"%s\", \"onednn\": \"%d.%d.%d\", \"isa\": \"%s\", "
           "\"omp_threads\": \"%s\", \"openblas_threads\": \"%s\"}\n", model, flags, v->major,
           v->minor, v->patch, isa,
           getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "default",
           getenv("OPENBLAS_NUM_THREADS") ? getenv("OPENBLAS_NUM_THREADS") : "default");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        char why32[160], why16[160];
        int M = shapes[i].M, N = shapes[i].N, K = shapes[i].K;
        double sg = sgemm_gflops(M, N, K);
        double f32 = dnnl_gflops(eng, st, M, N, K, dnnl_f32, why32, sizeof why32);
        double b16 = dnnl_gflops(eng, st, M, N, K, dnnl_bf16, why16, sizeof why16);
        printf("{\"shape\": \"%s\", \"M\": %d, \"N\": %d, \"K\": %d, \"sgemm_gflops\": %.1f, "
               "\"onednn_f32_gflops\": %.1f, \"onednn_f32\": \"%s\", \"onednn_bf16_gflops\": %.1f, "
               "\"onednn_bf16\": \"%s\"}\n", shapes[i].name, M, N, K, sg, f32, why32, b16, why16);
    }
    dnnl_stream_destroy(st);
    dnnl_engine_destroy(eng);
    return 0;
}
