"""Confidence intervals. Over seeds: a capacity from one seed moves by several percent, so results with several
seeds report the mean and a Student-t interval (the per-seed values are few and roughly normal), and ratios
between systems are taken per seed (paired: both systems saw the same workload sample) before averaging. Over
requests: a latency percentile (a P99 TTFT) has no normal sampling law, so its interval is a bootstrap (scipy's
``bootstrap``, percentile method, seeded so a table repeats)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ascendra.errors import UserError

CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class Interval:
    """An estimate from ``n`` values (a mean, a ratio, a percentile) and its two-sided confidence interval
    (``low == high == estimate`` for one value)."""

    estimate: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean and Student-t interval ``mean +- t_{(1+c)/2, n-1} * s / sqrt(n)`` of finite ``values``."""
    x = np.asarray(values, dtype=float)
    if x.size == 0 or not np.isfinite(x).all():
        raise UserError(f"an interval needs finite values, got {list(values)!r}")
    if not 0 < confidence < 1:
        raise UserError(f"confidence must be in (0, 1), got {confidence}")
    mean = float(x.mean())
    if x.size == 1:
        return Interval(mean, mean, mean, 1, confidence)
    half = float(stats.t.ppf((1 + confidence) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return Interval(mean, mean - half, mean + half, int(x.size), confidence)


def paired_ratio_ci(reference: Sequence[float], other: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Interval of ``reference / other`` taken seed by seed (the two sequences are per-seed capacities, in the same
    seed order)."""
    if len(reference) != len(other):
        raise UserError(f"paired ratios need one value per seed on both sides, got {len(reference)} and {len(other)}")
    if any(not (o > 0) for o in other):
        raise UserError("paired ratios need positive denominators")
    return mean_ci([r / o for r, o in zip(reference, other, strict=True)], confidence)


def percentile_ci(values: Sequence[float] | np.ndarray, q: float, confidence: float = CONFIDENCE) -> Interval:
    """The ``q``-th percentile (0-100) of finite ``values`` and its bootstrap interval, computed exactly.

    The percentile bootstrap resamples the n values with replacement and takes the resamples' ``q``-th percentile
    (the k-th smallest, k = ceil(q n / 100)). Its distribution needs no Monte Carlo: the resample's k-th smallest
    is at most the j-th smallest value x_(j) exactly when at least k of the n draws fall at or below it, which is
    P(Binomial(n, j/n) >= k). The interval's ends are the order statistics where that distribution crosses
    (1 -+ confidence) / 2: the limit of scipy's ``bootstrap`` (percentile method) as resamples grow, without its
    sampling noise or its memory (a P99 over 400,000 token gaps takes milliseconds).
    """
    x = np.sort(np.asarray(values, dtype=float))
    if x.size == 0 or not np.isfinite(x).all():
        raise UserError("a percentile interval needs finite values")
    if not 0 <= q <= 100 or not 0 < confidence < 1:
        raise UserError(f"percentile must be in [0, 100] and confidence in (0, 1), got {q} and {confidence}")
    n = x.size
    k = max(1, math.ceil(q * n / 100))
    below = stats.binom.sf(k - 1, n, np.arange(1, n + 1) / n)  # P(resample's k-th smallest <= x_(j)), j = 1..n
    tail = (1 - confidence) / 2
    low = min(int(np.searchsorted(below, tail)), n - 1)
    high = min(int(np.searchsorted(below, 1 - tail)), n - 1)
    return Interval(float(np.percentile(x, q)), float(x[low]), float(x[high]), n, confidence)


def percentile_intervals(name: str, values: np.ndarray, qs: Sequence[float] = (50.0, 90.0, 99.0)) -> dict[str, float]:
    """``{name}_p{q}_ci_low`` and ``..._ci_high`` for each percentile ``q`` of the finite ``values`` (NaN where
    there are none): the columns ``ascbench metrics --ci`` adds beside the percentiles."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    out: dict[str, float] = {}
    for q in qs:
        ci = percentile_ci(finite, q) if finite.size else None
        out[f"{name}_p{q:g}_ci_low"] = ci.low if ci else math.nan
        out[f"{name}_p{q:g}_ci_high"] = ci.high if ci else math.nan
    return out
