#include "plot.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "figure.h"
#include "lines.h"
#include "metrics.h"
#include "tradeoff.h"

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
        double x = panel_x(p, (double)s->v[i].step), y = panel_y(p, v);
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
    figure_colour(cr, rgb);
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
    panel_axes(p, "fine-tuning step", loss ? "loss" : "accuracy", per_epoch);
    cairo_save(cr);
    cairo_rectangle(cr, p->x0, p->y0, p->x1 - p->x0, p->y1 - p->y0);
    cairo_clip(cr);
    /* the fine-tuning start and the fork points: where curves begin */
    static const double dots[] = { 2, 3 };
    cairo_set_dash(cr, dots, 2, 0);
    cairo_set_line_width(cr, 1);
    figure_colour(cr, c->axis);
    cairo_move_to(cr, panel_x(p, 0) + 0.5, p->y0);
    cairo_line_to(cr, panel_x(p, 0) + 0.5, p->y1);
    cairo_stroke(cr);
    for (int k = 1; k < n; k++) {
        figure_colour(cr, c->series[k % FIGURE_SERIES]);
        cairo_move_to(cr, panel_x(p, (double)s[k].fork_step), p->y0);
        cairo_line_to(cr, panel_x(p, (double)s[k].fork_step), p->y1);
        cairo_stroke(cr);
    }
    cairo_set_dash(cr, NULL, 0, 0);
    double base = baseline_of(m, loss);
    if (isfinite(base)) {
        static const double dash[] = { 8, 4 };
        figure_colour(cr, c->baseline);
        cairo_set_dash(cr, dash, 2, 0);
        cairo_set_line_width(cr, 1.5);
        cairo_move_to(cr, p->x0, panel_y(p, base));
        cairo_line_to(cr, p->x1, panel_y(p, base));
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
    figure_colour(cr, c->text);
    figure_text(cr, panel_x(p, 0) + 4, p->y1 - 4, 0, 1, "fine-tuning starts");
    for (int k = 1; k < n; k++) {
        char label[96];
        figure_colour(cr, c->series[k % FIGURE_SERIES]);
        snprintf(label, sizeof label, "%s @%ld", s[k].name, s[k].fork_step);
        figure_text(cr, panel_x(p, (double)s[k].fork_step) + 4, p->y0 + 4 + (k - 1) * 1.4 * p->font, 0, 0, label);
    }
    /* the crossover, on the original task's curve */
    char cross[128] = "";
    for (int i = 0; m->crossover >= 0 && i < m->n; i++) {
        double v, nv = NAN;
        if (m->v[i].step != m->crossover || !value_of(&m->v[i], 1, loss, &v))
            continue;
        value_of(&m->v[i], 0, loss, &nv);
        figure_colour(cr, c->crossover);
        cairo_set_line_width(cr, 2);
        cairo_new_path(cr);
        cairo_arc(cr, panel_x(p, (double)m->crossover), panel_y(p, v), 6, 0, 2 * M_PI);
        cairo_stroke(cr);
        snprintf(cross, sizeof cross, "crossover @%ld (new %.2f, original %.2f)", m->crossover, nv, v);
        figure_colour(cr, c->text);
        figure_text(cr, panel_x(p, (double)m->crossover) + 9, panel_y(p, v) + 9, 0, 0, cross);
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
    panel_legend(p, rows, k, LEGEND_TOP_RIGHT);
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
    panel_axes(p, NULL, "training loss", 0);
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
                cairo_line_to(cr, panel_x(p, (double)r->step), panel_y(p, r->train_loss));
            else
                cairo_move_to(cr, panel_x(p, (double)r->step), panel_y(p, r->train_loss));
        }
        figure_colour(cr, k ? c->series[k % FIGURE_SERIES] : c->axis);
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
    figure_colour(cr, c->text);
    figure_text(cr, p->x0, p->y0 - 6, 0, 1, "drift from the base, ||θ − θ_base|| / ||θ_base||, at the end");
    if (n == 0) {
        figure_text(cr, p->x0, (p->y0 + p->y1) / 2, 0, 0.5, "(no drift in summary.json: the run has not finished)");
        json_decref(sum);
        return;
    }
    double row = (p->y1 - p->y0) / n, x = p->x0 + 12 * p->font;
    int i = 0;
    json_object_foreach(d, key, v) {
        char val[32];
        double y = p->y0 + row * i++;
        double w = hi > 0 ? json_number_value(v) / hi * (p->x1 - x - 8 * p->font) : 0;
        figure_colour(cr, c->text);
        figure_text(cr, x - 6, y + row / 2, 1, 0.5, key);
        figure_colour(cr, c->new_task);
        cairo_rectangle(cr, x, y + row * 0.15, w, row * 0.7);
        cairo_fill(cr);
        figure_colour(cr, c->text);
        snprintf(val, sizeof val, "%.4f", json_number_value(v));
        figure_text(cr, x + w + 6, y + row / 2, 0, 0.5, val);
    }
    json_decref(sum);
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
    figure_colour(cr, c->text);
    cairo_select_font_face(cr, FIGURE_FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, font * 1.3);
    figure_text(cr, w / 2, 10, 0.5, 0, line);
    cairo_select_font_face(cr, FIGURE_FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    json_t *fg = json_object_get(s, "forgetting");
    json_t *fin = json_object_get(s, "final");
    if (json_is_number(fg) && json_is_object(fin)) {
        snprintf(line, sizeof line, "final: new %.3f, original %.3f · forgetting %.3f (%s)",
                 json_number_value(json_object_get(json_object_get(fin, "new"), "acc")),
                 json_number_value(json_object_get(json_object_get(fin, "original"), "acc")),
                 json_number_value(fg),
                 json_string_value(json_object_get(s, "status")) ? json_string_value(json_object_get(s, "status")) : "?");
        cairo_set_font_size(cr, font);
        figure_text(cr, w / 2, 14 + font * 1.6, 0.5, 0, line);
    }
    json_decref(s);
}

/* The run's curves and the theme's colours, loaded once per figure. */
typedef struct {
    const PlotOptions *o;
    Series s[1 + PLOT_MAX_BRANCHES];
    int nb;
    Theme theme;
} RunFigure;

static void run_figure_free(RunFigure *f)
{
    for (int i = 0; i <= f->nb; i++)
        series_free(&f->s[i]);
    figure_release_caches();
}

static int run_figure_load(const PlotOptions *o, RunFigure *f, MnError *e)
{
    memset(f, 0, sizeof *f);
    f->o = o;
    theme_default(&f->theme);
    if (o->theme && theme_load(&f->theme, o->theme, e) < 0)
        return mn_wrap(e, "theme");
    if (load_series(o->run_dir, "main", -1, &f->s[0], e) < 0)
        return -1;
    if (load_branches(o, f->s + 1, &f->nb, e) < 0) {
        run_figure_free(f);
        return -1;
    }
    return 0;
}

/* Paints the whole figure (a RunFigure) on sf, width by height. */
static void run_figure_paint(cairo_surface_t *sf, int width, int height, const void *what)
{
    const RunFigure *f = what;
    const PlotOptions *o = f->o;
    const int panels = !!(o->panels & PANEL_TRAIN) + !!(o->panels & PANEL_DRIFT);
    const double w = width, h = height;
    cairo_t *cr = cairo_create(sf);
    const FigureColours *c = &f->theme.fig;
    const double font = figure_font_size(w);
    figure_colour(cr, c->background);
    cairo_paint(cr);
    cairo_select_font_face(cr, FIGURE_FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
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
    RunFigure f;
    if (figure_check_extension(o->out, e) < 0 || run_figure_load(o, &f, e) < 0)
        return -1;
    int rc = figure_write(o->out, o->width, o->height, run_figure_paint, &f, e);
    run_figure_free(&f);
    return rc;
}

int plot_svg(const PlotOptions *o, char **svg, MnError *e)
{
    RunFigure f;
    *svg = NULL;
    if (run_figure_load(o, &f, e) < 0)
        return -1;
    int rc = figure_write_svg(o->width, o->height, run_figure_paint, &f, svg, e);
    run_figure_free(&f);
    return rc;
}

static int usage(const char *why, const char *arg)
{
    fprintf(stderr, "mneme plot: ");
    fprintf(stderr, why, arg);
    fprintf(stderr, "\nusage: mneme plot RUN_DIR [-o FILE.png|svg|pdf] [--branch NAME]... [--all]\n"
                    "                  [--metric acc|loss] [--size WxH] [--panels train,drift] [--theme NAME]\n"
                    "       mneme plot STUDY_DIR [-o FILE.png|svg|pdf] [--size WxH] [--theme NAME]\n");
    return 2;
}

/* A folder with a study.json and no metrics.jsonl is a study (mneme
 * study's), whose figure is the trade-off of its remedies. */
static int is_study(const char *dir)
{
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/study.json", dir);
    if (lstat(path, &st) < 0)
        return 0;
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    return lstat(path, &st) < 0;
}

/* The study's trade-off figure; run_only: an option that only a run's
 * figure takes, given (NULL: none); sized: --size given. */
static int plot_study(PlotOptions *o, const char *run_only, int sized)
{
    char study[4200], out[4200], why[4400];
    MnError e;
    if (run_only) {
        snprintf(why, sizeof why, "%s is a study (study.json): %s is for a run's figure, not a study's trade-off",
                 o->run_dir, run_only);
        return usage("%s", why);
    }
    if (!sized) {
        o->width = 1000;
        o->height = 750;
    }
    snprintf(study, sizeof study, "%s/study.json", o->run_dir);
    if (!o->out) {
        snprintf(out, sizeof out, "%s/tradeoff.png", o->run_dir);
        o->out = out;
    }
    if (tradeoff_plot(study, o->out, o->width, o->height, o->theme, &e) < 0) {
        fprintf(stderr, "mneme plot: %s\n", e.msg);
        return 2;
    }
    printf("%s\n", o->out);
    return 0;
}

int plot_main(int argc, char **argv)
{
    PlotOptions o;
    MnError e;
    char out[4200];
    const char *run_only = NULL;   /* an option a study's figure does not take */
    int sized = 0;
    memset(&o, 0, sizeof o);
    o.width = 1200;
    o.height = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!run_only && (!strcmp(a, "--all") || !strcmp(a, "--branch") || !strcmp(a, "--metric") ||
                          !strcmp(a, "--panels")))
            run_only = a;
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
                sized = 1;
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
    if (is_study(o.run_dir))
        return plot_study(&o, run_only, sized);
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
