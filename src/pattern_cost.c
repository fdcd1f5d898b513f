#include "pattern_cost.h"

/* Past the class that starts at p[i] ('%x', '[set]' or one character);
 * a malformed one ends at the pattern's end, the matcher reports it. */
static size_t class_end(const char *p, size_t lp, size_t i)
{
    if (p[i] == '%')
        return i + 2 <= lp ? i + 2 : lp;
    if (p[i] != '[')
        return i + 1;
    i++;
    if (i < lp && p[i] == '^')
        i++;
    do {                            /* a first ']' is a member */
        if (i >= lp)
            return lp;
        if (p[i] == '%')
            i++;
        i++;
    } while (i < lp && p[i] != ']');
    return i < lp ? i + 1 : lp;
}

double pattern_cost(const char *p, size_t lp, size_t n, int plain, int may_anchor)
{
    double m = (double)n;
    if (plain)
        return (m + 1) * ((double)lp + 1);
    size_t i = 0;
    int anchored = may_anchor && lp > 0 && p[0] == '^';
    int reps = 0, scans = 0;
    if (anchored)
        i = 1;
    while (i < lp) {
        char c = p[i];
        if (c == '(' || c == ')') {
            i++;
            continue;
        }
        if (c == '%' && i + 1 < lp && p[i + 1] == 'b') {
            scans++;
            i += 4;
            continue;
        }
        if (c == '%' && i + 1 < lp && p[i + 1] == 'f') {
            i += 2;
            if (i < lp)
                i = class_end(p, lp, i);
            continue;
        }
        if (c == '%' && i + 1 < lp && p[i + 1] >= '0' && p[i + 1] <= '9') {
            scans++;
            i += 2;
            continue;
        }
        i = class_end(p, lp, i);
        if (i < lp && (p[i] == '*' || p[i] == '+' || p[i] == '-' || p[i] == '?')) {
            reps++;
            i++;
        }
    }
    /* nodes by depth: C(m + d, d) of them at depth d */
    double nodes = 0, inner = 0, level = 1;
    for (int d = 0; d <= reps; d++) {
        if (d > 0)
            level = level * (m + d) / d;
        nodes += level;
        if (d < reps)
            inner += level;
    }
    double lpd = (double)lp + 1;
    double per_start = inner * (m + lpd) + nodes * (m * scans + lpd);
    return (anchored ? 1.0 : m + 1) * per_start;
}
