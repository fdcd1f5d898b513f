/* A small deterministic generator (xoshiro128-style state in 64 bits via
 * splitmix64) so that runs are reproducible from the experiment seed and the
 * whole state fits in a checkpoint's metadata. */
#ifndef MNEME_RNG_H
#define MNEME_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t state;
} Rng;

void rng_seed(Rng *r, uint64_t seed);
/* A generator for a named purpose, independent of others drawn from the
 * same seed (stream = a small constant per purpose, e.g. epoch number). */
void rng_seed_stream(Rng *r, uint64_t seed, uint64_t stream);
uint64_t rng_u64(Rng *r);
uint32_t rng_below(Rng *r, uint32_t n);      /* uniform in [0, n) */
float rng_uniform(Rng *r);                   /* uniform in [0, 1) */
float rng_normal(Rng *r);                    /* standard normal */
void rng_shuffle(Rng *r, int *a, int n);

#endif
