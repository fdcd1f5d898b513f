#include "figure.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <errno.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void figure_colour(cairo_t *cr, unsigned rgb)
{
    cairo_set_source_rgb(cr, ((rgb >> 16) & 255) / 255.0, ((rgb >> 8) & 255) / 255.0,
                         (rgb & 255) / 255.0);
}

double panel_x(const Panel *p, double x)
{
    return p->x0 + (x - p->lo_x) / (p->hi_x - p->lo_x) * (p->x1 - p->x0);
}

double panel_y(const Panel *p, double y)
{
    return p->y1 - (y - p->lo_y) / (p->hi_y - p->lo_y) * (p->y1 - p->y0);
}

double figure_font_size(double width)
{
    return width < 700 ? 10 : width < 1600 ? 12 : 12 * width / 1600;
}

/* A tick spacing of 1, 2 or 5 times a power of ten, about n to the range. */
static double nice_step(double range, int n)
{
    double raw = range / n, p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

void figure_text(cairo_t *cr, double x, double y, double ax, double ay, const char *s)
{
    cairo_text_extents_t t;
    cairo_text_extents(cr, s, &t);
    cairo_move_to(cr, x - t.x_bearing - ax * t.width, y - t.y_bearing - ay * t.height);
    cairo_show_text(cr, s);
}

static void tick_label(char *out, size_t n, double v, double step)
{
    if (fabs(v) < step * 1e-6)
        v = 0;   /* the tick at zero, reached from below, is not "-0.0" */
    if (step >= 1 && fabs(v) < 1e15)
        snprintf(out, n, "%.0f", v);
    else
        snprintf(out, n, "%.*f", step >= 0.1 ? 1 : step >= 0.01 ? 2 : 3, v);
}

void panel_axes(const Panel *p, const char *xlabel, const char *ylabel, double per_epoch)
{
    cairo_t *cr = p->cr;
    char label[64];
    cairo_set_font_size(cr, p->font);
    cairo_set_line_width(cr, 1);
    double ys = nice_step(p->hi_y - p->lo_y, 5), xs = nice_step(p->hi_x - p->lo_x, 8);
    for (double y = ceil(p->lo_y / ys) * ys; y <= p->hi_y + ys * 1e-9; y += ys) {
        figure_colour(cr, p->c->grid);
        cairo_move_to(cr, p->x0, panel_y(p, y));
        cairo_line_to(cr, p->x1, panel_y(p, y));
        cairo_stroke(cr);
        figure_colour(cr, p->c->text);
        tick_label(label, sizeof label, y, ys);
        figure_text(cr, p->x0 - 6, panel_y(p, y), 1, 0.5, label);
    }
    for (double x = ceil(p->lo_x / xs) * xs; x <= p->hi_x + xs * 1e-9; x += xs) {
        figure_colour(cr, p->c->axis);
        cairo_move_to(cr, panel_x(p, x), p->y1);
        cairo_line_to(cr, panel_x(p, x), p->y1 + 4);
        cairo_stroke(cr);
        figure_colour(cr, p->c->text);
        tick_label(label, sizeof label, x, xs);
        figure_text(cr, panel_x(p, x), p->y1 + 7, 0.5, 0, label);
    }
    if (per_epoch > 0) {
        double lo = p->lo_x / per_epoch, hi = p->hi_x / per_epoch, es = nice_step(hi - lo, 8);
        for (double ep = ceil(lo / es) * es; ep <= hi + es * 1e-9; ep += es) {
            figure_colour(cr, p->c->axis);
            cairo_move_to(cr, panel_x(p, ep * per_epoch), p->y0);
            cairo_line_to(cr, panel_x(p, ep * per_epoch), p->y0 - 4);
            cairo_stroke(cr);
            figure_colour(cr, p->c->text);
            tick_label(label, sizeof label, ep, es);
            figure_text(cr, panel_x(p, ep * per_epoch), p->y0 - 7, 0.5, 1, label);
        }
        figure_text(cr, p->x1, p->y0 - 7 - 1.6 * p->font, 1, 1, "epoch");
    }
    figure_colour(cr, p->c->axis);
    cairo_rectangle(cr, p->x0, p->y0, p->x1 - p->x0, p->y1 - p->y0);
    cairo_stroke(cr);
    figure_colour(cr, p->c->text);
    if (xlabel)
        figure_text(cr, (p->x0 + p->x1) / 2, p->y1 + 9 + 1.5 * p->font, 0.5, 0, xlabel);
    cairo_save(cr);
    cairo_translate(cr, p->x0 - 8 - 3.2 * p->font, (p->y0 + p->y1) / 2);
    cairo_rotate(cr, -M_PI / 2);
    figure_text(cr, 0, 0, 0.5, 0.5, ylabel);
    cairo_restore(cr);
}

void panel_legend_box(const Panel *p, const LegendRow *rows, int n, int corner, double box[4])
{
    double w = 0, lh = p->font * 1.5;
    cairo_set_font_size(p->cr, p->font);
    for (int i = 0; i < n; i++) {
        cairo_text_extents_t t;
        cairo_text_extents(p->cr, rows[i].label, &t);
        if (t.x_advance > w)
            w = t.x_advance;
    }
    int left = corner == LEGEND_BOTTOM_LEFT || corner == LEGEND_TOP_LEFT;
    int bottom = corner == LEGEND_BOTTOM_LEFT || corner == LEGEND_BOTTOM_RIGHT;
    box[0] = left ? p->x0 + 8 : p->x1 - w - 56;
    box[1] = bottom ? p->y1 - 8 - (lh * n + 8) : p->y0 + 8;
    box[2] = box[0] + w + 48;
    box[3] = box[1] + lh * n + 8;
}

void panel_legend(const Panel *p, const LegendRow *rows, int n, int corner)
{
    cairo_t *cr = p->cr;
    double box[4], lh = p->font * 1.5;
    panel_legend_box(p, rows, n, corner, box);
    double bx = box[0], by = box[1];
    figure_colour(cr, p->c->background);
    cairo_new_path(cr);
    cairo_rectangle(cr, bx, by, box[2] - bx, box[3] - by);
    cairo_fill_preserve(cr);
    figure_colour(cr, p->c->grid);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    static const double dash[] = { 6, 3 };
    for (int i = 0; i < n; i++) {
        double y = by + 4 + lh * (i + 0.5);
        figure_colour(cr, rows[i].rgb);
        cairo_set_line_width(cr, 2);
        /* markers outlined, so they are not taken for the data's (filled) */
        if (rows[i].marker == LEGEND_CIRCLE || rows[i].marker == LEGEND_DOT) {
            cairo_new_path(cr);
            cairo_arc(cr, bx + 16, y, 4, 0, 2 * M_PI);
            /* a dot is filled and outlined: one path, a legend's, not a marker */
            if (rows[i].marker == LEGEND_DOT)
                cairo_fill_preserve(cr);
            cairo_stroke(cr);
        } else if (rows[i].marker == LEGEND_SQUARE) {
            cairo_new_path(cr);
            cairo_rectangle(cr, bx + 12, y - 4, 8, 8);
            cairo_fill_preserve(cr);
            cairo_stroke(cr);
        } else {
            cairo_set_dash(cr, dash, rows[i].dashed ? 2 : 0, 0);
            cairo_move_to(cr, bx + 6, y);
            cairo_line_to(cr, bx + 28, y);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
        }
        figure_colour(cr, p->c->text);
        figure_text(cr, bx + 34, y, 0, 0.5, rows[i].label);
    }
}

const char *figure_extension(const char *path)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    return dot && (!slash || dot > slash) ? dot + 1 : "";
}

int figure_check_extension(const char *out, MnError *e)
{
    const char *ext = figure_extension(out);
    if (strcmp(ext, "png") && strcmp(ext, "svg") && strcmp(ext, "pdf"))
        return mn_fail(e, "%s: unknown kind of figure '.%s' (png, svg or pdf)", out, ext);
    return 0;
}

int figure_write(const char *out, int width, int height, FigurePaint *paint, const void *what,
                 MnError *e)
{
    if (figure_check_extension(out, e) < 0)
        return -1;
    const char *ext = figure_extension(out);
    /* written whole or not at all */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%s", out, (long)getpid(), ext);
    FILE *probe = fopen(tmp, "w");
    if (!probe)
        return mn_fail(e, "cannot write %s: %s", out, strerror(errno));
    fclose(probe);
    const double w = width, h = height;
    cairo_surface_t *sf = !strcmp(ext, "png") ? cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height)
                          : !strcmp(ext, "svg") ? cairo_svg_surface_create(tmp, w, h)
                                                : cairo_pdf_surface_create(tmp, w, h);
    paint(sf, width, height, what);
    cairo_status_t st = !strcmp(ext, "png") ? cairo_surface_write_to_png(sf, tmp) : CAIRO_STATUS_SUCCESS;
    cairo_surface_finish(sf);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_status(sf);
    cairo_surface_destroy(sf);
    int rc = 0;
    if (st != CAIRO_STATUS_SUCCESS) {
        rc = mn_fail(e, "cannot write %s: %s", out, cairo_status_to_string(st));
        unlink(tmp);
    } else if (rename(tmp, out) < 0) {
        rc = mn_fail(e, "cannot write %s: %s", out, strerror(errno));
        unlink(tmp);
    }
    return rc;
}

/* SVG text as cairo streams it. */
typedef struct {
    char *buf;
    size_t n, cap;
    int failed;
} Buffer;

static cairo_status_t to_buffer(void *closure, const unsigned char *data, unsigned int n)
{
    Buffer *b = closure;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *v = realloc(b->buf, cap);
        if (!v) {
            b->failed = 1;
            return CAIRO_STATUS_NO_MEMORY;
        }
        b->buf = v;
        b->cap = cap;
    }
    memcpy(b->buf + b->n, data, n);
    b->n += n;
    b->buf[b->n] = 0;
    return CAIRO_STATUS_SUCCESS;
}

int figure_write_svg(int width, int height, FigurePaint *paint, const void *what, char **svg,
                     MnError *e)
{
    Buffer b = { 0 };
    *svg = NULL;
    cairo_surface_t *sf = cairo_svg_surface_create_for_stream(to_buffer, &b, width, height);
    paint(sf, width, height, what);
    cairo_surface_finish(sf);
    cairo_status_t st = cairo_surface_status(sf);
    cairo_surface_destroy(sf);
    if (st != CAIRO_STATUS_SUCCESS || b.failed || !b.buf) {
        free(b.buf);
        return mn_fail(e, "the figure could not be drawn: %s", cairo_status_to_string(st));
    }
    *svg = b.buf;
    return 0;
}

void figure_release_caches(void)
{
    cairo_debug_reset_static_data();
    FcFini();
}
