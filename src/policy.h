/* Lua policies: a user's script that decides, step by step, which parts
 * of the model train, at what rate, how strong EWC is, and when to pause,
 * checkpoint, fork or stop (mneme-policy(7)).
 *
 * The engine never calls into Lua mid-step and Lua never touches the
 * engine: before each hook the run fills a PolicyView, the script reads
 * and writes that view, and after the hook the run applies what changed
 * and acts on the queued actions. So this module knows nothing of the
 * model and is tested with hand-filled views.
 *
 * What the run does (all on the trainer thread; the Lua state is not
 * shared):
 *   - policy_load() at start; save policy_source() as policy/<step>.lua;
 *     call "setup" once with the view of step 0.
 *   - before every optimizer step: fill the view, copy it, call
 *     "on_step", then apply the differences (policy_view_changes() lists
 *     them; record each in events.jsonl with the step and policy_name())
 *     before the step runs, then act on the actions in order.
 *   - after every evaluation: fill view.metrics, call "on_eval", apply
 *     and record the same way; "on_checkpoint" with the path after one is
 *     written.
 *   - lr: the view's lr is the base rate the next step uses, before each
 *     part's lr_scale. Until a policy first writes it, the run fills it
 *     from its own schedule; once a policy has written it, the policy owns
 *     the rate and the run keeps the last value written (no second
 *     warmup). ewc_lambda, frozen and lr_scale persist as written.
 *   - a hook returning -1: the view is back to what the run filled and no
 *     actions are returned, so nothing is applied; show e->msg
 *     ("file:line: message") and pause (headless: checkpoint, message,
 *     exit status 1). The policy stays loaded; after the user fixes the
 *     file, policy_reload() and call "setup" again, then resume.
 *   - reload (command, key or file change): policy_reload(); on success
 *     save the source again and call "setup"; on failure show e->msg and
 *     keep going with the previous policy. */
#ifndef MNEME_POLICY_H
#define MNEME_POLICY_H

#include <stdatomic.h>
#include <stddef.h>

#include "error.h"

#define POLICY_MAX_LAYERS 72
#define POLICY_MEMORY_CAP ((size_t)64 << 20)      /* bytes per Lua state */
#define POLICY_INSTRUCTION_BUDGET 10000000LL      /* Lua instructions per call */
#define POLICY_TIME_LIMIT_S 1.0   /* wall-clock seconds per call, whatever it calls */
#define POLICY_MAX_ACTIONS 16     /* max_acts the run passes (mneme-policy(7) promises it) */

/* One part of the model, in model order: embeddings, layer.0.., pooler,
 * classifier.<task>... In Lua, index is its 1-based position in
 * run.layers and block the N of layer.N (nil for other parts). */
typedef struct {
    char name[48];
    int frozen;                /* read/write */
    double lr_scale;           /* read/write, >= 0 */
    long trainable_params;
    double drift;              /* distance from the base weights */
} PolicyLayer;

typedef struct {
    int has;
    double acc, loss;
} PolicyScore;

typedef struct {
    int has;                   /* 0: nil in Lua */
    long step;
    PolicyScore new_task, original;   /* m.new, m.original */
} PolicyMetrics;

typedef struct {
    long step;                 /* optimizer steps done; 0 in the first on_step */
    long total_steps, warmup_steps;
    double epoch;
    char phase[16];
    double base_lr;            /* the experiment's rate, read-only */
    double lr;                 /* read/write, >= 0 */
    double ewc_lambda;         /* read/write, >= 0 */
    PolicyMetrics metrics, baseline, best;
    long crossover_step;       /* -1: none (nil in Lua) */
    int branch_limit;          /* > 0: at most this many branches open at
                                * once (run:fork refuses beyond); 0: none */
    int open_branches;         /* open now, the run itself included */
    int n_layers;
    PolicyLayer layers[POLICY_MAX_LAYERS];
} PolicyView;

typedef enum { POLICY_LOG, POLICY_PAUSE, POLICY_CHECKPOINT, POLICY_FORK, POLICY_STOP } PolicyActionKind;

/* text: the message, reason, checkpoint tag or fork name (tags and names
 * are letters, digits, '.', '_' and '-' only, or empty). overrides: fork's
 * "key=value" lines, sorted by key. Longer texts are cut. */
typedef struct {
    PolicyActionKind kind;
    char text[256];
    char overrides[512];
    char refused[160];         /* a fork refused in the call (run:fork
                                * returned nil and this): record, log */
} PolicyAction;

/* One change a hook made to the view, for events.jsonl: what is "lr",
 * "ewc_lambda", "<part>.frozen" or "<part>.lr_scale". */
typedef struct {
    char what[64];
    double from, to;
} PolicyChange;

typedef struct Policy Policy;

/* Loads the policy file at path in a fresh sandboxed Lua state: require
 * searches search_dirs only (the project's lua/ folder, a user folder),
 * math.random is seeded with seed. Compile, syntax and validation errors
 * come back as "file:line: message". */
int policy_load(Policy **out, const char *path, const char *const *search_dirs, int n_dirs,
                unsigned long long seed, MnError *e);

/* Reads the file again into a new state and swaps it in only when it
 * loaded; on any error the previous policy stays active, untouched.
 * Parameters the user set keep their values where the new file still has
 * them with the same type. The run calls "setup" again after a reload. */
int policy_reload(Policy *p, MnError *e);

/* Calls hook ("setup", "on_step", "on_eval", "on_checkpoint" with the
 * path in arg) with v as `run`; a hook the policy lacks is a no-op. Up to
 * max_acts queued actions are copied to acts and counted in *n_acts.
 * Returns -1 on a runtime error, an exhausted instruction budget, the
 * memory cap, the time limit or a stop (policy_set_stop_flag), with
 * "file:line: message" in e; the view is then restored and *n_acts is 0.
 * run:fork beyond v's branch_limit queues a fork carrying its refusal. */
int policy_call(Policy *p, const char *hook, PolicyView *v, const char *arg,
                PolicyAction *acts, int max_acts, int *n_acts, MnError *e);

/* `:set policy.NAME VALUE`: value_text is parsed to the type of the
 * current value (number; boolean as true/false/yes/no/on/off/1/0;
 * string as is). */
int policy_set_param(Policy *p, const char *name, const char *value_text, MnError *e);

/* Limits for the current state and later reloads (tests and the
 * experiment's policy keys); 0 keeps a limit as it is. */
void policy_set_limits(Policy *p, size_t memory_bytes, long long instructions);

/* The wall-clock limit of one call (tests; default POLICY_TIME_LIMIT_S):
 * a watchdog thread stops the call at the next Lua instruction once it
 * has passed. Library functions that loop in C refuse sizes that would
 * keep one of them running for long (mneme-policy(7)). */
void policy_set_time_limit(Policy *p, double seconds);

/* Once *flag is non-zero (the run is quitting: a signal, q), a call ends
 * within milliseconds with "stopped: the run is quitting". The flag outlives the policy; it is read from
 * the watchdog's thread. */
void policy_set_stop_flag(Policy *p, const atomic_int *flag);

/* The name the policy gives itself (default: the file name without .lua),
 * its path, and its source text as loaded. */
const char *policy_name(const Policy *p);
const char *policy_path(const Policy *p);
const char *policy_source(const Policy *p, size_t *len);

/* What a hook changed, for recording; lr_scale compares at float
 * precision, the precision the model keeps. Returns how many were
 * written to out (at most max). */
int policy_view_changes(const PolicyView *before, const PolicyView *after, PolicyChange *out, int max);

/* The parameters set by hand, as "name=value" lines in the order set (a
 * checkpoint keeps them: they are run state, not the file's); whole lines
 * only, up to n bytes. */
void policy_params_text(const Policy *p, char *out, size_t n);
/* Sets them again from such text; one the policy no longer takes, or no
 * longer takes with that type, is left out. */
void policy_params_restore(Policy *p, const char *text);

void policy_free(Policy *p);

#endif
