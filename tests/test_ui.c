/* The pure parts of the workbench: axis scaling, braille rasterising,
 * layouts for given sizes, drawing a snapshot into a canvas, themes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "trainer.h"
#include "ui/branches.h"
#include "ui/canvas.h"
#include "ui/command.h"
#include "ui/screen.h"
#include "ui/theme.h"

static int near(double a, double b)
{
    return fabs(a - b) < 1e-9;
}

static void test_axes(void)
{
    Axis a = axis_nice(0, 1, 5);
    ok(near(a.lo, 0) && near(a.hi, 1) && near(a.step, 0.2), "axis 0..1 in 5: 0..1 by 0.2 (%g..%g by %g)", a.lo, a.hi, a.step);
    a = axis_nice(0, 760, 5);
    ok(near(a.lo, 0) && near(a.hi, 800) && near(a.step, 200), "axis 0..760 in 5: 0..800 by 200 (%g..%g by %g)", a.lo, a.hi, a.step);
    a = axis_nice(0.31, 0.87, 4);
    ok(a.lo <= 0.31 && a.hi >= 0.87 && (a.hi - a.lo) / a.step <= 4 + 1e-9 && near(a.step, 0.2),
       "axis 0.31..0.87 in 4: nice bounds cover it (%g..%g by %g)", a.lo, a.hi, a.step);
    a = axis_nice(0, 7600, 7);
    ok(near(a.step, 2000) && near(a.hi, 8000), "axis 0..7600 in 7: by 2000 to 8000 (%g..%g by %g)", a.lo, a.hi, a.step);
    a = axis_nice(5, 5, 4);
    ok(a.hi > a.lo && a.lo <= 5 && a.hi >= 5, "a flat range is widened (%g..%g)", a.lo, a.hi);
    a = axis_nice(NAN, 1, 4);
    ok(isfinite(a.lo) && isfinite(a.hi) && a.hi > a.lo, "a NaN bound gives a usable axis");
    a = (Axis){ 0, 1, 0.2 };
    ok(axis_pixel(&a, 0, 40) == 0 && axis_pixel(&a, 1, 40) == 39 && axis_pixel(&a, 0.5, 41) == 20,
       "axis_pixel: lo at 0, hi at n-1, the middle in the middle");
    ok(axis_pixel(&a, -3, 40) == 0 && axis_pixel(&a, 7, 40) == 39 && axis_pixel(&a, NAN, 40) == 0,
       "axis_pixel clamps values outside and NaN");
}

static void test_braille(void)
{
    Raster r;
    Canvas c;
    char row[256];
    ok(braille_of(0) == 0x2800 && braille_of(0xFF) == 0x28FF, "braille: U+2800 + dot bits");
    raster_init(&r, 1, 1);
    raster_dot(&r, 0, 0, EL_NEW);
    ok(r.dots[0] == 0x01, "dot (0,0) is dot 1 (bit 0x01)");
    raster_dot(&r, 1, 3, EL_NEW);
    ok(r.dots[0] == 0x81, "dot (1,3) is dot 8 (bit 0x80)");
    raster_dot(&r, 2, 0, EL_NEW);
    raster_dot(&r, 0, 4, EL_NEW);
    raster_dot(&r, -1, 0, EL_NEW);
    ok(r.dots[0] == 0x81, "dots outside the raster are ignored");
    raster_free(&r);

    raster_init(&r, 3, 2);
    raster_line(&r, 0, 3, 5, 3, EL_NEW);            /* bottom row of the top cells */
    ok(r.dots[0] == 0xC0 && r.dots[1] == 0xC0 && r.dots[2] == 0xC0 && r.dots[3] == 0,
       "a horizontal line on dot row 3 is ⣀⣀⣀ (0x%02x 0x%02x 0x%02x)", r.dots[0], r.dots[1], r.dots[2]);
    raster_line(&r, 0, 4, 0, 7, EL_ORIGINAL);       /* the left column of cell (0,1) */
    ok(r.dots[3] == 0x47 && r.el[3] == EL_ORIGINAL, "a vertical line down the left column is ⡇ (0x%02x)", r.dots[3]);
    raster_line(&r, 0, 0, 5, 7, EL_NEW);
    ok(r.dots[0] & 0x01 && r.dots[5] & 0x80, "a diagonal runs from dot (0,0) to dot (5,7)");

    canvas_init(&c, 5, 2, 1);
    raster_blit(&r, &c, 1, 0);
    canvas_row(&c, 0, row, sizeof row);
    ok(c.cells[1].ch == braille_of(r.dots[0]) && c.cells[2].ch == braille_of(r.dots[1]) &&
       c.cells[5 + 1].ch == braille_of(r.dots[3]) && c.cells[0].ch == ' ' && c.cells[1].el == EL_NEW, "blit: braille cells at the offset (U+%04X)", (unsigned)c.cells[1].ch);
    canvas_free(&c);

    ok(ascii_of(0) == ' ' && ascii_of(0x09) == '\'' && ascii_of(0xC0) == '_' &&
       ascii_of(0x12) == '-' && ascii_of(0x47) == '|',
       "ASCII stand-ins: top ', middle -, bottom _, tall |");
    canvas_init(&c, 3, 2, 0);
    raster_blit(&r, &c, 0, 0);
    int ascii = 1;
    for (int i = 0; i < c.w * c.h; i++)
        ascii &= c.cells[i].ch < 0x80;
    ok(ascii && c.cells[1].ch == '_', "without UTF-8 the raster blits as ASCII");
    canvas_free(&c);
    raster_free(&r);
}

/* The rows tile the screen; the loss panel, when there is one, fills the
 * rest of the plot's row (wide) or of the layers' row (medium). */
static int tiles(const Layout *l, int w, int h)
{
    int rows = l->header.y == 0 && l->header.h == 1 && l->plot.y == 1 &&
               l->plot.y + l->plot.h == l->layers.y && l->layers.y + l->layers.h == l->log.y &&
               l->log.y + l->log.h == h - 1 && l->footer.y == h - 1 &&
               l->log.w == w && l->footer.w == w;
    if (l->loss.w == 0)
        return rows && l->plot.w == w && l->layers.w == w;
    const Rect *beside = l->loss.y == l->plot.y ? &l->plot : &l->layers;
    const Rect *full = beside == &l->plot ? &l->layers : &l->plot;
    return rows && full->w == w && beside->x == 0 && l->loss.x == beside->w &&
           beside->w + l->loss.w == w && l->loss.y == beside->y && l->loss.h == beside->h;
}

static void test_layout(void)
{
    static const int sizes[][2] = { { 80, 24 }, { 60, 16 }, { 100, 30 }, { 200, 60 }, { 81, 25 } };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int w = sizes[i][0], h = sizes[i][1];
        Layout l = layout_for(w, h, 5);
        ok(!l.too_small && tiles(&l, w, h) && l.plot.h >= 6 && l.layers.h >= 3 && l.log.h >= 4,
           "%dx%d: panels tile the screen (plot %d, layers %d, log %d rows)",
           w, h, l.plot.h, l.layers.h, l.log.h);
    }
    Layout l = layout_for(80, 24, 5);
    ok(l.layers.h == 7, "80x24: room for all 5 groups (%d rows)", l.layers.h);
    l = layout_for(80, 24, 30);
    ok(!l.too_small && l.layers.h < 12 && l.plot.h >= 6, "80x24 with 30 groups: the layer panel is capped (%d rows)", l.layers.h);
    ok(layout_for(59, 24, 5).too_small && layout_for(80, 15, 5).too_small && layout_for(0, 0, 5).too_small,
       "below 60x16: too small");

    /* narrow: no loss panel; medium: beside the layers; wide: beside the plot */
    l = layout_for(80, 24, 5);
    ok(l.loss.w == 0 && l.plot.w == 80 && l.layers.w == 80, "80x24: no loss panel, the plot full width");
    l = layout_for(SCREEN_LOSS_W - 1, 30, 5);
    ok(l.loss.w == 0, "%dx30: no loss panel yet", SCREEN_LOSS_W - 1);
    l = layout_for(100, 30, 5);
    ok(l.loss.w > 0 && l.loss.y == l.layers.y && l.loss.h == l.layers.h && l.plot.w == 100 &&
       l.layers.w >= 60, "100x30: the loss panel right of the layers (%d + %d columns)",
       l.layers.w, l.loss.w);
    l = layout_for(SCREEN_WIDE_W - 1, 40, 5);
    ok(l.loss.y == l.layers.y && l.plot.w == SCREEN_WIDE_W - 1, "%dx40: still below the plot",
       SCREEN_WIDE_W - 1);
    static const int wide[][2] = { { 160, 40 }, { 200, 50 }, { 240, 24 } };
    for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++) {
        int w = wide[i][0], h = wide[i][1];
        l = layout_for(w, h, 5);
        ok(!l.too_small && tiles(&l, w, h) && l.loss.y == l.plot.y && l.loss.h == l.plot.h &&
           l.layers.w == w && l.plot.w >= w / 2 && l.loss.w >= 40,
           "%dx%d: the loss panel beside the plot, as tall (plot %d + loss %d columns), the layers full width",
           w, h, l.plot.w, l.loss.w);
    }
    l = layout_for(160, 40, 5);
    Layout m = layout_for(159, 40, 5);
    ok(l.loss.h > m.loss.h && l.plot.h == m.plot.h,
       "wide: the loss panel gets the plot's height (%d rows, not %d)", l.loss.h, m.loss.h);
}

static int canvas_has(const Canvas *c, const char *text)
{
    char row[2048];
    for (int y = 0; y < c->h; y++) {
        canvas_row(c, y, row, sizeof row);
        if (strstr(row, text))
            return y + 1;
    }
    return 0;
}

static void fake_snapshot(Snapshot *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->experiment, sizeof s->experiment, "tiny");
    snprintf(s->phase, sizeof s->phase, "finetune");
    s->step = 120;
    s->total_steps = 400;
    s->steps_per_epoch = 20;
    s->steps_per_s = 41.5;
    s->state = TS_RUNNING;
    s->n_hist = s->cap_hist = 8;
    s->hist = calloc(8, sizeof *s->hist);
    for (int i = 0; i < 8; i++) {
        EvalRecord *e = &s->hist[i];
        snprintf(e->phase, sizeof e->phase, "%s", i < 2 ? "base" : "finetune");
        e->step = i < 2 ? 100 * i : 20 * (i - 2);
        e->has_original = 1;
        e->original.acc = i < 2 ? 0.9 : 0.95 - 0.08 * (i - 2);
        e->has_new = i >= 2;
        e->new_task.acc = 0.5 + 0.08 * (i - 2);
        e->crossover_step = i >= 5 ? 60 : -1;
        e->has_train_loss = 1;
        e->train_loss = 1.5 - 0.1 * i;
    }
    s->n_groups = 3;
    snprintf(s->groups[0].name, sizeof s->groups[0].name, "embeddings");
    snprintf(s->groups[1].name, sizeof s->groups[1].name, "layer.0");
    s->groups[1].trainable = 1;
    s->groups[1].lr = 1.2e-5;
    snprintf(s->groups[2].name, sizeof s->groups[2].name, "classifier.new");
    s->groups[2].trainable = 1;
    s->groups[2].lr = 2e-5;
    s->groups[0].drift = 0;
    s->groups[1].drift = 0.0312;
    s->groups[2].drift = 1.25;
    snapshot_log(s, "12:00:00 eval finetune step 100");
}

/* Drift since the base: a column of the per-layer panel when known and
 * when there is room; the loss panel where the layout puts one. */
static void test_drift_and_loss(void)
{
    Snapshot s;
    Canvas c;
    ScreenOptions o = { .view = VIEW_ACCURACY };
    fake_snapshot(&s);
    canvas_init(&c, 80, 24, 1);
    screen_draw(&c, &s, &o);
    int top = canvas_has(&c, "┌ learning rate per layer");
    char row[1024];
    if (top)
        canvas_row(&c, top - 1, row, sizeof row);
    ok(top && strstr(row, " drift ") != NULL, "80x24: the layer panel's border names the drift column");
    ok(canvas_has(&c, "1.2e-05   0.0312") && canvas_has(&c, "2.0e-05   1.2500"),
       "each trainable group: its rate, then its drift");
    ok(canvas_has(&c, "frozen") && canvas_has(&c, "0.0000"), "a frozen group shows its drift too");
    ok(!canvas_has(&c, "training loss"), "80x24: no loss panel");
    canvas_free(&c);

    for (int g = 0; g < s.n_groups; g++)
        s.groups[g].drift = -1;
    canvas_init(&c, 80, 24, 1);
    screen_draw(&c, &s, &o);
    ok(!canvas_has(&c, " drift ") && !canvas_has(&c, "0.0312"), "drift unknown (before fine-tuning): no column");
    canvas_free(&c);
    s.groups[1].drift = 0.0312;

    canvas_init(&c, 60, 24, 1);
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, "1.2e-05   0.0312"), "60 columns, the narrowest: rate and drift still fit");
    canvas_free(&c);

    /* a drift of 100 or more kept to the column: it used to run into the border */
    s.groups[1].drift = 159.8918;
    s.groups[2].drift = 3.2e5;
    canvas_init(&c, 80, 24, 1);
    screen_draw(&c, &s, &o);
    int r1 = canvas_has(&c, "  159.9"), r2 = canvas_has(&c, "3.2e+05");
    char line[1024] = "";
    if (r1)
        canvas_row(&c, r1 - 1, line, sizeof line);
    size_t ll = strlen(line);
    ok(r1 && r2 && strstr(line, "159.9 ") != NULL && ll > 3 && strcmp(line + ll - 3, "│") == 0 &&
       !canvas_has(&c, "159.89"),
       "a drift of 159.89 shows as 159.9, 3.2e5 as 3.2e+05, inside the border (%s)", line);
    canvas_free(&c);
    s.groups[1].drift = 0.0312;
    s.groups[2].drift = 1.25;

    canvas_init(&c, 100, 30, 1);
    screen_draw(&c, &s, &o);
    int loss = canvas_has(&c, "┌ training loss");
    int layers = canvas_has(&c, "┌ learning rate per layer");
    double smooth = 0;
    for (int i = 2; i < 8; i++)
        smooth = i > 2 ? 0.7 * smooth + 0.3 * s.hist[i].train_loss : s.hist[i].train_loss;
    char want[64];
    snprintf(want, sizeof want, "training loss %.3f", smooth);
    ok(loss && loss == layers && canvas_has(&c, want),
       "100x30: the loss panel beside the layers, titled with the smoothed loss (%s)", want);
    int train = 0;
    for (int i = 0; i < c.w * c.h; i++)
        train += c.cells[i].ch > 0x2800 && c.cells[i].ch <= 0x28FF && c.cells[i].el == EL_TRAIN;
    ok(train > 3, "the training loss is drawn in the loss panel (%d cells)", train);
    canvas_free(&c);

    canvas_init(&c, 170, 40, 1);
    screen_draw(&c, &s, &o);
    loss = canvas_has(&c, "┌ training loss");
    int plot = canvas_has(&c, "┌ accuracy");
    ok(loss && loss == plot && canvas_has(&c, "original ┅┅  baseline ┄┄ ┐┌ training loss"),
       "170x40: the loss panel beside the plot, the legend still in the plot's border");
    layers = canvas_has(&c, "┌ learning rate per layer");
    canvas_row(&c, layers - 1, row, sizeof row);
    ok(layers > plot && strstr(row, "┐") != NULL && !strstr(row, "┌ training"),
       "170x40: the layers below, full width");
    canvas_free(&c);
    snapshot_free(&s);
}

/* A 24-layer model in a panel of a few rows: blocks in the same state
 * share a row, and when they differ (layer decay) neighbours are joined,
 * so every block stays on screen as a range. */
static void test_deep_model(void)
{
    Snapshot s;
    Canvas c;
    ScreenOptions o = { .view = VIEW_ACCURACY };
    fake_snapshot(&s);
    int n = 0;
    snprintf(s.groups[n].name, sizeof s.groups[n].name, "embeddings");
    s.groups[n++].trainable = 0;
    for (int l = 0; l < 24; l++, n++) {
        snprintf(s.groups[n].name, sizeof s.groups[n].name, "layer.%d", l);
        s.groups[n].trainable = l >= 20;
        s.groups[n].lr = 2e-5;
        s.groups[n].drift = l >= 20 ? 0.01 * l : 0.0;
    }
    snprintf(s.groups[n].name, sizeof s.groups[n].name, "pooler");
    s.groups[n].trainable = 1, s.groups[n].lr = 2e-5, s.groups[n++].drift = 0.1;
    snprintf(s.groups[n].name, sizeof s.groups[n].name, "classifier.original");
    s.groups[n].trainable = 0, s.groups[n++].drift = 0;
    snprintf(s.groups[n].name, sizeof s.groups[n].name, "classifier.new");
    s.groups[n].trainable = 1, s.groups[n].lr = 2e-5, s.groups[n++].drift = 0.5;
    s.n_groups = n;
    canvas_init(&c, 80, 24, 1);
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, "layer.0-19") && canvas_has(&c, "layer.20-23") && !canvas_has(&c, "more"),
       "24 layers, 4 unfrozen: two rows, layer.0-19 frozen and layer.20-23 training");
    canvas_free(&c);

    /* layer decay: every block at its own rate */
    for (int l = 0; l < 24; l++) {
        s.groups[1 + l].trainable = 1;
        s.groups[1 + l].lr = 2e-5 * pow(0.9, 23 - l);
    }
    canvas_init(&c, 80, 24, 1);
    screen_draw(&c, &s, &o);
    int top = canvas_has(&c, "┌ learning rate per layer"), covered = 0, last = -1, rows = 0;
    char row[1024];
    for (int y = top; top && y < c.h; y++) {
        canvas_row(&c, y, row, sizeof row);
        int a, b;
        char *p = strstr(row, "layer.");
        if (!p)
            continue;
        if (sscanf(p, "layer.%d-%d", &a, &b) == 2 || (sscanf(p, "layer.%d", &a) == 1 && (b = a, 1))) {
            covered += a == last + 1;
            last = b;
            rows++;
        }
    }
    ok(last == 23 && covered == rows && !canvas_has(&c, "more"),
       "24 layers at 24 rates in a small panel: %d rows of ranges cover layer.0 to layer.23 in order",
       rows);
    ok(canvas_has(&c, "\u2264") != 0, "a range of blocks at different rates shows its highest after \u2264");
    canvas_free(&c);
    canvas_init(&c, 120, 100, 1);
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, "layer.23 ") && canvas_has(&c, "layer.0 ") && !canvas_has(&c, "layer.0-") &&
           !canvas_has(&c, "emb+"),
       "with room, every block has its own row");
    canvas_free(&c);

    /* every other block frozen, the embeddings training: rows that must
     * join frozen and training blocks say how many are frozen */
    s.groups[0].trainable = 1, s.groups[0].lr = 2e-5;
    for (int l = 0; l < 24; l++)
        s.groups[1 + l].trainable = l % 2 == 0, s.groups[1 + l].lr = 2e-5;
    int sizes[][2] = { { 100, 30 }, { 80, 24 }, { 60, 16 } };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        canvas_init(&c, sizes[k][0], sizes[k][1], 1);
        screen_draw(&c, &s, &o);
        int good = 1, seen = 0;
        char bad[160] = "";
        top = canvas_has(&c, "learning rate per layer");
        for (int y = top; top && y < c.h; y++) {
            canvas_row(&c, y, row, sizeof row);
            char *p = strstr(row, "layer.");
            int a, b, emb = p && p - row >= 4 && strncmp(p - 4, "emb+", 4) == 0;
            if (!p || (sscanf(p, "layer.%d-%d", &a, &b) != 2 &&
                       (sscanf(p, "layer.%d", &a) != 1 || (b = a, 0))))
                continue;
            int frozen = 0, all = b - a + 1 + emb;
            for (int l = a; l <= b; l++)
                frozen += l % 2 == 1;
            char want[32];
            if (frozen == all)
                snprintf(want, sizeof want, "frozen");
            else
                snprintf(want, sizeof want, "%d/%d", frozen, all);
            int says = frozen ? strstr(row, want) != NULL : strstr(row, "frozen") == NULL;
            if (!says && good) {
                good = 0;
                snprintf(bad, sizeof bad, "%.100s (want %s)", row, frozen ? want : "none frozen");
            }
            seen++;
        }
        ok(good && seen > 0, "%dx%d, every other block frozen: each of %d rows says how many of its "
           "groups are frozen %s", sizes[k][0], sizes[k][1], seen, bad);
        canvas_free(&c);
    }
    snapshot_free(&s);
}

static void test_screen(void)
{
    Snapshot s;
    Canvas c;
    ScreenOptions o = { .view = VIEW_ACCURACY };
    fake_snapshot(&s);

    canvas_init(&c, 80, 24, 1);
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, " tiny · main · finetune · step 120/400 · epoch 6.00") == 1 &&
       canvas_has(&c, "41.5 steps/s") == 1, "the header is the first row");
    {
        Snapshot k = s;
        k.lr = 2e-5;
        k.has_ewc = 1;
        k.ewc_lambda = 50;
        snprintf(k.policy, sizeof k.policy, "warmup_linear");
        Canvas d;
        canvas_init(&d, 160, 40, 1);
        screen_draw(&d, &k, &o);
        ok(canvas_has(&d, "steps/s · lr 2.0e-05 · λ 50 · policy warmup_linear") == 1,
           "a wide header shows the base rate, EWC's lambda and the policy");
        canvas_free(&d);
        canvas_init(&d, 80, 24, 1);
        screen_draw(&d, &k, &o);
        ok(canvas_has(&d, "step 120/400") == 1 && !canvas_has(&d, "policy warmup"),
           "at 80 columns they give way to the step and state");
        canvas_free(&d);
    }
    ok(canvas_has(&c, "new ━━") && canvas_has(&c, "original ┅┅"), "the legend names both curves");
    {
        /* the same values on both curves: the original's dots are sparser,
         * so the two differ by glyph and not by colour alone */
        Snapshot one = s;
        EvalRecord h[8];
        int dots[2] = { 0, 0 };
        for (int k = 0; k < 2; k++) {
            for (int i = 0; i < s.n_hist && i < 8; i++) {
                h[i] = s.hist[i];
                h[i].has_new = k == 1;
                h[i].has_original = k == 0;
                h[i].new_task.loss = h[i].original.loss = 2.0 - 0.2 * i;
                h[i].has_train_loss = 0;
                h[i].crossover_step = -1;
            }
            one.hist = h;
            one.n_hist = s.n_hist < 8 ? s.n_hist : 8;
            Canvas d;
            ScreenOptions lo = { .view = VIEW_LOSS };   /* no baseline there */
            canvas_init(&d, 80, 24, 1);
            screen_draw(&d, &one, &lo);
            for (int i = 0; i < d.w * d.h; i++)
                if (d.cells[i].ch > 0x2800 && d.cells[i].ch <= 0x28FF)
                    dots[k] += __builtin_popcount(d.cells[i].ch - 0x2800);
            canvas_free(&d);
        }
        ok(dots[0] > 0 && dots[0] * 10 < dots[1] * 7, "the original curve is dotted: %d dots against the new's %d",
           dots[0], dots[1]);
    }
    ok(canvas_has(&c, "crossover @60 (new 0.74, original 0.71)") > 0,
       "the crossover is marked with its step and both accuracies");
    ok(canvas_has(&c, "1.0") && canvas_has(&c, "0.0") && canvas_has(&c, " 400") && !canvas_has(&c, "-0 "),
       "axis labels: accuracy and step (and a first tick of 0, not -0)");
    {
        ScreenOptions z = o;
        z.zoom = 100;
        Canvas d;
        canvas_init(&d, 80, 24, 1);
        screen_draw(&d, &s, &z);
        int axis = canvas_has(&d, "crossover @60") - 1;   /* the row above the border */
        char row[1024] = "";
        if (axis > 0)
            canvas_row(&d, axis - 1, row, sizeof row);
        ok(canvas_has(&d, "accuracy (zoomed: + - 0)") && axis > 0 && !strstr(row, " 400") && strstr(row, " 40 ") && strstr(row, "120"),
           "zoomed to the last 100 steps: the axis runs to step 120, not 400 (%s)", row);
        ok(canvas_has(&d, "crossover @60") != 0, "the crossover in the window stays marked");
        canvas_free(&d);
    }
    ok(canvas_has(&c, "embeddings     ░ frozen") > 0, "a frozen group reads frozen");
    ok(canvas_has(&c, "▇ 2.0e-05") > 0 && canvas_has(&c, "1.2e-05") > 0, "trainable groups: a bar and the rate");
    ok(canvas_has(&c, "eval finetune step 100") > 0, "the log panel shows the log");
    ok(canvas_has(&c, "q quit") == 24, "the footer is the last row");
    int braille = 0, cross = 0;
    for (int i = 0; i < c.w * c.h; i++) {
        braille += c.cells[i].ch > 0x2800 && c.cells[i].ch <= 0x28FF;
        cross += c.cells[i].ch == 0x2715 && c.cells[i].el == EL_CROSSOVER;
    }
    ok(braille > 10 && cross == 2, "curves in braille (%d cells), the crossover marked in the plot", braille);
    canvas_free(&c);

    canvas_init(&c, 80, 24, 0);
    screen_draw(&c, &s, &o);
    int ascii = 1;
    for (int i = 0; i < c.w * c.h; i++)
        ascii &= c.cells[i].ch < 0x80;
    ok(ascii && canvas_has(&c, " tiny | main | finetune") && canvas_has(&c, "new ==") &&
       canvas_has(&c, "X crossover @60"), "without UTF-8 everything is ASCII");
    canvas_free(&c);

    o.help = 1;
    canvas_init(&c, 80, 24, 1);
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, "help (more below)") && canvas_has(&c, "? or Esc closes") &&
       canvas_has(&c, "space") && canvas_has(&c, "checkpoint and quit (asks"),
       "?: at 80x24 the help page starts with the keys, says there is more and how to close it");
    int max = screen_help_scroll_max(80, 24);
    o.help_scroll = max;
    screen_draw(&c, &s, &o);
    ok(max > 0 && canvas_has(&c, "help (more above)") && canvas_has(&c, ":quit") &&
       canvas_has(&c, ":fork NAME [@STEP] [KEY=VALUE]...") &&
       canvas_has(&c, "branch the run (now, or at a checkpoint's step)") && canvas_has(&c, "with other settings"),
       "scrolled to its end (%d rows): every command, a long usage whole on a row of its own", max);

    int seen_all = 1;
    for (int i = 0; i < command_count; i++) {
        char want[64];
        snprintf(want, sizeof want, ":%s", command_table[i].name);
        int found = 0;
        for (int sc = 0; sc <= max && !found; sc++) {
            o.help_scroll = sc;
            screen_draw(&c, &s, &o);
            found = canvas_has(&c, want) != 0;
        }
        seen_all &= found;
    }
    ok(seen_all, "scrolling shows every one of the %d commands", command_count);
    o.help_scroll = 0;
    canvas_free(&c);
    o.help = 0;
    o.prompt = "set finetune.lr 1e-5";
    o.status = NULL;
    canvas_init(&c, 80, 24, 1);
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, ":set finetune.lr 1e-5") == 24, "the : line replaces the footer");
    canvas_free(&c);
    o.prompt = NULL;

    o.view = VIEW_LOSS;
    canvas_init(&c, 100, 30, 1);
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, "┌ loss ") && canvas_has(&c, "l accuracy"), "l: the loss view, and the footer offers accuracy");
    ok(canvas_has(&c, "train ━━") && !canvas_has(&c, "baseline"), "the loss view shows the training loss instead of the baseline");
    int train = 0;
    for (int i = 0; i < c.w * c.h; i++)
        train += c.cells[i].ch > 0x2800 && c.cells[i].ch <= 0x28FF && c.cells[i].el == EL_TRAIN;
    ok(train > 5, "the training loss is drawn (%d cells)", train);
    canvas_free(&c);

    canvas_init(&c, 40, 10, 1);
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, "terminal too small") && !canvas_has(&c, "mneme"), "40x10: terminal too small, nothing else");
    canvas_free(&c);

    s.n_hist = 0;
    canvas_init(&c, 80, 24, 1);
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, "waiting for the first evaluation") > 0, "no evaluation yet: says it waits");
    canvas_free(&c);
    snapshot_free(&s);

    Snapshot log;
    memset(&log, 0, sizeof log);
    for (int i = 0; i < SNAP_LOG + 5; i++) {
        char line[32];
        snprintf(line, sizeof line, "line %d", i);
        snapshot_log(&log, line);
    }
    char last[32];
    snprintf(last, sizeof last, "line %d", SNAP_LOG + 4);
    ok(log.n_log == SNAP_LOG && strcmp(log.log[0], "line 5") == 0 &&
       strcmp(log.log[SNAP_LOG - 1], last) == 0 && log.n_logged == SNAP_LOG + 5,
       "the log keeps the last %d lines and counts them all", SNAP_LOG);
    snapshot_free(&log);
}

/* PgUp/PgDn/End: the log panel shows older lines and says so. */
static void test_log_scroll(void)
{
    Snapshot s;
    Canvas c;
    ScreenOptions o = { .view = VIEW_ACCURACY };
    fake_snapshot(&s);
    s.n_log = 0;
    for (int i = 0; i < 40; i++) {
        char line[32];
        snprintf(line, sizeof line, "entry %02d", i);
        snapshot_log(&s, line);
    }
    int rows = screen_log_rows(100, 30, s.n_groups);
    ok(rows == layout_for(100, 30, s.n_groups).log.h - 2 && rows > 0, "log rows for 100x30: %d", rows);
    ok(screen_log_rows(40, 10, s.n_groups) == 0, "no log rows when the terminal is too small");
    ok(screen_log_clamp(-3, 40, rows) == 0 && screen_log_clamp(5, 40, rows) == 5 &&
       screen_log_clamp(1000, 40, rows) == 40 - rows && screen_log_clamp(4, 2, rows) == 0,
       "the scroll is clamped to 0..n_log-rows");
    canvas_init(&c, 100, 30, 1);
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, "entry 39") && !canvas_has(&c, "entry 20") && canvas_has(&c, "┌ log ─"),
       "following: the newest lines, a plain title");
    o.log_scroll = 10;
    screen_draw(&c, &s, &o);
    char want[32];
    snprintf(want, sizeof want, "entry %02d", 39 - 10);
    ok(canvas_has(&c, want) && !canvas_has(&c, "entry 39") &&
       canvas_has(&c, "log: 10 lines back (PgUp/PgDn, End follows)"),
       "scrolled back 10: the newest shown is %s, the title says so", want);
    o.log_scroll = 1000;
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, "entry 00") && !canvas_has(&c, "entry 39"), "scrolled past the top: the oldest lines");
    o.log_scroll = 0;
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, "entry 39") && !canvas_has(&c, "lines back"), "End: following again");
    o.status = "quit? checkpoint and quit: y / n";
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, "quit? checkpoint and quit: y / n") == 30, "the quit question shows in the footer");
    canvas_free(&c);
    /* at 80 columns the keys used to run under it: "l losquit? ..." */
    canvas_init(&c, 80, 24, 1);
    screen_draw(&c, &s, &o);
    char foot[1024];
    canvas_row(&c, 23, foot, sizeof foot);
    const char *q = strstr(foot, "quit? checkpoint");
    ok(q && q > foot && q[-1] == ' ' && strstr(foot, "q quit") && strstr(foot, "? help") &&
       !strstr(foot, "l los") == !strstr(foot, "l loss"),
       "80 columns: keys that fit, then the question, nothing drawn over (%s)", foot);
    o.status = "diverged at finetune step 20 (training loss became -nan); rolled back to step 0 "
               "(checkpoints/base.safetensors). Lower the learning rate and go on";
    screen_draw(&c, &s, &o);
    canvas_row(&c, 23, foot, sizeof foot);
    ok(strncmp(foot, " diverged at finetune step 20", 29) == 0 && !strstr(foot, "q quit"),
       "a message longer than the row takes all of it, from its start (%s)", foot);
    o.status = NULL;
    canvas_free(&c);
    snapshot_free(&s);
}

/* A long log line wraps instead of being cut at the panel's edge. */
static void test_log_wrap(void)
{
    Snapshot s;
    Canvas c;
    ScreenOptions o = { .view = VIEW_ACCURACY };
    fake_snapshot(&s);
    snapshot_log(&s, "12:00:01 [withpol] paused: policies/freeze.lua:9: attempt to index a nil "
                     "value (field 'layers') in on_eval, cut before");
    canvas_init(&c, 80, 30, 1);
    screen_draw(&c, &s, &o);
    int y1 = canvas_has(&c, "[withpol] paused: policies/freeze.lua:9:");
    int y2 = canvas_has(&c, "(field 'layers') in on_eval, cut before");
    ok(y1 && y2 && y2 == y1 + 1, "80x30: a long log line wraps onto the next row, at a blank (rows %d, %d)",
       y1, y2);
    char row[1024];
    if (y2)
        canvas_row(&c, y2 - 1, row, sizeof row);
    ok(y2 && strncmp(row, "│          ", strlen("│          ")) == 0,
       "the wrapped part is indented past the time stamp");
    ok(canvas_has(&c, "eval finetune step 100") && y1 > canvas_has(&c, "eval finetune step 100"),
       "the line before it still shows, above it");
    canvas_free(&c);
    snapshot_free(&s);
}

/* L: the log as a page of its own, whole lines, both ways, errors alone. */
static void test_log_page(void)
{
    Snapshot s;
    Canvas c;
    ScreenOptions o = { .view = VIEW_ACCURACY, .log_page = 1 };
    fake_snapshot(&s);
    for (int i = 0; i < 40; i++) {
        char line[128];
        snprintf(line, sizeof line, "12:00:%02d entry %02d", i % 60, i);
        snapshot_log(&s, line);
    }
    snapshot_log(&s, "12:01:00 error: set: finetune.lr: expected 0..10, got 50");
    snapshot_log(&s, "12:01:01 a line far longer than the screen, whose end is found by scrolling "
                     "right: ........................................................ THE END");
    canvas_init(&c, 80, 24, 1);
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, "log: 43 lines") && canvas_has(&c, "L or Esc closes") &&
       canvas_has(&c, "entry 39") && canvas_has(&c, "error: set: finetune.lr") && !canvas_has(&c, "THE END"),
       "L: a page of the newest lines, cut at the right edge");
    o.log_page_x = 80;
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, "THE END") != 0, "scrolled right: the end of the long line");
    o.log_page_x = 0;
    o.log_page_scroll = 100;
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, "eval finetune step 100") && canvas_has(&c, "entry 00") && !canvas_has(&c, "entry 39"),
       "scrolled back: the oldest lines");
    o.log_page_scroll = 0;
    o.log_page_errors = 1;
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, "log (errors): 1 line") && canvas_has(&c, "error: set: finetune.lr") &&
       !canvas_has(&c, "entry 39"), "e: the errors alone");
    canvas_free(&c);
    snapshot_free(&s);
}

static void test_colour_reduction(void)
{
    Theme t;
    MnError e;
    ok(theme_load(&t, "light", &e) == 0, "the light theme loads");
    int nw = theme_nearest_colour(t.el[EL_NEW].fg, 8), og = theme_nearest_colour(t.el[EL_ORIGINAL].fg, 8);
    int bl = theme_nearest_colour(t.el[EL_BASELINE].fg, 8), bar = theme_nearest_colour(t.el[EL_BAR].fg, 8);
    ok(nw == 2 && og == 5 && bl != og && bl != nw && bar == 4,
       "light on 8 colours: new green, original magenta, baseline apart from both (%d), bars blue, "
       "not all green and red as with %% 8 (%d %d %d %d)", bl, nw, og, bl, bar);
    ok(theme_nearest_colour(244, 16) == 8 && theme_nearest_colour(244, 8) == 7 &&
       theme_nearest_colour(3, 8) == 3 && theme_nearest_colour(-1, 8) == -1 &&
       theme_nearest_colour(200, 256) == 200, "greys, colours a terminal has, and the default are kept or mapped "
       "(%d %d)", theme_nearest_colour(244, 16), theme_nearest_colour(244, 8));
}

static void test_themes(void)
{
    Theme t;
    MnError e;
    char path[256];
    FILE *f;
    ok(theme_load(&t, "default", &e) == 0 && t.colour && t.el[EL_HEADER].bg == 4 && !t.warning[0],
       "the default theme loads");
    ok(theme_load(&t, "light", &e) == 0 && t.colour && t.el[EL_NEW].fg == 28, "the light theme loads");
    ok(theme_load(&t, "mono", &e) == 0 && !t.colour && (t.el[EL_HEADER].attrs & THEME_REVERSE),
       "the mono theme: no colour, attributes only");
    ok(theme_load(&t, "nonesuch", &e) < 0 && strstr(e.msg, "nonesuch"), "an unknown theme: %s", e.msg);
    snprintf(path, sizeof path, "/tmp/mneme-test-theme-%d.theme", (int)getpid());
    f = fopen(path, "w");
    fputs("new = { fg = \"cyan\"; sparkle = true; };\ngradient = { fg = 1; };\n", f);
    fclose(f);
    ok(theme_load(&t, path, &e) == 0 && t.el[EL_NEW].fg == 6 && t.el[EL_ORIGINAL].fg == 5 &&
       strstr(t.warning, "new.sparkle") && strstr(t.warning, "gradient"),
       "unknown keys are ignored with a warning (%s); missing ones keep defaults", t.warning);
    f = fopen(path, "w");
    fputs("name = \"x\";\n\nnew = { fg = \"chartreuse\"; };\n", f);
    fclose(f);
    ok(theme_load(&t, path, &e) < 0 && strstr(e.msg, ":3: new.fg"), "a bad colour: file:line (%s)", e.msg);
    remove(path);
}

static void test_commands(void)
{
    UiCommand uc;
    char err[256], line[128];
    ok(command_parse("set finetune.lr 1e-5", &uc, err, sizeof err) == 0 && uc.kind == UC_TRAINER &&
       uc.cmd.kind == CMD_SET_LR && near(uc.cmd.value, 1e-5), "set finetune.lr 1e-5");
    ok(command_parse("  checkpoint ", &uc, err, sizeof err) == 0 && uc.cmd.kind == CMD_CHECKPOINT,
       "checkpoint (blanks around it)");
    ok(command_parse("theme mono", &uc, err, sizeof err) == 0 && uc.kind == UC_THEME &&
       strcmp(uc.arg, "mono") == 0, "theme mono");
    ok(command_parse("loss", &uc, err, sizeof err) == 0 && uc.kind == UC_VIEW, "loss toggles the view");
    ok(command_parse("quit", &uc, err, sizeof err) == 0 && uc.cmd.kind == CMD_QUIT, "quit");
    ok(command_parse("eval", &uc, err, sizeof err) == 0 && uc.cmd.kind == CMD_EVALUATE, "eval");
    ok(command_parse("frobnicate", &uc, err, sizeof err) < 0 && strstr(err, "unknown command 'frobnicate'"),
       "an unknown command: %s", err);
    ok(command_parse("frezee layer.0", &uc, err, sizeof err) < 0 && strstr(err, "did you mean freeze?"),
       "a near miss is named: %s", err);
    ok(command_parse("chekpoint", &uc, err, sizeof err) < 0 && strstr(err, "did you mean checkpoint?"),
       "another near miss: %s", err);
    ok(command_parse("set lr 2e-5", &uc, err, sizeof err) == 0 && uc.cmd.kind == CMD_SET_LR &&
       near(uc.cmd.value, 2e-5), "set lr 2e-5: the short name fork accepts");
    ok(command_parse("set finetune.lr abc", &uc, err, sizeof err) < 0 && strstr(err, "'abc'"),
       "set with a bad number: %s", err);
    ok(command_parse("set finetune.lr -1", &uc, err, sizeof err) < 0, "a negative rate is refused");
    ok(command_parse("set ewc.lambda 5000", &uc, err, sizeof err) == 0 && uc.cmd.kind == CMD_SET_EWC &&
       uc.cmd.value == 5000.0, "set ewc.lambda 5000");
    ok(command_parse("set model.hidden 5", &uc, err, sizeof err) < 0 && strstr(err, "not 'model.hidden'"),
       "a key that cannot change during a run says so: %s", err);
    ok(command_parse("freeze layer.0-1", &uc, err, sizeof err) == 0 && uc.cmd.kind == CMD_FREEZE &&
       strcmp(uc.cmd.arg, "layer.0-1") == 0, "freeze layer.0-1");
    ok(command_parse("unfreeze all", &uc, err, sizeof err) == 0 && uc.cmd.kind == CMD_UNFREEZE,
       "unfreeze all");
    ok(command_parse("freeze layers.1", &uc, err, sizeof err) < 0 && strstr(err, "unknown part"),
       "freeze of an unknown part: %s", err);
    ok(command_parse("freeze layer.1-0", &uc, err, sizeof err) < 0 && strstr(err, "goes upward (layer.0-1)") &&
       !strstr(err, "63"), "a range backwards says so, not 'within 0..63': %s", err);
    ok(command_parse("freeze layer.40", &uc, err, sizeof err) == 0,
       "a layer beyond this model is the trainer's to refuse, with the model's range");
    ok(command_parse("freeze", &uc, err, sizeof err) < 0 && strstr(err, "which parts"),
       "freeze without parts: %s", err);
    ok(command_parse("set finetune.lr", &uc, err, sizeof err) < 0 && strstr(err, "usage"), "set without a value: usage");
    ok(command_parse("pause now", &uc, err, sizeof err) < 0 && strstr(err, "no arguments"), "pause takes no arguments");
    ok(command_parse("", &uc, err, sizeof err) < 0, "an empty line is refused with a hint");
    {
        char l[64] = "";
        size_t at = 0;
        const char *typed = "set finetune.lr 0.5";
        for (const char *q = typed; *q; q++)
            line_edit(l, sizeof l, &at, EDIT_INSERT, *q);
        line_edit(l, sizeof l, &at, EDIT_KILL_WORD, 0);
        for (const char *q = "1e-4"; *q; q++)
            line_edit(l, sizeof l, &at, EDIT_INSERT, *q);
        ok(!strcmp(l, "set finetune.lr 1e-4") && at == strlen(l), "Ctrl-W deletes the last word: %s", l);
        line_edit(l, sizeof l, &at, EDIT_HOME, 0);
        line_edit(l, sizeof l, &at, EDIT_RIGHT, 0);
        line_edit(l, sizeof l, &at, EDIT_RIGHT, 0);
        line_edit(l, sizeof l, &at, EDIT_RIGHT, 0);
        line_edit(l, sizeof l, &at, EDIT_DELETE, 0);
        line_edit(l, sizeof l, &at, EDIT_INSERT, '_');
        line_edit(l, sizeof l, &at, EDIT_LEFT, 0);
        line_edit(l, sizeof l, &at, EDIT_BACKSPACE, 0);
        ok(!strcmp(l, "se_finetune.lr 1e-4") && at == 2, "Home, right, delete, insert, left, backspace: %s", l);
        line_edit(l, sizeof l, &at, EDIT_END, 0);
        line_edit(l, sizeof l, &at, EDIT_LEFT, 0);
        line_edit(l, sizeof l, &at, EDIT_LEFT, 0);
        line_edit(l, sizeof l, &at, EDIT_KILL_START, 0);
        ok(!strcmp(l, "-4") && at == 0, "Ctrl-U deletes back to the start: %s", l);
        l[0] = 0;
        at = 0;
        ok(line_edit(l, sizeof l, &at, EDIT_BACKSPACE, 0) == -1, "backspace on an empty line closes it");
        const char *parts[] = { "embeddings", "layer.0", "layer.1", "pooler", "classifier.new" };
        snprintf(l, sizeof l, "freeze layer.0 cl");
        ok(command_complete_parts(l, sizeof l, parts, 5) == 1 && !strcmp(l, "freeze layer.0 classifier.new"),
           "tab after freeze completes the model's part names: %s", l);
        snprintf(l, sizeof l, "unfreeze la");
        ok(command_complete_parts(l, sizeof l, parts, 5) == 2 && !strcmp(l, "unfreeze layer."),
           "to their common prefix when several match: %s", l);
        snprintf(l, sizeof l, "che");
        ok(command_complete_parts(l, sizeof l, parts, 5) == 2 && !strcmp(l, "checkpoint"),
           "and commands as before: %s", l);
    }
    snprintf(line, sizeof line, "set f");
    ok(command_complete(line, sizeof line) == 1 && strcmp(line, "set finetune.lr ") == 0, "tab: set f -> set finetune.lr");
    snprintf(line, sizeof line, "se");
    ok(command_complete(line, sizeof line) == 3 && strcmp(line, "set ") == 0, "tab: se -> set (three keys to choose)");
    snprintf(line, sizeof line, "set p");
    ok(command_complete(line, sizeof line) == 1 && strcmp(line, "set policy.") == 0, "tab: set p -> set policy.");

    /* :set policy.NAME VALUE: the value's type is the policy's to check */
    ok(command_parse("set policy.every 100", &uc, err, sizeof err) == 0 && uc.kind == UC_TRAINER &&
       uc.cmd.kind == CMD_SET_POLICY && strcmp(uc.cmd.arg, "every") == 0 && strcmp(uc.cmd.text, "100") == 0,
       "set policy.every 100");
    ok(command_parse("set policy.note  hello there  ", &uc, err, sizeof err) == 0 &&
       uc.cmd.kind == CMD_SET_POLICY && strcmp(uc.cmd.text, "hello there") == 0,
       "a policy value keeps its inner blanks ('%s')", uc.cmd.text);
    ok(command_parse("set policy.flag true", &uc, err, sizeof err) == 0 && strcmp(uc.cmd.text, "true") == 0,
       "set policy.flag true");
    ok(command_parse("set policy. 5", &uc, err, sizeof err) < 0 && strstr(err, "which parameter"),
       "set policy. without a name: %s", err);
    ok(command_parse("set policy.a-b 5", &uc, err, sizeof err) < 0 && strstr(err, "not a policy parameter"),
       "a policy name with odd characters: %s", err);
    ok(command_parse("set policy.every", &uc, err, sizeof err) < 0 && strstr(err, "usage"),
       "set policy.every without a value: usage");
    ok(command_parse("set finetune.lr 1e-5 2", &uc, err, sizeof err) < 0 && strstr(err, "usage"),
       "a number takes one word");

    /* :checkpoint [NAME] */
    ok(command_parse("checkpoint", &uc, err, sizeof err) == 0 && uc.cmd.kind == CMD_CHECKPOINT &&
       uc.cmd.arg[0] == 0, "checkpoint: by step");
    ok(command_parse("checkpoint best-1_a", &uc, err, sizeof err) == 0 && uc.cmd.kind == CMD_CHECKPOINT &&
       strcmp(uc.cmd.arg, "best-1_a") == 0, "checkpoint best-1_a: kept as is");
    ok(command_parse("checkpoint ../x/é.y", &uc, err, sizeof err) == 0 &&
       strcmp(uc.cmd.arg, "___x____y") == 0, "checkpoint ../x/é.y: each byte outside the set is _ (%s)", uc.cmd.arg);
    ok(command_parse("checkpoint a b", &uc, err, sizeof err) < 0 && strstr(err, "usage: checkpoint [NAME]"),
       "checkpoint with two names: %s", err);
    char big[300], out[70];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    command_sanitise(big, out, 64);
    ok(strlen(out) == 63, "a long name is cut to fit (%zu)", strlen(out));
    command_sanitise("", out, sizeof out);
    ok(out[0] == 0, "an empty name stays empty");
    snprintf(line, sizeof line, "theme ");
    ok(command_complete(line, sizeof line) == 3 && strcmp(line, "theme ") == 0, "tab: theme offers three themes");
    snprintf(line, sizeof line, "theme l");
    ok(command_complete(line, sizeof line) == 1 && strcmp(line, "theme light") == 0, "tab: theme l -> theme light");
    snprintf(line, sizeof line, "xyz");
    ok(command_complete(line, sizeof line) == 0 && strcmp(line, "xyz") == 0, "tab: nothing to complete");
}

/* :fork, :follow and :compare; the branch list and the compare view. */
static void test_branches(void)
{
    UiCommand uc;
    char err[256];
    ok(command_parse("fork lower finetune.lr=1e-5 ewc.lambda=8000", &uc, err, sizeof err) == 0 &&
       uc.cmd.kind == CMD_FORK && strcmp(uc.cmd.arg, "lower") == 0 && uc.cmd.value < 0 &&
       strcmp(uc.cmd.text, "finetune.lr=1e-5 ewc.lambda=8000") == 0, "fork NAME KEY=VALUE...: now");
    ok(command_parse("fork early @40", &uc, err, sizeof err) == 0 && uc.cmd.kind == CMD_FORK &&
       uc.cmd.value == 40 && uc.cmd.text[0] == 0, "fork NAME @STEP: from that checkpoint");
    ok(command_parse("fork", &uc, err, sizeof err) < 0 && strstr(err, "usage: fork NAME"), "fork without a name: %s", err);
    ok(command_parse("fork a/b", &uc, err, sizeof err) < 0 && strstr(err, "letters, digits"), "a bad name: %s", err);
    ok(command_parse("fork main", &uc, err, sizeof err) < 0, "main cannot be forked into");
    ok(command_parse("fork x lr", &uc, err, sizeof err) < 0 && strstr(err, "expected KEY=VALUE"),
       "an override without '=': %s", err);
    ok(command_parse("fork x @-3", &uc, err, sizeof err) < 0 && strstr(err, "@STEP"), "a bad step: %s", err);
    ok(command_parse("follow lower", &uc, err, sizeof err) == 0 && uc.cmd.kind == CMD_FOLLOW &&
       strcmp(uc.cmd.arg, "lower") == 0, "follow NAME");
    ok(command_parse("follow", &uc, err, sizeof err) < 0, "follow needs a name");
    ok(command_parse("compare", &uc, err, sizeof err) == 0 && uc.kind == UC_COMPARE, "compare toggles the view");

    Snapshot s;
    Canvas c;
    fake_snapshot(&s);
    s.n_branches = 2;
    s.followed = 1;
    snprintf(s.branch, sizeof s.branch, "lower");
    for (int b = 0; b < 2; b++) {
        SnapBranch *sb = &s.branches[b];
        snprintf(sb->name, sizeof sb->name, "%s", b ? "lower" : "main");
        snprintf(sb->parent, sizeof sb->parent, "%s", b ? "main" : "");
        sb->fork_step = b ? 40 : -1;
        sb->state = b ? TS_RUNNING : TS_PAUSED;
        snprintf(sb->phase, sizeof sb->phase, "finetune");
        sb->step = 120;
        sb->total_steps = 400;
        sb->original_weight = 1;
        sb->n_hist = sb->cap_hist = s.n_hist;
        sb->hist = calloc((size_t)s.n_hist, sizeof *sb->hist);
        memcpy(sb->hist, s.hist, sizeof *sb->hist * (size_t)s.n_hist);
        /* the branch forgets less: a lower original loss at the end */
        for (int i = 0; i < sb->n_hist; i++) {
            sb->hist[i].new_task.loss = 0.3;
            sb->hist[i].original.loss = b ? 0.4 : 0.9;
            if (b && sb->hist[i].step > 40)
                sb->hist[i].original.acc = 0.9;
        }
    }
    BranchFigures f;
    branch_figures(&s.branches[1], &f);
    ok(f.has && f.step == 100 && near(f.original_acc, 0.9) && near(f.forgetting, 0.05) &&
       near(f.combined, 0.7) && f.crossover == 60, "a branch's figures: last evaluation, forgetting, combined");
    ok(branch_best(&s) == 1, "the best trade-off is the lowest combined metric");

    ScreenOptions o = { .view = VIEW_ACCURACY };
    canvas_init(&c, 100, 30, 1);
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, "tiny · lower · finetune") == 1, "the header names the followed branch");
    int list = canvas_has(&c, "branches (Tab");
    ok(list > 0 && canvas_has(&c, "main                          paused") == list + 1 &&
       canvas_has(&c, "lower            main@40      running") == list + 2,
       "the branch list: each branch's state, parent and fork step (row %d)", list);
    o.view = VIEW_COMPARE;
    screen_draw(&c, &s, &o);
    ok(canvas_has(&c, "compare branches") == 2, "v: the compare view takes the plot's place");
    int table = canvas_has(&c, "branch           forked from");
    char row[512];
    canvas_row(&c, table, row, sizeof row);
    int main_row = strstr(row, "  main ") != NULL;
    canvas_row(&c, table + 1, row, sizeof row);
    ok(table > 0 && main_row && strstr(row, "* lower            main@40") && strstr(row, "0.900") &&
       strstr(row, "0.7000"), "the table: every branch's figures, the best marked: %s", row);
    int colours[2] = { 0, 0 }, fork_mark = 0;
    for (int i = 0; i < c.w * c.h; i++) {
        for (int b = 0; b < 2; b++)
            colours[b] += c.cells[i].ch >= 0x2800 && c.cells[i].ch <= 0x28FF && c.cells[i].el == branch_element(b);
        fork_mark += c.cells[i].ch == 0x2442 && c.cells[i].el == branch_element(1);
    }
    ok(colours[0] > 5 && colours[1] > 5, "each branch's curves in its own colour (%d, %d cells)", colours[0], colours[1]);
    ok(fork_mark == 1, "the fork point is marked on the step axis");
    canvas_free(&c);

    /* 80x24: the per-layer panel gives its rows, so there is a plot; the
     * table's columns are shorter, none cut */
    canvas_init(&c, 80, 24, 1);
    screen_draw(&c, &s, &o);
    int braille = 0;
    for (int i = 0; i < c.w * c.h; i++)
        braille += c.cells[i].ch > 0x2800 && c.cells[i].ch <= 0x28FF;
    table = canvas_has(&c, "branch       from       state");
    row[0] = 0;
    if (table > 0)
        canvas_row(&c, table - 1, row, sizeof row);
    ok(braille > 10 && canvas_has(&c, "1.0") && !canvas_has(&c, "learning rate per layer"),
       "80x24: the compare view draws the curves (%d braille cells)", braille);
    ok(table > 0 && strstr(row, "forget  cross    comb"), "and a table whose every column fits: %s", row);
    canvas_row(&c, table + 1, row, sizeof row);
    ok(strstr(row, "* lower") && strstr(row, "0.7000"), "with the figures: %s", row);
    canvas_free(&c);

    /* two branches that end alike: their names on separate rows, and the
     * hidden one says whose curve covers it */
    for (int i = 0; i < s.branches[1].n_hist; i++)
        s.branches[1].hist[i] = s.branches[0].hist[i];
    canvas_init(&c, 120, 40, 1);
    screen_draw(&c, &s, &o);
    int r_low = canvas_has(&c, "lower=main"), r_main = 0;
    int plot_end = canvas_has(&c, "branch           forked from");
    for (int y = 1; y < plot_end && !r_main; y++) {
        canvas_row(&c, y, row, sizeof row);
        char *m = strstr(row, "main");
        if (m && (m == row || m[-1] != '='))
            r_main = y + 1;
    }
    ok(r_low > 0 && r_main > 0 && r_low != r_main,
       "identical curves: the names on separate rows, the hidden one reads lower=main (rows %d, %d)",
       r_main, r_low);
    canvas_free(&c);
    snapshot_free(&s);
}

/* ---- the mouse: screen_hit against what screen_draw drew ---- */

/* The model's parts: the embeddings frozen, n blocks at rates of their
 * own from frozen_below on (so a small panel joins them into ranges),
 * the pooler and the new head training. */
static void mouse_layers(Snapshot *s, int n_blocks, int frozen_below)
{
    int n = 0;
    snprintf(s->groups[n].name, sizeof s->groups[n].name, "embeddings");
    s->groups[n++].trainable = 0;
    for (int l = 0; l < n_blocks; l++, n++) {
        snprintf(s->groups[n].name, sizeof s->groups[n].name, "layer.%d", l);
        s->groups[n].trainable = l >= frozen_below;
        s->groups[n].lr = l >= frozen_below ? 2e-5 * pow(0.9, n_blocks - 1 - l) : 0;
        s->groups[n].drift = -1;
    }
    snprintf(s->groups[n].name, sizeof s->groups[n].name, "pooler");
    s->groups[n].trainable = 1, s->groups[n].lr = 2e-5, s->groups[n++].drift = -1;
    snprintf(s->groups[n].name, sizeof s->groups[n].name, "classifier.new");
    s->groups[n].trainable = 1, s->groups[n].lr = 2e-5, s->groups[n++].drift = -1;
    s->groups[0].drift = -1;
    s->n_groups = n;
}

static void mouse_branches(Snapshot *s, int n)
{
    static const char *names[] = { "main", "lower", "more-ewc", "gentle" };
    s->n_branches = n;
    s->followed = 0;
    for (int b = 0; b < n; b++) {
        SnapBranch *sb = &s->branches[b];
        memset(sb, 0, sizeof *sb);
        snprintf(sb->name, sizeof sb->name, "%s", names[b]);
        snprintf(sb->parent, sizeof sb->parent, "%s", b ? "main" : "");
        sb->fork_step = b ? 40 : -1;
        sb->state = TS_RUNNING;
        snprintf(sb->phase, sizeof sb->phase, "finetune");
        sb->step = 120;
        sb->total_steps = 400;
    }
}

/* The text of the box around cell (x, y) on its row: from the border on
 * its left to the one on its right, anything not ASCII as a blank. */
static void segment_at(const Canvas *c, int x, int y, char *out, size_t n)
{
    int a = x, b = x, k = 0;
    while (a > 0 && c->cells[y * c->w + a - 1].ch != 0x2502)
        a--;
    while (b < c->w - 1 && c->cells[y * c->w + b + 1].ch != 0x2502)
        b++;
    for (int i = a; i <= b && k + 1 < (int)n; i++) {
        uint32_t ch = c->cells[y * c->w + i].ch;
        out[k++] = ch < 0x80 ? (char)ch : ' ';
    }
    out[k] = 0;
}

/* The first word of text that is one of the branches' names, or -1. */
static int first_branch_named(const Snapshot *s, const char *text)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", text);
    for (char *save = NULL, *w = strtok_r(buf, " *", &save); w; w = strtok_r(NULL, " *", &save))
        for (int i = 0; i < s->n_branches; i++)
            if (strcmp(w, s->branches[i].name) == 0)
                return i;
    return -1;
}

/* What the per-layer panel calls groups first..last, worked out here on
 * its own: the group's name, or a range of blocks. */
static void layer_row_name(const Snapshot *s, ScreenHit h, char *out, size_t n)
{
    int a, b;
    const char *first = s->groups[h.index].name;
    if (h.index == h.last) {
        snprintf(out, n, "%s", first);
        return;
    }
    sscanf(s->groups[h.last].name, "layer.%d", &b);
    if (strcmp(first, "embeddings") == 0)
        snprintf(out, n, b ? "emb+layer.0-%d" : "emb+layer.%d", b);
    else if (sscanf(first, "layer.%d", &a) == 1 && a != b)
        snprintf(out, n, "layer.%d-%d", a, b);
    else
        snprintf(out, n, "layer.%d", b);
}

typedef struct {
    int branch_cells, layer_cells, log_cells, page_cells;
    int wrong;                 /* cells whose hit names another thing than drawn */
    int layer_rows, branch_rows;  /* rows with a hit of that kind */
    char first_wrong[160];
} HitCensus;

/* Hits every cell of a w×h screen and checks each against the drawing. */
static HitCensus hit_census(const Snapshot *s, const ScreenOptions *o, int w, int h)
{
    HitCensus k;
    Canvas c;
    char seg[512], want[64];
    memset(&k, 0, sizeof k);
    canvas_init(&c, w, h, 1);
    screen_draw(&c, s, o);
    for (int y = 0; y < h; y++) {
        int row_layer = 0, row_branch = 0;
        for (int x = 0; x < w; x++) {
            ScreenHit hit = screen_hit(w, h, s, o, x, y);
            int bad = 0;
            if (hit.kind == HIT_BRANCH) {
                k.branch_cells++;
                row_branch = 1;
                segment_at(&c, x, y, seg, sizeof seg);
                bad = first_branch_named(s, seg) != hit.index;
            } else if (hit.kind == HIT_LAYER) {
                k.layer_cells++;
                row_layer = 1;
                segment_at(&c, x, y, seg, sizeof seg);
                layer_row_name(s, hit, want, sizeof want);
                char drawn[64] = "";
                sscanf(seg, "%63s", drawn);
                bad = strcmp(drawn, want) != 0;
            } else if (hit.kind == HIT_LOG) {
                k.log_cells++;
            } else if (hit.kind == HIT_PAGE) {
                k.page_cells++;
            }
            if (bad && !k.wrong++)
                snprintf(k.first_wrong, sizeof k.first_wrong, "(%d,%d) hit %d:%d, drawn '%.100s'",
                         x, y, hit.kind, hit.index, seg);
        }
        k.layer_rows += row_layer;
        k.branch_rows += row_branch;
    }
    canvas_free(&c);
    return k;
}

/* Rows of the per-layer panel as drawn: between its borders, not the
 * "... N more" row. */
static int drawn_layer_rows(const Snapshot *s, const ScreenOptions *o, int w, int h)
{
    Canvas c;
    char row[2048];
    int n = 0;
    canvas_init(&c, w, h, 1);
    screen_draw(&c, s, o);
    int top = canvas_has(&c, "┌ learning rate per layer");
    for (int y = top; top && y < h; y++) {
        canvas_row(&c, y, row, sizeof row);
        if (strncmp(row, "└", 3) == 0 || strncmp(row, "┌", 3) == 0 || strncmp(row, "├", 3) == 0)
            break;
        n += !strstr(row, "... ");
    }
    canvas_free(&c);
    return n;
}

/* Rows drawn for a branch, wherever: each says its state, and only they
 * say "running" below the header. */
static int drawn_branch_rows(const Snapshot *s, const ScreenOptions *o, int w, int h)
{
    Canvas c;
    char row[2048];
    int n = 0;
    canvas_init(&c, w, h, 1);
    screen_draw(&c, s, o);
    for (int y = 1; y < h; y++) {
        canvas_row(&c, y, row, sizeof row);
        n += strstr(row, " running") != NULL;
    }
    canvas_free(&c);
    return n;
}

static void test_mouse_hits(void)
{
    static const int sizes[][2] = { { 80, 24 }, { 120, 40 } };
    static const int blocks[] = { 2, 12, 24 };
    for (size_t si = 0; si < 2; si++)
        for (size_t bi = 0; bi < 3; bi++)
            for (int nb = 0; nb <= 3; nb += 3) {
                int w = sizes[si][0], h = sizes[si][1];
                Snapshot s;
                ScreenOptions o = { .view = VIEW_ACCURACY };
                fake_snapshot(&s);
                mouse_layers(&s, blocks[bi], blocks[bi] / 2);
                mouse_branches(&s, nb);
                HitCensus k = hit_census(&s, &o, w, h);
                int rows = drawn_layer_rows(&s, &o, w, h);
                ok(k.wrong == 0 && k.layer_rows == rows && rows >= 2 && k.log_cells > 0 &&
                   k.page_cells == 0,
                   "%dx%d, %d layers, %d branches: every layer row drawn is hit (%d of %d), and "
                   "names the groups hit%s%s", w, h, blocks[bi], nb, k.layer_rows, rows,
                   k.wrong ? ": " : "", k.first_wrong);
                int listed = drawn_branch_rows(&s, &o, w, h);
                ok(nb ? k.branch_rows == listed && listed >= 1 && k.wrong == 0 : k.branch_cells == 0,
                   "%dx%d, %d layers: %s (%d of %d rows)", w, h, blocks[bi],
                   nb ? "each branch row the list draws is hit as that branch" :
                        "no branch hits without branches", k.branch_rows, listed);
                snapshot_free(&s);
            }
}

static void test_mouse_modes(void)
{
    Snapshot s;
    ScreenOptions o = { .view = VIEW_COMPARE };
    Canvas c;
    fake_snapshot(&s);
    mouse_layers(&s, 12, 6);
    mouse_branches(&s, 3);
    /* comparing at 80x24: no per-layer panel; the table's rows are
     * branches too (the list's and the table's: two rows each) */
    HitCensus k = hit_census(&s, &o, 80, 24);
    int drawn = drawn_branch_rows(&s, &o, 80, 24);
    ok(k.layer_cells == 0 && k.branch_rows == drawn && drawn >= 4 && k.wrong == 0,
       "80x24 compare view: no layer hits; the list's and the table's rows hit their branch "
       "(%d of %d rows)%s", k.branch_rows, drawn, k.first_wrong);
    k = hit_census(&s, &o, 120, 40);
    drawn = drawn_branch_rows(&s, &o, 120, 40);
    ok(k.branch_rows == drawn && drawn == 6 && k.wrong == 0,
       "120x40 compare view: the list's and the table's rows (%d of %d)%s", k.branch_rows, drawn,
       k.first_wrong);

    /* a page over the run: nothing beneath it is hit */
    o.view = VIEW_ACCURACY;
    o.help = 1;
    k = hit_census(&s, &o, 80, 24);
    ok(k.page_cells == 80 * 22 && k.branch_cells + k.layer_cells + k.log_cells == 0,
       "the help page covers the run: only page hits (%d cells)", k.page_cells);
    o.help = 0;
    o.log_page = 1;
    k = hit_census(&s, &o, 120, 40);
    ok(k.page_cells == 120 * 38 && k.branch_cells + k.layer_cells + k.log_cells == 0,
       "the log page too (%d cells)", k.page_cells);
    o.log_page = 0;

    /* the log: its text is a log hit; header, footer, outside: nothing */
    canvas_init(&c, 80, 24, 1);
    screen_draw(&c, &s, &o);
    int log_y = canvas_has(&c, "eval finetune step 100") - 1;
    ok(log_y > 0 && screen_hit(80, 24, &s, &o, 10, log_y).kind == HIT_LOG,
       "the log's text is a log hit (row %d)", log_y);
    ok(screen_hit(80, 24, &s, &o, 5, 0).kind == HIT_NONE &&
       screen_hit(80, 24, &s, &o, 5, 23).kind == HIT_NONE &&
       screen_hit(80, 24, &s, &o, 80, 5).kind == HIT_NONE &&
       screen_hit(80, 24, &s, &o, -1, 5).kind == HIT_NONE,
       "the header, the footer and cells off the screen hit nothing");
    ok(screen_hit(40, 10, &s, &o, 5, 5).kind == HIT_NONE, "a screen too small hits nothing");
    canvas_free(&c);
    snapshot_free(&s);
}

/* A click on a layer offers the command that changes what its row shows,
 * in words freeze reads. */
static void test_mouse_layer_command(void)
{
    Snapshot s;
    UiCommand uc;
    char line[128], why[128], err[256];
    fake_snapshot(&s);
    ScreenHit h = { HIT_LAYER, 1, 1 };
    ok(screen_layer_command(&s, h, line, sizeof line, why, sizeof why) == 0 &&
       strcmp(line, "freeze layer.0") == 0, "a training block: %s", line);
    h.index = h.last = 0;
    ok(screen_layer_command(&s, h, line, sizeof line, why, sizeof why) == 0 &&
       strcmp(line, "unfreeze embeddings") == 0 && command_parse(line, &uc, err, sizeof err) == 0 &&
       uc.cmd.kind == CMD_UNFREEZE && strcmp(uc.cmd.arg, "embeddings") == 0,
       "the frozen embeddings: %s, which the command line takes", line);
    h.index = h.last = 2;
    ok(screen_layer_command(&s, h, line, sizeof line, why, sizeof why) < 0 &&
       strstr(why, "classifier.new"), "the head: nothing to offer (%s)", why);
    h.kind = HIT_LOG;
    ok(screen_layer_command(&s, h, line, sizeof line, why, sizeof why) < 0, "not a layer: refused");

    /* a row of joined blocks, and the embeddings joined to them */
    mouse_layers(&s, 24, 20);
    h = (ScreenHit){ HIT_LAYER, 1, 20 };
    ok(screen_layer_command(&s, h, line, sizeof line, why, sizeof why) == 0 &&
       strcmp(line, "unfreeze layer.0-19") == 0 && command_parse(line, &uc, err, sizeof err) == 0,
       "a frozen range: %s", line);
    h = (ScreenHit){ HIT_LAYER, 0, 20 };
    ok(screen_layer_command(&s, h, line, sizeof line, why, sizeof why) == 0 &&
       strcmp(line, "unfreeze embeddings layer.0-19") == 0 &&
       command_parse(line, &uc, err, sizeof err) == 0 && uc.cmd.kind == CMD_UNFREEZE,
       "emb+layer.0-19: %s", line);
    h = (ScreenHit){ HIT_LAYER, 20, 24 };
    ok(screen_layer_command(&s, h, line, sizeof line, why, sizeof why) == 0 &&
       strcmp(line, "freeze layer.19-23") == 0, "a range partly training: %s", line);
    h = (ScreenHit){ HIT_LAYER, 25, 25 };
    ok(screen_layer_command(&s, h, line, sizeof line, why, sizeof why) == 0 &&
       strcmp(line, "freeze pooler") == 0, "the pooler: %s", line);

    /* what a click on a drawn row offers names that row */
    Canvas c;
    ScreenOptions o = { .view = VIEW_ACCURACY };
    canvas_init(&c, 80, 24, 1);
    screen_draw(&c, &s, &o);
    int y = canvas_has(&c, "layer.0-19") - 1;
    h = screen_hit(80, 24, &s, &o, 4, y);
    ok(y > 0 && h.kind == HIT_LAYER &&
       screen_layer_command(&s, h, line, sizeof line, why, sizeof why) == 0 &&
       strstr(line, "layer.0-19") != NULL, "a click on the drawn layer.0-19 row offers: %s", line);
    canvas_free(&c);
    snapshot_free(&s);
}

int main(void)
{
    test_commands();
    test_branches();
    test_axes();
    test_braille();
    test_layout();
    test_drift_and_loss();
    test_deep_model();
    test_screen();
    test_log_wrap();
    test_log_page();
    test_colour_reduction();
    test_themes();
    test_log_scroll();
    test_mouse_hits();
    test_mouse_modes();
    test_mouse_layer_command();
    return tap_done();
}
