/* AdamW over the model's flat buffers, global gradient-norm clipping and
 * learning-rate schedules. */
#ifndef MNEME_OPTIM_H
#define MNEME_OPTIM_H

#include "error.h"
#include "model.h"

typedef struct {
    float beta1, beta2, eps;
    float weight_decay;        /* decoupled; only tensors with decay set */
} AdamConfig;

/* Moments in the parameter layout. Each group counts its own steps: a
 * group that was frozen and is opened later starts its bias correction
 * from its first real update, not from the run's step. */
typedef struct {
    AdamConfig cfg;
    size_t n;
    float *m, *v;
    long *group_t;             /* [n_groups] */
    int n_groups;
} AdamW;

int adamw_create(AdamW *o, const Model *model, AdamConfig cfg, MnError *e);
void adamw_free(AdamW *o);
void adamw_reset(AdamW *o);
/* One update with base rate lr: each trainable group uses lr * lr_scale;
 * frozen groups are left exactly as they are (weights, moments, count). */
void adamw_step(AdamW *o, Model *model, float lr);

/* L2 norm of the gradients of trainable groups. */
double grad_norm(const Model *model);
/* Scales trainable gradients so that their norm is at most max_norm
 * (max_norm <= 0: no-op). Returns the norm before clipping. */
double grad_clip(Model *model, double max_norm);

typedef enum {
    SCHED_CONSTANT,
    SCHED_LINEAR,
    SCHED_COSINE,
    SCHED_SLANTED_TRIANGULAR   /* ULMFiT: a short rise, a long fall; no warmup */
} ScheduleKind;

typedef struct {
    ScheduleKind kind;
    float peak;                /* base learning rate */
    long warmup;               /* linear 0 → peak over these steps */
    long total;                /* decay reaches 0 at total */
    float cut_frac;            /* slanted triangular: share of steps rising */
    float ratio;               /* slanted triangular: peak / lowest rate */
} Schedule;

int schedule_parse(const char *name, ScheduleKind *kind);
const char *schedule_name(ScheduleKind kind);
/* Rate for the update made at `step` (0-based): warmup (step+1)/warmup ·
 * peak, then constant, linear or cosine decay to 0 at `total`. The
 * slanted triangular schedule (Howard & Ruder 2018) ignores warmup: it
 * rises linearly from peak/ratio to peak over cut = cut_frac · total steps,
 * then falls linearly back to peak/ratio at total. */
float schedule_lr(const Schedule *s, long step);

#endif
