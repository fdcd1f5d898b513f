/* The headless frontend: runs an experiment to the end, printing one line
 * per evaluation. */
#ifndef MNEME_HEADLESS_H
#define MNEME_HEADLESS_H

#include "config.h"

/* Returns the process exit status (0 done, 1 run failed or interrupted). */
int headless_run(const Experiment *x, const char *out_dir, int quiet);
int headless_resume(const char *run_dir, int quiet);

#endif
