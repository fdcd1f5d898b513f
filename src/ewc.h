/* Regularisation toward the weights fine-tuning started from: EWC (elastic
 * weight consolidation, a diagonal-Fisher-weighted quadratic penalty) and
 * L2-SP (the same penalty with every weight 1).
 *
 *   penalty = strength * sum_i F_i (theta_i - anchor_i)^2
 *   d/dtheta_i = 2 strength F_i (theta_i - anchor_i)
 *
 * Note the factor: papers that write (lambda / 2) sum F (...)^2 use a
 * lambda twice ours for the same penalty.
 *
 * The anchor and the Fisher are plain float buffers of m->n_params in the
 * parameter layout (anchor: a copy of m->params when fine-tuning starts).
 * Only tensors of groups that are trainable at the time of the call take
 * part: a frozen group cannot move, so its penalty could only be a constant
 * that shifts the reported loss, and a gradient added to it would be
 * discarded by the optimizer anyway. The padding floats between tensors are
 * never read or written. The per-step functions do not allocate. */
#ifndef MNEME_EWC_H
#define MNEME_EWC_H

#include "data.h"
#include "error.h"
#include "model.h"

typedef enum {
    FISHER_EMPIRICAL,          /* per-example squared gradients (exact) */
    FISHER_BATCH               /* squared batch gradients (cheap, biased) */
} FisherMode;

/* Fills fisher[m->n_params] with the diagonal empirical Fisher of task
 * `task` on the first `samples` rows of d (the whole set when samples
 * exceeds it): the mean over those rows of the squared gradient of each
 * row's cross-entropy with its true label. FISHER_EMPIRICAL runs one row
 * per forward/backward; FISHER_BATCH runs scratch->cap rows at a time (see
 * ewc.c for what it estimates). Every group gets its Fisher, frozen or not,
 * so that a group unfrozen later is protected too; the trainable flags are
 * restored on return. scratch is a batch for rows of d (cap at most the
 * model's batch capacity). Whatever m->grads held is lost; it is zero on
 * return, and padding floats of fisher are zero. Fails on an empty
 * selection, a bad task or scratch batch, or a label outside the task's
 * range (unlabelled rows have no true label to use). */
int ewc_fisher(Model *m, const Dataset *d, int task, int samples,
               FisherMode mode, Batch *scratch, float *fisher, MnError *e);

/* The same for another loss: grad accumulates the gradient of a batch's
 * mean loss into m->grads (forward and backward), as the MLM head's does
 * for masked-language modelling. */
typedef int (*FisherGrad)(void *ctx, Model *m, Batch *b, MnError *e);
int ewc_fisher_with(Model *m, const Dataset *d, int task, int samples, FisherMode mode,
                    Batch *scratch, float *fisher, FisherGrad grad, void *ctx, MnError *e);

/* strength * sum over trainable tensors of F_i (theta_i - anchor_i)^2,
 * with F_i = 1 when fisher is NULL (L2-SP). Summed in double. */
double ewc_penalty(const Model *m, const float *anchor, const float *fisher,
                   double strength);

/* Adds the penalty's gradient to m->grads of trainable tensors (call after
 * model_backward, before clipping and the optimizer step). */
void ewc_add_grad(Model *m, const float *anchor, const float *fisher,
                  double strength);

#endif
