/* The curses frontend: a full-screen workbench over the trainer thread.
 * The only file of mneme that talks to curses is ui.c. */
#ifndef MNEME_UI_UI_H
#define MNEME_UI_UI_H

#include "config.h"
#include "trainer.h"

/* Trains x into dir with the workbench on the terminal, or, x NULL,
 * continues the run in dir. study (NULL: none) forks a study's remedies
 * (TrainerOptions.forks), shown side by side in the compare view. theme is a name (themes/NAME.theme) or a path
 * (--theme); NULL takes the experiment's ui.theme, and where that is left
 * at "default", $MNEME_THEME, else "mono" when NO_COLOR is set, else
 * "default". Returns the exit status: 0 finished or quit, 1 the run failed
 * or a signal stopped it (after a checkpoint), 2 no usable terminal or bad
 * input. */
int ui_main(const Experiment *x, const char *dir, const char *theme, const TrainerOptions *study);

/* The workbench on the live run in dir, over its control socket: d or q
 * leave it training (q asks: y stops it). read_only: watch only. Returns
 * 0, 1 when the workbench failed, 2 no usable terminal, 3 the run is not
 * live (said on stderr, with how to resume it). */
int ui_attach(const char *dir, const char *theme, int read_only);
#endif
