/* mneme plot: a run's curves as a figure (PNG, SVG or PDF, by the file's
 * extension), drawn with cairo: both tasks against the fine-tuning step
 * (the epoch on a second axis), the original task's baseline dashed, the
 * crossover marked and labelled, the fine-tuning start and every fork
 * point, the branches' curves when asked, a legend; optionally panels of
 * the training loss and of each layer's drift from the base. */
#ifndef MNEME_PLOT_H
#define MNEME_PLOT_H

#include "error.h"

#define PLOT_MAX_BRANCHES 24

enum { PANEL_TRAIN = 1, PANEL_DRIFT = 2 };

typedef struct {
    const char *run_dir;
    const char *out;           /* FILE.png | .svg | .pdf */
    const char *branches[PLOT_MAX_BRANCHES];  /* besides main */
    int n_branches;
    int all;                   /* every branch */
    int loss;                  /* the tasks' losses instead of accuracy */
    int width, height;         /* pixels (PNG) or points (SVG, PDF) */
    int panels;                /* PANEL_* */
    const char *theme;         /* NULL: the default, colour-blind safe */
} PlotOptions;

/* Draws the figure into o->out (through a temporary file, renamed when
 * whole). Bad input (no metrics, an unknown branch or extension, a path
 * that cannot be written) is an error naming it. */
int plot_run(const PlotOptions *o, MnError *e);
/* The same figure as SVG text (NUL-terminated, the caller's), o->out
 * unused: for a page that carries it inline. */
int plot_svg(const PlotOptions *o, char **svg, MnError *e);

/* mneme plot RUN_DIR [-o FILE] [--branch NAME]... [--all] [--metric acc|loss]
 * [--size WxH] [--panels train,drift] [--theme NAME]: 0, or 2 with the
 * error on stderr. */
int plot_main(int argc, char **argv);

#endif
