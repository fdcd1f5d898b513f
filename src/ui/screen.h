/* The workbench screen: where each panel goes for a terminal size, and
 * drawing a trainer snapshot into a canvas. Pure: no curses here. */
#ifndef MNEME_UI_SCREEN_H
#define MNEME_UI_SCREEN_H

#include <stddef.h>

#include "trainer.h"
#include "ui/canvas.h"

#define SCREEN_MIN_W 60
#define SCREEN_MIN_H 16
#define SCREEN_LOSS_W 100      /* from this width, a loss panel beside the layers */
#define SCREEN_WIDE_W 160      /* from this width, the loss panel beside the plot */

typedef struct {
    int too_small;
    Rect header, plot, layers, loss, log, footer;  /* loss.w 0: no loss panel */
} Layout;

/* Panels for a w×h terminal with n_groups rows of layers to show. Narrow
 * (below SCREEN_LOSS_W): plot, layers, log stacked, the loss only as the
 * plot's loss view; medium: the loss panel right of the layers; wide (from
 * SCREEN_WIDE_W): the loss panel right of the plot, as tall as it. */
Layout layout_for(int w, int h, int n_groups);

typedef enum { VIEW_ACCURACY, VIEW_LOSS, VIEW_COMPARE } PlotView;

typedef struct {
    PlotView view;
    const char *status;        /* a frontend message for the footer, or NULL */
    const char *prompt;        /* the `:` line being typed, or NULL */
    int help;                  /* show the keys and commands, a page of their own */
    int log_scroll;            /* log lines scrolled back from the newest;
                                * 0 follows the log */
    int help_scroll;           /* help rows scrolled past */
    long zoom;                 /* the plot's steps: the last this many
                                * (+ and -), 0 for the whole phase */
    int log_page;              /* the log as a page of its own (L) */
    int log_page_scroll;       /*   lines back from the newest, */
    int log_page_x;            /*   columns scrolled right, */
    int log_page_errors;       /*   errors only */

} ScreenOptions;

/* Lines the log page shows of s (all, or the errors only). */
int screen_log_page_lines(const Snapshot *s, int errors_only);

/* How far the help page of a w×h terminal scrolls. */
int screen_help_scroll_max(int w, int h);

/* The log lines the layout's log panel shows for a w×h terminal. */
int screen_log_rows(int w, int h, int n_groups);
/* log_scroll clamped to what n_log lines in rows rows allow. */
int screen_log_clamp(int scroll, int n_log, int rows);

/* Draws everything (or "terminal too small") into c, sized to the screen. */
void screen_draw(Canvas *c, const Snapshot *s, const ScreenOptions *o);

/* What a mouse event at a cell lands on. */
typedef enum {
    HIT_NONE,                  /* nothing a click acts on */
    HIT_BRANCH,                /* a branch's row: the list or the compare table */
    HIT_LAYER,                 /* a row of the per-layer panel */
    HIT_LOG,                   /* the log panel */
    HIT_PAGE                   /* the help or log page, over the run */
} HitKind;

typedef struct {
    HitKind kind;
    int index;                 /* HIT_BRANCH: in s->branches; HIT_LAYER: the
                                * row's first group in s->groups */
    int last;                  /* HIT_LAYER: the row's last group */
} ScreenHit;

/* What screen_draw puts at cell (x, y) of a w×h screen, from the same
 * layout it draws with. */
ScreenHit screen_hit(int w, int h, const Snapshot *s, const ScreenOptions *o, int x, int y);

/* The command line a click on layer row hit offers: "freeze PARTS", or
 * "unfreeze PARTS" when the row shows frozen, PARTS as freeze reads them.
 * Returns 0, or -1 with why (a head or an adapter: freeze has no name for
 * it). */
int screen_layer_command(const Snapshot *s, ScreenHit hit, char *line, size_t n, char *why,
                         size_t why_n);

#endif
