"""`ascbench metrics`: a small records file summarised as a table and as JSON; bad input exits 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ascendra.harness.cli.main  # noqa: F401  (registers the commands)
from ascendra.harness.cli.app import app
from ascendra.records import records_frame, write_records
from ascendra.request import Request, RequestSpec

runner = CliRunner()


@pytest.fixture
def records_path(tmp_path: Path) -> Path:
    finished = Request(RequestSpec(0, 0.0, prompt_tokens=8, output_tokens=3))
    finished.token_times, finished.first_scheduled, finished.finish_time = [0.5, 0.6, 0.7], 0.1, 0.7
    waiting = Request(RequestSpec(1, 0.2, prompt_tokens=8, output_tokens=2))
    path = tmp_path / "records.parquet"
    write_records(records_frame([finished, waiting]), path)
    return path


def test_json_summary(records_path: Path) -> None:
    result = runner.invoke(app, ["metrics", str(records_path), "--ttft-slo", "1.0", "--tbt-slo", "0.15", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["arrived"] == 2 and out["finished"] == 1 and out["unfinished"] == 1
    assert out["attainment"] == 0.5 and out["attainment_sarathi"] == 0.0  # median delay of (0.1, never) is inf
    assert out["sched_delay_p50"] is None  # infinite -> null
    for key in ("attainment_strict", "attainment_strict_p99", "attainment_distserve", "ttft_p99", "tbt_p99"):
        assert key in out


def test_ci_adds_percentile_intervals(records_path: Path) -> None:
    args = ["metrics", str(records_path), "--ttft-slo", "1.0", "--tbt-slo", "0.15", "--json", "--ci"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    # One TTFT (0.5 s) and two equal gaps (0.1 s): every interval collapses onto the value.
    assert out["ttft_p99_ci_low"] == out["ttft_p99_ci_high"] == pytest.approx(0.5)
    assert out["tbt_p50_ci_low"] == pytest.approx(0.1) and out["tbt_p99_ci_high"] == pytest.approx(0.1)


def test_table_summary(records_path: Path) -> None:
    result = runner.invoke(app, ["metrics", str(records_path), "--ttft-slo", "1", "--tbt-slo", "0.15"])
    assert result.exit_code == 0, result.output
    assert "attainment_distserve" in result.stdout and "throughput_tps" in result.stdout


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda p: [str(p.parent / "missing.parquet"), "--ttft-slo", "1", "--tbt-slo", "0.1"], "not found"),
        (lambda p: [str(p), "--ttft-slo", "0", "--tbt-slo", "0.1"], "TTFT SLO must be a positive"),
        (lambda p: [str(p), "--ttft-slo", "1", "--tbt-slo", "-2"], "TBT SLO must be a positive"),
    ],
)
def test_bad_input_is_one_line_exit_2(records_path: Path, make_args, message: str) -> None:
    result = runner.invoke(app, ["metrics", *make_args(records_path)])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_columns_and_unreadable_file(tmp_path: Path, records_path: Path) -> None:
    import pandas as pd

    partial = tmp_path / "partial.parquet"
    pd.read_parquet(records_path).drop(columns=["token_times"]).to_parquet(partial)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_text("not parquet")
    for path, message in ((partial, "lack columns: token_times"), (garbage, "cannot read records")):
        result = runner.invoke(app, ["metrics", str(path), "--ttft-slo", "1", "--tbt-slo", "0.1"])
        assert result.exit_code == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
