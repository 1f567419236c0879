"""Confidence intervals over seeds: a capacity from one seed moves by several percent, so results with several
seeds report the mean and a Student-t interval (the per-seed values are few and roughly normal), and ratios
between systems are taken per seed (paired: both systems saw the same workload sample) before averaging."""

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
    """A mean over ``n`` values and its two-sided confidence interval (``low == high == mean`` for one value)."""

    mean: float
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
