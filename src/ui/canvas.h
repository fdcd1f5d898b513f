/* The in-memory screen the panels draw into: a grid of cells, each one
 * character and a theme element. Only ui.c turns a canvas into curses
 * calls, so everything drawn here can be tested without a terminal. Also
 * the plotting pieces: axis scaling and a dot raster that becomes braille
 * cells (2×4 dots a cell) or, without UTF-8, ASCII. */
#ifndef MNEME_UI_CANVAS_H
#define MNEME_UI_CANVAS_H

#include <stddef.h>
#include <stdint.h>

/* What a cell shows; themes give each a colour. */
typedef enum {
    EL_NORMAL, EL_HEADER, EL_BORDER, EL_TITLE, EL_AXIS,
    EL_NEW, EL_ORIGINAL, EL_BASELINE, EL_CROSSOVER,
    EL_BAR, EL_FROZEN, EL_LOG, EL_WARN, EL_ERROR, EL_FOOTER, EL_PAUSED,
    EL_TRAIN,
    EL_BRANCH0, EL_BRANCH1, EL_BRANCH2, EL_BRANCH3, EL_BRANCH4, EL_BRANCH5,
    EL_COUNT
} Element;

typedef struct {
    uint32_t ch;               /* a Unicode code point, width 1 */
    uint8_t el;
} Cell;

typedef struct {
    int w, h;
    int utf8;                  /* may draw non-ASCII characters */
    Cell *cells;
} Canvas;

typedef struct {
    int x, y, w, h;
} Rect;

int canvas_init(Canvas *c, int w, int h, int utf8);
void canvas_free(Canvas *c);
void canvas_clear(Canvas *c);
Cell *canvas_at(Canvas *c, int x, int y);      /* NULL outside */
void canvas_put(Canvas *c, int x, int y, uint32_t ch, Element el);
/* Writes UTF-8 text from (x, y), clipped to max_w cells (< 0: to the
 * edge); returns the cells written. */
int canvas_text(Canvas *c, int x, int y, int max_w, const char *s, Element el);
/* A box with a title in its top border. */
void canvas_box(Canvas *c, Rect r, const char *title, Element el);
/* Row y as UTF-8 (for tests); out gets at most n bytes. */
void canvas_row(const Canvas *c, int y, char *out, size_t n);

/* ---- axes ---- */

typedef struct {
    double lo, hi, step;       /* nice bounds and tick spacing */
} Axis;

/* Nice bounds covering [lo, hi] with at most max_ticks intervals, each
 * 1, 2 or 5 × 10^k. A flat or empty range is widened. */
Axis axis_nice(double lo, double hi, int max_ticks);
/* Position of v on an axis of n pixels: 0 at lo, n-1 at hi, clamped. */
int axis_pixel(const Axis *a, double v, int n);
/* Tick labels of a plot area p (in cells): y values in the label_w cells
 * left of it, steps on the row below it. */
void axes_labels(Canvas *c, Rect p, int label_w, const Axis *xa, const Axis *ya);

/* ---- dot raster ---- */

typedef struct {
    int cw, ch;                /* in cells; dots are 2·cw × 4·ch */
    uint8_t *dots;             /* one byte a cell: braille bits */
    uint8_t *el;               /* last element drawn into each cell */
} Raster;

int raster_init(Raster *r, int cw, int ch);
void raster_free(Raster *r);
/* Dot (x, y), y = 0 at the top; outside is ignored. */
void raster_dot(Raster *r, int x, int y, Element el);
void raster_line(Raster *r, int x0, int y0, int x1, int y1, Element el);
/* A curve drawn point by point: joined by lines, or by dots every gap
 * pixels (gap > 1: a dotted curve). Start with a zeroed Pen. */
typedef struct {
    int have, x, y;
} Pen;
void pen_to(Raster *r, Pen *p, int x, int y, int gap, Element el);
/* The braille code point of a cell's dots (U+2800 + bits). */
uint32_t braille_of(uint8_t bits);
/* The ASCII stand-in for a cell's dots, by the rows they fill: ' ' none,
 * '\'' top, '-' middle, '_' bottom, '|' three rows or more. */
char ascii_of(uint8_t bits);
/* Copies the non-empty cells onto the canvas at (x, y). */
void raster_blit(const Raster *r, Canvas *c, int x, int y);

#endif
