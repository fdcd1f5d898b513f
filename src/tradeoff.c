#include "tradeoff.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "figure.h"

typedef struct {
    double mean, sd;
} Stat;

typedef struct {
    char name[64];
    int main;                  /* the experiment as given, no remedy */
    int pareto;                /* no other remedy better on both axes */
    Stat new_acc, forgetting;
} Remedy;

typedef struct {
    double x0, y0, x1, y1;
} Box;

/* What the figure shows of a study, and the theme's colours. */
typedef struct {
    char experiment[128];
    int seeds;
    Remedy *r;
    int n;
    int *front, n_front;       /* the Pareto remedies in order of forgetting */
    Box *room;                 /* 4n + 1 boxes to place names among, taken
                                * with the study so painting cannot fail */
    Theme theme;
} Study;

/* ---- reading study.json ---- */

/* Where a field is, for messages: the file, and the remedy ("" above them). */
typedef struct {
    const char *path;
    char who[96];
} Where;

static const char *kind_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    default: return "null";
    }
}

/* obj's key (named field in messages), which must be there. */
static json_t *field(const Where *w, const json_t *obj, const char *key, const char *name, MnError *e)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        mn_fail(e, "%s: %s%s is missing", w->path, w->who, name);
    return v;
}

static int wrong(const Where *w, const char *name, const char *want, const json_t *v, MnError *e)
{
    return mn_fail(e, "%s: %s%s should be %s, not %s", w->path, w->who, name, want, kind_of(v));
}

static int read_string(const Where *w, const json_t *obj, const char *key, char *out, size_t n, MnError *e)
{
    json_t *v = field(w, obj, key, key, e);
    if (!v)
        return -1;
    if (!json_is_string(v))
        return wrong(w, key, "a string", v, e);
    if (strlen(json_string_value(v)) >= n)
        return mn_fail(e, "%s: %s%s is longer than %zu characters", w->path, w->who, key, n - 1);
    snprintf(out, n, "%s", json_string_value(v));
    return 0;
}

static int read_bool(const Where *w, const json_t *obj, const char *key, int *out, MnError *e)
{
    json_t *v = field(w, obj, key, key, e);
    if (!v)
        return -1;
    if (!json_is_boolean(v))
        return wrong(w, key, "true or false", v, e);
    *out = json_is_true(v);
    return 0;
}

/* obj's key, a { "mean": …, "sd": … } of numbers, sd not negative. */
static int read_stat(const Where *w, const json_t *obj, const char *key, Stat *s, MnError *e)
{
    char name[64];
    json_t *o = field(w, obj, key, key, e);
    if (!o)
        return -1;
    if (!json_is_object(o))
        return wrong(w, key, "an object { \"mean\": …, \"sd\": … }", o, e);
    static const char *const parts[2] = { "mean", "sd" };
    double *to[2] = { &s->mean, &s->sd };
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "%s.%s", key, parts[i]);
        json_t *v = field(w, o, parts[i], name, e);
        if (!v)
            return -1;
        if (!json_is_number(v))
            return wrong(w, name, "a number", v, e);
        *to[i] = json_number_value(v);
    }
    if (s->sd < 0)
        return mn_fail(e, "%s: %s%s.sd is negative (%g)", w->path, w->who, key, s->sd);
    return 0;
}

static int read_remedy(const char *path, const json_t *v, int i, Remedy *r, MnError *e)
{
    Where w = { path, "" };
    snprintf(w.who, sizeof w.who, "remedies[%d]: ", i);
    if (!json_is_object(v))
        return wrong(&w, "the remedy", "an object", v, e);
    if (read_string(&w, v, "name", r->name, sizeof r->name, e) < 0)
        return -1;
    snprintf(w.who, sizeof w.who, "remedy '%s': ", r->name);
    if (read_bool(&w, v, "main", &r->main, e) < 0 || read_bool(&w, v, "pareto", &r->pareto, e) < 0 ||
        read_stat(&w, v, "new_acc", &r->new_acc, e) < 0 ||
        read_stat(&w, v, "forgetting", &r->forgetting, e) < 0)
        return -1;
    return 0;
}

static void study_free(Study *s)
{
    free(s->r);
    free(s->front);
    free(s->room);
    s->r = NULL;
    s->front = NULL;
    s->room = NULL;
    s->n = s->n_front = 0;
}

/* The Pareto remedies in order of forgetting (then of new-task accuracy). */
static void front_order(Study *s)
{
    s->n_front = 0;
    for (int i = 0; i < s->n; i++) {
        if (!s->r[i].pareto)
            continue;
        const Remedy *r = &s->r[i];
        int k = s->n_front++;
        for (; k > 0; k--) {
            const Remedy *q = &s->r[s->front[k - 1]];
            if (q->forgetting.mean < r->forgetting.mean ||
                (q->forgetting.mean == r->forgetting.mean && q->new_acc.mean <= r->new_acc.mean))
                break;
            s->front[k] = s->front[k - 1];
        }
        s->front[k] = i;
    }
}

/* The study in root, study.json's version 1, as the figure needs it
 * (other fields ignored). */
static int read_study(const char *path, const json_t *root, Study *s, MnError *e)
{
    Where w = { path, "" };
    json_t *v, *seeds, *list;
    if (!json_is_object(root))
        return wrong(&w, "the study", "an object { \"version\": 1, … }", root, e);
    if (!(v = field(&w, root, "version", "version", e)))
        return -1;
    if (!json_is_integer(v))
        return wrong(&w, "version", "a number", v, e);
    if (json_integer_value(v) != 1)
        return mn_fail(e, "%s: version %" JSON_INTEGER_FORMAT "; this mneme reads study.json version 1",
                       path, json_integer_value(v));
    if (read_string(&w, root, "experiment", s->experiment, sizeof s->experiment, e) < 0)
        return -1;
    if (!(seeds = field(&w, root, "seeds", "seeds", e)))
        return -1;
    if (!json_is_array(seeds))
        return wrong(&w, "seeds", "an array", seeds, e);
    if (!(list = field(&w, root, "remedies", "remedies", e)))
        return -1;
    if (!json_is_array(list))
        return wrong(&w, "remedies", "an array", list, e);
    size_t n = json_array_size(list);
    if (n == 0)
        return mn_fail(e, "%s: no remedies to draw (remedies is empty)", path);
    if (!(s->r = calloc(n, sizeof *s->r)) || !(s->front = calloc(n, sizeof *s->front)) ||
        !(s->room = calloc(4 * n + 1, sizeof *s->room)))
        return mn_fail(e, "out of memory");
    s->seeds = (int)json_array_size(seeds);
    for (size_t i = 0; i < n; i++, s->n++)
        if (read_remedy(path, json_array_get(list, i), (int)i, &s->r[i], e) < 0)
            return -1;
    front_order(s);
    return 0;
}

static int study_read(const char *path, Study *s, MnError *e)
{
    json_error_t je;
    FILE *f = fopen(path, "r");
    if (!f)
        return mn_fail(e, "cannot read %s: %s", path, strerror(errno));
    json_t *root = json_loadf(f, 0, &je);
    fclose(f);
    if (!root)
        return mn_fail(e, "%s:%d: %s", path, je.line, je.text);
    int rc = read_study(path, root, s, e);
    json_decref(root);
    if (rc < 0)
        study_free(s);
    return rc;
}

static int study_load(const char *path, const char *theme, Study *s, MnError *e)
{
    memset(s, 0, sizeof *s);
    theme_default(&s->theme);
    if (study_read(path, s, e) < 0)
        return -1;
    if (theme && theme_load(&s->theme, theme, e) < 0) {
        study_free(s);
        return mn_wrap(e, "theme");
    }
    return 0;
}

/* ---- drawing ---- */

static double overlap(Box a, Box b)
{
    double w = fmin(a.x1, b.x1) - fmax(a.x0, b.x0), h = fmin(a.y1, b.y1) - fmax(a.y0, b.y0);
    return w > 0 && h > 0 ? w * h : 0;
}

static int bars_drawn(const Study *s)
{
    return s->seeds > 1;
}

static unsigned remedy_colour(const FigureColours *c, const Remedy *r)
{
    return r->main ? c->original : r->pareto ? c->accent : c->new_task;
}

/* The data range: every marker and error bar, with a margin so none sits
 * on the frame; forgetting below zero (the original task improved) too. */
static void data_range(Panel *p, const Study *s)
{
    double lx = INFINITY, hx = -INFINITY, ly = INFINITY, hy = -INFINITY;
    for (int i = 0; i < s->n; i++) {
        const Remedy *r = &s->r[i];
        double sx = bars_drawn(s) ? r->forgetting.sd : 0, sy = bars_drawn(s) ? r->new_acc.sd : 0;
        lx = fmin(lx, r->forgetting.mean - sx);
        hx = fmax(hx, r->forgetting.mean + sx);
        ly = fmin(ly, r->new_acc.mean - sy);
        hy = fmax(hy, r->new_acc.mean + sy);
    }
    double mx = hx - lx > 1e-9 ? (hx - lx) * 0.12 : 0.05;
    double my = hy - ly > 1e-9 ? (hy - ly) * 0.12 : 0.05;
    p->lo_x = lx - mx;
    p->hi_x = hx + mx;
    p->lo_y = ly - my;
    p->hi_y = hy + my;
}

/* The title, and how many seeds the figures are over. */
static void title(cairo_t *cr, const Study *s, const FigureColours *c, double font, double w)
{
    char line[256];
    figure_colour(cr, c->text);
    cairo_select_font_face(cr, FIGURE_FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr, font * 1.3);
    snprintf(line, sizeof line, "%s: new task against forgetting", s->experiment);
    figure_text(cr, w / 2, 10, 0.5, 0, line);
    cairo_select_font_face(cr, FIGURE_FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    if (s->seeds > 1) {
        snprintf(line, sizeof line, "(mean ± sd over %d seeds)", s->seeds);
        cairo_set_font_size(cr, font);
        figure_text(cr, w / 2, 14 + font * 1.6, 0.5, 0, line);
    }
}

/* The vertical line of no forgetting, when it is in range; its label's
 * box in *label, for the names to keep clear of. */
static int no_forgetting(const Panel *p, Box *label)
{
    cairo_t *cr = p->cr;
    if (!(p->lo_x < 0 && p->hi_x > 0))
        return 0;
    static const double dots[] = { 2, 3 };
    double x = panel_x(p, 0);
    figure_colour(cr, p->c->axis);
    cairo_set_dash(cr, dots, 2, 0);
    cairo_set_line_width(cr, 1);
    cairo_move_to(cr, x, p->y0);
    cairo_line_to(cr, x, p->y1);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_text_extents_t t;
    cairo_set_font_size(cr, p->font * 0.9);
    cairo_text_extents(cr, "no forgetting", &t);
    figure_text(cr, x + 4, p->y1 - 4, 0, 1, "no forgetting");
    cairo_set_font_size(cr, p->font);
    *label = (Box){ x + 4, p->y1 - 4 - t.height, x + 4 + t.width, p->y1 - 4 };
    return 1;
}

/* ±sd on both axes, each bar one path (the bar, then its two caps); none
 * where the sd is 0. Their boxes into box; how many. */
static int error_bars(const Panel *p, const Study *s, double marker, Box *box)
{
    int n = 0;
    cairo_t *cr = p->cr;
    double cap = marker * 0.8;
    cairo_set_line_width(cr, 1.2);
    for (int i = 0; i < s->n; i++) {
        const Remedy *r = &s->r[i];
        double x = panel_x(p, r->forgetting.mean), y = panel_y(p, r->new_acc.mean);
        figure_colour(cr, remedy_colour(p->c, r));
        if (r->forgetting.sd > 0) {
            double a = panel_x(p, r->forgetting.mean - r->forgetting.sd);
            double b = panel_x(p, r->forgetting.mean + r->forgetting.sd);
            cairo_move_to(cr, a, y);
            cairo_line_to(cr, b, y);
            cairo_move_to(cr, a, y - cap);
            cairo_line_to(cr, a, y + cap);
            cairo_move_to(cr, b, y - cap);
            cairo_line_to(cr, b, y + cap);
            cairo_stroke(cr);
            box[n++] = (Box){ a, y - cap, b, y + cap };
        }
        if (r->new_acc.sd > 0) {
            double a = panel_y(p, r->new_acc.mean - r->new_acc.sd);
            double b = panel_y(p, r->new_acc.mean + r->new_acc.sd);
            cairo_move_to(cr, x, a);
            cairo_line_to(cr, x, b);
            cairo_move_to(cr, x - cap, a);
            cairo_line_to(cr, x + cap, a);
            cairo_move_to(cr, x - cap, b);
            cairo_line_to(cr, x + cap, b);
            cairo_stroke(cr);
            box[n++] = (Box){ x - cap, b, x + cap, a };
        }
    }
    return n;
}

/* The Pareto front: its remedies joined in order of forgetting by
 * straight segments, not a step, since only the measured points are
 * remedies one can pick; a step would draw corners nobody measured. */
static void pareto_front(const Panel *p, const Study *s)
{
    cairo_t *cr = p->cr;
    if (s->n_front < 2)
        return;
    double x0 = 0, y0 = 0;
    for (int k = 0; k < s->n_front; k++) {
        const Remedy *r = &s->r[s->front[k]];
        double x = panel_x(p, r->forgetting.mean), y = panel_y(p, r->new_acc.mean);
        /* a straight segment as a curve: cairo merges collinear line
         * segments, and each remedy should stay a vertex of its own */
        if (k == 0)
            cairo_move_to(cr, x, y);
        else
            cairo_curve_to(cr, x0, y0, x, y, x, y);
        x0 = x;
        y0 = y;
    }
    figure_colour(cr, p->c->accent);
    cairo_set_line_width(cr, 2);
    cairo_stroke(cr);
}

/* A filled marker a remedy: a circle, the experiment as given a square,
 * drawn last so that a remedy at the same place does not hide it. */
static void markers(const Panel *p, const Study *s, double size, Box *box)
{
    cairo_t *cr = p->cr;
    for (int k = 0; k < 2 * s->n; k++) {
        const int i = k % s->n;
        const Remedy *r = &s->r[i];
        if ((k < s->n) == r->main)
            continue;
        double x = panel_x(p, r->forgetting.mean), y = panel_y(p, r->new_acc.mean);
        figure_colour(cr, remedy_colour(p->c, r));
        cairo_new_path(cr);
        if (r->main)
            cairo_rectangle(cr, x - size * 0.9, y - size * 0.9, size * 1.8, size * 1.8);
        else
            cairo_arc(cr, x, y, size, 0, 2 * M_PI);
        cairo_fill(cr);
        box[i] = (Box){ x - size, y - size, x + size, y + size };
    }
}

static int at_same_place(const Remedy *a, const Remedy *b)
{
    return fabs(a->forgetting.mean - b->forgetting.mean) < 1e-9 &&
           fabs(a->new_acc.mean - b->new_acc.mean) < 1e-9;
}

/* Each remedy's name next to its marker: the first of a few spots around
 * it that covers no other name nor anything in avoid and stays inside the
 * plot area, else the spot that covers least. The names' boxes go into
 * label. */
static void labels(const Panel *p, const Study *s, double size, const Box *avoid, int n_avoid,
                   Box *label)
{
    cairo_t *cr = p->cr;
    static const double spots[][4] = {   /* dx, dy (of the gap), anchor x, y */
        { 1, 0, 0, 0.5 },    { -1, 0, 1, 0.5 },     { 0, -1, 0.5, 1 },  { 0, 1, 0.5, 0 },
        { 0.7, -0.7, 0, 1 }, { 0.7, 0.7, 0, 0 },    { -0.7, -0.7, 1, 1 }, { -0.7, 0.7, 1, 0 },
    };
    const int n_spots = (int)(sizeof spots / sizeof spots[0]);
    const Box area = { p->x0, p->y0, p->x1, p->y1 };
    const double gap = size + 4;
    cairo_set_font_size(cr, p->font);
    for (int i = 0; i < s->n; i++) {
        const Remedy *r = &s->r[i];
        double x = panel_x(p, r->forgetting.mean), y = panel_y(p, r->new_acc.mean);
        /* remedies that land on one place share one label, "a = b" */
        char name[1024];
        int first = 1;
        for (int j = 0; j < i && first; j++)
            first = !at_same_place(r, &s->r[j]);
        if (!first) {
            label[i] = (Box){ x, y, x, y };
            continue;
        }
        snprintf(name, sizeof name, "%s", r->name);
        for (int j = i + 1; j < s->n; j++)
            if (at_same_place(r, &s->r[j]) && strlen(name) + strlen(s->r[j].name) + 4 < sizeof name) {
                strcat(name, " = ");
                strcat(name, s->r[j].name);
            }
        cairo_text_extents_t t;
        cairo_text_extents(cr, name, &t);
        double best = INFINITY;
        int pick = 0;
        for (int k = 0; k < n_spots && best > 0; k++) {
            double tx = x + spots[k][0] * gap, ty = y + spots[k][1] * gap;
            Box b = { tx - spots[k][2] * t.width, ty - spots[k][3] * t.height, 0, 0 };
            b.x1 = b.x0 + t.width;
            b.y1 = b.y0 + t.height;
            double cost = t.width * t.height - overlap(b, area);
            for (int j = 0; j < i; j++)
                cost += overlap(b, label[j]);
            for (int j = 0; j < n_avoid; j++)
                cost += overlap(b, avoid[j]);
            if (cost < best) {
                best = cost;
                pick = k;
                label[i] = b;
            }
        }
        figure_colour(cr, p->c->text);
        figure_text(cr, x + spots[pick][0] * gap, y + spots[pick][1] * gap, spots[pick][2],
                    spots[pick][3], name);
    }
}

/* The legend, in the corner it covers least of (the bottom right first:
 * the corner of much forgetting and little learnt, seldom a remedy's). */
static void legend(const Panel *p, const Study *s, const Box *taken, int n_taken)
{
    const FigureColours *c = p->c;
    LegendRow rows[3];
    int n = 0, plain = 0, main = 0, front = 0;
    for (int i = 0; i < s->n; i++) {
        main |= s->r[i].main;
        front += s->r[i].pareto;
        plain |= !s->r[i].main && !s->r[i].pareto;
    }
    if (plain)
        rows[n++] = (LegendRow){ c->new_task, 0, LEGEND_DOT, "remedy" };
    if (front)
        rows[n++] = (LegendRow){ c->accent, 0, front > 1 ? LEGEND_LINE : LEGEND_DOT,
                                 "Pareto front (none better on both)" };
    if (main)
        rows[n++] = (LegendRow){ c->original, 0, LEGEND_SQUARE, "main: the experiment as given" };
    static const int corners[] = { LEGEND_BOTTOM_RIGHT, LEGEND_TOP_RIGHT, LEGEND_BOTTOM_LEFT, LEGEND_TOP_LEFT };
    double best = INFINITY;
    int pick = LEGEND_BOTTOM_RIGHT;
    for (int k = 0; k < 4 && best > 0; k++) {
        double b[4], cost = 0;
        panel_legend_box(p, rows, n, corners[k], b);
        for (int j = 0; j < n_taken; j++)
            cost += overlap((Box){ b[0], b[1], b[2], b[3] }, taken[j]);
        if (cost < best) {
            best = cost;
            pick = corners[k];
        }
    }
    panel_legend(p, rows, n, pick);
}

/* Paints the whole figure (a Study) on sf, width by height. */
static void study_paint(cairo_surface_t *sf, int width, int height, const void *what)
{
    const Study *s = what;
    const FigureColours *c = &s->theme.fig;
    const double w = width, h = height, font = figure_font_size(w), size = font * 0.45;
    cairo_t *cr = cairo_create(sf);
    figure_colour(cr, c->background);
    cairo_paint(cr);
    title(cr, s, c, font, w);
    Panel p = { cr, c, font * 6, 14 + font * 5, w - font * 2, h - font * 4, 0, 1, 0, 1, font };
    data_range(&p, s);
    panel_axes(&p, "forgetting (original-task accuracy lost)", "new-task accuracy", 0);
    /* what the names keep clear of (the line's label, the bars, the
     * markers), then the names: what the legend keeps clear of */
    Box *taken = s->room;
    int n = no_forgetting(&p, taken);
    if (bars_drawn(s))
        n += error_bars(&p, s, size, taken + n);
    pareto_front(&p, s);
    markers(&p, s, size, taken + n);
    n += s->n;
    labels(&p, s, size, taken, n, taken + n);
    legend(&p, s, taken, n + s->n);
    cairo_destroy(cr);
}

int tradeoff_plot(const char *study_json, const char *out, int width, int height,
                  const char *theme, MnError *e)
{
    Study s;
    if (figure_check_extension(out, e) < 0 || study_load(study_json, theme, &s, e) < 0)
        return -1;
    int rc = figure_write(out, width, height, study_paint, &s, e);
    study_free(&s);
    figure_release_caches();
    return rc;
}

int tradeoff_svg(const char *study_json, int width, int height, const char *theme,
                 char **svg, MnError *e)
{
    Study s;
    *svg = NULL;
    if (study_load(study_json, theme, &s, e) < 0)
        return -1;
    int rc = figure_write_svg(width, height, study_paint, &s, svg, e);
    study_free(&s);
    figure_release_caches();
    return rc;
}
