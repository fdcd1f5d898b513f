#include "ewc.h"

#include <stdlib.h>
#include <string.h>

/* Why the empirical Fisher (the model's own loss with the true labels)
 * rather than the true Fisher (labels sampled from the model's predictive
 * distribution): it needs no random draws, so the same base checkpoint and
 * data always give the same Fisher and a resumed or forked run can rebuild
 * it bit for bit; and it weighs each weight by how much it matters to the
 * loss on the data the user wants to keep, which is what the forgetting
 * curve measures. Its known weakness: examples the model already fits with
 * confidence have gradients near zero and add little, so it can rank low
 * the weights that make them right. The exact expectation over labels
 * would cost one backward per label per example. */

enum { MAX_GROUPS = 2 + MODEL_MAX_LAYERS + MODEL_MAX_TASKS };

/* fisher[i] += (scale * g[i])^2 over every tensor; padding is left alone. */
static void add_squares(const Model *m, float *fisher, float scale)
{
    for (int t = 0; t < m->n_tensors; t++) {
        const ParamTensor *pt = &m->tensors[t];
        const float *g = m->grads + pt->offset;
        float *f = fisher + pt->offset;
        for (size_t i = 0; i < pt->numel; i++) {
            float s = scale * g[i];
            f[i] += s * s;
        }
    }
}

static void scale_tensors(const Model *m, float *fisher, float scale)
{
    for (int t = 0; t < m->n_tensors; t++) {
        const ParamTensor *pt = &m->tensors[t];
        float *f = fisher + pt->offset;
        for (size_t i = 0; i < pt->numel; i++)
            f[i] *= scale;
    }
}

static int check_fisher_args(const Model *m, const Dataset *d, int task,
                             int samples, FisherMode mode,
                             const Batch *scratch, MnError *e)
{
    if (task < 0 || task >= m->cfg.n_tasks)
        return mn_fail(e, "Fisher: task %d out of range (model has %d)", task,
                       m->cfg.n_tasks);
    if (mode != FISHER_EMPIRICAL && mode != FISHER_BATCH)
        return mn_fail(e, "Fisher: unknown mode %d", (int)mode);
    if (samples < 1)
        return mn_fail(e, "Fisher: %d samples (need at least 1)", samples);
    if (d->n < 1)
        return mn_fail(e, "Fisher: the data set is empty");
    if (scratch->cap < 1 || scratch->cap > m->act.cap_B)
        return mn_fail(e, "Fisher: scratch batch of %d rows (model holds %d)",
                       scratch->cap, m->act.cap_B);
    if (scratch->max_len < d->max_len)
        return mn_fail(e, "Fisher: scratch batch rows of %d tokens, data "
                       "rows of %d", scratch->max_len, d->max_len);
    if (m->n_groups > MAX_GROUPS)
        return mn_fail(e, "Fisher: %d parameter groups (at most %d)",
                       m->n_groups, MAX_GROUPS);
    int n = samples < d->n ? samples : d->n, K = m->cfg.n_labels[task];
    for (int i = 0; i < n; i++)
        if (d->label[i] < 0 || d->label[i] >= K)
            return mn_fail(e, "Fisher: row %d has label %d, task %s has "
                           "labels 0..%d", i, d->label[i],
                           m->cfg.task_name[task], K - 1);
    return 0;
}

/* Sum over the selected rows of the squared gradient of each row's loss.
 * The gradient of the mean over one row is that row's own gradient. */
/* The gradient of the batch's mean loss, by the heads or by grad. */
static int batch_grad(Model *m, Batch *b, FisherGrad grad, void *ctx, MnError *e)
{
    if (grad)
        return grad(ctx, m, b, e);
    model_forward(m, b);
    model_backward(m, b);
    return 0;
}

static int sum_per_example(Model *m, const Dataset *d, int task, int n,
                           Batch *scratch, float *fisher, FisherGrad grad, void *ctx,
                           MnError *e)
{
    for (int i = 0; i < n; i++) {
        model_zero_grads(m);
        batch_fill(scratch, d, &i, 1, task);
        if (batch_grad(m, scratch, grad, ctx, e) < 0)
            return -1;
        add_squares(m, fisher, 1.0f);
    }
    return 0;
}

/* Sum over batches of (b * mean-loss gradient)^2, i.e. of the squared sum
 * of the b per-example gradients. That square is the sum of their squares
 * (what the empirical Fisher wants) plus every cross product g_r g_s
 * between rows of the batch; those do not cancel: in expectation they add
 * (b - 1) times the squared mean gradient, so the estimate is biased
 * upward wherever the original-task gradient is not near zero (it is
 * exact for b = 1) and noisier. A last partial batch counts by its rows. */
static int sum_per_batch(Model *m, const Dataset *d, int task, int n,
                         Batch *scratch, int *idx, float *fisher, FisherGrad grad, void *ctx,
                         MnError *e)
{
    for (int start = 0; start < n; start += scratch->cap) {
        int b = n - start < scratch->cap ? n - start : scratch->cap;
        for (int r = 0; r < b; r++)
            idx[r] = start + r;
        model_zero_grads(m);
        batch_fill(scratch, d, idx, b, task);
        if (batch_grad(m, scratch, grad, ctx, e) < 0)
            return -1;
        add_squares(m, fisher, (float)b);
    }
    return 0;
}

int ewc_fisher(Model *m, const Dataset *d, int task, int samples,
               FisherMode mode, Batch *scratch, float *fisher, MnError *e)
{
    return ewc_fisher_with(m, d, task, samples, mode, scratch, fisher, NULL, NULL, e);
}

int ewc_fisher_with(Model *m, const Dataset *d, int task, int samples, FisherMode mode,
                    Batch *scratch, float *fisher, FisherGrad grad, void *ctx, MnError *e)
{
    if (check_fisher_args(m, d, task, samples, mode, scratch, e) < 0)
        return -1;
    int n = samples < d->n ? samples : d->n;
    int saved[MAX_GROUPS];
    int *idx = NULL;
    if (mode == FISHER_BATCH) {
        idx = malloc((size_t)scratch->cap * sizeof *idx);
        if (!idx)
            return mn_fail(e, "Fisher: out of memory for %d row indices",
                           scratch->cap);
    }
    for (int g = 0; g < m->n_groups; g++) {
        saved[g] = m->groups[g].trainable;
        m->groups[g].trainable = 1;
    }
    memset(fisher, 0, m->n_params * sizeof *fisher);
    int rc = mode == FISHER_EMPIRICAL
                 ? sum_per_example(m, d, task, n, scratch, fisher, grad, ctx, e)
                 : sum_per_batch(m, d, task, n, scratch, idx, fisher, grad, ctx, e);
    scale_tensors(m, fisher, 1.0f / (float)n);
    for (int g = 0; g < m->n_groups; g++)
        m->groups[g].trainable = saved[g];
    model_zero_grads(m);
    free(idx);
    return rc;
}

double ewc_penalty(const Model *m, const float *anchor, const float *fisher,
                   double strength)
{
    double sum = 0.0;
    if (strength == 0.0)
        return 0.0;
    for (int t = 0; t < m->n_tensors; t++) {
        const ParamTensor *pt = &m->tensors[t];
        if (!m->groups[pt->group].trainable)
            continue;
        const float *p = m->params + pt->offset, *a = anchor + pt->offset;
        const float *f = fisher ? fisher + pt->offset : NULL;
        for (size_t i = 0; i < pt->numel; i++) {
            double dv = (double)p[i] - (double)a[i];
            sum += (f ? (double)f[i] : 1.0) * dv * dv;
        }
    }
    return strength * sum;
}

void ewc_add_grad(Model *m, const float *anchor, const float *fisher,
                  double strength)
{
    if (strength == 0.0)
        return;
    for (int t = 0; t < m->n_tensors; t++) {
        const ParamTensor *pt = &m->tensors[t];
        if (!m->groups[pt->group].trainable)
            continue;
        const float *p = m->params + pt->offset, *a = anchor + pt->offset;
        float *g = m->grads + pt->offset;
        if (fisher) {
            const float *f = fisher + pt->offset;
            for (size_t i = 0; i < pt->numel; i++)
                g[i] += (float)(2.0 * strength * f[i] * ((double)p[i] - a[i]));
        } else {
            for (size_t i = 0; i < pt->numel; i++)
                g[i] += (float)(2.0 * strength * ((double)p[i] - a[i]));
        }
    }
}
