#!/usr/bin/env python3
"""Fits the Fourier series used by the secure GeLU and tanh (core/src/protocols/{gelu,tanh}.rs).

The secure sine protocol needs a power-of-two period P (so the mask t is uniform in
Z_{2^p}, p = log2(P) + f). On the middle segment [-T, T]:

* GeLU(x) = 0.5 x + h(x), h(x) = 0.5 x erf(x / sqrt 2) is even, so h is fitted with
  cosines: h(x) ~ a_0 + sum_k a_k cos(2 pi k x / P).
* tanh(x) is odd: tanh(x) ~ sum_k b_k sin(2 pi k x / P).

Outside [-T, T] the protocols use the exact asymptotes (0 or x for GeLU, -1 or 1 for tanh).
Least squares on a dense grid of [-T, T] (the period P > 2T leaves room for the periodic
extension to turn around smoothly), refined by iteratively reweighted least squares toward
the minimax fit. Prints Rust constants and the error report.

Run: python3 scripts/fit_fourier.py   (needs numpy, scipy)
"""
import numpy as np
from scipy.special import erf


def fit(f, basis, T, P, K, iters=60):
    x = np.linspace(-T, T, 8001)
    A = np.stack([basis(k, x, P) for k in range(K + 1)], axis=1)
    y = f(x)
    w = np.ones_like(x)
    for _ in range(iters):
        c, *_ = np.linalg.lstsq(A * w[:, None], y * w, rcond=None)
        r = np.abs(A @ c - y)
        w = w * (r / r.max() + 1e-3) ** 0.5
        w /= w.mean()
    return c


def cosb(k, x, P):
    return np.cos(2 * np.pi * k * x / P)


def sinb(k, x, P):
    return np.sin(2 * np.pi * k * x / P) if k > 0 else np.zeros_like(x)


def gelu(x):
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def gelu_approx(c, T, P, x):
    mid = 0.5 * x + sum(c[k] * cosb(k, x, P) for k in range(len(c)))
    return np.where(x < -T, 0.0, np.where(x >= T, x, mid))


def tanh_approx(c, T, P, x):
    mid = sum(c[k] * sinb(k, x, P) for k in range(len(c)))
    return np.where(x < -T, -1.0, np.where(x >= T, 1.0, mid))


def report(name, g, ref):
    out = {}
    for lo, hi in [(-1, 1), (-5, 5), (-10, 10), (-64, 64)]:
        x = np.linspace(lo, hi, 200001)
        e = np.abs(g(x) - ref(x))
        out[(lo, hi)] = (e.mean(), e.max())
        print(f"  {name} on [{lo},{hi}]: mean |err| {e.mean():.2e}, max |err| {e.max():.2e}")
    return out


def rust(name, c):
    body = ", ".join(f"{v:.12e}" for v in c)
    return f"pub const {name}: [f64; {len(c)}] = [{body}];"


if __name__ == "__main__":
    T, P, K = 4.0, 16.0, 6
    h = lambda x: 0.5 * x * erf(x / np.sqrt(2))
    cg = fit(h, cosb, T, P, K)
    print(f"GeLU: T = {T}, P = {P}, K = {K} cosines (+ constant)")
    report("gelu", lambda x: gelu_approx(cg, T, P, x), gelu)
    print(rust("GELU_COS", cg))

    Tt, Pt, Kt = 4.5, 16.0, 8
    ct = fit(np.tanh, sinb, Tt, Pt, Kt)
    print(f"tanh: T = {Tt}, P = {Pt}, K = {Kt} sines")
    report("tanh", lambda x: tanh_approx(ct, Tt, Pt, x), np.tanh)
    print(rust("TANH_SIN", ct))
