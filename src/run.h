/* A run: the experiment carried through its phases — base (pretrain on the
 * original task, or load a base checkpoint), then finetune (train on the
 * new task, evaluating both) — one optimizer step per call, with metrics,
 * checkpoints and the summary written into the run folder.
 *
 * A run knows nothing of threads or terminals: a frontend (headless lines,
 * later the curses UI through the trainer thread) drives run_step and is
 * told of each evaluation and log line through RunHooks. */
#ifndef MNEME_RUN_H
#define MNEME_RUN_H

#include <stdio.h>
#include <time.h>

#include "checkpoint.h"
#include "config.h"
#include "data.h"
#include "error.h"
#include "events.h"
#include "metrics.h"
#include "mlm.h"
#include "model.h"
#include "tokenizer.h"
#include "optim.h"
#include "policy.h"
#include "rng.h"

enum { TASK_ORIGINAL = 0, TASK_NEW = 1, N_TASKS = 2 };

typedef enum {
    PHASE_BASE,
    PHASE_FINETUNE,
    PHASE_DONE
} Phase;

const char *phase_name(Phase p);

typedef struct Run Run;

/* What a frontend is told; any may be NULL. */
typedef struct {
    void (*on_eval)(void *ctx, const Run *run, const EvalRecord *r);
    void (*on_log)(void *ctx, const char *line);
    /* A branch was created in dir (by a policy's run:fork); the frontend
     * may run it alongside. */
    void (*on_branch)(void *ctx, const Run *run, const char *dir);
    void *ctx;
    /* With max_branches > 0, a policy's run:fork is refused (and told so)
     * once open_branches(ctx) branches, the run included, are open. */
    int max_branches;
    int (*open_branches)(void *ctx);
    int making;                /* branches being made, not yet open, that
                                * hold their places (a branch's setup may
                                * fork while it is made) */
    struct Dist *dist;         /* the ranks the run's batches are split
                                * over (dist.h); NULL: this process alone */
    int threads;               /* > 0: a resume's threads in place of
                                * experiment.cfg's (mneme run --resume DIR
                                * --set threads=N), recorded with the
                                * restart */
} RunHooks;

struct Run {
    Experiment x;
    char dir[EXP_PATH];
    char branch[64];           /* "main", or the name it was forked as */

    Model model;
    AdamW opt;
    Rng rng;
    LabelSet labels[N_TASKS];
    Tokenizer tok;             /* byte-level, or the base model's WordPiece */
    /* base.from: the model's own classification head is the original
     * task, whose labels (id2label) are fixed before its data load */
    int own_head;
    int fixed_labels[N_TASKS];
    /* original.mlm: the original task is masked-language modelling, scored
     * by the base model's MLM head */
    int original_mlm;
    MlmHead mlm_head;
    Batch mlm_batch;           /* MLM replay rows of a step */
    Dataset train[N_TASKS], eval[N_TASKS];
    Sampler sampler;           /* over the current phase's training set */
    Batch batch, eval_batch;
    int *idx;

    Phase phase;
    long step;                 /* optimizer steps done in this phase */
    long total_steps;          /* of this phase */
    int steps_per_epoch;
    Schedule sched;
    double clip_norm;
    float last_lr;
    double loss_sum;           /* training loss since the last evaluation */
    long loss_count;
    float last_train_loss;
    /* Divergence (stop.diverge): the latest training losses of this
     * phase, oldest first, and the step the last one was caught at */
    float recent[CHECKPOINT_RECENT_LOSSES];
    int n_recent;
    long diverged_at;          /* -1: none since the last pause */

    /* Strategies of the finetune phase */
    Sampler replay;            /* original-task rows mixed into batches */
    int replay_rows;           /* of each batch; 0 = no replay */
    float *anchor;             /* parameters when fine-tuning began (θ*) */
    float *fisher;             /* EWC's diagonal Fisher; NULL when off */
    double ewc_lambda;         /* may change at any step */

    /* Early stopping, recomputed from the history on resume */
    double stop_best;          /* best combined metric so far (lower wins) */
    long stop_best_step;
    int stop_bad;              /* evaluations since it last improved */
    char stop_reason[256];     /* set when a stop rule ends the run */

    /* The Lua policy (finetune phase) and what it changed */
    Policy *policy;
    PolicyView view;           /* what the policy saw at its last call */
    int lr_override;           /* a policy set the rate: lr_value, not the schedule */
    double lr_value;
    long policy_mtime;         /* for policy.watch */
    char pause_reason[1100];   /* set when the run must pause */
    int pause_is_error;        /* the pause comes from a policy error */
    int checkpoint_due;        /* a checkpoint failed: retried before the next step, */
    char due_name[64];         /*   under this name ("" = by step) */
    char last_checkpoint[EXP_PATH + 320];  /* the path last written */
    EventLog events;
    double step_seconds;       /* in optimizer steps, this process */
    double finetune_seconds;   /* in fine-tuning's optimizer steps, every
                                * process (kept in checkpoints) */
    int ranks_agree;           /* across ranks: 1 when every rank ended with
                                * the same weights, 0 not, -1 not known */
    double policy_seconds;     /* in policy hooks and applying them */

    History history;
    FILE *metrics;             /* metrics.jsonl, appended */
    /* metrics.jsonl's lines so far, as written: every checkpoint holds
     * them, so no damage to the file can lose an evaluation before it */
    char *metrics_text;
    size_t metrics_len, metrics_cap;
    int lock_fd;               /* the run folder's lock (runlock.h), */
    int has_lock;              /*   while this process trains in it */
    double elapsed_before;     /* seconds spent before this process resumed */
    struct timespec started;

    RunHooks hooks;
};

/* The model an experiment describes, heads "original" and "new" with
 * these label counts; with base.from, the shape of its config.json. */
int run_model_config(const Experiment *x, const int n_labels[N_TASKS], ModelConfig *mc,
                     MnError *e);

/* Starts a new run of x in folder dir (created; must not hold a run). */
int run_create(Run *r, const Experiment *x, const char *dir,
               const RunHooks *hooks, MnError *e);
/* Continues the run in dir from its last complete checkpoint. */
int run_resume(Run *r, const char *dir, const RunHooks *hooks, MnError *e);
void run_free(Run *r);

/* Records in summary.json how a run that has not finished ended:
 * "stopped" (quit or a signal), "paused" or "failed". A finished run's
 * summary is left as it is. */
int run_mark_ended(Run *r, const char *status, MnError *e);

/* One optimizer step, then whatever falls due after it (evaluation,
 * checkpoint, end of phase). Returns 1 when the run has finished, 0 when
 * there is more to do, 2 when it must pause (pause_reason says why: a
 * policy asked, or a policy hook failed — then no step was taken), -1 on
 * error (the run stays consistent on disk). */
int run_step(Run *r, MnError *e);

/* Loads the policy file again. On failure the error is returned and the
 * previous policy stays active; on success its source is saved as
 * policy/<step>.lua and its setup runs. Clears a pause caused by a policy
 * error, so the run goes on from where it paused. */
int run_policy_reload(Run *r, MnError *e);

/* Evaluates task k on up to `limit` examples of its eval set (0 = all). */
TaskScore run_evaluate(Run *r, int task, int limit);

/* Writes checkpoints/<name>.safetensors now (name NULL: by phase and step). */
int run_checkpoint(Run *r, const char *name, MnError *e);

/* Hand changes, as typed in the UI or replayed: each is validated, applied
 * from the current step, recorded in events.jsonl with its step and
 * source ("ui", "replay", …), and described in msg for the log. On a
 * refusal nothing changes and e says why. */
int run_set_lr(Run *r, double v, const char *source, char *msg, size_t n, MnError *e);
int run_set_ewc(Run *r, double v, const char *source, char *msg, size_t n, MnError *e);
int run_set_frozen(Run *r, const char *parts, int frozen, const char *source,
                   char *msg, size_t n, MnError *e);
int run_set_policy_param(Run *r, const char *name, const char *text, const char *source,
                         char *msg, size_t n, MnError *e);
/* Runs the policy in file from this step on, in place of the run's (if
 * any, which stays when the new one does not load): written into the
 * run's experiment.cfg, its source saved as policy/<step>.lua, recorded
 * as a "policy" event, its setup called. */
int run_attach_policy(Run *r, const char *file, const char *source, char *msg, size_t n,
                      MnError *e);

/* Appends one event (step, phase and source filled in here) to
 * events.jsonl; fields are taken over from extra. */
int run_record(Run *r, const char *source, const char *command, json_t *extra, MnError *e);

/* Continues the run in dir, which holds a checkpoint just written (or
 * copied there): writes its experiment.cfg as base_cfg with sets[]
 * applied, resumes it, applies what the checkpoint's state would
 * otherwise override (finetune.lr, ewc.lambda, freezing, the policy),
 * records the "branch" event and saves that state at the same step.
 * at_start: the checkpoint is of fine-tuning step 0, where an override
 * that changes what is trained (run_override_restarts) begins fine-tuning
 * afresh from the base weights instead. Used by a fork and by its replay,
 * so both take exactly the same path. */
int run_continue_as_branch(Run *r, const char *dir, const char *base_cfg, const char *branch,
                           const char *parent, const char *const *sets, int n_sets,
                           int at_start, const char *source, const RunHooks *hooks, MnError *e);

/* One fork override KEY=VALUE: the key as the experiment names it (the
 * short names :set uses, such as ewc.lambda, are accepted), or
 * policy.NAME for a policy parameter (*is_param). Keys that fix the base
 * (seed, model, data) are refused; so are those that fix what the
 * checkpoint was trained with (method, adapters, the Fisher's kind)
 * unless the fork is at the start of fine-tuning (at_start: step 0). */
int run_fork_override(const char *set, int at_start, char *key, size_t nk, char *value,
                      size_t nv, int *is_param, MnError *e);
/* Whether a fork that changes key begins fine-tuning afresh from the base
 * weights (the method, the adapters, the Fisher's kind) rather than
 * continuing its checkpoint. */
int run_override_restarts(const char *key);

/* Keeps the step checkpoint at path (one of r's) from checkpoint.keep's
 * rotation, as checkpoints/<kind>-step-N: where the user paused or forked
 * is where they may fork again. Others are left as they are. */
int run_keep_checkpoint(Run *r, const char *path, const char *kind, MnError *e);

/* Writes the checkpoint of the current step without calling the policy's
 * on_checkpoint (a fork's or a replay's bookkeeping is not the run's). */
int run_save_state(Run *r, MnError *e);

/* Relative L2 distance of group g's weights from the base fine-tuning
 * started from, ||θ_g − θ*_g|| / ||θ*_g|| (as summary.json's drift): a
 * pass over the group's weights. Negative before fine-tuning began. */
double run_drift(const Run *r, int g);

/* 0 for a group no one reads: the model's own original head when the
 * original task is masked-language modelling (scored through the base
 * model's MLM head); it is left out of the panel and the drift. */
int run_group_shown(const Run *r, int g);

double run_elapsed(const Run *r);

#endif
