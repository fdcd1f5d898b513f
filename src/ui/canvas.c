#include "ui/canvas.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int canvas_init(Canvas *c, int w, int h, int utf8)
{
    c->w = w > 0 ? w : 0;
    c->h = h > 0 ? h : 0;
    c->utf8 = utf8;
    c->cells = calloc((size_t)c->w * (size_t)c->h + 1, sizeof *c->cells);
    if (!c->cells)
        return -1;
    canvas_clear(c);
    return 0;
}

void canvas_free(Canvas *c)
{
    free(c->cells);
    c->cells = NULL;
    c->w = c->h = 0;
}

void canvas_clear(Canvas *c)
{
    for (int i = 0; i < c->w * c->h; i++) {
        c->cells[i].ch = ' ';
        c->cells[i].el = EL_NORMAL;
    }
}

Cell *canvas_at(Canvas *c, int x, int y)
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h)
        return NULL;
    return &c->cells[y * c->w + x];
}

void canvas_put(Canvas *c, int x, int y, uint32_t ch, Element el)
{
    Cell *cell = canvas_at(c, x, y);
    if (!cell)
        return;
    if (ch >= 0x80 && !c->utf8)
        ch = '?';
    cell->ch = ch;
    cell->el = (uint8_t)el;
}

/* Decodes one UTF-8 sequence; returns its length (1 on a bad byte). */
static int utf8_next(const char *s, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) {
        *cp = u[0];
        return 1;
    }
    if ((u[0] & 0xE0) == 0xC0 && (u[1] & 0xC0) == 0x80) {
        *cp = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
        return 2;
    }
    if ((u[0] & 0xF0) == 0xE0 && (u[1] & 0xC0) == 0x80 && (u[2] & 0xC0) == 0x80) {
        *cp = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
        return 3;
    }
    *cp = '?';
    return 1;
}

int canvas_text(Canvas *c, int x, int y, int max_w, const char *s, Element el)
{
    int n = 0;
    if (max_w < 0)
        max_w = c->w - x;
    while (*s && n < max_w) {
        uint32_t cp;
        s += utf8_next(s, &cp);
        if (cp < 0x20)
            cp = ' ';
        canvas_put(c, x + n, y, cp, el);
        n++;
    }
    return n;
}

void canvas_box(Canvas *c, Rect r, const char *title, Element el)
{
    uint32_t hz = c->utf8 ? 0x2500 : '-', vt = c->utf8 ? 0x2502 : '|';
    uint32_t tl = c->utf8 ? 0x250C : '+', tr = c->utf8 ? 0x2510 : '+';
    uint32_t bl = c->utf8 ? 0x2514 : '+', br = c->utf8 ? 0x2518 : '+';
    if (r.w < 2 || r.h < 2)
        return;
    for (int x = r.x + 1; x < r.x + r.w - 1; x++) {
        canvas_put(c, x, r.y, hz, el);
        canvas_put(c, x, r.y + r.h - 1, hz, el);
    }
    for (int y = r.y + 1; y < r.y + r.h - 1; y++) {
        canvas_put(c, r.x, y, vt, el);
        canvas_put(c, r.x + r.w - 1, y, vt, el);
    }
    canvas_put(c, r.x, r.y, tl, el);
    canvas_put(c, r.x + r.w - 1, r.y, tr, el);
    canvas_put(c, r.x, r.y + r.h - 1, bl, el);
    canvas_put(c, r.x + r.w - 1, r.y + r.h - 1, br, el);
    if (title && *title && r.w > 6) {
        int n = canvas_text(c, r.x + 2, r.y, r.w - 5, title, EL_TITLE);
        canvas_put(c, r.x + 1, r.y, ' ', el);
        canvas_put(c, r.x + 2 + n, r.y, ' ', el);
    }
}

static int put_utf8(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

void canvas_row(const Canvas *c, int y, char *out, size_t n)
{
    size_t k = 0;
    if (n == 0)
        return;
    for (int x = 0; y >= 0 && y < c->h && x < c->w && k + 4 < n; x++)
        k += (size_t)put_utf8(c->cells[y * c->w + x].ch, out + k);
    out[k] = 0;
}

/* ---- axes ---- */

Axis axis_nice(double lo, double hi, int max_ticks)
{
    Axis a;
    if (max_ticks < 1)
        max_ticks = 1;
    if (!isfinite(lo) || !isfinite(hi)) {
        lo = 0;
        hi = 1;
    }
    if (hi < lo) {
        double t = lo;
        lo = hi;
        hi = t;
    }
    if (hi - lo < 1e-12) {
        double pad = fabs(lo) > 1e-12 ? fabs(lo) * 0.1 : 1;
        lo -= pad;
        hi += pad;
    }
    double raw = (hi - lo) / max_ticks;
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
    a.lo = floor(lo / step + 1e-9) * step;
    a.hi = ceil(hi / step - 1e-9) * step;
    /* floor/ceil can add an interval; one more step size keeps the count */
    if ((a.hi - a.lo) / step > max_ticks + 1e-9) {
        step = (f <= 1 ? 2 : f <= 2 ? 5 : 10) * mag;
        a.lo = floor(lo / step + 1e-9) * step;
        a.hi = ceil(hi / step - 1e-9) * step;
    }
    a.step = step;
    return a;
}

int axis_pixel(const Axis *a, double v, int n)
{
    if (n <= 1 || a->hi <= a->lo)
        return 0;
    double t = (v - a->lo) / (a->hi - a->lo);
    if (!(t >= 0))
        t = 0;
    if (t > 1)
        t = 1;
    return (int)lround(t * (n - 1));
}

/* ---- dot raster ---- */

int raster_init(Raster *r, int cw, int ch)
{
    r->cw = cw > 0 ? cw : 0;
    r->ch = ch > 0 ? ch : 0;
    r->dots = calloc((size_t)r->cw * (size_t)r->ch + 1, 1);
    r->el = calloc((size_t)r->cw * (size_t)r->ch + 1, 1);
    if (!r->dots || !r->el) {
        raster_free(r);
        return -1;
    }
    return 0;
}

void raster_free(Raster *r)
{
    free(r->dots);
    free(r->el);
    r->dots = r->el = NULL;
}

/* Braille dot numbering: column 0 holds dots 1,2,3,7; column 1 4,5,6,8. */
static const uint8_t dot_bit[4][2] = {
    { 0x01, 0x08 }, { 0x02, 0x10 }, { 0x04, 0x20 }, { 0x40, 0x80 },
};

void raster_dot(Raster *r, int x, int y, Element el)
{
    if (x < 0 || y < 0 || x >= 2 * r->cw || y >= 4 * r->ch)
        return;
    int i = (y / 4) * r->cw + x / 2;
    r->dots[i] |= dot_bit[y % 4][x % 2];
    r->el[i] = (uint8_t)el;
}

void raster_line(Raster *r, int x0, int y0, int x1, int y1, Element el)
{
    int dx = abs(x1 - x0), dy = -abs(y1 - y0);
    int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
        raster_dot(r, x0, y0, el);
        if (x0 == x1 && y0 == y1)
            break;
        int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

uint32_t braille_of(uint8_t bits)
{
    return 0x2800u + bits;
}

char ascii_of(uint8_t bits)
{
    int rows[4], n = 0, first = -1;
    for (int y = 0; y < 4; y++) {
        rows[y] = (bits & (dot_bit[y][0] | dot_bit[y][1])) != 0;
        if (rows[y]) {
            n++;
            if (first < 0)
                first = y;
        }
    }
    if (n == 0)
        return ' ';
    if (n >= 3)
        return '|';
    /* one row, or two: judged by the upper one */
    return first == 0 ? '\'' : first == 3 || (first == 2 && n == 2) ? '_' : '-';
}

void raster_blit(const Raster *r, Canvas *c, int x, int y)
{
    for (int cy = 0; cy < r->ch; cy++)
        for (int cx = 0; cx < r->cw; cx++) {
            int i = cy * r->cw + cx;
            if (!r->dots[i])
                continue;
            canvas_put(c, x + cx, y + cy,
                       c->utf8 ? braille_of(r->dots[i]) : (uint32_t)ascii_of(r->dots[i]),
                       (Element)r->el[i]);
        }
}

void axes_labels(Canvas *c, Rect p, int label_w, const Axis *xa, const Axis *ya)
{
    /* two decimals only where the ticks need them (0.25, …) */
    int decimals = fabs(ya->step * 10 - lround(ya->step * 10)) > 1e-6 ? 2 : 1;
    for (double v = ya->lo; v <= ya->hi + 1e-9; v += ya->step) {
        char lab[16];
        snprintf(lab, sizeof lab, "%4.*f", decimals, v);
        canvas_text(c, p.x - label_w, p.y + p.h - 1 - axis_pixel(ya, v, p.h), label_w - 1, lab, EL_AXIS);
    }
    /* ticks at multiples of the step, from the first one in range */
    double first = xa->step > 0 ? ceil(xa->lo / xa->step - 1e-9) * xa->step : xa->lo;
    if (first == 0)
        first = 0;             /* not -0 */
    for (double v = first; v <= xa->hi + 1e-9; v += xa->step) {
        char lab[24];
        int col = p.x + axis_pixel(xa, v, p.w);
        int len = snprintf(lab, sizeof lab, "%.0f", v);
        if (col + len > p.x + p.w)
            col = p.x + p.w - len;
        canvas_text(c, col, p.y + p.h, len, lab, EL_AXIS);
    }
}

void pen_to(Raster *r, Pen *p, int x, int y, int gap, Element el)
{
    if (!p->have)
        raster_dot(r, x, y, el);
    else if (gap <= 1)
        raster_line(r, p->x, p->y, x, y, el);
    else {
        int dx = x - p->x, dy = y - p->y;
        int n = abs(dx) > abs(dy) ? abs(dx) : abs(dy);
        for (int k = 0; k <= n; k += gap)
            raster_dot(r, n ? p->x + dx * k / n : x, n ? p->y + dy * k / n : y, el);
    }
    p->have = 1;
    p->x = x;
    p->y = y;
}
