"""Per-request latencies and throughput on hand-built records with hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ascendra.errors import UserError
from ascendra.metrics import latencies, tbt_gaps, throughput
from ascendra.records import RECORD_COLUMNS


def rec(
    arrival: float,
    tokens: list[float],
    output: int,
    finish: float | None,
    scheduled: float | None,
    dropped: bool = False,
    preemptions: int = 0,
    offload: float | None = None,
) -> dict[str, object]:
    return {
        "arrival": arrival,
        "prompt_tokens": 10,
        "output_tokens": output,
        "first_scheduled": scheduled,
        "token_times": tokens,
        "finish_time": finish,
        "dropped": dropped,
        "cancelled": False,
        "offloaded": offload is not None,
        "offload_time": offload,
        "instances": "lp0",
        "preemptions": preemptions,
    }


def frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    table.insert(0, "request_id", range(len(rows)))
    return table.reindex(columns=list(RECORD_COLUMNS))  # no SLO class columns: the run's SLOs


# 0 finished, 1 single-token, 2 dropped, 3 unfinished (2 of 5 tokens), 4 preempted (recompute stall of 1 s)
ROWS = [
    rec(0.0, [1.0, 1.1, 1.3, 1.6], 4, 1.6, 0.5),
    rec(1.0, [1.5], 1, 1.5, 1.2),
    rec(2.0, [], 3, None, None, dropped=True),
    rec(3.0, [3.4, 3.5], 5, None, 3.1),
    rec(4.0, [4.2, 4.3, 5.3, 5.4], 4, 5.4, 4.0, preemptions=1, offload=4.1),
]


def column(name: str) -> np.ndarray:
    return latencies(frame(ROWS)).requests[name].to_numpy()


def test_tbt_gaps_of_one_request() -> None:
    np.testing.assert_allclose(tbt_gaps([1.0, 1.1, 1.3, 1.6]), [0.1, 0.2, 0.3])
    assert tbt_gaps([2.0]).size == 0 and tbt_gaps([]).size == 0


def test_ttft_e2e_normalised_and_scheduling_delay() -> None:
    nan = math.nan
    np.testing.assert_allclose(column("ttft"), [1.0, 0.5, nan, 0.4, 0.2])
    np.testing.assert_allclose(column("e2e"), [1.6, 0.5, nan, nan, 1.4])
    np.testing.assert_allclose(column("normalized_latency"), [0.4, 0.5, nan, nan, 0.35])
    np.testing.assert_allclose(column("scheduling_delay"), [0.5, 0.2, nan, 0.1, 0.0])
    assert list(column("finished")) == [True, True, False, False, True]
    assert list(column("num_tokens")) == [4, 1, 0, 2, 4]


def test_tbt_statistics_per_request() -> None:
    nan = math.nan
    # Request 0: gaps 0.1, 0.2, 0.3; P99 at virtual index 0.99 * 2 = 1.98 -> 0.2 + 0.98 * 0.1.
    np.testing.assert_allclose(column("mean_tbt"), [0.2, nan, nan, 0.1, 0.4])
    np.testing.assert_allclose(column("max_tbt"), [0.3, nan, nan, 0.1, 1.0])
    np.testing.assert_allclose(column("p99_tbt"), [0.298, nan, nan, 0.1, 0.1 + 0.98 * 0.9])
    # TPOT only for finished multi-token requests.
    np.testing.assert_allclose(column("tpot"), [0.2, nan, nan, nan, 0.4])


def test_pooled_gaps_and_gaps_of_each_request() -> None:
    lat = latencies(frame(ROWS))
    np.testing.assert_allclose(lat.gaps, [0.1, 0.2, 0.3, 0.1, 0.1, 1.0, 0.1])
    np.testing.assert_allclose(lat.gaps_of(4), [0.1, 1.0, 0.1])
    assert lat.gaps_of(1).size == 0 and lat.gaps_of(2).size == 0


def test_p99_matches_numpy_on_random_requests() -> None:
    rng = np.random.default_rng(7)
    rows = []
    for i in range(200):
        times = list(i + np.cumsum(rng.exponential(0.05, int(rng.integers(1, 300)))))
        rows.append(rec(float(i), times, len(times), times[-1], float(i)))
    lat = latencies(frame(rows))
    for row, times in enumerate(r["token_times"] for r in rows):
        gaps = np.diff(times)
        expected = np.percentile(gaps, 99) if gaps.size else math.nan
        np.testing.assert_allclose(lat.requests["p99_tbt"][row], expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(lat.requests["max_tbt"][row], gaps.max() if gaps.size else math.nan)
    assert lat.gaps.size == sum(len(r["token_times"]) - 1 for r in rows)


def test_finish_of_dropped_request_does_not_count() -> None:
    lat = latencies(frame([rec(0.0, [], 2, 3.0, None, dropped=True)]))
    assert not lat.requests["finished"][0] and math.isnan(lat.requests["e2e"][0])


def test_missing_column_is_a_user_error() -> None:
    with pytest.raises(UserError, match="token_times"):
        latencies(frame(ROWS).drop(columns=["token_times"]))


def test_throughput_over_first_arrival_to_last_token() -> None:
    rate = throughput(latencies(frame(ROWS)))
    assert rate.span == pytest.approx(5.4)
    assert rate.requests_per_s == pytest.approx(3 / 5.4)  # finished: 0, 1, 4
    assert rate.tokens_per_s == pytest.approx(11 / 5.4)  # every emitted token, the unfinished one's included


def test_throughput_without_tokens_is_zero() -> None:
    rate = throughput(latencies(frame([rec(0.0, [], 2, None, None, dropped=True)])))
    assert (rate.span, rate.requests_per_s, rate.tokens_per_s) == (0.0, 0.0, 0.0)
