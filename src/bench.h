/* mneme bench: training-step throughput against plain cblas_sgemm on the
 * same matrix shapes, measured in the same run. */
#ifndef MNEME_BENCH_H
#define MNEME_BENCH_H

#include "config.h"

/* Prints one JSON object; returns the exit status. steps 0 = default. */
int bench_run(const Experiment *x, long steps);

#endif
