#!/usr/bin/env python3
"""Fits the polynomial behind gelu_forward/gelu_backward (src/layers.c) and
checks the whole float32 GELU against double erf.

    erfc(a) = exp(-a^2) * t * Q(t),  t = 1 / (1 + a/2),  a >= 0,

with Q of degree 8 fitted for least maximum RELATIVE error over
a in [0, 9.5] (below erfc(9.5) ~ 1e-41 the float result is 0 anyway) by
iteratively reweighted least squares. One expression covers the whole
range, so the loop has no branch and vectorises; exp(-a^2) is shared with
the GELU derivative's density term.

Needs numpy (Debian: /usr/bin/python3). Prints the C coefficients, then the
errors of a float32 emulation of the C code: the exp, the Horner
evaluation and every rounding as the C code does them.
"""
import math

import numpy as np

C_SCALE = 0.5
DEGREE = 8
A_MAX = 9.5


def fit(c=C_SCALE, deg=DEGREE, amax=A_MAX, iters=30):
    t = np.linspace(1.0 / (1.0 + c * amax), 1.0, 20000)
    a = (1.0 / t - 1.0) / c
    f = np.array([math.erfc(x) * math.exp(x * x) for x in a]) / t
    V = np.vander(t, deg + 1, increasing=True)
    w = np.ones_like(t)
    for _ in range(iters):
        W = w / f
        coef, *_ = np.linalg.lstsq(V * W[:, None], f * W, rcond=None)
        err = np.abs((V @ coef - f) / f)
        w = w * np.sqrt(err / err.max()) + 1e-12
        w /= w.mean()
    return coef, np.abs((V @ coef - f) / f).max()


f32 = np.float32


def exp_nonpos(x):
    """The C exp_nonpos: Cody-Waite reduction, degree-7 Taylor, 2^n."""
    lo = f32(-87.3)
    xc = np.maximum(x, lo)
    n = (xc * f32(1.4426950408889634) + f32(12582912.0)) - f32(12582912.0)
    r = (xc - n * f32(0.693145751953125)) - n * f32(1.428606765330187e-06)
    p = f32(1.0 / 5040)
    for k in (720, 120, 24, 6, 2, 1, 1):
        p = p * r + f32(1.0 / k)
    s = ((n.astype(np.int32) + 127) << 23).view(f32)
    return np.where(x > lo, p * s, f32(0.0))


def main():
    coef, rel = fit()
    print("fitted relative error of Q: %.2e" % rel)
    print("coefficients, constant term first:")
    print(",\n".join("    %.9ef" % c for c in coef))

    Q = [f32(c) for c in coef]
    x = np.concatenate([np.linspace(-13, 13, 400001),
                        np.linspace(-5, 5, 200001)]).astype(f32)
    # normal_cdf caps a at 9 so that its exponential needs no range checks
    a = np.minimum(np.abs(x) * f32(0.70710678118654752440), f32(9.0))
    t = f32(1.0) / (f32(1.0) + f32(C_SCALE) * a)
    q = Q[-1]
    for c in Q[-2::-1]:
        q = q * t + c
    ea = exp_nonpos(-(a * a))
    h = f32(0.5) * ea * t * q
    cdf = np.where(x < 0, h, f32(1.0) - h)
    gelu = f32(0.5) * x * (f32(2.0) * cdf)
    dgelu = cdf + x * (f32(0.3989422804014327) * ea)

    xd = x.astype(np.float64)
    cref = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in xd])
    gref = xd * cref
    dref = cref + xd * np.exp(-xd * xd / 2) / math.sqrt(2 * math.pi)
    xs = np.linspace(-87, 0, 100001).astype(f32)
    eref = np.exp(xs.astype(np.float64))
    print("exp_nonpos max rel error on [-87, 0]: %.2e"
          % np.max(np.abs(exp_nonpos(xs) - eref) / eref))
    print("gelu  max abs error: %.2e" % np.abs(gelu - gref).max())
    print("gelu  max error relative to max(|gelu|, 1e-3) (tests/test_layers): %.2e"
          % (np.abs(gelu - gref) / np.maximum(np.abs(gref), 1e-3)).max())
    print("gelu' max abs error: %.2e" % np.abs(dgelu - dref).max())


if __name__ == "__main__":
    main()
