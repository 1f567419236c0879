"""`ascbench profile` end to end: the log it writes, its JSON, and refusals with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ascendra.harness.cli.main  # noqa: F401  (registers the commands)
from ascendra.harness.cli.app import app
from ascendra.perfmodel.log import read_log

runner = CliRunner()
SMALL = ["--workload", "uniform:prompt=32-1000,output=8-200", "--num-requests", "60", "--rates", "4,8"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_profile_writes_a_log_and_reports_it(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"log{suffix}"
    result = runner.invoke(app, ["profile", *SMALL, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"path", "backend", "model", "gpu", "tp", "total_batches", "rows_per_kind", "runs", "wall_s"} <= set(report)
    log = read_log(out)
    assert report["path"] == str(out) and report["total_batches"] == len(log)
    assert report["rows_per_kind"] == {k: int((log["kind"] == k).sum()) for k in ("prefill", "decode", "mixed")}
    assert [(r["system"], r["rate"]) for r in report["runs"]] == [
        ("vllm", 4.0),
        ("vllm", 8.0),
        ("sarathi", 4.0),
        ("sarathi", 8.0),
    ]
    assert set(log["model"]) == {"llama-3.1-8b"} and set(log["tp"]) == {1}


def test_profile_table_output_and_fit_on_it(tmp_path: Path) -> None:
    out = tmp_path / "log.csv"
    result = runner.invoke(app, ["profile", *SMALL, "--systems", "sarathi", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "sarathi" in result.stdout and str(out.name) in result.stdout
    coef = tmp_path / "pm.json"
    fitted = runner.invoke(app, ["fit-perf-model", str(out), "--out", str(coef), "--json"])
    assert fitted.exit_code == 0, fitted.output
    assert json.loads(fitted.stdout)["kinds"]["decode"]["test"]["r2"] > 0.9


def test_profile_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "log.csv"
    out.write_text("keep me")
    args = ["profile", *SMALL, "--systems", "vllm", "--out", str(out), "--json"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2
    assert "exists; pass --force" in refused.stderr
    assert out.read_text() == "keep me"
    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    assert len(read_log(out)) == json.loads(forced.stdout)["total_batches"]
    assert [p.name for p in tmp_path.iterdir()] == ["log.csv"]  # no temporary file left behind


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--systems", "ascendra"], "cannot profile system 'ascendra' on one instance"),
        (["--rates", "0,2"], "rates must be positive"),
        (["--rates", "a:b"], "bad --rates"),
        (["--backend", "gpu-farm"], "unknown backend"),
        (["--model", "gpt-9"], "gpt-9"),
        (["--num-requests", "0"], "num-requests"),
        (["--systems", "nope"], "unknown system 'nope'"),
        (["--out", "log.txt"], "--out must name a .csv or .parquet"),
        (["--out", "missing-dir/log.csv"], "does not exist"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["profile", *SMALL, *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
