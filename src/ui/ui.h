/* The curses frontend: a full-screen workbench over the trainer thread.
 * The only file of mneme that talks to curses is ui.c. */
#ifndef MNEME_UI_UI_H
#define MNEME_UI_UI_H

#include "config.h"

/* Trains x into out_dir with the workbench on the terminal; theme is a
 * name (themes/NAME.theme) or a path, NULL for $MNEME_THEME or "default"
 * ("mono" when NO_COLOR is set). Returns the exit status: 0 finished or
 * quit, 1 the run failed or a signal stopped it (after a checkpoint), 2 no
 * usable terminal or bad input. */
int ui_main(const Experiment *x, const char *out_dir, const char *theme);

#endif
