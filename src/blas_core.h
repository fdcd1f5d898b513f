/* OpenBLAS kernel selection. Debian 12's OpenBLAS 0.3.21 does not know
 * some newer CPUs and falls back to generic SSE3 ("Prescott") kernels,
 * several times slower than the AVX-512 or AVX2 ones the CPU can run. */
#ifndef MNEME_BLAS_CORE_H
#define MNEME_BLAS_CORE_H

#include <stddef.h>

/* The core OpenBLAS chose, and the best core this CPU supports. */
const char *blas_core_current(void);
const char *blas_core_best(void);

/* When OpenBLAS runs a weaker core than the CPU supports and the user has
 * not chosen one (OPENBLAS_CORETYPE unset, MNEME_NO_CORETYPE unset),
 * re-executes the program with OPENBLAS_CORETYPE set to the best core.
 * Returns only when no re-execution was needed or it failed. */
void blas_core_fix(char **argv);

/* One line for the log: which core runs and why. */
void blas_core_describe(char *buf, size_t n);

/* Sets OpenBLAS's thread count (0 leaves its default). */
void blas_set_threads(int n);
int blas_get_threads(void);

#endif
