#!/usr/bin/env python3
"""Fits the quadratic first guesses of `core/src/protocols/rsqrt.rs` and (with
`--reciprocal`) of `core/src/protocols/reciprocal.rs`'s eighth-octave variant (with
`--reciprocal --steps 4`, its quarter-octave one).

The normalization to 1/s of an octave (s = 4 for the inverse square root, 8 for the
reciprocal) leaves Y in C [2^(-1/s) (1 - du), 1) with C = 2 / (1 + 2^(-1/s)), where du is
the coarse thresholds' largest undershoot (1/256 for rsqrt, 2^-7 for the reciprocal). The
quadratic P(u) = d0 + d1 u + d2 u^2 in u = Y - 1 minimizes the largest relative error of
P(Y - 1) against Y^-1/2 (or 1/Y) there (Lawson's iteratively reweighted least squares,
which converges to the minimax fit). Prints C, the coefficients and the error.
"""
import sys

import numpy as np

recip = "--reciprocal" in sys.argv
steps, undershoot, power = (8, 2.0 ** -7, -1.0) if recip else (4, 1.0 / 256.0, -0.5)
if "--steps" in sys.argv:  # the reciprocal on quarter octaves: --reciprocal --steps 4
    steps = int(sys.argv[sys.argv.index("--steps") + 1])
c = 2.0 / (1.0 + 2.0 ** (-1.0 / steps))
lo, hi = c * 2.0 ** (-1.0 / steps) * (1.0 - undershoot), c
y = np.linspace(lo, hi, 40001)
u = y - 1.0
f = y ** power
a = np.vander(u, 3, increasing=True) / f[:, None]
w = np.full(len(y), 1.0 / len(y))
for _ in range(500):
    sw = np.sqrt(w)
    d, *_ = np.linalg.lstsq(a * sw[:, None], sw, rcond=None)
    e = a @ d - 1.0
    w = w * np.abs(e) + 1e-300
    w /= w.sum()
print("C =", repr(c))
print("D = [%.15e, %.15e, %.15e]" % tuple(d))
print("max relative error = %.3e" % np.max(np.abs(e)))
