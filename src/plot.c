#include "plot.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>
#include <dirent.h>
#include <errno.h>
#include <fontconfig/fontconfig.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lines.h"
#include "metrics.h"
#include "ui/theme.h"

#define FONT "DejaVu Sans"

/* One branch's fine-tuning evaluations. */
typedef struct {
    char name[64];
    long fork_step;            /* -1: the run itself */
    EvalRecord *v;
    int n, cap;
    long crossover;            /* -1: none found */
} Series;

static void series_free(Series *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int load_series(const char *dir, const char *name, long fork_step, Series *s, MnError *e)
{
    char path[4200];
    LineReader lr;
    char *line;
    size_t len;
    int rc;
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->fork_step = fork_step;
    s->crossover = -1;
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return mn_fail(e, "%s: %s (has the run started?)", path, strerror(errno));
    line_reader_init(&lr, f, path);
    while ((rc = line_reader_next(&lr, &line, &len, e)) == 1) {
        EvalRecord r;
        MnError bad;
        /* a line cut short by a crash is skipped, as resume skips it */
        if (!len || eval_record_parse(line, &r, &bad) < 0 || strcmp(r.phase, "finetune") != 0)
            continue;
        if (s->n == s->cap) {
            int cap = s->cap ? 2 * s->cap : 64;
            EvalRecord *v = realloc(s->v, sizeof *v * (size_t)cap);
            if (!v) {
                rc = mn_fail(e, "out of memory");
                break;
            }
            s->v = v;
            s->cap = cap;
        }
        s->v[s->n++] = r;
        if (r.crossover_step >= 0)
            s->crossover = r.crossover_step;
    }
    line_reader_free(&lr);
    fclose(f);
    if (rc < 0)
        return -1;
    if (s->n == 0)
        return mn_fail(e, "%s has no fine-tuning evaluations yet", path);
    return 0;
}

/* The branches to draw, after the run itself: those named, or all. */
static int load_branches(const PlotOptions *o, Series *out, int *n, MnError *e)
{
    char dir[4400], path[4600];
    const char *names[PLOT_MAX_BRANCHES];
    char found[PLOT_MAX_BRANCHES][256];
    int k = 0;
    if (o->all) {
        snprintf(dir, sizeof dir, "%s/branches", o->run_dir);
        DIR *d = opendir(dir);
        for (struct dirent *de; d && (de = readdir(d)) && k < PLOT_MAX_BRANCHES;)
            if (de->d_name[0] != '.') {
                snprintf(found[k], sizeof found[k], "%s", de->d_name);
                names[k] = found[k];
                k++;
            }
        if (d)
            closedir(d);
    } else
        for (k = 0; k < o->n_branches; k++)
            names[k] = o->branches[k];
    *n = 0;
    for (int i = 0; i < k; i++) {
        json_error_t je;
        snprintf(dir, sizeof dir, "%s/branches/%s", o->run_dir, names[i]);
        snprintf(path, sizeof path, "%s/branch.json", dir);
        json_t *b = json_load_file(path, 0, &je);
        if (!b)
            return mn_fail(e, "%s has no branch named '%s' (no %s)", o->run_dir, names[i], path);
        long step = (long)json_integer_value(json_object_get(b, "step"));
        json_decref(b);
        if (load_series(dir, names[i], step, &out[*n], e) < 0)
            return -1;
        (*n)++;
    }
    return 0;
}

/* ---- drawing ---- */

typedef struct {
    cairo_t *cr;
    const FigureColours *c;
    double x0, y0, x1, y1;     /* the plot area on the page */
    double lo_x, hi_x, lo_y, hi_y;  /* the data it shows */
    double font;
} Panel;

static void colour(cairo_t *cr, unsigned rgb)
{
    cairo_set_source_rgb(cr, ((rgb >> 16) & 255) / 255.0, ((rgb >> 8) & 255) / 255.0,
                         (rgb & 255) / 255.0);
}

static double px(const Panel *p, double x)
{
    return p->x0 + (x - p->lo_x) / (p->hi_x - p->lo_x) * (p->x1 - p->x0);
}

static double py(const Panel *p, double y)
{
    return p->y1 - (y - p->lo_y) / (p->hi_y - p->lo_y) * (p->y1 - p->y0);
}

/* A tick spacing of 1, 2 or 5 times a power of ten, about n to the range. */
static double nice_step(double range, int n)
{
    double raw = range / n, p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/* Text with its anchor: ax, ay in 0..1 of its extent (0.5, 0.5: centred). */
static void text_at(cairo_t *cr, double x, double y, double ax, double ay, const char *s)
{
    cairo_text_extents_t t;
    cairo_text_extents(cr, s, &t);
    cairo_move_to(cr, x - t.x_bearing - ax * t.width, y - t.y_bearing - ay * t.height);
    cairo_show_text(cr, s);
}

static void tick_label(char *out, size_t n, double v, double step)
{
    if (step >= 1 && fabs(v) < 1e15)
        snprintf(out, n, "%.0f", v);
    else
        snprintf(out, n, "%.*f", step >= 0.1 ? 1 : step >= 0.01 ? 2 : 3, v);
}

/* Frame, grid, ticks and labels of p; the epoch on top when per_epoch. */
static void axes(const Panel *p, const char *xlabel, const char *ylabel, double per_epoch)
{
    cairo_t *cr = p->cr;
    char label[64];
    cairo_set_font_size(cr, p->font);
    cairo_set_line_width(cr, 1);
    double ys = nice_step(p->hi_y - p->lo_y, 5), xs = nice_step(p->hi_x - p->lo_x, 8);
    for (double y = ceil(p->lo_y / ys) * ys; y <= p->hi_y + ys * 1e-9; y += ys) {
        colour(cr, p->c->grid);
        cairo_move_to(cr, p->x0, py(p, y));
        cairo_line_to(cr, p->x1, py(p, y));
        cairo_stroke(cr);
        colour(cr, p->c->text);
        tick_label(label, sizeof label, y, ys);
        text_at(cr, p->x0 - 6, py(p, y), 1, 0.5, label);
    }
    for (double x = ceil(p->lo_x / xs) * xs; x <= p->hi_x + xs * 1e-9; x += xs) {
        colour(cr, p->c->axis);
        cairo_move_to(cr, px(p, x), p->y1);
        cairo_line_to(cr, px(p, x), p->y1 + 4);
        cairo_stroke(cr);
        colour(cr, p->c->text);
        tick_label(label, sizeof label, x, xs);
        text_at(cr, px(p, x), p->y1 + 7, 0.5, 0, label);
    }
    if (per_epoch > 0) {
        double lo = p->lo_x / per_epoch, hi = p->hi_x / per_epoch, es = nice_step(hi - lo, 8);
        for (double ep = ceil(lo / es) * es; ep <= hi + es * 1e-9; ep += es) {
            colour(cr, p->c->axis);
            cairo_move_to(cr, px(p, ep * per_epoch), p->y0);
            cairo_line_to(cr, px(p, ep * per_epoch), p->y0 - 4);
            cairo_stroke(cr);
            colour(cr, p->c->text);
            tick_label(label, sizeof label, ep, es);
            text_at(cr, px(p, ep * per_epoch), p->y0 - 7, 0.5, 1, label);
        }
        text_at(cr, p->x1, p->y0 - 7 - 1.6 * p->font, 1, 1, "epoch");
    }
    colour(cr, p->c->axis);
    cairo_rectangle(cr, p->x0, p->y0, p->x1 - p->x0, p->y1 - p->y0);
    cairo_stroke(cr);
    colour(cr, p->c->text);
    if (xlabel)
        text_at(cr, (p->x0 + p->x1) / 2, p->y1 + 9 + 1.5 * p->font, 0.5, 0, xlabel);
    cairo_save(cr);
    cairo_translate(cr, p->x0 - 8 - 3.2 * p->font, (p->y0 + p->y1) / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, 0, 0, 0.5, 0.5, ylabel);
    cairo_restore(cr);
}

/* A task's value in a record: accuracy, or loss. */
static int value_of(const EvalRecord *r, int original, int loss, double *v)
{
    const TaskScore *s = original ? &r->original : &r->new_task;
    if (!(original ? r->has_original : r->has_new))
        return 0;
    *v = loss ? s->loss : s->acc;
    return isfinite(*v);
}

/* One curve: a single path through every evaluation that has the value
 * (a branch's from its fork point on). */
static void curve(const Panel *p, const Series *s, int original, int loss, unsigned rgb,
                  double width, int dashed)
{
    cairo_t *cr = p->cr;
    int started = 0;
    double v, x0 = 0, y0 = 0;
    for (int i = 0; i < s->n; i++) {
        if (s->fork_step >= 0 && s->v[i].step < s->fork_step)
            continue;
        if (!value_of(&s->v[i], original, loss, &v))
            continue;
        if (v > p->hi_y)
            v = p->hi_y;   /* a diverged loss stays on the page */
        double x = px(p, (double)s->v[i].step), y = py(p, v);
        /* a straight segment as a curve: cairo merges collinear line
         * segments, and each evaluation should stay a vertex of its own
         * (in an SVG, one per evaluation) */
        if (!started)
            cairo_move_to(cr, x, y);
        else
            cairo_curve_to(cr, x0, y0, x, y, x, y);
        x0 = x;
        y0 = y;
        started = 1;
    }
    if (!started)
        return;
    static const double dash[] = { 6, 3 };
    colour(cr, rgb);
    cairo_set_line_width(cr, width);
    cairo_set_dash(cr, dash, dashed ? 2 : 0, 0);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
}

static double baseline_of(const Series *s, int loss)
{
    double v = NAN;
    for (int i = 0; i < s->n; i++)
        if (s->v[i].step == 0 && value_of(&s->v[i], 1, loss, &v))
            return v;
    return NAN;
}

/* The legend, top right inside p: (colour, dash, label) rows. */
typedef struct {
    unsigned rgb;
    int dashed, marker;
    char label[96];
} LegendRow;

static void legend(const Panel *p, const LegendRow *rows, int n)
{
    cairo_t *cr = p->cr;
    double w = 0, lh = p->font * 1.5;
    for (int i = 0; i < n; i++) {
        cairo_text_extents_t t;
        cairo_text_extents(cr, rows[i].label, &t);
        if (t.x_advance > w)
            w = t.x_advance;
    }
    double bx = p->x1 - w - 56, by = p->y0 + 8;
    colour(cr, p->c->background);
    cairo_new_path(cr);
    cairo_rectangle(cr, bx, by, w + 48, lh * n + 8);
    cairo_fill_preserve(cr);
    colour(cr, p->c->grid);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    static const double dash[] = { 6, 3 };
    for (int i = 0; i < n; i++) {
        double y = by + 4 + lh * (i + 0.5);
        colour(cr, rows[i].rgb);
        if (rows[i].marker) {
            cairo_new_path(cr);
            cairo_arc(cr, bx + 16, y, 4, 0, 2 * M_PI);
            cairo_set_line_width(cr, 2);
            cairo_stroke(cr);
        } else {
            cairo_set_dash(cr, dash, rows[i].dashed ? 2 : 0, 0);
            cairo_set_line_width(cr, 2);
            cairo_move_to(cr, bx + 6, y);
            cairo_line_to(cr, bx + 28, y);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
        }
        colour(cr, p->c->text);
        text_at(cr, bx + 34, y, 0, 0.5, rows[i].label);
    }
}

/* The main panel: both tasks, baseline, crossover, start and forks. */
static void tasks_panel(Panel *p, const Series *s, int n, int loss, const FigureColours *c)
{
    cairo_t *cr = p->cr;
    double per_epoch = 0;
    const Series *m = &s[0];
    const EvalRecord *last = &m->v[m->n - 1];
    if (last->epoch > 0)
        per_epoch = (double)last->step / last->epoch;
    p->lo_x = 0;
    p->hi_x = 1;
    p->lo_y = 0;
    p->hi_y = loss ? 0 : 1;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < s[k].n; i++) {
            double v;
            if ((double)s[k].v[i].step > p->hi_x)
                p->hi_x = (double)s[k].v[i].step;
            for (int o = 0; loss && o < 2; o++)
                if (value_of(&s[k].v[i], o, 1, &v) && v > p->hi_y)
                    p->hi_y = v;
        }
    if (loss)
        p->hi_y = p->hi_y > 0 ? p->hi_y * 1.08 : 1;
    axes(p, "fine-tuning step", loss ? "loss" : "accuracy", per_epoch);
    cairo_save(cr);
    cairo_rectangle(cr, p->x0, p->y0, p->x1 - p->x0, p->y1 - p->y0);
    cairo_clip(cr);
    /* the fine-tuning start and the fork points: where curves begin */
    static const double dots[] = { 2, 3 };
    cairo_set_dash(cr, dots, 2, 0);
    cairo_set_line_width(cr, 1);
    colour(cr, c->axis);
    cairo_move_to(cr, px(p, 0) + 0.5, p->y0);
    cairo_line_to(cr, px(p, 0) + 0.5, p->y1);
    cairo_stroke(cr);
    for (int k = 1; k < n; k++) {
        colour(cr, c->series[k % FIGURE_SERIES]);
        cairo_move_to(cr, px(p, (double)s[k].fork_step), p->y0);
        cairo_line_to(cr, px(p, (double)s[k].fork_step), p->y1);
        cairo_stroke(cr);
    }
    cairo_set_dash(cr, NULL, 0, 0);
    double base = baseline_of(m, loss);
    if (isfinite(base)) {
        static const double dash[] = { 8, 4 };
        colour(cr, c->baseline);
        cairo_set_dash(cr, dash, 2, 0);
        cairo_set_line_width(cr, 1.5);
        cairo_move_to(cr, p->x0, py(p, base));
        cairo_line_to(cr, p->x1, py(p, base));
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
    }
    for (int k = n - 1; k >= 0; k--) {
        unsigned cn = k ? c->series[k % FIGURE_SERIES] : c->new_task;
        unsigned co = k ? c->series[k % FIGURE_SERIES] : c->original;
        curve(p, &s[k], 0, loss, cn, k ? 1.5 : 2.2, 0);
        curve(p, &s[k], 1, loss, co, k ? 1.5 : 2.2, k != 0);
    }
    cairo_restore(cr);
    cairo_set_font_size(cr, p->font);
    colour(cr, c->text);
    text_at(cr, px(p, 0) + 4, p->y1 - 4, 0, 1, "fine-tuning starts");
    for (int k = 1; k < n; k++) {
        char label[96];
        colour(cr, c->series[k % FIGURE_SERIES]);
        snprintf(label, sizeof label, "%s @%ld", s[k].name, s[k].fork_step);
        text_at(cr, px(p, (double)s[k].fork_step) + 4, p->y0 + 4 + (k - 1) * 1.4 * p->font, 0, 0, label);
    }
    /* the crossover, on the original task's curve */
    char cross[128] = "";
    for (int i = 0; m->crossover >= 0 && i < m->n; i++) {
        double v, nv = NAN;
        if (m->v[i].step != m->crossover || !value_of(&m->v[i], 1, loss, &v))
            continue;
        value_of(&m->v[i], 0, loss, &nv);
        colour(cr, c->crossover);
        cairo_set_line_width(cr, 2);
        cairo_new_path(cr);
        cairo_arc(cr, px(p, (double)m->crossover), py(p, v), 6, 0, 2 * M_PI);
        cairo_stroke(cr);
        snprintf(cross, sizeof cross, "crossover @%ld (new %.2f, original %.2f)", m->crossover, nv, v);
        colour(cr, c->text);
        text_at(cr, px(p, (double)m->crossover) + 9, py(p, v) + 9, 0, 0, cross);
        break;
    }
    LegendRow rows[4 + PLOT_MAX_BRANCHES];
    int k = 0;
    rows[k++] = (LegendRow){ c->new_task, 0, 0, "new task" };
    rows[k++] = (LegendRow){ c->original, 0, 0, "original task" };
    if (isfinite(base))
        rows[k++] = (LegendRow){ c->baseline, 1, 0, "original task's baseline" };
    if (cross[0])
        rows[k++] = (LegendRow){ c->crossover, 0, 1, "crossover" };
    for (int b = 1; b < n && k < 4 + PLOT_MAX_BRANCHES; b++) {
        rows[k] = (LegendRow){ c->series[b % FIGURE_SERIES], 0, 0, "" };
        snprintf(rows[k++].label, sizeof rows[0].label, "%s (original dashed)", s[b].name);
    }
    if (n > 1)
        snprintf(rows[0].label, sizeof rows[0].label, "main: new task");
    if (n > 1)
        snprintf(rows[1].label, sizeof rows[1].label, "main: original task");
    legend(p, rows, k);
}

static void train_panel(Panel *p, const Series *s, int n, const FigureColours *c)
{
    cairo_t *cr = p->cr;
    p->lo_x = 0;
    p->hi_x = 1;
    p->lo_y = 0;
    p->hi_y = 0;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < s[k].n; i++) {
            if ((double)s[k].v[i].step > p->hi_x)
                p->hi_x = (double)s[k].v[i].step;
            if (s[k].v[i].has_train_loss && isfinite(s[k].v[i].train_loss) && s[k].v[i].train_loss > p->hi_y)
                p->hi_y = s[k].v[i].train_loss;
        }
    p->hi_y = p->hi_y > 0 ? p->hi_y * 1.08 : 1;
    axes(p, NULL, "training loss", 0);
    cairo_save(cr);
    cairo_rectangle(cr, p->x0, p->y0, p->x1 - p->x0, p->y1 - p->y0);
    cairo_clip(cr);
    for (int k = n - 1; k >= 0; k--) {
        int started = 0;
        for (int i = 0; i < s[k].n; i++) {
            const EvalRecord *r = &s[k].v[i];
            if (!r->has_train_loss || !isfinite(r->train_loss) || (s[k].fork_step >= 0 && r->step < s[k].fork_step))
                continue;
            if (started++)
                cairo_line_to(cr, px(p, (double)r->step), py(p, r->train_loss));
            else
                cairo_move_to(cr, px(p, (double)r->step), py(p, r->train_loss));
        }
        colour(cr, k ? c->series[k % FIGURE_SERIES] : c->axis);
        cairo_set_line_width(cr, 1.5);
        cairo_stroke(cr);
    }
    cairo_restore(cr);
}

/* Each layer's drift from the base at the end, from summary.json. */
static void drift_panel(Panel *p, const char *run_dir, const FigureColours *c)
{
    cairo_t *cr = p->cr;
    char path[4200];
    json_error_t je;
    snprintf(path, sizeof path, "%s/summary.json", run_dir);
    json_t *sum = json_load_file(path, 0, &je);
    json_t *d = json_object_get(sum, "drift");
    const char *key;
    json_t *v;
    double hi = 0;
    int n = 0;
    json_object_foreach(d, key, v) {
        n++;
        if (json_number_value(v) > hi)
            hi = json_number_value(v);
    }
    cairo_set_font_size(cr, p->font);
    colour(cr, c->text);
    text_at(cr, p->x0, p->y0 - 6, 0, 1, "drift from the base, ||θ − θ_base|| / ||θ_base||, at the end");
    if (n == 0) {
        text_at(cr, p->x0, (p->y0 + p->y1) / 2, 0, 0.5, "(no drift in summary.json: the run has not finished)");
        json_decref(sum);
        return;
    }
    double row = (p->y1 - p->y0) / n, x = p->x0 + 12 * p->font;
    int i = 0;
    json_object_foreach(d, key, v) {
        char val[32];
        double y = p->y0 + row * i++;
        double w = hi > 0 ? json_number_value(v) / hi * (p->x1 - x - 8 * p->font) : 0;
        colour(cr, c->text);
        text_at(cr, x - 6, y + row / 2, 1, 0.5, key);
        colour(cr, c->new_task);
        cairo_rectangle(cr, x, y + row * 0.15, w, row * 0.7);
        cairo_fill(cr);
        colour(cr, c->text);
        snprintf(val, sizeof val, "%.4f", json_number_value(v));
        text_at(cr, x + w + 6, y + row / 2, 0, 0.5, val);
    }
    json_decref(sum);
}

static const char *extension(const char *path)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    return dot && (!slash || dot > slash) ? dot + 1 : "";
}

/* The title: the experiment, the folder, and the summary's figures. */
static void title(cairo_t *cr, const PlotOptions *o, const FigureColours *c, double font, double w)
{
    char path[4200], line[512], name[128] = "run";
    json_error_t je;
    snprintf(path, sizeof path, "%s/summary.json", o->run_dir);
    json_t *s = json_load_file(path, 0, &je);
    const char *nm = json_string_value(json_object_get(s, "name"));
    if (nm)
        snprintf(name, sizeof name, "%s", nm);
    const char *slash = strrchr(o->run_dir, '/');
    snprintf(line, sizeof line, "%s · %s", name, slash && slash[1] ? slash + 1 : o->run_dir);
    colour(cr, c->text);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, font * 1.3);
    text_at(cr, w / 2, 10, 0.5, 0, line);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    json_t *fg = json_object_get(s, "forgetting");
    json_t *fin = json_object_get(s, "final");
    if (json_is_number(fg) && json_is_object(fin)) {
        snprintf(line, sizeof line, "final: new %.3f, original %.3f · forgetting %.3f (%s)",
                 json_number_value(json_object_get(json_object_get(fin, "new"), "acc")),
                 json_number_value(json_object_get(json_object_get(fin, "original"), "acc")),
                 json_number_value(fg),
                 json_string_value(json_object_get(s, "status")) ? json_string_value(json_object_get(s, "status")) : "?");
        cairo_set_font_size(cr, font);
        text_at(cr, w / 2, 14 + font * 1.6, 0.5, 0, line);
    }
    json_decref(s);
}

/* The run's curves and the theme's colours, loaded once per figure. */
typedef struct {
    Series s[1 + PLOT_MAX_BRANCHES];
    int nb;
    Theme theme;
} Figure;

static void figure_free(Figure *f)
{
    for (int i = 0; i <= f->nb; i++)
        series_free(&f->s[i]);
    /* cairo's and fontconfig's caches live for the process: a figure now
     * and then does not need them kept, and a leak checker sees none */
    cairo_debug_reset_static_data();
    FcFini();
}

static int figure_load(const PlotOptions *o, Figure *f, MnError *e)
{
    memset(f, 0, sizeof *f);
    theme_default(&f->theme);
    if (o->theme && theme_load(&f->theme, o->theme, e) < 0)
        return mn_wrap(e, "theme");
    if (load_series(o->run_dir, "main", -1, &f->s[0], e) < 0)
        return -1;
    if (load_branches(o, f->s + 1, &f->nb, e) < 0) {
        figure_free(f);
        return -1;
    }
    return 0;
}

/* Paints the whole figure on sf, o->width by o->height. */
static void figure_draw(cairo_surface_t *sf, const PlotOptions *o, const Figure *f)
{
    const int panels = !!(o->panels & PANEL_TRAIN) + !!(o->panels & PANEL_DRIFT);
    const double w = o->width, h = o->height;
    cairo_t *cr = cairo_create(sf);
    const FigureColours *c = &f->theme.fig;
    const double font = w < 700 ? 10 : w < 1600 ? 12 : 12 * w / 1600;
    colour(cr, c->background);
    cairo_paint(cr);
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    title(cr, o, c, font, w);
    /* the tasks get the most room; each extra panel a share below */
    double top = 14 + font * 5, bottom = h - font * 4, left = font * 6, right = w - font * 2;
    double gap = font * 5.5, main_h = (bottom - top) * (panels ? 0.6 : 1.0);
    double extra_h = panels ? ((bottom - top) - main_h - gap * panels) / panels : 0;
    Panel p = { cr, c, left, top, right, top + main_h, 0, 1, 0, 1, font };
    tasks_panel(&p, f->s, 1 + f->nb, o->loss, c);
    double y = top + main_h + gap;
    if (o->panels & PANEL_TRAIN) {
        Panel q = { cr, c, left, y, right, y + extra_h, 0, 1, 0, 1, font };
        train_panel(&q, f->s, 1 + f->nb, c);
        y += extra_h + gap;
    }
    if (o->panels & PANEL_DRIFT) {
        Panel q = { cr, c, left, y, right, y + extra_h, 0, 1, 0, 1, font };
        drift_panel(&q, o->run_dir, c);
    }
    cairo_destroy(cr);
}

int plot_run(const PlotOptions *o, MnError *e)
{
    Figure f;
    int rc = 0;
    const char *ext = extension(o->out);
    if (strcmp(ext, "png") && strcmp(ext, "svg") && strcmp(ext, "pdf"))
        return mn_fail(e, "%s: unknown kind of figure '.%s' (png, svg or pdf)", o->out, ext);
    if (figure_load(o, &f, e) < 0)
        return -1;
    /* written whole or not at all */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%s", o->out, (long)getpid(), ext);
    FILE *probe = fopen(tmp, "w");
    if (!probe) {
        rc = mn_fail(e, "cannot write %s: %s", o->out, strerror(errno));
        figure_free(&f);
        return rc;
    }
    fclose(probe);
    const double w = o->width, h = o->height;
    cairo_surface_t *sf = !strcmp(ext, "png") ? cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)w, (int)h)
                          : !strcmp(ext, "svg") ? cairo_svg_surface_create(tmp, w, h)
                                                : cairo_pdf_surface_create(tmp, w, h);
    figure_draw(sf, o, &f);
    cairo_status_t st = !strcmp(ext, "png") ? cairo_surface_write_to_png(sf, tmp) : CAIRO_STATUS_SUCCESS;
    cairo_surface_finish(sf);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_status(sf);
    cairo_surface_destroy(sf);
    if (st != CAIRO_STATUS_SUCCESS) {
        rc = mn_fail(e, "cannot write %s: %s", o->out, cairo_status_to_string(st));
        unlink(tmp);
    } else if (rename(tmp, o->out) < 0) {
        rc = mn_fail(e, "cannot write %s: %s", o->out, strerror(errno));
        unlink(tmp);
    }
    figure_free(&f);
    return rc;
}

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

int plot_svg(const PlotOptions *o, char **svg, MnError *e)
{
    Figure f;
    Buffer b = { 0 };
    *svg = NULL;
    if (figure_load(o, &f, e) < 0)
        return -1;
    cairo_surface_t *sf = cairo_svg_surface_create_for_stream(to_buffer, &b, o->width, o->height);
    figure_draw(sf, o, &f);
    cairo_surface_finish(sf);
    cairo_status_t st = cairo_surface_status(sf);
    cairo_surface_destroy(sf);
    figure_free(&f);
    if (st != CAIRO_STATUS_SUCCESS || b.failed || !b.buf) {
        free(b.buf);
        return mn_fail(e, "the figure could not be drawn: %s", cairo_status_to_string(st));
    }
    *svg = b.buf;
    return 0;
}

static int usage(const char *why, const char *arg)
{
    fprintf(stderr, "mneme plot: ");
    fprintf(stderr, why, arg);
    fprintf(stderr, "\nusage: mneme plot RUN_DIR [-o FILE.png|svg|pdf] [--branch NAME]... [--all]\n"
                    "                  [--metric acc|loss] [--size WxH] [--panels train,drift] [--theme NAME]\n");
    return 2;
}

int plot_main(int argc, char **argv)
{
    PlotOptions o;
    MnError e;
    char out[4200];
    memset(&o, 0, sizeof o);
    o.width = 1200;
    o.height = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--all"))
            o.all = 1;
        else if (!strcmp(a, "-o") || !strcmp(a, "--branch") || !strcmp(a, "--metric") ||
                 !strcmp(a, "--size") || !strcmp(a, "--panels") || !strcmp(a, "--theme")) {
            if (!v)
                return usage("%s needs a value", a);
            i++;
            if (!strcmp(a, "-o"))
                o.out = v;
            else if (!strcmp(a, "--theme"))
                o.theme = v;
            else if (!strcmp(a, "--branch")) {
                if (o.n_branches == PLOT_MAX_BRANCHES)
                    return usage("at most %s branches", "16");
                o.branches[o.n_branches++] = v;
            } else if (!strcmp(a, "--metric")) {
                if (strcmp(v, "acc") && strcmp(v, "loss"))
                    return usage("--metric is acc or loss, not '%s'", v);
                o.loss = !strcmp(v, "loss");
            } else if (!strcmp(a, "--size")) {
                char *x;
                long wd = strtol(v, &x, 10), ht = *x == 'x' ? strtol(x + 1, &x, 10) : 0;
                if (*x || wd < 200 || ht < 150 || wd > 10000 || ht > 10000)
                    return usage("--size is WIDTHxHEIGHT within 200x150..10000x10000, not '%s'", v);
                o.width = (int)wd;
                o.height = (int)ht;
            } else {
                char list[128];
                snprintf(list, sizeof list, "%s", v);
                for (char *t = strtok(list, ","); t; t = strtok(NULL, ","))
                    if (!strcmp(t, "train"))
                        o.panels |= PANEL_TRAIN;
                    else if (!strcmp(t, "drift"))
                        o.panels |= PANEL_DRIFT;
                    else
                        return usage("--panels takes train and drift, not '%s'", t);
            }
        } else if (a[0] == '-')
            return usage("unknown option %s", a);
        else if (!o.run_dir)
            o.run_dir = a;
        else
            return usage("unexpected argument %s", a);
    }
    if (!o.run_dir)
        return usage("which run?%s", "");
    if (o.all && o.n_branches)
        return usage("--all or --branch, not both%s", "");
    if (!o.height)
        o.height = 700 + (o.panels & PANEL_TRAIN ? 260 : 0) + (o.panels & PANEL_DRIFT ? 260 : 0);
    if (!o.out) {
        snprintf(out, sizeof out, "%s/plot.png", o.run_dir);
        o.out = out;
    }
    if (plot_run(&o, &e) < 0) {
        fprintf(stderr, "mneme plot: %s\n", e.msg);
        return 2;
    }
    printf("%s\n", o.out);
    return 0;
}
