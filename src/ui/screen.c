#include "ui/screen.h"

#include "ui/branches.h"
#include "ui/command.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

Layout layout_for(int w, int h, int n_groups)
{
    Layout l;
    memset(&l, 0, sizeof l);
    if (w < SCREEN_MIN_W || h < SCREEN_MIN_H) {
        l.too_small = 1;
        return l;
    }
    int avail = h - 2;
    int log_h = avail / 5 > 4 ? avail / 5 : 4;
    int layers_max = avail / 3 > 4 ? avail / 3 : 4;
    int layers_h = n_groups + 2 < layers_max ? n_groups + 2 : layers_max;
    if (layers_h < 3)
        layers_h = 3;
    int plot_h = avail - log_h - layers_h;
    l.header = (Rect){ 0, 0, w, 1 };
    l.plot = (Rect){ 0, 1, w, plot_h };
    l.layers = (Rect){ 0, 1 + plot_h, w, layers_h };
    l.log = (Rect){ 0, 1 + plot_h + layers_h, w, log_h };
    l.footer = (Rect){ 0, h - 1, w, 1 };
    if (w >= SCREEN_WIDE_W) {
        /* the plot keeps the room it needs to read; the loss takes a third */
        int loss_w = w / 3;
        l.plot.w = w - loss_w;
        l.loss = (Rect){ l.plot.w, l.plot.y, loss_w, l.plot.h };
    } else if (w >= SCREEN_LOSS_W) {
        int loss_w = w * 2 / 5;
        l.layers.w = w - loss_w;
        l.loss = (Rect){ l.layers.w, l.layers.y, loss_w, l.layers.h };
    }
    return l;
}

/* ---- header and footer ---- */

static void fill_row(Canvas *c, Rect r, Element el)
{
    for (int x = r.x; x < r.x + r.w; x++)
        canvas_put(c, x, r.y, ' ', el);
}

/* Cells a UTF-8 string takes (every character here is one cell wide). */
static int text_width(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void draw_header(Canvas *c, Rect r, const Snapshot *s)
{
    char line[512], eta[32] = "";
    const char *sep = c->utf8 ? " \xc2\xb7 " : " | ";
    const char *mark = "";
    double epoch = s->steps_per_epoch > 0 ? (double)s->step / s->steps_per_epoch : 0;
    if (s->state == TS_RUNNING)
        mark = c->utf8 ? "\xe2\x96\xb6 " : "> ";
    else if (s->state == TS_PAUSED)
        mark = c->utf8 ? "\xe2\x8f\xb8 " : "|| ";
    if (s->state == TS_RUNNING && s->steps_per_s > 0 && s->total_steps > s->step) {
        long left = (long)((double)(s->total_steps - s->step) / s->steps_per_s);
        snprintf(eta, sizeof eta, "%sETA %ld:%02ld", sep, left / 60, left % 60);
    }
    /* the knobs a practitioner watches: the base rate, EWC's lambda, the
     * policy */
    char knobs[224];
    int k = snprintf(knobs, sizeof knobs, "%slr %.1e", sep, s->lr);
    if (s->has_ewc && k < (int)sizeof knobs)
        k += snprintf(knobs + k, sizeof knobs - (size_t)k, "%s%s %g", sep,
                      c->utf8 ? "\xce\xbb" : "lambda", s->ewc_lambda);
    if (s->policy[0] && k < (int)sizeof knobs)
        k += snprintf(knobs + k, sizeof knobs - (size_t)k, "%spolicy %.40s", sep, s->policy);
    if (s->precision[0] && k < (int)sizeof knobs)
        snprintf(knobs + k, sizeof knobs - (size_t)k, "%s%.40s", sep, s->precision);
    /* the less important parts go first when the line does not fit: the
     * ETA, the knobs, the program's name, the epoch */
    for (int drop = 0; drop < 5; drop++) {
        char ep[32] = "";
        if (drop < 4)
            snprintf(ep, sizeof ep, "%sepoch %.2f", sep, epoch);
        snprintf(line, sizeof line, "%s%s%s%s%s%s%s%sstep %ld/%ld%s%s%s%s%s%.1f steps/s%s%s",
                 drop < 3 ? " mneme" : "", drop < 3 ? sep : " ", s->experiment, sep,
                 s->branch[0] ? s->branch : "main", sep,
                 s->phase, sep, s->step, s->total_steps, ep, sep, mark,
                 trainer_state_name(s->state), sep, s->steps_per_s, drop < 2 ? knobs : "",
                 drop < 1 ? eta : "");
        if (text_width(line) <= r.w)
            break;
    }
    fill_row(c, r, EL_HEADER);
    canvas_text(c, r.x, r.y, r.w, line, s->state == TS_PAUSED ? EL_PAUSED : EL_HEADER);
}

static void draw_footer(Canvas *c, Rect r, const Snapshot *s, const ScreenOptions *o)
{
    char line[256];
    const char *sep = c->utf8 ? " \xc2\xb7 " : " | ";
    const int has_status = o->status && *o->status;
    const int n = has_status ? text_width(o->status) : 0;
    if (o->prompt) {
        fill_row(c, r, EL_NORMAL);
        canvas_put(c, r.x, r.y, ':', EL_NORMAL);
        canvas_text(c, r.x + 1, r.y, r.w - 1, o->prompt, EL_NORMAL);
        if (has_status) {
            int x = r.x + r.w - n - 1, min = r.x + 2 + text_width(o->prompt);
            canvas_text(c, x < min ? min : x, r.y, r.x + r.w - (x < min ? min : x), o->status,
                        EL_PAUSED);
        }
        return;
    }
    /* A message has the right of the row (all of it when long); the keys
     * get what is left, so the two are never drawn over each other. */
    fill_row(c, r, EL_FOOTER);
    int status_x = r.x + r.w - n - 1;
    if (status_x < r.x + 1)
        status_x = r.x + 1;
    int room_all = has_status ? status_x - r.x - 3 : r.w - 1;
    /* as many keys as fit, and always help and quit */
    const char *parts[] = {
        s->state == TS_PAUSED ? "space resume" : "space pause", "c checkpoint",
        ": command", "l loss", "e eval", "r reload",
    };
    char tail[64];
    if (o->view == VIEW_LOSS)
        parts[3] = "l accuracy";
    snprintf(tail, sizeof tail, "? help%sq quit", sep);
    if (text_width(tail) <= room_all) {
        int room = room_all - text_width(tail);
        size_t k = 0;
        line[0] = 0;
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            int need = text_width(parts[i]) + text_width(sep);
            if (text_width(line) + need > room)
                break;
            k += (size_t)snprintf(line + k, sizeof line - k, "%s%s", parts[i], sep);
        }
        snprintf(line + k, sizeof line - k, "%s", tail);
        canvas_text(c, r.x + 1, r.y, room_all, line, EL_FOOTER);
    }
    if (has_status)
        canvas_text(c, status_x, r.y, r.x + r.w - status_x, o->status, EL_PAUSED);
}

/* ---- the plot ---- */

static const char *plot_phase(const Snapshot *s)
{
    return strcmp(s->phase, "base") == 0 ? "base" : "finetune";
}

/* Series 0 original, 1 new, 2 training loss (loss view only). */
static double value_of(const EvalRecord *e, int task, PlotView v)
{
    if (task == 2)
        return e->train_loss;
    const TaskScore *t = task ? &e->new_task : &e->original;
    return v == VIEW_LOSS ? t->loss : t->acc;
}

static int has_task(const EvalRecord *e, int task, PlotView v)
{
    if (task == 2)
        return v == VIEW_LOSS && e->has_train_loss;
    return task ? e->has_new : e->has_original;
}

static void legend(Canvas *c, Rect r, PlotView v)
{
    const char *line = c->utf8 ? "\xe2\x94\x81\xe2\x94\x81" : "==";
    const char *dashed = c->utf8 ? "\xe2\x94\x85\xe2\x94\x85" : "--";
    const char *dots = c->utf8 ? "\xe2\x94\x84\xe2\x94\x84" : "..";
    /* " new ━━  original ┅┅  baseline ┄┄ " right-aligned in the top border;
     * the loss view has the training loss instead of the baseline */
    int width = 5 + 2 + 11 + 2 + (v == VIEW_LOSS ? 8 : 11) + 2 + 1;
    int x = r.x + r.w - width - 1;
    if (x < r.x + 14)
        return;
    x += canvas_text(c, x, r.y, -1, " new ", EL_NEW);
    x += canvas_text(c, x, r.y, -1, line, EL_NEW);
    x += canvas_text(c, x, r.y, -1, "  original ", EL_ORIGINAL);
    x += canvas_text(c, x, r.y, -1, dashed, EL_ORIGINAL);
    if (v == VIEW_LOSS) {
        x += canvas_text(c, x, r.y, -1, "  train ", EL_TRAIN);
        x += canvas_text(c, x, r.y, -1, line, EL_TRAIN);
    } else {
        x += canvas_text(c, x, r.y, -1, "  baseline ", EL_BASELINE);
        x += canvas_text(c, x, r.y, -1, dots, EL_BASELINE);
    }
    canvas_text(c, x, r.y, -1, " ", EL_BORDER);
}

static void draw_plot(Canvas *c, Rect r, const Snapshot *s, const ScreenOptions *o)
{
    const char *phase = plot_phase(s);
    const int label_w = 5;
    char title[64];
    const int zoomed = o->zoom > 0 && o->zoom < s->total_steps;
    snprintf(title, sizeof title, "%s%s", o->view == VIEW_LOSS ? "loss" : "accuracy",
             zoomed ? " (zoomed: + - 0)" : "");
    canvas_box(c, r, title, EL_BORDER);
    legend(c, r, o->view);
    int px = r.x + 1 + label_w, py = r.y + 1;
    int pw = r.w - 2 - label_w, ph = r.h - 3;   /* one row for step labels */
    if (pw < 4 || ph < 2)
        return;

    /* y: accuracy is always 0..1; loss spans what was seen */
    Axis ya = { 0, 1, 0.2 };
    int n = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < s->n_hist; i++) {
        const EvalRecord *e = &s->hist[i];
        if (strcmp(e->phase, phase) != 0)
            continue;
        n++;
        for (int k = 0; k < 3; k++)
            if (has_task(e, k, o->view)) {
                double v = value_of(e, k, o->view);
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
    }
    if (o->view == VIEW_LOSS)
        ya = n ? axis_nice(0, hi, ph > 8 ? 4 : 2) : axis_nice(0, 1, 2);
    else if (ph < 8)
        ya.step = 0.5;
    /* zoomed, the last o->zoom steps up to now: a crossover at step 42 of
     * 18,900 is otherwise lost in the first column */
    double x_hi = s->total_steps > 0 ? (double)s->total_steps : 1, x_lo = 0;
    if (zoomed) {
        x_hi = s->step > o->zoom ? (double)s->step : (double)o->zoom;
        x_lo = x_hi - (double)o->zoom;
    }
    Axis xa = axis_nice(x_lo, x_hi, pw / 14 > 1 ? pw / 14 : 1);
    if (!zoomed)
        xa.lo = 0;
    else {
        xa.lo = x_lo;
        xa.hi = x_hi;
    }

    axes_labels(c, (Rect){ px, py, pw, ph }, label_w, &xa, &ya);

    if (n == 0) {
        const char *wait = "waiting for the first evaluation";
        int len = (int)strlen(wait);
        canvas_text(c, px + (pw - len) / 2, py + ph / 2, pw, wait, EL_AXIS);
        return;
    }

    Raster ras;
    if (raster_init(&ras, pw, ph) < 0)
        return;
    int dw = 2 * pw, dh = 4 * ph;
    const EvalRecord *base = NULL, *cross = NULL;
    long cross_step = -1;
    for (int i = 0; i < s->n_hist; i++) {
        const EvalRecord *e = &s->hist[i];
        if (strcmp(e->phase, phase) != 0)
            continue;
        if (!base && strcmp(phase, "finetune") == 0 && e->has_original)
            base = e;
        if (e->crossover_step >= 0)
            cross_step = e->crossover_step;
    }
    for (int i = 0; cross_step >= 0 && i < s->n_hist; i++)
        if (strcmp(s->hist[i].phase, phase) == 0 && s->hist[i].step == cross_step)
            cross = &s->hist[i];

    /* the baseline first, so the curves draw over it */
    if (base && o->view == VIEW_ACCURACY) {
        int y = dh - 1 - axis_pixel(&ya, value_of(base, 0, o->view), dh);
        for (int x = 0; x < dw; x += 3)
            raster_dot(&ras, x, y, EL_BASELINE);
    }
    for (int k = 2; k >= 0; k--) {
        int have = 0;
        Pen pen = { 0, 0, 0 };
        double smooth = 0;
        Element el = k == 2 ? EL_TRAIN : k ? EL_NEW : EL_ORIGINAL;
        for (int i = 0; i < s->n_hist; i++) {
            const EvalRecord *e = &s->hist[i];
            if (strcmp(e->phase, phase) != 0 || !has_task(e, k, o->view) ||
                (zoomed && e->step < xa.lo))
                continue;
            double v = value_of(e, k, o->view);
            /* the training loss is noisy: an exponential moving average */
            smooth = have && k == 2 ? 0.7 * smooth + 0.3 * v : v;
            int x = axis_pixel(&xa, (double)e->step, dw);
            /* the original task dotted: told from the new one by its glyph
             * too, on a mono theme or a terminal of few colours */
            pen_to(&ras, &pen, x, dh - 1 - axis_pixel(&ya, smooth, dh), k == 0 ? 2 : 1, el);
            have = 1;
        }
    }
    raster_blit(&ras, c, px, py);
    raster_free(&ras);

    if (cross && (!zoomed || cross->step >= xa.lo)) {
        char lab[160];
        int col = px + axis_pixel(&xa, (double)cross->step, pw);
        int row = py + ph - 1 - axis_pixel(&ya, value_of(cross, 1, o->view), ph);
        canvas_put(c, col, row, c->utf8 ? 0x2715 : 'X', EL_CROSSOVER);
        snprintf(lab, sizeof lab, "%s crossover @%ld (new %.2f, original %.2f)",
                 c->utf8 ? "\xe2\x9c\x95" : "X", cross->step,
                 cross->new_task.acc, cross->original.acc);
        canvas_text(c, r.x + 2, r.y + r.h - 1, r.w - 4, lab, EL_CROSSOVER);
    }
}

/* ---- layers ---- */

/* A row of the panel: groups [first, last], one group or a range of
 * blocks shown together. */
typedef struct {
    int first, last;
} LayerRow;

/* The block number of "layer.<n>..." and what follows it ("", ".lora");
 * -1 for any other group. */
static int block_of(const char *name, const char **suffix)
{
    int n, used = 0;
    if (sscanf(name, "layer.%d%n", &n, &used) != 1 || used == 0)
        return -1;
    *suffix = name + used;
    return n;
}

/* Whether group b may join a row ending with group a: the next block of
 * the same kind. */
static int adjacent_blocks(const Snapshot *s, int a, int b)
{
    const char *sa, *sb;
    int na = block_of(s->groups[a].name, &sa), nb = block_of(s->groups[b].name, &sb);
    return na >= 0 && nb == na + 1 && strcmp(sa, sb) == 0;
}

static int same_state(const SnapGroup *a, const SnapGroup *b)
{
    return a->trainable == b->trainable && (!a->trainable || a->lr == b->lr);
}

/* Whether two neighbouring rows may share one: blocks in sequence, or
 * the embeddings and the blocks from layer.0 on. */
static int joinable(const Snapshot *s, const LayerRow *a, const LayerRow *b)
{
    const char *suffix;
    if (adjacent_blocks(s, a->last, b->first))
        return 1;
    return a->first == a->last && strcmp(s->groups[a->first].name, "embeddings") == 0 &&
           block_of(s->groups[b->first].name, &suffix) == 0 && suffix[0] == 0;
}

/* How alike the groups of rows a..b must be to share a row: 0 the same
 * state, 1 all frozen or all training (rates may differ), 2 anything. */
static int alike(const Snapshot *s, const LayerRow *a, const LayerRow *b, int level)
{
    for (int g = a->first; g <= b->last; g++) {
        const SnapGroup *x = &s->groups[a->first], *y = &s->groups[g];
        if ((level == 0 && !same_state(x, y)) || (level == 1 && x->trainable != y->trainable))
            return 0;
    }
    return 1;
}

/* Rows for the panel: blocks in the same state (frozen, or training at
 * the same rate) share a row; when a deep model (12, 24 layers) still
 * does not fit, the embeddings join the blocks above them and neighbouring
 * rows are joined, smallest pairs first, so every block stays on screen:
 * rows in the same state first, then rows training at different rates,
 * and only then frozen with training ones (the row says how many of its
 * groups are frozen). Returns the row count (it may exceed max when what
 * is left are not blocks). */
static int plan_rows(const Snapshot *s, LayerRow *rows, int max)
{
    int n = 0;
    for (int g = 0; g < s->n_groups; g++) {
        if (n > 0 && adjacent_blocks(s, rows[n - 1].last, g) &&
            same_state(&s->groups[rows[n - 1].last], &s->groups[g])) {
            rows[n - 1].last = g;
            continue;
        }
        rows[n++] = (LayerRow){ g, g };
    }
    for (int level = 0; level < 3; level++)
        while (n > max) {
            int best = -1, best_size = 0;
            for (int i = 0; i + 1 < n; i++)
                if (joinable(s, &rows[i], &rows[i + 1]) &&
                    alike(s, &rows[i], &rows[i + 1], level)) {
                    int size = rows[i + 1].last - rows[i].first;
                    if (best < 0 || size < best_size) {
                        best = i;
                        best_size = size;
                    }
                }
            if (best < 0)
                break;
            rows[best].last = rows[best + 1].last;
            memmove(&rows[best + 1], &rows[best + 2], (size_t)(n - best - 2) * sizeof *rows);
            n--;
        }
    return n;
}

static void row_name(const Snapshot *s, const LayerRow *row, char *out, size_t n)
{
    const char *suffix = "";
    if (row->first == row->last) {
        snprintf(out, n, "%s", s->groups[row->first].name);
        return;
    }
    int emb = strcmp(s->groups[row->first].name, "embeddings") == 0;
    int a = emb ? 0 : block_of(s->groups[row->first].name, &suffix);
    int b = block_of(s->groups[row->last].name, &suffix);
    if (a == b)
        snprintf(out, n, "%slayer.%d%s", emb ? "emb+" : "", b, suffix);
    else
        snprintf(out, n, "%slayer.%d-%d%s", emb ? "emb+" : "", a, b, suffix);
}

/* Each row: name, a bar of its rate against the highest, the rate, and
 * (when there is room and it is known) its drift since the base. A range
 * of blocks shows its highest rate (after "≤" when its rates differ) and
 * drift, and how many of its groups are frozen when some but not all
 * are. */
/* The rows of the per-layer panel r: plan gets all *n_rows of them;
 * returns how many are drawn, the rest summed up on a last "... N more"
 * row. The drawing and the mouse both ask here. */
static int layer_rows(const Snapshot *s, Rect r, LayerRow *plan, int *n_rows)
{
    int rows = r.h - 2;
    *n_rows = plan_rows(s, plan, rows > 0 ? rows : 1);
    return *n_rows <= rows ? *n_rows : rows - 1;
}

static void draw_layers(Canvas *c, Rect r, const Snapshot *s)
{
    canvas_box(c, r, "learning rate per layer", EL_BORDER);
    int name_w = 8, num_w = 9, drift_w = 0;
    int known = 0;
    double max = 0;
    LayerRow plan[SNAP_GROUPS];
    int n_rows, shown = layer_rows(s, r, plan, &n_rows);
    for (int i = 0; i < n_rows; i++) {
        char name[64];
        row_name(s, &plan[i], name, sizeof name);
        int len = text_width(name);
        name_w = len > name_w ? len : name_w;
    }
    for (int g = 0; g < s->n_groups; g++) {
        known |= s->groups[g].drift >= 0;
        if (s->groups[g].trainable && s->groups[g].lr > max)
            max = s->groups[g].lr;
    }
    if (name_w > 20)
        name_w = 20;
    /* the drift column only when the bar keeps at least 8 cells */
    int inner = r.w - 2 - 1 - name_w - 1 - num_w - 1;
    if (known && inner - 8 >= 8)
        drift_w = 8;
    int bar_w = inner - (drift_w ? drift_w + 1 : 0);
    if (bar_w > 40)
        bar_w = 40;
    int drift_x = r.x + 2 + name_w + 1 + bar_w + 1 + num_w + 1;
    if (drift_w)
        canvas_text(c, drift_x, r.y, -1, " drift ", EL_TITLE);
    for (int i = 0; i < shown; i++) {
        const LayerRow *row = &plan[i];
        int y = r.y + 1 + i, x = r.x + 2, trainable = 0, frozen = 0, mixed_lr = 0;
        double lr = 0, drift = -1;
        for (int g = row->first; g <= row->last; g++) {
            const SnapGroup *sg = &s->groups[g];
            if (sg->trainable) {
                mixed_lr |= trainable && sg->lr != lr;
                if (!trainable || sg->lr > lr)
                    lr = sg->lr;
            }
            trainable += sg->trainable;
            frozen += !sg->trainable;
            if (sg->drift > drift)
                drift = sg->drift;
        }
        char name[64];
        row_name(s, row, name, sizeof name);
        canvas_text(c, x, y, name_w, name, EL_NORMAL);
        x += name_w + 1;
        if (drift_w && drift >= 0) {
            char num[32];
            /* seven characters whatever the size: the column is eight wide */
            if (drift < 10.0)
                snprintf(num, sizeof num, "%.4f", drift);
            else if (drift < 1e4)
                snprintf(num, sizeof num, "%.1f", drift);
            else
                snprintf(num, sizeof num, "%.1e", drift);
            canvas_text(c, drift_x, y, drift_w, num, EL_NORMAL);
        }
        if (!trainable) {
            canvas_put(c, x, y, c->utf8 ? 0x2591 : '-', EL_FROZEN);
            canvas_text(c, x + 2, y, bar_w + num_w - 1, "frozen", EL_FROZEN);
            continue;
        }
        int len = max > 0 ? (int)lround(lr / max * bar_w) : 0;
        if (len < 1 && lr > 0)
            len = 1;
        for (int k = 0; k < len; k++)
            canvas_put(c, x + k, y, c->utf8 ? 0x2587 : '#', EL_BAR);
        if (frozen) {
            /* over the bar's end, so a partly frozen range never reads as training */
            char note[32];
            snprintf(note, sizeof note, " %d/%d frozen", frozen, frozen + trainable);
            int w = text_width(note);
            if (w > bar_w)
                snprintf(note, sizeof note, "%d/%d", frozen, frozen + trainable), w = text_width(note);
            if (w <= bar_w)
                canvas_text(c, x + bar_w - w, y, w, note, EL_FROZEN);
        }
        char num[32];
        snprintf(num, sizeof num, "%s%.1e", !mixed_lr ? "" : c->utf8 ? "\u2264" : "<=", lr);
        canvas_text(c, x + bar_w + 1, y, num_w, num, EL_NORMAL);
    }
    if (shown < n_rows) {
        char more[48];
        int left = 0;
        for (int i = shown; i < n_rows; i++)
            left += plan[i].last - plan[i].first + 1;
        snprintf(more, sizeof more, "... %d more", left);
        canvas_text(c, r.x + 2, r.y + 1 + shown, r.w - 4, more, EL_AXIS);
    }
}

/* ---- loss ---- */

/* The training loss of this phase (the mean since each evaluation),
 * smoothed, against step; the latest value in the title. */
static void draw_loss(Canvas *c, Rect r, const Snapshot *s)
{
    const char *phase = plot_phase(s);
    const int label_w = 5;
    double hi = -INFINITY, smooth = 0, last = NAN;
    int n = 0;
    for (int i = 0; i < s->n_hist; i++) {
        const EvalRecord *e = &s->hist[i];
        if (strcmp(e->phase, phase) != 0 || !e->has_train_loss)
            continue;
        smooth = n ? 0.7 * smooth + 0.3 * e->train_loss : e->train_loss;
        hi = smooth > hi ? smooth : hi;
        last = smooth;
        n++;
    }
    char title[64];
    if (n)
        snprintf(title, sizeof title, "training loss %.3f", last);
    else
        snprintf(title, sizeof title, "training loss");
    canvas_box(c, r, title, EL_BORDER);
    int px = r.x + 1 + label_w, py = r.y + 1, pw = r.w - 2 - label_w, ph = r.h - 2;
    if (pw < 4 || ph < 2)
        return;
    if (n == 0) {
        canvas_text(c, px, py + ph / 2, pw, "no training loss yet", EL_AXIS);
        return;
    }
    Axis ya = axis_nice(0, hi, ph > 6 ? 4 : 1);
    Axis xa = { 0, s->total_steps > 0 ? (double)s->total_steps : 1, 1 };
    char lab[16];
    snprintf(lab, sizeof lab, "%4.*f", ya.hi < 10 ? 1 : 0, ya.hi);
    canvas_text(c, r.x + 1, py, label_w - 1, lab, EL_AXIS);
    snprintf(lab, sizeof lab, "%4.*f", ya.hi < 10 ? 1 : 0, ya.lo);
    canvas_text(c, r.x + 1, py + ph - 1, label_w - 1, lab, EL_AXIS);
    Raster ras;
    if (raster_init(&ras, pw, ph) < 0)
        return;
    int dw = 2 * pw, dh = 4 * ph, have = 0;
    Pen pen = { 0, 0, 0 };
    smooth = 0;
    for (int i = 0; i < s->n_hist; i++) {
        const EvalRecord *e = &s->hist[i];
        if (strcmp(e->phase, phase) != 0 || !e->has_train_loss)
            continue;
        smooth = have ? 0.7 * smooth + 0.3 * e->train_loss : e->train_loss;
        int x = axis_pixel(&xa, (double)e->step, dw);
        pen_to(&ras, &pen, x, dh - 1 - axis_pixel(&ya, smooth, dh), 1, EL_TRAIN);
        have = 1;
    }
    raster_blit(&ras, c, px, py);
    raster_free(&ras);
}

/* ---- log ---- */

int screen_log_rows(int w, int h, int n_groups)
{
    Layout l = layout_for(w, h, n_groups);
    return l.too_small || l.log.h < 2 ? 0 : l.log.h - 2;
}

int screen_log_clamp(int scroll, int n_log, int rows)
{
    int max = n_log > rows ? n_log - rows : 0;
    return scroll < 0 ? 0 : scroll > max ? max : scroll;
}

/* The byte after the first n cells of s. */
static const char *skip_cells(const char *s, int n)
{
    for (; *s && n > 0; n--)
        do
            s++;
        while (((unsigned char)*s & 0xC0) == 0x80);
    return s;
}

/* One row's worth of p at room cells: up to the last blank that fits (a
 * word is only split when it is longer than half the row). Sets *cells. */
static const char *wrap_next(const char *p, int room, int *cells)
{
    const char *end = skip_cells(p, room);
    if (*end && *end != ' ') {
        const char *b = end;
        while (b > p && b[-1] != ' ')
            b--;
        if (b > p && text_width(p) - text_width(b) <= room / 2)
            end = b;
    }
    char seg[SNAP_LINE];
    snprintf(seg, sizeof seg, "%.*s", (int)(end - p), p);
    *cells = text_width(seg);
    return end;
}

/* Rows a log line takes at width w: it wraps, the rows after the first
 * indented past its time stamp. */
#define LOG_INDENT 9
static int log_line_rows(const char *line, int w)
{
    int rows = 0, cells;
    for (const char *p = line; *p; rows++) {
        p = wrap_next(p, rows ? w - LOG_INDENT : w, &cells);
        while (*p == ' ')
            p++;
        if (w - LOG_INDENT < 4)
            return 1;
    }
    return rows ? rows : 1;
}

static void draw_log(Canvas *c, Rect r, const Snapshot *s, int scroll)
{
    int rows = r.h - 2, w = r.w - 4;
    char title[96];
    scroll = screen_log_clamp(scroll, s->n_log, rows);
    if (scroll > 0)
        snprintf(title, sizeof title, "log: %d lines back (PgUp/PgDn, End follows)", scroll);
    else
        snprintf(title, sizeof title, "log");
    canvas_box(c, r, title, EL_BORDER);
    /* the newest lines that fit, each whole when it can be: a long line
     * wraps instead of being cut at the border */
    int last = s->n_log - scroll, first = last, used = 0;
    while (first > 0 && used + log_line_rows(s->log[first - 1], w) <= rows)
        used += log_line_rows(s->log[--first], w);
    if (first == last && last > 0)
        first = last - 1;          /* one line taller than the panel: its start */
    int y = r.y + 1;
    for (int i = first; i < last && y < r.y + 1 + rows; i++) {
        const char *line = s->log[i];
        Element el = EL_LOG;
        if (strstr(line, "error"))
            el = EL_ERROR;
        else if (strstr(line, "warning") || strstr(line, "paused"))
            el = EL_WARN;
        const char *p = line;
        int x = r.x + 2, room = w, cells;
        while (*p && y < r.y + 1 + rows) {
            const char *next = wrap_next(p, room, &cells);
            canvas_text(c, x, y++, cells, p, el);
            p = next;
            while (*p == ' ')
                p++;
            x = r.x + 2 + LOG_INDENT;
            room = w - LOG_INDENT;
            if (room < 4)
                break;
        }
        if (!*line)
            y++;
    }
}

/* ---- the log page (L) ---- */

static int is_error_line(const char *line)
{
    return strstr(line, "error") != NULL || strstr(line, "refused") != NULL ||
           strstr(line, "diverged") != NULL || strstr(line, "failed") != NULL;
}

int screen_log_page_lines(const Snapshot *s, int errors_only)
{
    int n = 0;
    for (int i = 0; i < s->n_log; i++)
        n += !errors_only || is_error_line(s->log[i]);
    return n;
}

/* Every line kept, whole: it scrolls both ways, and can show the errors
 * alone. */
static void draw_log_page(Canvas *c, Rect r, const Snapshot *s, const ScreenOptions *o)
{
    int rows = r.h - 2, w = r.w - 4;
    int n = screen_log_page_lines(s, o->log_page_errors);
    int back = o->log_page_scroll;
    if (back > n - rows)
        back = n - rows;
    if (back < 0)
        back = 0;
    for (int y = r.y; y < r.y + r.h; y++)
        fill_row(c, (Rect){ r.x, y, r.w, 1 }, EL_NORMAL);
    char title[200];
    snprintf(title, sizeof title, "log%s: %d line%s%s, %s scroll, e %s, L or Esc closes",
             o->log_page_errors ? " (errors)" : "", n, n == 1 ? "" : "s",
             back ? " (scrolled back)" : "",
             c->utf8 ? "\xe2\x86\x91\xe2\x86\x93\xe2\x86\x90\xe2\x86\x92" : "arrows",
             o->log_page_errors ? "all lines" : "errors only");
    canvas_box(c, r, title, EL_BORDER);
    int last = n - back, first = last > rows ? last - rows : 0;
    int k = 0, y = r.y + 1;
    for (int i = 0; i < s->n_log && y < r.y + 1 + rows; i++) {
        const char *line = s->log[i];
        if (o->log_page_errors && !is_error_line(line))
            continue;
        if (k++ < first)
            continue;
        Element el = strstr(line, "error") ? EL_ERROR :
                     strstr(line, "warning") || strstr(line, "paused") ? EL_WARN : EL_LOG;
        canvas_text(c, r.x + 2, y++, w, skip_cells(line, o->log_page_x), el);
    }
}

/* ---- help ---- */

static const struct {
    const char *key, *help;
} keys[] = {
    { "space", "pause or resume training" },
    { "c", "write a checkpoint now" },
    { "e", "evaluate both tasks now" },
    { "r", "reload the policy file" },
    { "l", "toggle the loss and accuracy views" },
    { "v", "compare every branch's curves and figures" },
    { "f", "fork the run here (name and KEY=VALUE overrides)" },
    { "Tab", "follow and steer the next branch" },
    { ":", "type a command (tab completes, up/down: history)" },
    { "?", "this help" },
    { "PgUp/PgDn", "scroll the log (End: follow it again)" },
    { "L", "the log as a page: every line whole, scrolls both ways, e shows errors only" },
    { "+ - 0", "zoom the plot in on the latest steps, out, back to the whole phase" },
    { "d", "detach: leave the run training in the background (mneme attach comes back)" },
    { "q", "checkpoint and quit (asks: y / n; d leaves it training)" },
    { "mouse", "where the terminal reports it: a click on a branch follows it; on a layer, "
               "types :freeze or :unfreeze of it (Enter applies, Esc cancels); the wheel "
               "scrolls the log and these pages; shift-drag still selects text" },
};

/* One row of the help page: a key or a command's usage (titled), then
 * what it does at column at. */
typedef struct {
    char key[64];
    char text[256];
    int at;
} HelpRow;

#define HELP_ROWS 128

/* The help page laid out for an inner width w: a usage too long for its
 * column gets a row of its own, and text wraps at word boundaries. */
static int help_rows(int w, HelpRow *rows)
{
    int n = 0;
    const int n_keys = (int)(sizeof keys / sizeof keys[0]);
    for (int i = 0; i < n_keys + 1 + command_count && n < HELP_ROWS - 8; i++) {
        char key[64];
        const char *text;
        int col;
        if (i < n_keys) {
            snprintf(key, sizeof key, "%s", keys[i].key);
            text = keys[i].help;
            col = 12;
        } else if (i == n_keys) {
            rows[n].key[0] = rows[n].text[0] = 0;
            rows[n++].at = 0;
            continue;
        } else {
            const CommandInfo *ci = &command_table[i - n_keys - 1];
            snprintf(key, sizeof key, ":%s%s%s", ci->name, ci->args[0] ? " " : "", ci->args);
            text = ci->help;
            col = 25;
        }
        if (col > w / 2)
            col = 4;
        int own_row = text_width(key) + 1 > col;
        snprintf(rows[n].key, sizeof rows[n].key, "%s", key);
        rows[n].text[0] = 0;
        rows[n].at = col;
        if (own_row)
            n++;
        /* the text, wrapped to w - col */
        int room = w - col;
        if (room < 8)
            room = 8;
        const char *p = text;
        int first = !own_row;
        while (*p && n < HELP_ROWS) {
            int len = (int)strlen(p);
            int take = len;
            if (take > room) {
                take = room;
                while (take > 0 && p[take] != ' ')
                    take--;
                if (take == 0)
                    take = room;
            }
            if (!first) {
                rows[n].key[0] = 0;
                rows[n].at = col;
            }
            snprintf(rows[n].text, sizeof rows[n].text, "%.*s", take, p);
            n++;
            first = 0;
            p += take;
            while (*p == ' ')
                p++;
        }
    }
    return n;
}

static Rect help_rect(Rect area)
{
    return area;
}

int screen_help_scroll_max(int w, int h)
{
    HelpRow rows[HELP_ROWS];
    Rect r = help_rect((Rect){ 0, 1, w, h - 2 });
    int n = help_rows(r.w - 4, rows);
    int shown = r.h - 2;
    return n > shown ? n - shown : 0;
}

/* A page of its own over everything but the header and footer: it scrolls,
 * and its border says how to move and close it. */
static void draw_help(Canvas *c, Rect area, int scroll)
{
    HelpRow rows[HELP_ROWS];
    Rect r = help_rect(area);
    int n = help_rows(r.w - 4, rows), shown = r.h - 2;
    if (scroll > n - shown)
        scroll = n - shown;
    if (scroll < 0)
        scroll = 0;
    for (int y = r.y; y < r.y + r.h; y++)
        for (int x = r.x; x < r.x + r.w; x++)
            canvas_put(c, x, y, ' ', EL_NORMAL);
    char title[128];
    const char *more = scroll + shown < n ? (scroll > 0 ? " (more above and below)" : " (more below)")
                                          : scroll > 0 ? " (more above)" : "";
    snprintf(title, sizeof title, "help%s: %s scroll, ? or Esc closes", more,
             c->utf8 ? "\xe2\x86\x91\xe2\x86\x93 PgUp PgDn" : "up/down PgUp PgDn");
    canvas_box(c, r, title, EL_BORDER);
    for (int i = 0; i < shown && scroll + i < n; i++) {
        const HelpRow *h = &rows[scroll + i];
        int y = r.y + 1 + i;
        canvas_text(c, r.x + 2, y, r.w - 4, h->key, EL_TITLE);
        if (h->text[0])
            canvas_text(c, r.x + 2 + h->at, y, r.w - 4 - h->at, h->text, EL_NORMAL);
    }
}

/* Room for the branch list when there is more than one branch: half the
 * log's width when wide, else rows taken from the plot, which keeps at
 * least 8. Moves the panels it takes from; returns a zero rect when none. */
static Rect branch_room(Layout *l, int n_branches)
{
    Rect br = { 0, 0, 0, 0 };
    if (n_branches < 2)
        return br;
    if (l->log.w >= 120) {
        br = l->log;
        br.w = l->log.w / 2;
        br.x = l->log.x + l->log.w - br.w;
        l->log.w -= br.w;
        return br;
    }
    int rows = n_branches + 2;
    if (l->plot.h - rows < 8)
        rows = l->plot.h - 8;
    if (rows < 3)
        return br;
    l->plot.h -= rows;
    if (l->loss.w > 0 && l->loss.y == l->plot.y)
        l->loss.h -= rows;          /* beside the plot */
    else if (l->loss.w > 0)
        l->loss.y -= rows;          /* beside the layers */
    l->layers.y -= rows;
    br = (Rect){ 0, l->layers.y + l->layers.h, l->log.x + l->log.w, rows };
    return br;
}

/* Where everything goes for a snapshot and the options: the layout, and
 * what the branches, the compare view and a page take from it. One place,
 * so that what is drawn and what a click hits never disagree. */
typedef struct {
    Layout l;
    Rect branches;             /* the branch list; w 0: none */
    Rect compare;              /* the compare view; w 0: not comparing */
    int layers;                /* whether the per-layer panel is drawn */
    Rect page;                 /* the help or log page; w 0: none open */
} Panels;

static Panels panels_for(int w, int h, const Snapshot *s, const ScreenOptions *o)
{
    Panels p;
    memset(&p, 0, sizeof p);
    p.l = layout_for(w, h, s->n_groups);
    if (p.l.too_small)
        return p;
    p.branches = branch_room(&p.l, s->n_branches);
    p.layers = 1;
    if (o->view == VIEW_COMPARE) {
        /* comparing, the per-layer panel below gives its rows to the
         * curves and the table: at 80x24 they would not fit otherwise */
        p.compare = p.l.plot;
        if (p.l.layers.x == p.l.plot.x && p.l.layers.w == p.l.plot.w &&
            p.l.layers.y == p.l.plot.y + p.l.plot.h) {
            p.compare.h += p.l.layers.h;
            p.layers = 0;
        }
    }
    if (o->help || o->log_page)
        p.page = (Rect){ 0, 1, w, h - 2 };
    return p;
}

static int inside(Rect r, int x, int y)
{
    return x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h;
}

/* The row of the per-layer panel r at (x, y), or a miss. */
static ScreenHit layer_hit(const Snapshot *s, Rect r, int x, int y)
{
    ScreenHit hit = { HIT_NONE, -1, -1 };
    LayerRow plan[SNAP_GROUPS];
    int n_rows, shown = layer_rows(s, r, plan, &n_rows), i = y - r.y - 1;
    if (x <= r.x || x >= r.x + r.w - 1 || i < 0 || i >= shown)
        return hit;
    return (ScreenHit){ HIT_LAYER, plan[i].first, plan[i].last };
}

ScreenHit screen_hit(int w, int h, const Snapshot *s, const ScreenOptions *o, int x, int y)
{
    ScreenHit none = { HIT_NONE, -1, -1 };
    Panels p = panels_for(w, h, s, o);
    int i;
    if (p.l.too_small || x < 0 || y < 0 || x >= w || y >= h)
        return none;
    if (p.page.w > 0 && inside(p.page, x, y))
        return (ScreenHit){ HIT_PAGE, -1, -1 };
    if (p.branches.w > 0 && (i = branch_list_at(p.branches, s, x, y)) >= 0)
        return (ScreenHit){ HIT_BRANCH, i, i };
    if (p.compare.w > 0 && (i = compare_branch_at(p.compare, s, x, y)) >= 0)
        return (ScreenHit){ HIT_BRANCH, i, i };
    if (p.layers && inside(p.l.layers, x, y))
        return layer_hit(s, p.l.layers, x, y);
    if (inside(p.l.log, x, y))
        return (ScreenHit){ HIT_LOG, -1, -1 };
    return none;
}

/* The part list freeze takes for groups first..last, as the row names
 * them; -1 for groups it has no name for (a head, adapters, prompts). */
static int row_parts(const Snapshot *s, const LayerRow *row, char *out, size_t n)
{
    const char *first = s->groups[row->first].name, *suffix = "";
    int b = block_of(s->groups[row->last].name, &suffix);
    if (row->first == row->last &&
        (strcmp(first, "embeddings") == 0 || strcmp(first, "pooler") == 0)) {
        snprintf(out, n, "%s", first);
        return 0;
    }
    if (b < 0 || suffix[0])
        return -1;
    int emb = strcmp(first, "embeddings") == 0;
    int a = emb ? 0 : block_of(first, &suffix);
    if (a == b)
        snprintf(out, n, "%slayer.%d", emb ? "embeddings " : "", b);
    else
        snprintf(out, n, "%slayer.%d-%d", emb ? "embeddings " : "", a, b);
    return 0;
}

int screen_layer_command(const Snapshot *s, ScreenHit hit, char *line, size_t n, char *why,
                         size_t why_n)
{
    char parts[96], name[64];
    LayerRow row = { hit.index, hit.last };
    if (hit.kind != HIT_LAYER || hit.index < 0 || hit.last < hit.index ||
        hit.last >= s->n_groups) {
        snprintf(why, why_n, "not a row of the per-layer panel");
        return -1;
    }
    row_name(s, &row, name, sizeof name);
    if (row_parts(s, &row, parts, sizeof parts) < 0) {
        snprintf(why, why_n, "%s: freeze takes embeddings, layer.N or pooler", name);
        return -1;
    }
    /* a row is drawn frozen when none of its groups trains: offer what
     * would change what the row shows */
    int trainable = 0;
    for (int g = row.first; g <= row.last; g++)
        trainable |= s->groups[g].trainable;
    snprintf(line, n, "%s %s", trainable ? "freeze" : "unfreeze", parts);
    return 0;
}

void screen_draw(Canvas *c, const Snapshot *s, const ScreenOptions *o)
{
    Panels p = panels_for(c->w, c->h, s, o);
    Layout l = p.l;
    canvas_clear(c);
    if (l.too_small) {
        char msg[96];
        snprintf(msg, sizeof msg, "terminal too small (%dx%d, need %dx%d)",
                 c->w, c->h, SCREEN_MIN_W, SCREEN_MIN_H);
        int len = (int)strlen(msg), x = (c->w - len) / 2;
        canvas_text(c, x > 0 ? x : 0, c->h / 2, c->w, msg, EL_WARN);
        return;
    }
    if (p.branches.w > 0)
        branch_list_draw(c, p.branches, s);
    draw_header(c, l.header, s);
    if (p.compare.w > 0)
        compare_draw(c, p.compare, s);
    else
        draw_plot(c, l.plot, s, o);
    if (p.layers)
        draw_layers(c, l.layers, s);
    if (l.loss.w > 0)
        draw_loss(c, l.loss, s);
    draw_log(c, l.log, s, o->log_scroll);
    draw_footer(c, l.footer, s, o);
    if (o->log_page)
        draw_log_page(c, p.page, s, o);
    if (o->help)
        draw_help(c, p.page, o->help_scroll);
}
