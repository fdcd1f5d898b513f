/* Data parallelism across processes: under mpirun (or srun) every rank
 * holds the whole model and computes its share of each batch's rows; the
 * gradients, losses and predictions are combined here, in an order fixed
 * for a given number of ranks, so that a run gives the same numbers every
 * time. Without MPI (./configure --with-mpi) there is one rank and every
 * call is the identity. */
#ifndef MNEME_DIST_H
#define MNEME_DIST_H

#include <stdatomic.h>
#include <stddef.h>

#include "error.h"

typedef struct Dist {
    int rank, size;            /* this process, of size (1: alone) */
    int active;                /* MPI was started here (dist_finish ends it) */
    double reduce_s;           /* seconds spent combining gradients */
    long reduces;
    double wait_s;             /* of those, the seconds a step waited for them
                                * (all of them without overlap) */
    /* 1: gradients are summed behind the backward pass (gradsync.h), as
     * they become final; 0: after it. MNEME_OVERLAP=0 in the environment
     * turns it off. */
    int overlap;
    /* > 0: every message of the sum also takes as long as it would on a link of
     * this many bits a second with link_latency_s a message (mneme bench
     * --link: what overlap hides on a cluster's network, measured on one
     * machine); the wait sleeps and takes no core */
    double link_bits_per_s, link_latency_s;
    float *scratch;            /* the sum's receive buffer, kept from one
                                * step to the next */
    size_t scratch_n;
} Dist;

/* Starts MPI when the program runs under an MPI launcher (and the build
 * has it); else rank 0 of 1. */
int dist_init(Dist *d, int *argc, char ***argv, MnError *e);
void dist_finish(Dist *d);
/* Ends every rank at once after an error on this one (MPI's abort). */
void dist_abort(const Dist *d, int status);

/* Whether this build can run data-parallel (configure --with-mpi). */
int dist_available(void);

/* buf = the sum over ranks of buf, element by element: rank 0's + rank
 * 1's + …, in that order on every rank and every run, the order in which
 * one process adds its workers' gradients (each rank sums one share of
 * the buffer, which then goes round a ring to all). */
int dist_sum_floats(Dist *d, float *buf, size_t n, MnError *e);
/* The same from a thread beside workers (gradsync.h): while *busy, it
 * waits for the other ranks with short sleeps instead of spinning a core
 * that the workers need; once they are done, as MPI's own wait does. */
int dist_sum_floats_beside(Dist *d, float *buf, size_t n, const atomic_int *busy, MnError *e);
/* The same for a few doubles, summed in rank order. */
int dist_sum_doubles(const Dist *d, double *v, int n, MnError *e);
/* An array of rows of `width` floats of which rank r computed rows
 * [row0[r], row0[r + 1]), gathered so that every rank has them all. */
int dist_gather_rows(const Dist *d, float *buf, int width, const int *row0, MnError *e);
/* rank 0's n bytes at buf, to every rank. */
int dist_broadcast(const Dist *d, void *buf, size_t n, MnError *e);
/* The same, for a wait that may be long (a paused run's ranks waiting on
 * rank 0's next command): it naps between polls instead of spinning. */
int dist_broadcast_waiting(const Dist *d, void *buf, size_t n, MnError *e);
/* Whether any rank says it failed (each says whether it did); the ranks
 * wait for one another here. A failure of MPI itself ends the job. */
int dist_any_failed(const Dist *d, int failed);
/* A folder of this rank's own, for the copy of what rank 0's holds:
 * $TMPDIR/mneme-rankR-PID, then tag when not NULL. */
void dist_rank_folder(const Dist *d, const char *tag, char *out, size_t n);
/* Whether every rank holds the same n floats (a checksum compared). */
int dist_agree(const Dist *d, const float *buf, size_t n, int *same, MnError *e);

#endif
