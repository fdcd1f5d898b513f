/* What mneme's cairo figures share (a run's curves, a study's trade-off):
 * a plot area that maps data onto the page, axes with nice ticks, text
 * anchored by its extent, a legend, and writing a figure out — PNG, SVG
 * or PDF by the file's extension, through a temporary file renamed when
 * whole, or SVG text in memory for a page that carries it inline. */
#ifndef MNEME_FIGURE_H
#define MNEME_FIGURE_H

#include <cairo.h>

#include "error.h"
#include "ui/theme.h"

#define FIGURE_FONT "DejaVu Sans"

/* A plot area on the page and the data range it shows. */
typedef struct {
    cairo_t *cr;
    const FigureColours *c;
    double x0, y0, x1, y1;          /* the area on the page */
    double lo_x, hi_x, lo_y, hi_y;  /* the data it shows */
    double font;
} Panel;

/* The source colour from 0xRRGGBB. */
void figure_colour(cairo_t *cr, unsigned rgb);
/* Where data x, y fall on the page. */
double panel_x(const Panel *p, double x);
double panel_y(const Panel *p, double y);
/* Text with its anchor: ax, ay in 0..1 of its extent (0.5, 0.5: centred). */
void figure_text(cairo_t *cr, double x, double y, double ax, double ay, const char *s);
/* The font size for a figure of this width. */
double figure_font_size(double width);
/* Frame, grid, ticks and labels of p (xlabel may be NULL); the epoch on a
 * second axis above when per_epoch (steps an epoch) is above 0. */
void panel_axes(const Panel *p, const char *xlabel, const char *ylabel, double per_epoch);

/* a line, an open circle, filled dot and square (as a trade-off's markers) */
enum { LEGEND_LINE, LEGEND_CIRCLE, LEGEND_SQUARE, LEGEND_DOT };
enum { LEGEND_TOP_RIGHT, LEGEND_BOTTOM_RIGHT, LEGEND_BOTTOM_LEFT, LEGEND_TOP_LEFT };

/* A legend row: a line (dashed or not) or an outlined marker, and a label. */
typedef struct {
    unsigned rgb;
    int dashed, marker;        /* marker: LEGEND_* */
    char label[96];
} LegendRow;

/* The box (x0, y0, x1, y1) the legend takes in a corner of p. */
void panel_legend_box(const Panel *p, const LegendRow *rows, int n, int corner, double box[4]);
void panel_legend(const Panel *p, const LegendRow *rows, int n, int corner);

/* Paints a whole figure, width by height, on sf. */
typedef void FigurePaint(cairo_surface_t *sf, int width, int height, const void *what);

/* "png" for "a/b.png"; "" without one. */
const char *figure_extension(const char *path);
/* An error naming out unless it ends in .png, .svg or .pdf. */
int figure_check_extension(const char *out, MnError *e);
/* Paints into out, whole or not at all: an unknown extension or a path
 * that cannot be written is an error naming it. */
int figure_write(const char *out, int width, int height, FigurePaint *paint, const void *what,
                 MnError *e);
/* Paints as SVG text (NUL-terminated, the caller's to free). */
int figure_write_svg(int width, int height, FigurePaint *paint, const void *what, char **svg,
                     MnError *e);
/* Lets go of cairo's and fontconfig's caches: a figure now and then does
 * not need them kept for the process, and a leak checker then sees none. */
void figure_release_caches(void);

#endif
