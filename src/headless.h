/* The headless frontend: runs an experiment to the end, printing one line
 * per evaluation. */
#ifndef MNEME_HEADLESS_H
#define MNEME_HEADLESS_H

#include "config.h"
#include "trainer.h"

typedef struct {
    int quiet;                 /* no evaluation lines */
    long stop_after;           /* > 0: checkpoint and stop after this many
                                * steps in this process (scripted pauses) */
    int detached;              /* in the background (mneme run --detach): a
                                * pause waits for a client to resume, a hang
                                * up is ignored */
    int ready_fd;              /* > 0: told "ok" once the run listens on its
                                * socket; then stdout and stderr go to the
                                * run's trainer.log */
    const TrainerFork *forks;  /* a study's remedies (mneme study) */
    int n_forks;
    int one_at_a_time;         /* the branches run one after another */
    struct Dist *dist;         /* under mpirun: the ranks (dist.h), else NULL */
    int silent;                /* a rank besides 0: nothing said on stderr
                                * either, unless it fails */
    int restore_family;        /* a resume runs every unfinished branch on,
                                * not main alone */
    int threads;               /* > 0: a resume's threads in place of the
                                * run's own (--set threads=N) */
    const char *resume_with;   /* the command that continues the run after
                                * a stop; NULL: mneme run --resume DIR */
} HeadlessOptions;

/* Returns the process exit status: 0 finished or stopped as asked, 1 the
 * run failed or a signal interrupted it (a checkpoint is written first). */
int headless_run(const Experiment *x, const char *out_dir, const HeadlessOptions *o);
int headless_resume(const char *run_dir, const HeadlessOptions *o);

/* mneme fork: branch `name` of run_dir at fine-tuning step `at` (< 0: the
 * newest checkpoint) with the overrides, then runs it on unless
 * create_only. Bad input (name, step, overrides) exits 2. */
int headless_fork(const char *run_dir, long at, const char *name, const char *const *sets,
                  int n_sets, int create_only, const HeadlessOptions *o);

/* mneme replay: prints the evaluations and whether they match; exits 0
 * when every one is identical, 1 when one differs, 2 on bad input. */
int headless_replay(const char *src, const char *out_dir, const HeadlessOptions *o);

#endif
