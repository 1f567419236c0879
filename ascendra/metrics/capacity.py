"""Capacity (goodput): the highest request rate at which attainment stays at or above a target (default 90%).

From a sweep, ``capacity_from_sweep`` applies this rule:

1. Points are sorted by rate; repeated rates (several seeds) are averaged into one point.
2. Scanning upward, the *first* rate whose attainment falls below the target ends the passing range. Capacity is
   the linear interpolation between the last passing point before it and that first failing point.

Why the first crossing and not the last: the definition is the rate up to which attainment *stays* above the
target, so every lower rate must pass. A dip followed by a recovery (noise from a single seed, or a policy that
sheds load in a way that happens to help) does not make the higher rate sustainable, and the first crossing does
not move when the sweep is extended further up. ``non_monotone`` flags sweeps where some rate above the first
failure passes again, so the caller can add seeds or points there instead of trusting either choice silently.

Edge cases: if the lowest rate already fails, capacity is None with status ``below range``; if every rate passes,
capacity is the highest rate with status ``at least`` (the true capacity is at least that).

``search_capacity`` finds the crossing by bisection when each point is an expensive simulation. It assumes
attainment is non-increasing in the rate and reports the interpolated rate within ``tol`` of the crossing.
``refine_capacity`` bisects a grid result's bracket the same way, so a capacity does not depend on which rates
the grid held (a 6.5 QPS point added to an integer grid should not move it by 5%).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd

from ascendra.errors import UserError

CapacityStatus = Literal["interpolated", "below range", "at least"]
Point = tuple[float, float]

DEFAULT_TARGET = 0.9


@dataclass(frozen=True, slots=True)
class CapacityResult:
    """A capacity estimate and the evidence for it.

    ``capacity`` is None only for ``below range``. ``lower`` is the last passing (rate, attainment) point and
    ``upper`` the first failing one (None where that side does not exist). ``points`` are all (rate, attainment)
    points used, ascending by rate for a sweep and in evaluation order for a search.
    """

    capacity: float | None
    status: CapacityStatus
    lower: Point | None
    upper: Point | None
    target: float
    non_monotone: bool = False
    points: tuple[Point, ...] = ()


def _check_target(target: float) -> None:
    if not (math.isfinite(target) and 0 < target <= 1):
        raise UserError(f"attainment target must be in (0, 1], got {target!r}")


def _interpolate(lower: Point, upper: Point, target: float) -> float:
    """Rate where the line through a passing and a failing point meets the target."""
    (r0, a0), (r1, a1) = lower, upper
    return r0 + (a0 - target) * (r1 - r0) / (a0 - a1)


def capacity_from_sweep(
    rates: Sequence[float], attainments: Sequence[float], target: float = DEFAULT_TARGET
) -> CapacityResult:
    """Capacity from (rate, attainment) sweep points under the first-crossing rule of the module docstring."""
    _check_target(target)
    rate = np.asarray(rates, dtype=float)
    value = np.asarray(attainments, dtype=float)
    if rate.ndim != 1 or rate.shape != value.shape:
        raise UserError(f"capacity needs as many attainments as rates, got {rate.size} and {value.size}")
    if rate.size == 0:
        raise UserError("capacity needs at least one sweep point")
    if not (np.isfinite(rate).all() and np.isfinite(value).all()):
        raise UserError("capacity needs finite rates and attainments (a sweep point has NaN or infinity)")
    grouped = pd.Series(value).groupby(rate).mean().sort_index()
    points = tuple((float(r), float(a)) for r, a in grouped.items())
    passing = grouped.to_numpy() >= target
    if passing.all():
        return CapacityResult(points[-1][0], "at least", points[-1], None, target, False, points)
    first_fail = int(np.argmin(passing))
    non_monotone = bool(passing[first_fail:].any())
    if first_fail == 0:
        return CapacityResult(None, "below range", None, points[0], target, non_monotone, points)
    lower, upper = points[first_fail - 1], points[first_fail]
    capacity = _interpolate(lower, upper, target)
    return CapacityResult(capacity, "interpolated", lower, upper, target, non_monotone, points)


def _measurer(evaluate: Callable[[float], float], points: list[Point]) -> Callable[[float], Point]:
    """``evaluate`` as (rate, attainment) points, each appended to ``points``; a NaN attainment is refused."""

    def measure(rate: float) -> Point:
        point = (float(rate), float(evaluate(rate)))
        if not math.isfinite(point[1]):
            raise UserError(f"attainment at rate {rate:g} is not a number")
        points.append(point)
        return point

    return measure


def search_capacity(
    evaluate: Callable[[float], float],
    lo: float,
    hi: float,
    target: float = DEFAULT_TARGET,
    tol: float = 0.05,
) -> CapacityResult:
    """Bisect the rate range [lo, hi] for the rate where ``evaluate(rate)`` (an attainment) crosses ``target``.

    Evaluates ``lo`` and ``hi`` first: a failing ``lo`` gives ``below range``, a passing ``hi`` gives
    ``at least`` (capacity ``hi``). Otherwise it halves the bracket until it is at most ``tol`` wide (rate units)
    and interpolates linearly inside it. Each rate is evaluated once.
    """
    _check_target(target)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise UserError(f"capacity search needs 0 < lo < hi, got lo={lo!r}, hi={hi!r}")
    if not (math.isfinite(tol) and tol > 0):
        raise UserError(f"capacity search tolerance must be positive, got {tol!r}")
    points: list[Point] = []
    measure = _measurer(evaluate, points)

    lower = measure(lo)
    if lower[1] < target:
        return CapacityResult(None, "below range", None, lower, target, False, tuple(points))
    upper = measure(hi)
    if upper[1] >= target:
        return CapacityResult(hi, "at least", upper, None, target, False, tuple(points))
    return _bisect(measure, lower, upper, target, tol, points)


def _bisect(
    measure: Callable[[float], Point], lower: Point, upper: Point, target: float, tol: float, points: list[Point]
) -> CapacityResult:
    """Halve a (passing, failing) bracket until it is at most ``tol`` wide, then interpolate inside it."""
    while upper[0] - lower[0] > tol:
        mid = measure((lower[0] + upper[0]) / 2)
        if mid[1] >= target:
            lower = mid
        else:
            upper = mid
    capacity = _interpolate(lower, upper, target)
    return CapacityResult(capacity, "interpolated", lower, upper, target, False, tuple(points))


def refine_capacity(evaluate: Callable[[float], float], grid: CapacityResult, tol: float = 0.05) -> CapacityResult:
    """Bisect a grid result's bracket (last passing, first failing rate) so the capacity does not depend on which
    rates the grid held; ``evaluate`` runs only the new midpoints. A result without a bracket is returned as is.
    ``points`` of the refined result are the midpoints, in evaluation order."""
    if not (math.isfinite(tol) and tol > 0):
        raise UserError(f"refinement tolerance must be positive, got {tol!r}")
    if grid.status != "interpolated" or grid.lower is None or grid.upper is None:
        return grid
    points: list[Point] = []
    measure = _measurer(evaluate, points)

    refined = _bisect(measure, grid.lower, grid.upper, grid.target, tol, points)
    return replace(refined, non_monotone=grid.non_monotone)


def combined_status(statuses: Sequence[CapacityStatus]) -> CapacityStatus:
    """The status of a capacity over seeds: the weakest claim any seed supports (one seed below the range makes
    the mean undefined; one seed that passed every rate makes the mean a lower bound)."""
    for status in ("below range", "at least"):
        if status in statuses:
            return status  # type: ignore[return-value]
    return "interpolated"
