/* Themes: a colour and attributes for each screen element, read from a
 * libconfig file (themes/NAME.theme). Colours are names (default, black,
 * red, green, yellow, blue, magenta, cyan, white) or numbers 0-255; no
 * curses here, ui.c turns them into colour pairs. */
#ifndef MNEME_UI_THEME_H
#define MNEME_UI_THEME_H

#include "error.h"
#include "ui/canvas.h"

enum { THEME_BOLD = 1, THEME_REVERSE = 2, THEME_UNDERLINE = 4, THEME_DIM = 8 };

typedef struct {
    int fg, bg;                /* -1: the terminal's default */
    int attrs;                 /* THEME_* */
} Style;

#define FIGURE_SERIES 8

/* Colours of a figure (mneme plot), as 0xRRGGBB: a `figure` group of
 * "#rrggbb" strings in the theme file; the default is colour-blind safe
 * (Okabe and Ito's palette) on white. */
typedef struct {
    unsigned background, text, grid, axis;
    unsigned new_task, original, baseline, crossover;
    unsigned accent;           /* what a figure marks out: a study's Pareto front */
    unsigned series[FIGURE_SERIES]; /* branch i's curves (main is 0) */
} FigureColours;

typedef struct {
    char name[64];
    int colour;                /* 0: mono, attributes only */
    FigureColours fig;
    Style el[EL_COUNT];
    char warning[256];         /* unknown keys, ignored; "" if none */
} Theme;

/* The element's key in theme files ("header", "new", …). */
const char *theme_element_name(Element el);
/* The built-in default (dark) theme. */
void theme_default(Theme *t);
/* Loads NAME (found as themes/NAME.theme among the data folders) or a
 * path (containing '/'). Missing keys keep the defaults; unknown keys
 * are ignored and named in t->warning. */
int theme_load(Theme *t, const char *name_or_path, MnError *e);

/* The colour a terminal of n_colours shows for xterm colour c: c itself
 * when it has it, else the nearest of its first 8 or 16 by RGB distance
 * (c % 8 turned dark green, magenta and brown all into green). Negative c
 * (the terminal's default) is kept. */
int theme_nearest_colour(int c, int n_colours);

#endif
