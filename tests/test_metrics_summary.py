"""The summary row: hand-computed values, documented keys, and the Parquet round trip of real records."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ascendra.metrics import SLO, latencies, summarize
from ascendra.metrics.summary import ATTAINMENT_KEYS
from ascendra.records import read_records, records_frame, write_records
from ascendra.request import Request, RequestSpec


def request(
    rid: int,
    arrival: float,
    output: int,
    tokens: list[float],
    scheduled: float | None,
    finish: bool = True,
    **state: object,
) -> Request:
    """A live Request in the state a run would leave it in."""
    req = Request(RequestSpec(rid, arrival, prompt_tokens=16, output_tokens=output))
    req.token_times = list(tokens)
    req.first_scheduled = scheduled
    req.finish_time = tokens[-1] if finish and tokens else None
    for name, value in state.items():
        setattr(req, name, value)
    return req


def run_records():
    """0 finished; 1 single-token; 2 dropped; 3 unfinished; 4 preempted twice and offloaded."""
    return records_frame(
        [
            request(0, 0.0, 4, [1.0, 1.1, 1.3, 1.6], 0.5),
            request(1, 1.0, 1, [1.5], 1.2),
            request(2, 2.0, 3, [], None, finish=False, dropped=True),
            request(3, 3.0, 5, [3.4, 3.5], 3.1, finish=False),
            request(4, 4.0, 4, [4.2, 4.3, 5.3, 5.4], 4.0, preemptions=2, offload_time=4.1, instances=["lp0", "hp"]),
        ]
    )


SLO_ = SLO(ttft=0.6, tbt=0.25)


def test_counts() -> None:
    out = summarize(run_records(), SLO_)
    assert (out["arrived"], out["finished"], out["dropped"], out["unfinished"]) == (5, 3, 1, 1)
    assert (out["offloaded"], out["preempted"], out["preemptions"]) == (1, 1, 2)
    assert (out["ttft_slo"], out["tbt_slo"]) == (0.6, 0.25)


def test_attainment_keys() -> None:
    out = summarize(run_records(), SLO_)
    # TTFT <= 0.6: requests 1, 3, 4. Finished among them: 1 (single token) and 4 (gaps 0.1, 1.0, 0.1).
    assert out["attainment"] == pytest.approx(0.2)  # 1 passes; 4's mean TBT is 0.4
    assert out["attainment_strict"] == pytest.approx(0.2)
    assert out["attainment_distserve"] == pytest.approx(0.2)
    assert out["attainment_strict_p99"] == pytest.approx(0.2)
    out = summarize(run_records(), SLO(ttft=0.6, tbt=0.5))
    assert out["attainment"] == pytest.approx(0.4)  # now 4's mean TBT passes, its 1 s gap does not
    assert out["attainment_strict"] == pytest.approx(0.2)
    # Pooled gaps 0.1 0.2 0.3 0.1 0.1 1.0 0.1 -> P99 at index 5.94 = 0.3 + 0.94 * 0.7 > 0.5.
    assert out["attainment_sarathi"] == 0.0
    assert out["tbt_p99"] == pytest.approx(0.3 + 0.94 * 0.7)


def test_latency_percentiles_and_means() -> None:
    out = summarize(run_records(), SLO_)
    # TTFTs of requests with a first token: 1.0, 0.5, 0.4, 0.2.
    assert out["ttft_mean"] == pytest.approx(0.525)
    assert out["ttft_p50"] == pytest.approx(0.45)
    assert out["tbt_mean"] == pytest.approx(1.9 / 7)
    assert out["tbt_p50"] == pytest.approx(0.1)
    # Per-request mean TBT: 0.2, 0.1, 0.4 (requests with >= 2 tokens).
    assert out["req_mean_tbt_mean"] == pytest.approx(0.7 / 3)
    assert out["req_mean_tbt_p50"] == pytest.approx(0.2)
    assert out["e2e_mean"] == pytest.approx((1.6 + 0.5 + 1.4) / 3)
    assert out["normalized_latency_mean"] == pytest.approx((0.4 + 0.5 + 0.35) / 3)
    # Scheduling delays 0.5, 0.2, inf (dropped), 0.1, 0.0 -> median 0.2; mean over the scheduled four.
    assert out["sched_delay_p50"] == pytest.approx(0.2)
    assert out["sched_delay_mean"] == pytest.approx(0.2)
    assert out["span_s"] == pytest.approx(5.4)
    assert out["throughput_rps"] == pytest.approx(3 / 5.4)
    assert out["throughput_tps"] == pytest.approx(11 / 5.4)


def test_every_key_is_documented_and_stable() -> None:
    out = summarize(run_records(), SLO_)
    for key in out:
        assert f"`{key}`" in (summarize.__doc__ or ""), key
    assert set(ATTAINMENT_KEYS.values()) <= set(out)
    assert summarize(latencies(run_records()), SLO_) == out  # precomputed latencies give the same row


def test_parquet_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "records.parquet"
    write_records(run_records(), path)
    again = summarize(read_records(path), SLO_)
    expected = summarize(run_records(), SLO_)
    assert again.keys() == expected.keys()
    for key, value in expected.items():
        assert (math.isnan(value) and math.isnan(again[key])) or again[key] == value, key


def test_cancelled_requests_are_counted_apart_and_old_tables_read_without_the_column(tmp_path: Path) -> None:
    cancelled = request(5, 5.0, 8, [5.1, 5.2], 5.0, finish=False, cancelled=True)
    out = summarize(records_frame([cancelled]), SLO_)
    assert (out["arrived"], out["finished"], out["dropped"], out["cancelled"], out["unfinished"]) == (1, 0, 0, 1, 0)
    path = tmp_path / "old.parquet"
    write_records(run_records().drop(columns="cancelled"), path)  # written before requests could be cancelled
    assert not read_records(path)["cancelled"].any()
    assert summarize(read_records(path), SLO_)["cancelled"] == 0


def test_empty_run() -> None:
    out = summarize(records_frame([]), SLO_)
    assert out["arrived"] == 0 and math.isnan(out["attainment"]) and math.isnan(out["ttft_p99"])
    assert out["throughput_rps"] == 0.0
