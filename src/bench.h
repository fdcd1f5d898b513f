/* mneme bench: training-step throughput against plain cblas_sgemm on the
 * same matrix shapes, measured in the same run. */
#ifndef MNEME_BENCH_H
#define MNEME_BENCH_H

#include "config.h"

/* Prints one JSON object; returns the exit status. steps 0 = default;
 * full_last_block runs the last block over every row, as a plain BERT
 * does, instead of at [CLS] only (for comparing the two). */
struct Dist;
/* dist: under mpirun the ranks each step is split over (rank 0 prints),
 * else NULL. */
int bench_run(const Experiment *x, long steps, int full_last_block, struct Dist *dist);

#endif
