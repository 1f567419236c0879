"""Attainment per SLO class on a hand-built records table: each request judged against its own SLOs, each class
reported apart and every request overall; records round-trip their classes and older tables still read."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ascendra.harness.cli.main import app
from ascendra.metrics import SLO, attainment, summarize
from ascendra.metrics.attainment import class_attainment
from ascendra.metrics.window import summarize_window
from ascendra.records import RECORD_COLUMNS, read_records, write_records

RUN = SLO(ttft=1.0, tbt=0.15)
INTERACTIVE = ("interactive", 0.5, 0.05)
BATCH = ("batch", 5.0, 0.5)


def rec(i: int, cls: tuple[str, float, float], arrival: float, tokens: list[float], dropped: bool = False) -> dict:
    name, ttft, tbt = cls
    return {
        "request_id": i,
        "arrival": arrival,
        "prompt_tokens": 10,
        "output_tokens": max(1, len(tokens)) if not dropped else 3,
        "first_scheduled": None if dropped else arrival,
        "token_times": tokens,
        "finish_time": None if dropped else tokens[-1],
        "dropped": dropped,
        "cancelled": False,
        "offloaded": False,
        "offload_time": None,
        "instances": "gpu0",
        "preemptions": 0,
        "slo_class": name,
        "ttft_slo": ttft,
        "tbt_slo": tbt,
    }


# Own SLOs vs the run's (1.0 / 0.15 s), paper definition (TTFT and mean TBT):
ROWS = [
    rec(0, INTERACTIVE, 0.0, [0.4, 0.44, 0.48]),  # TTFT 0.4, mean 0.04: meets both
    rec(1, INTERACTIVE, 0.0, [1.2, 1.22]),  # TTFT 1.2: misses both
    rec(2, INTERACTIVE, 1.0, [1.1, 1.2, 1.3]),  # mean TBT 0.1: misses its own 0.05, meets the run's 0.15
    rec(6, INTERACTIVE, 3.0, [3.3, 3.34]),  # meets both
    rec(3, BATCH, 0.0, [3.0, 3.2, 3.8]),  # TTFT 3 <= 5, mean 0.4 <= 0.5 (largest gap 0.6: strict misses)
    rec(4, BATCH, 0.0, [], dropped=True),  # dropped: a miss under every definition
    rec(5, BATCH, 2.0, [6.0]),  # one token, TTFT 4 <= 5; the run's 1 s would miss it
]


def table(rows: list[dict] = ROWS) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(RECORD_COLUMNS))


def test_each_request_is_judged_against_its_own_slos_per_class_and_overall() -> None:
    records = table()
    assert attainment(records, RUN) == pytest.approx(4 / 7)  # 0, 6, 3, 5
    assert attainment(records, RUN, "strict") == pytest.approx(3 / 7)  # request 3's 0.6 s gap
    assert class_attainment(records, RUN) == pytest.approx({"batch": 2 / 3, "interactive": 2 / 4})
    assert class_attainment(records, RUN, "strict") == pytest.approx({"batch": 1 / 3, "interactive": 2 / 4})
    without = records.drop(columns=["slo_class", "ttft_slo", "tbt_slo"])
    assert attainment(without, RUN) == pytest.approx(3 / 7)  # 0, 2, 6 under the run's SLOs
    assert class_attainment(without, RUN) == {}


def test_the_summary_has_per_class_keys_next_to_the_overall_ones() -> None:
    s = summarize(table(), RUN)
    assert s["attainment"] == pytest.approx(4 / 7)
    assert (s["arrived[interactive]"], s["arrived[batch]"]) == (4, 3)
    assert s["attainment[interactive]"] == pytest.approx(0.5)
    assert s["attainment[batch]"] == pytest.approx(2 / 3)
    assert s["attainment_strict[batch]"] == pytest.approx(1 / 3)
    assert s["ttft_p99[batch]"] == pytest.approx(3.0 + 0.99 * 1.0)  # TTFTs 3 and 4 (the dropped has none)
    assert s["tbt_p99[interactive]"] == pytest.approx(0.1)  # gaps 0.04, 0.04, 0.02, 0.1, 0.1, 0.04
    assert (s["ttft_slo"], s["tbt_slo"]) == (1.0, 0.15)  # the run's
    plain = summarize(table().drop(columns=["slo_class", "ttft_slo", "tbt_slo"]), RUN)
    assert not [k for k in plain if "[" in k]


def test_sarathi_pools_gaps_as_shares_of_their_own_tbt_slo() -> None:
    """Gaps of 0.04 s under a 0.05 s SLO and 0.4 s under 0.5 s are all 80% of their SLO: the run passes, where
    pooled against the run's 0.15 s the 0.4 s gaps would fail it."""
    rows = [rec(0, INTERACTIVE, 0.0, [0.1, 0.14, 0.18]), rec(1, BATCH, 0.0, [0.2, 0.6, 1.0])]
    assert attainment(table(rows), RUN, "sarathi") == 1.0
    assert class_attainment(table(rows), RUN, "sarathi") == {"batch": 1.0, "interactive": 1.0}
    assert attainment(table(rows).drop(columns=["ttft_slo", "tbt_slo"]), RUN, "sarathi") == 0.0


def test_a_window_keeps_whole_run_counts_per_class(tmp_path: Path) -> None:
    """Warm-up 1 s leaves out the requests that arrived at 0 (0, 1, 3, 4): attainment per class is over the rest,
    ``arrived[C]`` stays the whole run's."""
    records = table()
    whole = summarize(records, RUN)
    windowed = summarize_window(records, RUN, whole, "1", "0")
    assert windowed["warmup_excluded"] == 4
    assert windowed["arrived[interactive]"] == 4
    assert windowed["attainment[interactive]"] == pytest.approx(1 / 2)  # 2 misses, 6 meets
    assert windowed["attainment[batch]"] == 1.0  # 5 meets


def test_records_round_trip_their_classes_and_older_tables_read_with_the_runs_slos(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    write_records(table(), path)
    back = read_records(path)
    assert back["slo_class"].tolist() == [r["slo_class"] for r in ROWS]
    assert back["ttft_slo"].tolist() == [r["ttft_slo"] for r in ROWS]
    old = tmp_path / "old.parquet"
    table().drop(columns=["slo_class", "ttft_slo", "tbt_slo"]).to_parquet(old, index=False)
    legacy = read_records(old)
    assert legacy["slo_class"].isna().all() and legacy["tbt_slo"].map(math.isnan).all()
    assert attainment(legacy, RUN) == pytest.approx(3 / 7)


def test_the_metrics_command_reports_per_class(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    write_records(table(), path)
    result = CliRunner().invoke(app, ["metrics", str(path), "--ttft-slo", "1", "--tbt-slo", "0.15", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["attainment[interactive]"] == pytest.approx(0.5)
    assert out["attainment[batch]"] == pytest.approx(2 / 3)
