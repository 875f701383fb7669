#!/usr/bin/env python3
"""Fits the quadratic first guess of `core/src/protocols/rsqrt.rs`.

On quarter octaves the normalized input is Y in C4 [2^(-1/4) (1 - 1/256), 1) with
C4 = 2 / (1 + 2^(-1/4)) (the 1/256 is the coarse thresholds' largest undershoot). The
quadratic P(u) = d0 + d1 u + d2 u^2 in u = Y - 1 minimizes the largest relative error of
P(Y - 1) against 1/sqrt(Y) there (Lawson's iteratively reweighted least squares, which
converges to the minimax fit). Prints the coefficients and the error.
"""
import numpy as np

C4 = 2.0 / (1.0 + 2.0 ** -0.25)
lo, hi = C4 * 2.0 ** -0.25 * (1.0 - 1.0 / 256.0), C4
y = np.linspace(lo, hi, 40001)
u = y - 1.0
f = y ** -0.5
a = np.vander(u, 3, increasing=True) / f[:, None]
w = np.full(len(y), 1.0 / len(y))
for _ in range(500):
    sw = np.sqrt(w)
    c, *_ = np.linalg.lstsq(a * sw[:, None], sw, rcond=None)
    e = a @ c - 1.0
    w = w * np.abs(e) + 1e-300
    w /= w.sum()
print("C4 =", repr(C4))
print("D = [%.15e, %.15e, %.15e]" % tuple(c))
print("max relative error = %.3e" % np.max(np.abs(e)))
