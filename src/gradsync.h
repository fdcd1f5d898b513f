/* The gradients' sum over ranks, behind the backward pass.
 *
 * The backward pass goes from the heads down to the embeddings, and a
 * layer's gradients are final as soon as the pass has gone below it. So
 * the buffer is cut into buckets, each tagged with the stage of the pass
 * after which it is final (0: the heads, then one stage a block, top
 * down, then the rest), and a thread of its own sums each bucket over the
 * ranks (dist_sum_floats) while the workers compute the stages below.
 *
 * The workers of this rank are combined first, as model.c's reduction
 * does without this: when every worker has reached a bucket's stage, each
 * adds its share of the others' buffers into the model's (worker 1's,
 * then 2's, …, the same order for every element), and then goes on.
 * Buckets are fixed for a given model and set of trainable groups, and go
 * in the same order every step, so the sums are as reproducible as
 * without the overlap. Only the sum thread calls MPI while a pass runs;
 * the caller makes no MPI call between gradsync_begin and gradsync_end. */
#ifndef MNEME_GRADSYNC_H
#define MNEME_GRADSYNC_H

#include <stddef.h>

#include "dist.h"
#include "error.h"

typedef struct GradSync GradSync;

typedef struct GradBucket {
    size_t offset, numel;      /* floats of the gradient buffer */
    int stage;                 /* final once every worker reached it */
    /* NULL, or a table whose rows are zero on every rank but these (the
     * word embeddings: only the batch's tokens have a gradient): the
     * bucket begins with table_rows rows of row_len floats, of which only
     * rows[0 .. n_rows) (increasing) are sent; the rest whole. The sums
     * are those of the whole bucket: each element is summed in rank order
     * however the buffer is cut. */
    const int *rows;
    int n_rows, table_rows;
    size_t row_len;
} GradBucket;

/* Starts the sum thread. NULL on failure. */
GradSync *gradsync_create(Dist *d, MnError *e);
void gradsync_free(GradSync *s);

/* A backward pass begins. grads is worker 0's buffer (the model's);
 * others[0 .. n_workers - 2] the other workers' buffers; buckets in
 * increasing order of stage, stages below n_stages. The arrays must stay
 * until gradsync_end. */
int gradsync_begin(GradSync *s, float *grads, float *const *others, int n_workers,
                   const GradBucket *buckets, int n_buckets, int n_stages, MnError *e);
/* Worker w has finished every stage up to and including `stage` (called
 * by every worker with rows, with increasing stages; the last call with
 * n_stages - 1). May wait for the other workers at a stage whose buckets
 * they combine. */
void gradsync_reached(GradSync *s, int worker, int stage);
/* Waits until every bucket has been summed over the ranks; the seconds
 * waited here (the sum's time that the pass did not hide). */
double gradsync_end(GradSync *s);

#endif
