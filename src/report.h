/* mneme report: one self-contained HTML page of a run (no scripts, no
 * fonts or files from elsewhere): its figure as inline SVG, the summary,
 * the branches, every change made by hand or by a policy at its step,
 * the experiment as run and the policy sources. */
#ifndef MNEME_REPORT_H
#define MNEME_REPORT_H

#include "error.h"

/* Writes the page of run_dir to out (whole or not at all). */
int report_write(const char *run_dir, const char *out, MnError *e);

/* mneme report RUN_DIR [-o FILE.html] (default RUN_DIR/report.html). */
int report_main(int argc, char **argv);

#endif
