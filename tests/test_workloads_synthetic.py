"""Synthetic length specs: parsing, ranges and the shape of each distribution."""

from __future__ import annotations

import numpy as np
import pytest

from ascendra.errors import UserError
from workloads.synthetic import SyntheticSpec, parse_synthetic, sample_synthetic


def test_parse() -> None:
    assert parse_synthetic("fixed:prompt=512,output=128") == SyntheticSpec("fixed", (512, 512), (128, 128))
    assert parse_synthetic("uniform:prompt=64-1024, output=16-512") == SyntheticSpec("uniform", (64, 1024), (16, 512))
    assert parse_synthetic("zipf:prompt=2048,output=8-512,theta=1.5") == SyntheticSpec("zipf", (1, 2048), (8, 512), 1.5)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("poisson:prompt=1,output=1", "unknown synthetic"),
        ("fixed:prompt=512", "missing output"),
        ("fixed:prompt=5-9,output=3", "one length"),
        ("uniform:prompt=64,output=3-4", "range LO-HI"),
        ("uniform:prompt=100-10,output=3-4", "1 <= LO <= HI"),
        ("fixed:prompt=0,output=3", "1 <= LO <= HI"),
        ("fixed:prompt=abc,output=3", "not a whole number"),
        ("fixed:prompt=5,output=3,theta=2", "unexpected parameter"),
        ("zipf:prompt=5,output=3,theta=-1", "theta must be a positive"),
        ("zipf:prompt=5,output=3,size=4", "unexpected parameter"),
    ],
)
def test_parse_errors(name: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_synthetic(name)


def test_uniform_covers_its_inclusive_range() -> None:
    spec = parse_synthetic("uniform:prompt=10-13,output=1-2")
    prompt, output = sample_synthetic(spec, 4000, np.random.default_rng(0))
    assert set(prompt.tolist()) == {10, 11, 12, 13} and set(output.tolist()) == {1, 2}
    assert abs(prompt.mean() - 11.5) < 0.1


def test_zipf_frequencies_follow_the_power_law() -> None:
    spec = parse_synthetic("zipf:prompt=5-104,output=1-10,theta=1.0")
    prompt, output = sample_synthetic(spec, 200_000, np.random.default_rng(1))
    assert prompt.min() >= 5 and prompt.max() <= 104 and output.max() <= 10
    counts = np.bincount(prompt - 5, minlength=100)
    # P(LO + r) ∝ 1 / (r + 1): the lowest length is twice as common as the next and four times the fourth.
    assert counts[0] / counts[1] == pytest.approx(2.0, rel=0.05)
    assert counts[0] / counts[3] == pytest.approx(4.0, rel=0.08)
    assert counts[0] / len(prompt) == pytest.approx(1 / np.sum(1 / np.arange(1, 101)), rel=0.02)
