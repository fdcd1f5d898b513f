/* Branches: a run continued under another name with some settings
 * changed, from one of its parent's fine-tuning checkpoints, in
 * <root>/branches/<name>/ (the same layout as a run, plus branch.json:
 * name, parent, the step it forked at and the overrides). Every branch of
 * a family lives under the root run's folder, whichever run it forked
 * from. The parent is read, never written. */
#ifndef MNEME_BRANCH_H
#define MNEME_BRANCH_H

#include <stddef.h>

#include "error.h"
#include "run.h"

/* A name for a branch folder: letters, digits, '-', '_', '.', at most 48,
 * not "main". */
int branch_name_check(const char *name, MnError *e);

/* The root run of run_dir's family (run_dir itself when it is no branch). */
void branch_root(const char *run_dir, char *out, size_t n);

/* The checkpoint of run_dir at fine-tuning step `step` (< 0: the newest),
 * as a path; *found gets its step. *final_step (when not NULL) gets the
 * step of the final checkpoint, which ends the run and so is no fork
 * point, when the folder was searched for it (-1 otherwise). The error
 * lists the steps there are, and why the final one is not among them. */
int branch_find_checkpoint(const char *run_dir, long step, char *path, size_t n,
                           long *found, long *final_step, MnError *e);

/* Creates branch `name` of the run in run_dir from its checkpoint file
 * `checkpoint`, with the KEY=VALUE overrides sets[] (see
 * run_fork_override), and continues it into *out (resumed, ready to
 * step; out NULL: closed again). dir_out gets the branch folder. On any
 * failure nothing is left behind. From source "policy", a key that names
 * a file (finetune.policy, policy.path) is refused. */
int branch_create(const char *run_dir, const char *checkpoint, const char *name,
                  const char *const *sets, int n_sets, const char *source,
                  const RunHooks *hooks, Run *out, char *dir_out, size_t n, MnError *e);

/* A live run forks at its current step: it writes the step's checkpoint,
 * then branch_create. The caller records the fork in the parent's
 * events.jsonl. */
int run_fork(Run *parent, const char *name, const char *const *sets, int n_sets,
             const char *source, const RunHooks *hooks, Run *out, char *dir_out, size_t n,
             MnError *e);

/* Splits "k=v k=v" (as typed after :fork NAME, or a policy's fork
 * overrides, one per line) into at most max words, in place. */
int branch_split_overrides(char *text, const char **out, int max);

#endif
