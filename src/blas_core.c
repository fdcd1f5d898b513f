#include "blas_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cblas.h>

/* Marks the re-executed process so that it never loops. */
#define REEXEC_MARK "MNEME_CORETYPE_SET"

const char *blas_core_current(void)
{
    const char *s = openblas_get_corename();
    return s ? s : "unknown";
}

const char *blas_core_best(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
    return NULL;
}

/* Generic kernels that a modern x86-64 CPU should never be left on. */
static int is_weak_core(const char *core)
{
    static const char *const weak[] = { "Prescott", "Core2", "Penryn", "Dunnington",
                                        "Nehalem", "Sandybridge", "Atom", "Barcelona",
                                        "unknown", NULL };
    for (int i = 0; weak[i]; i++)
        if (strcasecmp(core, weak[i]) == 0)
            return 1;
    return 0;
}

void blas_core_fix(char **argv)
{
    const char *best = blas_core_best();
    const char *now = blas_core_current();
    if (!best || getenv("OPENBLAS_CORETYPE") || getenv("MNEME_NO_CORETYPE") ||
        getenv(REEXEC_MARK) || !is_weak_core(now))
        return;
    setenv("OPENBLAS_CORETYPE", best, 1);
    setenv(REEXEC_MARK, now, 1);
    execv("/proc/self/exe", argv);
    /* Could not re-execute: go on with the slower kernels. */
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(REEXEC_MARK);
}

void blas_core_describe(char *buf, size_t n)
{
    const char *was = getenv(REEXEC_MARK);
    const char *best = blas_core_best();
    if (was)
        snprintf(buf, n, "OpenBLAS core %s (it picked %s, which this CPU outruns; "
                 "set MNEME_NO_CORETYPE=1 to keep its choice)", blas_core_current(), was);
    else if (getenv("OPENBLAS_CORETYPE"))
        snprintf(buf, n, "OpenBLAS core %s (OPENBLAS_CORETYPE=%s)", blas_core_current(),
                 getenv("OPENBLAS_CORETYPE"));
    else
        snprintf(buf, n, "OpenBLAS core %s%s%s", blas_core_current(),
                 best && is_weak_core(blas_core_current()) ? "; this CPU supports " : "",
                 best && is_weak_core(blas_core_current()) ? best : "");
}

void blas_set_threads(int n)
{
    if (n > 0)
        openblas_set_num_threads(n);
}

int blas_get_threads(void)
{
    return openblas_get_num_threads();
}
