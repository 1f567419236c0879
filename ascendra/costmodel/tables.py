"""Turning a noisy measured curve into a small monotone piecewise-linear table.

GEMM time against token count is a staircase (a new wave of tiles starts past 64, 128, 256... tokens) on a
linear trend, so a fixed coarse grid misses the steps (up to ~20% off just past them). Instead every table
keeps the fewest measured points whose linear interpolation stays within ``REL_TOL`` of the (denoised)
full-resolution curve everywhere: a few dozen points per table.
"""

from __future__ import annotations

import math

import numpy as np

REL_TOL = 0.02  # max relative interpolation error of a compacted table against the full-resolution curve
ABS_TOL_MS = 5e-4  # ...or this many ms, whichever is larger (sub-microsecond differences are noise)
EXTEND_TO = 65536  # tables end here; past it the runtime continues the last segment


def isotonic(y: np.ndarray) -> np.ndarray:
    """Least-squares non-decreasing fit (pool adjacent violators): noise must never make more work cheaper."""
    blocks: list[list[float]] = []  # [mean, weight]
    for v in y.tolist():
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2 = blocks.pop()
            m1, w1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    return np.repeat([m for m, _ in blocks], [int(w) for _, w in blocks]).astype(float)


def sample(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Monotone ``y(x)`` at ``at``: interpolated inside, flat below, a fitted line (never lower) above.

    The line is a least-squares fit through the upper half of ``x``, where GEMMs and large all-reduces are
    throughput-bound and grow linearly."""
    y = isotonic(y)
    out = np.interp(at, x, y)
    above = at > x[-1]
    if above.any():
        upper = x >= x[-1] / 2
        slope, intercept = np.polyfit(x[upper], y[upper], 1)
        out[above] = np.maximum(intercept + slope * at[above], y[-1])
    return out


def simplify(x: np.ndarray, y: np.ndarray, rel_tol: float = REL_TOL, abs_tol: float = ABS_TOL_MS) -> list[int]:
    """Indices of the points to keep so interpolating between them stays within tolerance of every point.

    Greedy, one pass: each segment starts at the last kept point and is extended while its slope stays inside
    the cone of slopes that every point it spans allows."""
    n = len(x)
    keep = [0]
    i = 0
    while i < n - 1:
        lo, hi = -math.inf, math.inf
        best = i + 1
        for j in range(i + 1, n):
            dx = float(x[j] - x[i])
            slope = float(y[j] - y[i]) / dx
            if slope < lo or slope > hi:
                break
            best = j
            tol = max(rel_tol * float(y[j]), abs_tol)
            lo = max(lo, (float(y[j]) - tol - float(y[i])) / dx)
            hi = min(hi, (float(y[j]) + tol - float(y[i])) / dx)
        keep.append(best)
        i = best
    return keep


def compact_table(
    x: np.ndarray, y: np.ndarray, significant: int = 5, extend_to: int = EXTEND_TO
) -> tuple[list[int], list[float]]:
    """A measured curve (``x`` ascending, >= 1) as a compact monotone table from 1 up to ``extend_to``.

    Returns integer x and y rounded to ``significant`` digits (still non-decreasing)."""
    xs = np.unique(np.concatenate([x[x >= 1], [1.0, float(extend_to)]]).round())
    xs = xs[xs <= extend_to]
    ys = sample(x, y, xs)
    keep = simplify(xs, ys)
    rounded = [float(f"{v:.{significant}g}") for v in ys[keep].tolist()]
    rounded = np.maximum.accumulate(rounded).tolist()  # rounding must not undo monotonicity
    return [int(v) for v in xs[keep].tolist()], rounded
