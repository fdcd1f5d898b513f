/* The trainer: owns a Run on its own thread, applies commands only between
 * optimizer steps, and publishes a snapshot (header fields, evaluation
 * history, per-group rates, recent log lines, state) under a short lock.
 * A frontend reads snapshots and posts commands; it never waits on a step. */
#ifndef MNEME_TRAINER_H
#define MNEME_TRAINER_H

#include "config.h"
#include "error.h"
#include "metrics.h"

typedef enum {
    TS_RUNNING,
    TS_PAUSED,
    TS_FINISHED,
    TS_ERROR,
    TS_STOPPED                 /* quit asked; the thread is ending */
} TrainerState;

const char *trainer_state_name(TrainerState s);

typedef enum {
    CMD_PAUSE,                 /* value 0 toggles, > 0 pauses, < 0 resumes */
    CMD_CHECKPOINT,            /* arg: a sanitised name, or "" for step-N */
    CMD_RELOAD,                /* the policy file */
    CMD_SET_LR,                /* finetune.lr = value from this step */
    CMD_SET_EWC,               /* ewc lambda = value from this step */
    CMD_FREEZE,                /* freeze the parts named in arg */
    CMD_UNFREEZE,              /* unfreeze them */
    CMD_EVALUATE,              /* evaluate now, into the log only */
    CMD_SET_POLICY,            /* policy parameter arg = text */
    CMD_ATTACH_POLICY,         /* run the policy file text from this step */
    CMD_LIST_CHECKPOINTS,      /* log the steps a fork can start from */
    CMD_QUIT,                  /* checkpoint (unless finished), then stop */
    CMD_FORK,                  /* arg: the branch name; text: "KEY=VALUE …";
                                * value: the step to fork at, < 0 = now */
    CMD_FOLLOW,                /* arg: the branch's name; "" and value < 0:
                                * the next one, else value: its index */
    CMD_DROP                   /* arg: a branch's name: stop it (with a
                                * checkpoint) and set its folder aside */
} CommandKind;

typedef struct {
    CommandKind kind;
    unsigned long id;          /* > 0: its outcome is kept in the snapshot's
                                * replies (a client waits for it) */
    char source[16];           /* who asked, for events.jsonl: "" is "ui" */
    double value;
    char arg[128];             /* CMD_FREEZE, CMD_UNFREEZE: a part list;
                                * CMD_CHECKPOINT: a name; CMD_SET_POLICY:
                                * the parameter */
    char text[128];            /* CMD_SET_POLICY: the value as typed */
} Command;

#define SNAP_GROUPS 64
#define SNAP_LOG 256
#define SNAP_LINE 400

typedef struct {
    char name[48];
    int trainable;
    double lr;                 /* effective: current rate · lr_scale */
    double drift;              /* ||θ − θ_base|| / ||θ_base|| of the group,
                                * refreshed at most every 0.5 s and at each
                                * evaluation; negative when unknown */
} SnapGroup;

/* main and its branches: room for a study of every remedy mneme has */
#define SNAP_BRANCHES 24
#define SNAP_REPLIES 32

/* What became of a command posted with an id: the lines it logged. */
typedef struct {
    unsigned long id;
    int ok;                    /* none of its lines was an error */
    char text[SNAP_LINE];
} SnapReply;

/* One branch of the family, for the branch list and the compare view. */
typedef struct {
    char name[64];             /* "main" for the run itself */
    char parent[64];
    long fork_step;            /* -1 for main */
    TrainerState state;
    char phase[16];
    long step, total_steps;
    double original_weight;    /* stop.original_weight: the combined metric */
    char message[1100];        /* why it paused or failed */
    int error_pause;           /* paused by a policy error, a failed checkpoint or divergence */
    int stopped;               /* paused by TrainerOptions.stop_after */
    int hand_paused;           /* paused by a command (space, ctl pause) */
    int has_policy;
    EvalRecord *hist;          /* owned by the snapshot; only grows */
    int n_hist, cap_hist;
} SnapBranch;

typedef struct {
    unsigned long version;     /* bumped on every publish */
    char experiment[128];
    char phase[16];
    long step, total_steps;
    int steps_per_epoch;
    double lr;                 /* the last step's base rate */
    int has_ewc;               /* the run has a Fisher: ewc_lambda applies */
    double ewc_lambda;
    char policy[64];           /* the policy's name, "" when none */
    char precision[48];        /* "fp32", or bf16 and what runs it (bf16_describe) */
    double steps_per_s;
    TrainerState state;
    char message[SNAP_LINE];   /* why paused / what failed */

    EvalRecord *hist;          /* owned by the snapshot */
    int n_hist, cap_hist;

    int n_groups;
    SnapGroup groups[SNAP_GROUPS];

    char branch[64];           /* the branch followed (and steered) */
    int followed;              /* its index in branches */
    unsigned long generation;  /* bumped when hist starts over (Tab) */
    int n_branches;
    SnapBranch branches[SNAP_BRANCHES];

    unsigned long n_replies;   /* replies ever made; the last SNAP_REPLIES
                                * kept, reply i at replies[i % SNAP_REPLIES] */
    SnapReply replies[SNAP_REPLIES];

    unsigned long n_logged;    /* lines ever logged (anchors scrolling) */
    int n_log;                 /* lines kept, oldest first */
    char log[SNAP_LOG][SNAP_LINE];
} Snapshot;

void snapshot_free(Snapshot *s);
/* Appends a line to s's log, dropping the oldest when full. */
void snapshot_log(Snapshot *s, const char *line);

typedef struct Trainer Trainer;

/* A branch a study forks from main at the start of fine-tuning. */
typedef struct {
    const char *name;
    const char *const *sets;   /* KEY=VALUE overrides (run_fork_override) */
    int n_sets;
} TrainerFork;

/* For a frontend that prints as the run goes (headless): called on the
 * trainer thread with each evaluation and each line the run logs, branch
 * being the run's branch name and n_branches the family's size then. */
typedef struct {
    void (*on_eval)(void *ctx, const char *branch, int n_branches, const EvalRecord *r);
    void (*on_log)(void *ctx, const char *branch, int n_branches, const char *line);
    void *ctx;
    long stop_after;           /* > 0: a branch checkpoints and pauses after
                                * this many steps in this process */
    int quiet_commands;        /* the frontend's commands are not recorded
                                * in events.jsonl (reload, quit: headless) */
    int restore_states;        /* a resumed family comes back as it ended:
                                * each branch running or paused (the
                                * workbench); else main runs, branches wait */
    int run_family;            /* a resumed family's every unfinished branch
                                * runs on (a headless study: how each ended
                                * is not known after a signal across ranks) */
    /* A study: once main is fine-tuning, each of these that the family
     * lacks is forked from its step 0 (once per process; the caller keeps
     * them alive until trainer_stop). */
    const TrainerFork *forks;
    int n_forks;
    struct Dist *dist;         /* the ranks each run is split over, or NULL */
    int threads;               /* > 0: a resume's threads (RunHooks) */
    int one_at_a_time;         /* a live branch runs to its end before the
                                * next (in family order) takes a step: each
                                * keeps the caches to itself (headless) */
} TrainerOptions;

/* trainer_start or (x NULL) trainer_resume, with options (NULL: none). */
Trainer *trainer_open(const Experiment *x, const char *dir, Experiment *x_out,
                      const TrainerOptions *o, MnError *e);

/* Creates the run of x in out_dir (errors come back here, before any
 * thread starts) and starts training on a new thread. Signals are blocked
 * on the trainer thread. */
Trainer *trainer_start(const Experiment *x, const char *out_dir, MnError *e);
/* The header fields, history and groups are those of the followed
 * branch. Commands steer the followed branch; CMD_FORK and CMD_FOLLOW
 * change the family. Live branches take steps in turn. */

/* Continues the run in run_dir (run_resume) on a new thread, its branches
 * (branches/) loaded paused; x gets the
 * run's experiment (for the frontend's settings) before the thread starts.
 * A finished run is shown as finished. */
Trainer *trainer_resume(const char *run_dir, Experiment *x, MnError *e);
/* Queues a command; applied before the next step. */
void trainer_post(Trainer *t, const Command *c);
/* Adds a line (time-stamped) to the snapshot's log. */
void trainer_log(Trainer *t, const char *line);
/* Copies the snapshot into out if its version differs from out->version;
 * returns 1 when it copied. Holds the lock only for the copy. */
int trainer_snapshot(Trainer *t, Snapshot *out);
/* Asks the thread to quit (checkpointing every branch first unless
 * finished), joins it and frees everything. Returns 0, or 1 when a branch
 * had failed or a checkpoint at quit could not be written. */
int trainer_stop(Trainer *t);

#endif
