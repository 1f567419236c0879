"""Attainment definitions: they disagree on a crafted run exactly where their TBT tests differ."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ascendra.errors import UserError
from ascendra.metrics import ATTAINMENT_DEFINITIONS, SLO, attained, attainment, latencies, sarathi_passes
from ascendra.records import RECORD_COLUMNS


def rec(arrival: float, tokens: list[float], finish: float | None, scheduled: float | None, **flags: object) -> dict:
    return {
        "request_id": 0,
        "arrival": arrival,
        "prompt_tokens": 10,
        "output_tokens": flags.get("output", len(tokens)),
        "first_scheduled": scheduled,
        "token_times": tokens,
        "finish_time": finish,
        "dropped": flags.get("dropped", False),
        "offloaded": False,
        "offload_time": None,
        "instances": "lp0",
        "preemptions": 0,
    }


def frame(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
    table["request_id"] = range(len(rows))
    return table


SLO_ = SLO(ttft=1.0, tbt=0.25)
SPIKY = list(0.5 + np.cumsum([0.0] + [0.1] * 99 + [0.5]))  # 101 tokens, 100 gaps: 99 x 0.1 and one 0.5

CRAFTED = [
    rec(0.0, SPIKY, SPIKY[-1], 0.1),  # A: mean and P99 gap fine, one gap over the SLO
    rec(0.0, [0.5, 0.6, 0.7], 1.5, 0.1),  # B: gaps fine, but finishes 0.8 s after its last token (TPOT 0.5)
    rec(0.0, [0.3], 0.3, 0.1),  # C: single token within TTFT
    rec(0.0, [1.5, 1.6], 1.6, 1.4),  # D: TTFT 1.5 > 1.0
    rec(0.0, [], None, None, dropped=True, output=4),  # E: dropped
    rec(0.0, [0.2, 0.3], None, 0.1, output=9),  # F: on time so far, unfinished
]


@pytest.mark.parametrize(
    ("definition", "verdicts"),
    [
        ("paper", [True, True, True, False, False, False]),
        ("strict", [False, True, True, False, False, False]),
        ("strict-p99", [True, True, True, False, False, False]),
        ("distserve", [True, False, True, False, False, False]),
    ],
)
def test_per_request_definitions_on_crafted_run(definition: str, verdicts: list[bool]) -> None:
    lat = latencies(frame(CRAFTED))
    assert list(attained(lat, SLO_, definition)) == verdicts
    assert attainment(lat, SLO_, definition) == pytest.approx(sum(verdicts) / len(CRAFTED))
    assert attainment(frame(CRAFTED), SLO_, definition) == attainment(lat, SLO_, definition)


def test_spiky_request_p99_is_below_slo_but_max_is_not() -> None:
    row = latencies(frame(CRAFTED)).requests.iloc[0]
    assert row["p99_tbt"] == pytest.approx(0.1 + 0.01 * 0.4)  # virtual index 98.01 between 0.1 and 0.5
    assert row["max_tbt"] == pytest.approx(0.5)


def test_sarathi_is_run_level_and_has_no_ttft_bound() -> None:
    # Every request misses TTFT (2 s > 1 s), but all gaps are 0.1 s and each was scheduled within 1.5 s.
    rows = [rec(float(i), [i + 2.0, i + 2.1, i + 2.2], i + 2.2, i + 1.5) for i in range(5)]
    lat = latencies(frame(rows))
    assert attainment(lat, SLO_, "paper") == 0.0
    assert sarathi_passes(lat, SLO_) and attainment(lat, SLO_, "sarathi") == 1.0


def test_sarathi_fails_on_pooled_tail_gap() -> None:
    # 99 gaps pooled over two requests, two of them 0.3 s: P99 (virtual index 97.02) lands on 0.3 > 0.25.
    first = list(np.cumsum([1.0] + [0.1] * 49 + [0.3]))
    second = list(np.cumsum([1.0] + [0.1] * 48 + [0.3]))
    lat = latencies(frame([rec(0.0, first, first[-1], 0.0), rec(0.0, second, second[-1], 0.0)]))
    assert attainment(lat, SLO_, "paper") == 1.0  # mean TBT is fine for both
    assert attainment(lat, SLO_, "sarathi") == 0.0
    assert attainment(lat, SLO(ttft=1.0, tbt=0.31), "sarathi") == 1.0


def test_sarathi_fails_on_median_scheduling_delay() -> None:
    late = [rec(0.0, [3.0], 3.0, 2.5), rec(0.0, [3.0], 3.0, 2.5), rec(0.0, [0.5], 0.5, 0.1)]
    assert attainment(frame(late), SLO(ttft=5.0, tbt=0.25), "sarathi") == 0.0
    # Never-scheduled requests count as infinitely delayed: two of three never ran.
    stuck = [rec(0.0, [], None, None), rec(0.0, [], None, None), rec(0.0, [0.5], 0.5, 0.1)]
    assert attainment(frame(stuck), SLO_, "sarathi") == 0.0
    mostly_served = [rec(0.0, [], None, None), rec(0.0, [0.5], 0.5, 0.1), rec(0.0, [0.5], 0.5, 0.1)]
    assert attainment(frame(mostly_served), SLO_, "sarathi") == 1.0


def test_registry_and_errors() -> None:
    assert set(ATTAINMENT_DEFINITIONS) == {"paper", "strict", "strict-p99", "distserve", "sarathi"}
    lat = latencies(frame(CRAFTED))
    with pytest.raises(UserError, match="unknown attainment definition 'p95'"):
        attainment(lat, SLO_, "p95")
    with pytest.raises(UserError, match="run-level"):
        attained(lat, SLO_, "sarathi")


@pytest.mark.parametrize(("ttft", "tbt"), [(0.0, 0.1), (1.0, -0.1), (math.nan, 0.1), (1.0, math.inf), (True, 0.1)])
def test_slo_must_be_positive(ttft: float, tbt: float) -> None:
    with pytest.raises(UserError, match="SLO must be a positive number"):
        SLO(ttft=ttft, tbt=tbt)


def test_empty_run_has_undefined_attainment() -> None:
    lat = latencies(frame([]))
    assert all(math.isnan(fn(lat, SLO_)) for fn in ATTAINMENT_DEFINITIONS.values())
