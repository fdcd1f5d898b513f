#include "ui/branches.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void branch_figures(const SnapBranch *b, BranchFigures *f)
{
    const EvalRecord *base = NULL, *last = NULL;
    memset(f, 0, sizeof *f);
    f->crossover = -1;
    for (int i = 0; i < b->n_hist; i++) {
        const EvalRecord *e = &b->hist[i];
        if (strcmp(e->phase, "finetune") != 0 || !e->has_original || !e->has_new)
            continue;
        if (!base)
            base = e;
        last = e;
    }
    if (!base)
        return;
    f->has = 1;
    f->step = last->step;
    f->new_acc = last->new_task.acc;
    f->original_acc = last->original.acc;
    f->forgetting = base->original.acc - last->original.acc;
    f->combined = last->new_task.loss + b->original_weight * last->original.loss;
    f->crossover = last->crossover_step;
}

int branch_best(const Snapshot *s)
{
    int best = -1;
    double v = INFINITY;
    for (int i = 0; i < s->n_branches; i++) {
        BranchFigures f;
        branch_figures(&s->branches[i], &f);
        if (f.has && f.step > 0 && f.combined < v) {
            v = f.combined;
            best = i;
        }
    }
    return best;
}

Element branch_element(int i)
{
    return (Element)(EL_BRANCH0 + i % 6);
}

static const char *state_word(TrainerState s)
{
    return trainer_state_name(s);
}

/* Branches the list in r has rows for: the drawing and the mouse agree. */
static int list_rows(Rect r, const Snapshot *s)
{
    return s->n_branches < r.h - 2 ? s->n_branches : r.h - 2;
}

/* The branch whose row of a box or table holds (x, y): rows start at
 * first_y, inside columns x0 to x1 (excluded), n rows. */
static int row_at(int x, int y, int x0, int x1, int first_y, int n)
{
    if (x < x0 || x >= x1 || y < first_y || y >= first_y + n)
        return -1;
    return y - first_y;
}

int branch_list_at(Rect r, const Snapshot *s, int x, int y)
{
    return row_at(x, y, r.x + 1, r.x + r.w - 1, r.y + 1, list_rows(r, s));
}

void branch_list_draw(Canvas *c, Rect r, const Snapshot *s)
{
    canvas_box(c, r, "branches (Tab: follow the next, v: compare)", EL_BORDER);
    for (int i = 0; i < list_rows(r, s); i++) {
        const SnapBranch *b = &s->branches[i];
        BranchFigures f;
        char line[256], from[80] = "";
        branch_figures(b, &f);
        if (b->fork_step >= 0)
            snprintf(from, sizeof from, "%s@%ld", b->parent, b->fork_step);
        int n = snprintf(line, sizeof line, "%-16.16s %-12.12s %-8s %5ld/%-5ld", b->name, from,
                         state_word(b->state), b->step, b->total_steps);
        if (f.has && n > 0)
            snprintf(line + n, sizeof line - (size_t)n, "  new %.3f  original %.3f", f.new_acc,
                     f.original_acc);
        /* narrow: shorter columns rather than figures cut at the edge */
        if ((int)strlen(line) > r.w - 5) {
            n = snprintf(line, sizeof line, "%-10.10s %-9.9s %-8s %ld", b->name, from,
                         state_word(b->state), b->step);
            if (f.has && n > 0)
                snprintf(line + n, sizeof line - (size_t)n, " new %.3f orig %.3f", f.new_acc,
                         f.original_acc);
        }
        int y = r.y + 1 + i;
        Element el = b->state == TS_ERROR ? EL_ERROR : b->state == TS_PAUSED ? EL_WARN : EL_NORMAL;
        if (i == s->followed)
            canvas_put(c, r.x + 1, y, c->utf8 ? 0x25B6 : '>', EL_TITLE);
        canvas_put(c, r.x + 2, y, c->utf8 ? 0x25A0 : '#', branch_element(i));
        canvas_text(c, r.x + 4, y, r.w - 5, line, el);
    }
}

/* Branches the compare table in r has rows for, below its heading. */
static int table_rows(Rect r, const Snapshot *s)
{
    return s->n_branches < r.h - 1 ? s->n_branches : r.h - 1;
}

static void draw_table(Canvas *c, Rect r, const Snapshot *s, int best)
{
    char line[256];
    /* narrow: every column still, each shorter (80 columns hold it) */
    const int narrow = r.w < 92;
    if (narrow)
        snprintf(line, sizeof line, "  %-12s %-10s %-8s %6s %6s %7s %6s %7s", "branch", "from",
                 "state", "new", "orig", "forget", "cross", "comb");
    else
        snprintf(line, sizeof line, "  %-16s %-14s %-9s %7s %8s %10s %9s %9s", "branch",
                 "forked from", "state", "new acc", "orig acc", "forgetting", "crossover",
                 "combined");
    canvas_text(c, r.x, r.y, r.w, line, EL_TITLE);
    for (int i = 0; i < table_rows(r, s); i++) {
        const SnapBranch *b = &s->branches[i];
        BranchFigures f;
        char from[80] = "-", cx[24] = "-";
        branch_figures(b, &f);
        if (b->fork_step >= 0)
            snprintf(from, sizeof from, "%s@%ld", b->parent, b->fork_step);
        if (f.crossover >= 0)
            snprintf(cx, sizeof cx, "%ld", f.crossover);
        if (f.has && narrow)
            snprintf(line, sizeof line, "%s %-12.12s %-10.10s %-8.8s %6.3f %6.3f %7.3f %6s %7.4f",
                     i == best ? "*" : " ", b->name, from, state_word(b->state), f.new_acc,
                     f.original_acc, f.forgetting, cx, f.combined);
        else if (f.has)
            snprintf(line, sizeof line, "%s %-16.16s %-14.14s %-9s %7.3f %8.3f %10.3f %9s %9.4f",
                     i == best ? "*" : " ", b->name, from, state_word(b->state), f.new_acc,
                     f.original_acc, f.forgetting, cx, f.combined);
        else
            snprintf(line, sizeof line, "  %-16.16s %-14.14s %-9s", b->name, from,
                     state_word(b->state));
        canvas_put(c, r.x, r.y + 1 + i, c->utf8 ? 0x25A0 : '#', branch_element(i));
        canvas_text(c, r.x + 1, r.y + 1 + i, r.w - 1, line, i == best ? EL_CROSSOVER : EL_NORMAL);
    }
    if (best >= 0 && s->n_branches + 1 < r.h)
        canvas_text(c, r.x, r.y + 1 + s->n_branches, r.w,
                    "  * best trade-off: lowest new loss + weight x original loss", EL_AXIS);
}

#define COMPARE_LABEL_W 5

/* The compare view's plot area in r (h below 3: no room for one) and its
 * table: the plot above, the table below, or the table alone. */
static Rect compare_plot_rect(Rect r, const Snapshot *s)
{
    int table_h = s->n_branches + 2;
    return (Rect){ r.x + 1 + COMPARE_LABEL_W, r.y + 1, r.w - 2 - COMPARE_LABEL_W,
                   r.h - 3 - table_h };
}

static Rect compare_table_rect(Rect r, const Snapshot *s)
{
    Rect p = compare_plot_rect(r, s);
    if (p.h < 3)
        return (Rect){ r.x + 1, r.y + 1, r.w - 2, r.h - 2 };
    return (Rect){ r.x + 1, p.y + p.h + 1, r.w - 2, s->n_branches + 2 };
}

int compare_branch_at(Rect r, const Snapshot *s, int x, int y)
{
    Rect t = compare_table_rect(r, s);
    return row_at(x, y, t.x, t.x + t.w, t.y + 1, table_rows(t, s));
}

void compare_draw(Canvas *c, Rect r, const Snapshot *s)
{
    const int label_w = COMPARE_LABEL_W;
    int best = branch_best(s);
    canvas_box(c, r, "compare branches: new task solid, original dotted (v: back)", EL_BORDER);
    Rect plot = compare_plot_rect(r, s);
    int px = plot.x, py = plot.y, pw = plot.w, ph = plot.h;
    if (ph < 3) {
        draw_table(c, compare_table_rect(r, s), s, best);
        return;
    }
    long total = 1;
    for (int i = 0; i < s->n_branches; i++)
        if (!strcmp(s->branches[i].phase, "finetune") || !strcmp(s->branches[i].phase, "done"))
            total = s->branches[i].total_steps > total ? s->branches[i].total_steps : total;
    Axis ya = { 0, 1, ph < 8 ? 0.5 : 0.2 };
    Axis xa = axis_nice(0, (double)total, pw / 14 > 1 ? pw / 14 : 1);
    xa.lo = 0;
    axes_labels(c, (Rect){ px, py, pw, ph }, label_w, &xa, &ya);
    Raster ras;
    if (raster_init(&ras, pw, ph) < 0)
        return;
    int dw = 2 * pw, dh = 4 * ph;
    for (int i = 0; i < s->n_branches; i++) {
        const SnapBranch *b = &s->branches[i];
        Element el = branch_element(i);
        for (int task = 0; task < 2; task++) {
            Pen pen = { 0, 0, 0 };
            for (int k = 0; k < b->n_hist; k++) {
                const EvalRecord *e = &b->hist[k];
                if (strcmp(e->phase, "finetune") != 0 || !(task ? e->has_new : e->has_original))
                    continue;
                /* a branch's curve starts where it forked: before that it
                 * is its parent's */
                if (b->fork_step >= 0 && e->step < b->fork_step)
                    continue;
                double v = task ? e->new_task.acc : e->original.acc;
                pen_to(&ras, &pen, axis_pixel(&xa, (double)e->step, dw),
                       dh - 1 - axis_pixel(&ya, v, dh), task ? 1 : 3, el);
            }
        }
    }
    raster_blit(&ras, c, px, py);
    raster_free(&ras);
    /* fork points, on the step axis, and each branch's name at its end:
     * a name that would land on another's row moves to a free one, and a
     * branch whose curve ends where an earlier one's does (hidden under
     * it) says so, "name=other" */
    int label_row[SNAP_BRANCHES], label_col[SNAP_BRANCHES], n_labels = 0;
    BranchFigures figs[SNAP_BRANCHES];
    for (int i = 0; i < s->n_branches && i < SNAP_BRANCHES; i++) {
        const SnapBranch *b = &s->branches[i];
        BranchFigures *f = &figs[i];
        branch_figures(b, f);
        if (b->fork_step >= 0)
            canvas_put(c, px + axis_pixel(&xa, (double)b->fork_step, pw), py + ph - 1,
                       c->utf8 ? 0x2442 : 'Y', branch_element(i));
        if (!f->has)
            continue;
        char label[64];
        snprintf(label, sizeof label, "%s", b->name);
        for (int j = 0; j < i; j++)
            if (figs[j].has && figs[j].step == f->step && figs[j].new_acc == f->new_acc &&
                figs[j].original_acc == f->original_acc && figs[j].combined == f->combined) {
                snprintf(label, sizeof label, "%.24s=%.24s", b->name, s->branches[j].name);
                break;
            }
        int w = (int)strlen(label) > 16 ? 16 : (int)strlen(label);
        int col = px + axis_pixel(&xa, (double)f->step, pw) + 1;
        int row = py + ph - 1 - axis_pixel(&ya, f->new_acc, ph);
        if (col + w > px + pw)
            col = px + pw - w;
        for (int tries = 0; tries < 2 * ph; tries++) {
            int clash = 0;
            for (int k = 0; k < n_labels; k++)
                clash |= label_row[k] == row && col < label_col[k] + 17 && label_col[k] < col + w + 1;
            if (!clash)
                break;
            row = tries % 2 ? row + tries + 1 : row - tries - 1;
            if (row < py)
                row = py + tries;
            if (row > py + ph - 1)
                row = py + ph - 1 - tries;
        }
        label_row[n_labels] = row;
        label_col[n_labels++] = col;
        canvas_text(c, col, row, w, label, branch_element(i));
    }
    draw_table(c, compare_table_rect(r, s), s, best);
}
