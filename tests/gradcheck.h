/* Finite-difference gradient checks shared by the layer and model tests.
 *
 *   double loss(void *ctx);
 *       Recomputes a scalar loss from the current contents of the buffers
 *       that ctx points to (run the float forward, reduce in double).
 *
 *   GcResult gc_check(loss, ctx, x, g, n, opt);
 *       x[n] is one float tensor the loss reads; g[n] the analytic dL/dx.
 *       Entries of x are perturbed in place one at a time and restored bit
 *       for bit. The numeric derivative is the central difference
 *       (L(x+) - L(x-)) / (x+ - x-), where x+ and x- are the float values
 *       actually stored, so float rounding of the step costs nothing.
 *       The loss is evaluated once more at the end, so whatever it writes
 *       (activations, probabilities) matches the restored x on return.
 *       opt may be NULL for the defaults below.
 *
 *   double gc_rel_err(a, b, floor);
 *       |a - b| / max(|a| + |b|, floor): at most 1 once |a| + |b| passes
 *       the floor (1 for opposite signs), about half the relative error for
 *       close values, and |a - b| / floor near zero, so that tiny gradients
 *       do not turn rounding noise into huge ratios.
 *
 *   double gc_compare(a, b, n, floor);
 *       max gc_rel_err over two float arrays (e.g. accumulated gradients).
 *
 * Options (GcOpts): eps, the step (default 1e-3; with a float32 forward
 * and O(1) values, rounding of the outputs gives numeric derivatives an
 * absolute noise of about 1e-7 / eps, so 1e-2 is often the better trade
 * against the O(eps^2) truncation error); floor (default 1e-2, pick it
 * near 1-5% of the typical gradient size); max_checks, how many
 * entries to test (0 = default 64; all of them when n is not larger); seed
 * for the deterministic sample of indices (the first and last entry are
 * always included; sampled indices may repeat). */
#ifndef MNEME_GRADCHECK_H
#define MNEME_GRADCHECK_H

#include <math.h>
#include <stdint.h>

typedef double (*gc_loss_fn)(void *ctx);

typedef struct {
    double eps;
    double floor;
    long max_checks;
    uint64_t seed;
} GcOpts;

typedef struct {
    double max_rel;     /* worst gc_rel_err over the checked entries */
    double max_abs;     /* worst |analytic - numeric| */
    long worst;         /* index of the worst relative error */
    double analytic, numeric;   /* at worst */
    long checked;
} GcResult;

static inline double gc_rel_err(double a, double b, double min_den)
{
    double den = fabs(a) + fabs(b);
    if (den < min_den)
        den = min_den;
    return fabs(a - b) / den;
}

static inline double gc_compare(const float *a, const float *b, long n,
                                double min_den)
{
    double worst = 0.0;
    for (long i = 0; i < n; i++) {
        double e = gc_rel_err(a[i], b[i], min_den);
        /* Written so that a NaN counts as a failure. */
        if (!(e <= worst))
            worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

/* splitmix64: the sample of indices depends on nothing but the seed. */
static inline uint64_t gc_hash(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline double gc_numeric(gc_loss_fn f, void *ctx, float *x,
                                double eps)
{
    const float x0 = *x;
    const float xp = (float)(x0 + eps), xm = (float)(x0 - eps);
    *x = xp;
    const double lp = f(ctx);
    *x = xm;
    const double lm = f(ctx);
    *x = x0;
    return (lp - lm) / ((double)xp - (double)xm);
}

static inline GcResult gc_check(gc_loss_fn f, void *ctx, float *x,
                                const float *g, long n, const GcOpts *opt)
{
    const double eps = opt && opt->eps > 0 ? opt->eps : 1e-3;
    const double min_den = opt && opt->floor > 0 ? opt->floor : 1e-2;
    const long k = opt && opt->max_checks > 0 ? opt->max_checks : 64;
    uint64_t s = opt ? opt->seed : 0;
    GcResult r = {0.0, 0.0, -1, 0.0, 0.0, 0};
    const long count = n <= k ? n : k;
    for (long c = 0; c < count; c++) {
        long i;
        if (n <= k)
            i = c;
        else if (c == 0)
            i = 0;
        else if (c == 1)
            i = n - 1;
        else
            i = (long)(gc_hash(&s) % (uint64_t)n);
        const double num = gc_numeric(f, ctx, x + i, eps);
        const double rel = gc_rel_err(g[i], num, min_den);
        const double abs_err = fabs(g[i] - num);
        if (!(rel <= r.max_rel) || r.worst < 0) {
            r.max_rel = isnan(rel) ? INFINITY : rel;
            r.worst = i;
            r.analytic = g[i];
            r.numeric = num;
        }
        if (!(abs_err <= r.max_abs))
            r.max_abs = isnan(abs_err) ? INFINITY : abs_err;
        r.checked++;
    }
    /* Leaves the activations the loss wrote consistent with x again, so a
     * caller may go on to run a backward from them. */
    if (count > 0)
        f(ctx);
    return r;
}

#endif
