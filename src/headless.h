/* The headless frontend: runs an experiment to the end, printing one line
 * per evaluation. */
#ifndef MNEME_HEADLESS_H
#define MNEME_HEADLESS_H

#include "config.h"

typedef struct {
    int quiet;                 /* no evaluation lines */
    long stop_after;           /* > 0: checkpoint and stop after this many
                                * steps in this process (scripted pauses) */
} HeadlessOptions;

/* Returns the process exit status: 0 finished or stopped as asked, 1 the
 * run failed or a signal interrupted it (a checkpoint is written first). */
int headless_run(const Experiment *x, const char *out_dir, const HeadlessOptions *o);
int headless_resume(const char *run_dir, const HeadlessOptions *o);

#endif
