/* Training state ↔ safetensors: parameters under their Hugging Face names,
 * AdamW moments as "optimizer.exp_avg.<name>" / "optimizer.exp_avg_sq.<name>",
 * and run state (phase, step, data position, RNG, group flags, model shape
 * and label names) as `__metadata__` strings. Floats in metadata are
 * written in hexadecimal so a resumed run continues bit for bit. */
#ifndef MNEME_CHECKPOINT_H
#define MNEME_CHECKPOINT_H

#include "data.h"
#include "error.h"
#include "model.h"
#include "optim.h"
#include "safetensors.h"

#define CHECKPOINT_FORMAT "mneme-1"

/* Every group a model can have: embeddings, blocks, pooler, heads, an
 * adapter group per block, prompt and prefix. */
#define CHECKPOINT_MAX_GROUPS (2 * MODEL_MAX_LAYERS + 4 + MODEL_MAX_TASKS)

/* The training losses divergence is judged on: stop.diverge_window
 * (at most 1000) steps and the 5 after them. */
#define CHECKPOINT_RECENT_LOSSES 1005

/* What a checkpoint records beside the tensors. */
typedef struct {
    char phase[16];            /* base | finetune | done */
    long step;                 /* optimizer steps done in this phase */
    int sampler_epoch, sampler_cursor;
    int replay_epoch, replay_cursor;   /* the replay stream (0, 0 when unused) */
    long events_lines;         /* events.jsonl lines written before it */
    double ewc_lambda;         /* as changed by hand or by a policy */
    double lr_peak;            /* the schedule's base rate, as last set (0: the recipe's) */
    int lr_override;           /* a policy set the learning rate: */
    double lr;                 /*   this one, instead of the schedule's */
    int has_groups;            /* groups' trainable flags and multipliers: */
    int n_groups;
    unsigned char trainable[CHECKPOINT_MAX_GROUPS];
    float lr_scale[CHECKPOINT_MAX_GROUPS];
    unsigned long long rng_state;
    double loss_sum;           /* training loss since the last evaluation */
    long loss_count;
    double elapsed_s;
    double finetune_s;         /* in fine-tuning's optimizer steps */
    char policy_params[8192];  /* policy_params_text: set by hand */
    int n_recent;              /* the latest training losses, oldest first */
    float recent[CHECKPOINT_RECENT_LOSSES];
    /* metrics.jsonl's lines up to this step (saving only; a reader finds
     * them as the "mneme.metrics" metadata) */
    const char *metrics;
} RunStateRecord;

/* Writes model (and, when opt is not NULL, its moments) with the state and
 * the label names of each head, atomically. */
int checkpoint_save(const char *path, const Model *m, const AdamW *opt,
                    const RunStateRecord *st, const LabelSet *labels,
                    MnError *e);

/* Writes the weights only, without adapters, optimizer or run state: a
 * model for export (after lora_merge, the merged one). */
int checkpoint_export(const char *path, const Model *m, const LabelSet *labels, MnError *e);

/* Reads the model shape and label names a checkpoint was written with, so
 * a model can be built for it (predict, or a run that starts from it). */
int checkpoint_read_config(const StFile *f, ModelConfig *cfg,
                           LabelSet *labels, MnError *e);

/* Loads parameters and, when opt/st are not NULL, the moments and run
 * state. Every tensor must exist with the model's shape, except the new
 * task's head: a base checkpoint made for another new task still gives its
 * encoder and original head, and the new head keeps its initialisation. */
/* Everything a prediction or an export of task reads must be in f, shaped
 * as its metadata says: checkpoint_load lets a base checkpoint lack the
 * new head and the adapters (training keeps their initialisation), which
 * would give the same logits for every line. The other tasks' heads are
 * not read (task < 0: none is). Errors name path and the tensor. */
int checkpoint_require(const StFile *f, const Model *m, int task, const char *path,
                       MnError *e);

int checkpoint_load(const StFile *f, Model *m, AdamW *opt, RunStateRecord *st,
                    MnError *e);

/* How far the run that wrote f had got: the lines of events.jsonl it
 * held and the seconds spent, without loading the model (a fork that
 * starts fine-tuning afresh builds another one). */
int checkpoint_read_progress(const StFile *f, long *events_lines, double *elapsed_s, MnError *e);

#endif
