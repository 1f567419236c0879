"""Intervals over seeds, checked against hand computations with the tabulated t quantile."""

from __future__ import annotations

import math

import pytest

from ascendra.errors import UserError
from ascendra.metrics import combined_status, mean_ci, paired_ratio_ci

T_975_2 = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom (tables: 4.303)
T_975_4 = 2.7764451051977987  # ... 4 degrees of freedom (tables: 2.776)


def test_interval_of_three_known_values_matches_the_hand_computation() -> None:
    ci = mean_ci([10.0, 12.0, 14.0])  # mean 12, sample sd 2
    half = T_975_2 * 2 / math.sqrt(3)
    assert (ci.mean, ci.n) == (12.0, 3)
    assert ci.low == pytest.approx(12 - half, abs=1e-9) and ci.high == pytest.approx(12 + half, abs=1e-9)


def test_interval_of_five_seeds() -> None:
    ci = mean_ci([20.1, 20.5, 19.8, 20.9, 20.2])
    mean = 101.5 / 5
    sd = math.sqrt(sum((x - mean) ** 2 for x in (20.1, 20.5, 19.8, 20.9, 20.2)) / 4)
    assert ci.high - ci.mean == pytest.approx(T_975_4 * sd / math.sqrt(5), abs=1e-9)


def test_one_value_is_its_own_interval() -> None:
    ci = mean_ci([7.5])
    assert (ci.mean, ci.low, ci.high, ci.n) == (7.5, 7.5, 7.5, 1)


def test_paired_ratios_are_taken_seed_by_seed() -> None:
    ci = paired_ratio_ci([22.0, 24.0, 21.0], [20.0, 20.0, 20.0])  # ratios 1.10, 1.20, 1.05
    ratios = [1.10, 1.20, 1.05]
    mean = sum(ratios) / 3
    sd = math.sqrt(sum((r - mean) ** 2 for r in ratios) / 2)
    assert ci.mean == pytest.approx(mean) and ci.low == pytest.approx(mean - T_975_2 * sd / math.sqrt(3))
    # Pairing matters: the same values in another seed order give another interval.
    assert paired_ratio_ci([24.0, 22.0, 21.0], [20.0, 22.0, 20.0]).mean != pytest.approx(mean)


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
