"""Capacity from sweeps (first-crossing rule) and by bisection."""

from __future__ import annotations

import math

import pytest

from ascendra.errors import UserError
from ascendra.metrics import capacity_from_sweep, search_capacity


def test_monotone_sweep_interpolates_between_bracketing_points() -> None:
    result = capacity_from_sweep([1, 2, 3, 4], [1.0, 0.95, 0.85, 0.5])
    assert result.status == "interpolated" and not result.non_monotone
    assert result.capacity == pytest.approx(2.5)  # 2 + (0.95 - 0.9) / (0.95 - 0.85)
    assert result.lower == (2.0, 0.95) and result.upper == (3.0, 0.85)


def test_unsorted_input_and_other_target() -> None:
    result = capacity_from_sweep([4, 1, 3, 2], [0.5, 1.0, 0.85, 0.95], target=0.6)
    assert result.capacity == pytest.approx(3 + (0.85 - 0.6) / (0.85 - 0.5))
    assert [r for r, _ in result.points] == [1.0, 2.0, 3.0, 4.0]


def test_non_monotone_sweep_uses_first_crossing_and_flags_it() -> None:
    result = capacity_from_sweep([1, 2, 3, 4, 5], [1.0, 0.95, 0.85, 0.92, 0.5])
    assert result.capacity == pytest.approx(2.5)
    assert result.non_monotone


def test_attainment_exactly_at_target_passes() -> None:
    result = capacity_from_sweep([1, 2], [0.9, 0.5])
    assert result.status == "interpolated" and result.capacity == pytest.approx(1.0)


def test_repeated_rates_are_averaged() -> None:
    result = capacity_from_sweep([1, 1, 2, 2], [1.0, 0.9, 0.8, 0.6])
    assert result.points == ((1.0, 0.95), (2.0, 0.7))
    assert result.capacity == pytest.approx(1.2)  # 1 + 0.05 / 0.25


def test_never_passing_sweep_is_below_range() -> None:
    result = capacity_from_sweep([5, 6], [0.8, 0.5])
    assert result.capacity is None and result.status == "below range"
    assert result.upper == (5.0, 0.8) and result.lower is None
    # A recovery after a failing first point is flagged, but capacity stays undetermined.
    assert capacity_from_sweep([5, 6], [0.8, 0.95]).non_monotone


def test_always_passing_sweep_is_at_least_the_highest_rate() -> None:
    result = capacity_from_sweep([5, 6, 7], [1.0, 0.99, 0.91])
    assert result.capacity == 7.0 and result.status == "at least"
    assert result.lower == (7.0, 0.91) and result.upper is None


@pytest.mark.parametrize(
    ("rates", "values", "target", "message"),
    [
        ([1, 2], [0.9], 0.9, "as many attainments as rates"),
        ([], [], 0.9, "at least one sweep point"),
        ([1, 2], [0.9, math.nan], 0.9, "finite"),
        ([1, 2], [0.9, 0.8], 1.5, "target must be in"),
    ],
)
def test_bad_sweeps_are_user_errors(rates: list, values: list, target: float, message: str) -> None:
    with pytest.raises(UserError, match=message):
        capacity_from_sweep(rates, values, target)


def test_search_on_a_step_function() -> None:
    calls: list[float] = []

    def step(rate: float) -> float:
        calls.append(rate)
        return 1.0 if rate <= 7.3 else 0.0

    result = search_capacity(step, lo=1.0, hi=20.0, tol=0.05)
    assert result.status == "interpolated"
    lower, upper = result.lower, result.upper
    assert lower is not None and upper is not None
    assert lower[0] <= 7.3 < upper[0] and upper[0] - lower[0] <= 0.05
    assert result.capacity == pytest.approx(7.3, abs=0.05)
    # lo, hi, then halve a 19-wide bracket to <= 0.05: ceil(log2(19 / 0.05)) = 9 midpoints, each evaluated once.
    assert len(calls) == 11 == len(set(calls)) == len(result.points)


def test_search_on_a_linear_function_is_exact() -> None:
    result = search_capacity(lambda r: 1.0 - r / 20.0, lo=1.0, hi=10.0, tol=0.5)
    assert result.capacity == pytest.approx(2.0)


def test_search_edges_and_errors() -> None:
    below = search_capacity(lambda r: 0.5, lo=1.0, hi=10.0)
    assert below.capacity is None and below.status == "below range" and len(below.points) == 1
    above = search_capacity(lambda r: 0.95, lo=1.0, hi=10.0)
    assert above.capacity == 10.0 and above.status == "at least"
    with pytest.raises(UserError, match="0 < lo < hi"):
        search_capacity(lambda r: 1.0, lo=5.0, hi=5.0)
    with pytest.raises(UserError, match="tolerance"):
        search_capacity(lambda r: 1.0, lo=1.0, hi=5.0, tol=0.0)
