"""Intervals over seeds, checked against hand computations with the tabulated t quantile."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ascendra.errors import UserError
from ascendra.metrics import combined_status, mean_ci, paired_ratio_ci, percentile_ci

T_975_2 = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom (tables: 4.303)
T_975_4 = 2.7764451051977987  # ... 4 degrees of freedom (tables: 2.776)


def test_interval_of_three_known_values_matches_the_hand_computation() -> None:
    ci = mean_ci([10.0, 12.0, 14.0])  # mean 12, sample sd 2
    half = T_975_2 * 2 / math.sqrt(3)
    assert (ci.estimate, ci.n) == (12.0, 3)
    assert ci.low == pytest.approx(12 - half, abs=1e-9) and ci.high == pytest.approx(12 + half, abs=1e-9)


def test_interval_of_five_seeds() -> None:
    ci = mean_ci([20.1, 20.5, 19.8, 20.9, 20.2])
    mean = 101.5 / 5
    sd = math.sqrt(sum((x - mean) ** 2 for x in (20.1, 20.5, 19.8, 20.9, 20.2)) / 4)
    assert ci.high - ci.estimate == pytest.approx(T_975_4 * sd / math.sqrt(5), abs=1e-9)


def test_one_value_is_its_own_interval() -> None:
    ci = mean_ci([7.5])
    assert (ci.estimate, ci.low, ci.high, ci.n) == (7.5, 7.5, 7.5, 1)


def test_paired_ratios_are_taken_seed_by_seed() -> None:
    ci = paired_ratio_ci([22.0, 24.0, 21.0], [20.0, 20.0, 20.0])  # ratios 1.10, 1.20, 1.05
    ratios = [1.10, 1.20, 1.05]
    mean = sum(ratios) / 3
    sd = math.sqrt(sum((r - mean) ** 2 for r in ratios) / 2)
    assert ci.estimate == pytest.approx(mean) and ci.low == pytest.approx(mean - T_975_2 * sd / math.sqrt(3))
    # Pairing matters: the same values in another seed order give another interval.
    assert paired_ratio_ci([24.0, 22.0, 21.0], [20.0, 22.0, 20.0]).estimate != pytest.approx(mean)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mean_ci([]), "finite values"),
        (lambda: mean_ci([1.0, math.nan]), "finite values"),
        (lambda: paired_ratio_ci([1.0, 2.0], [1.0]), "one value per seed"),
        (lambda: paired_ratio_ci([1.0], [0.0]), "positive"),
    ],
)
def test_bad_samples_are_refused(call, message: str) -> None:
    with pytest.raises(UserError, match=message):
        call()


def test_status_over_seeds_is_the_weakest_claim() -> None:
    assert combined_status(["interpolated", "interpolated"]) == "interpolated"
    assert combined_status(["interpolated", "at least"]) == "at least"
    assert combined_status(["at least", "below range", "interpolated"]) == "below range"


def test_percentile_interval_of_five_values_matches_the_binomial_hand_computation() -> None:
    # Median (k = 3 of 5): P(resample's 3rd smallest <= x_(j)) = P(Bin(5, j/5) >= 3) = .058, .317, .683, .942, 1;
    # an 80% interval cuts at .1 and .9: x_(2) and x_(4).
    ci = percentile_ci([5.0, 1.0, 4.0, 2.0, 3.0], 50, confidence=0.8)
    assert (ci.estimate, ci.low, ci.high, ci.n) == (3.0, 2.0, 4.0, 5)
    wide = percentile_ci([5.0, 1.0, 4.0, 2.0, 3.0], 50)  # 95%: .025 and .975 are crossed at x_(1) and x_(5)
    assert (wide.low, wide.high) == (1.0, 5.0)


@pytest.mark.parametrize("q", [50.0, 90.0, 99.0])
def test_percentile_interval_is_the_limit_of_the_resampled_bootstrap(q: float) -> None:
    x = np.random.default_rng(3).exponential(size=300)
    mc = stats.bootstrap(
        (x,),
        lambda s, axis: np.percentile(s, q, axis=axis, method="inverted_cdf"),
        n_resamples=20000,
        method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    ci = percentile_ci(x, q)
    order = np.sort(x)
    rank = lambda v: int(np.searchsorted(order, v))  # noqa: E731
    assert abs(rank(ci.low) - rank(mc.low)) <= 1 and abs(rank(ci.high) - rank(mc.high)) <= 1  # within 1 order stat
    assert ci.low <= ci.estimate <= ci.high


def test_percentile_interval_rejects_empty_or_infinite_values() -> None:
    with pytest.raises(UserError):
        percentile_ci([], 99)
    with pytest.raises(UserError):
        percentile_ci([1.0, math.inf], 99)
