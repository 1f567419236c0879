"""`ascbench fit-perf-model` end to end on a small log: outputs, JSON keys, refusals with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import ascendra.harness.cli.main  # noqa: F401  (registers the commands)
from ascendra.harness.cli.app import app
from ascendra.perfmodel import PerfModel
from ascendra.perfmodel.log import write_log
from ascendra.perfmodel.synthetic_log import synthetic_log

runner = CliRunner()


def roofline_time(prefills, decodes) -> float:
    """A plausible closed-form executor: 5 ms fixed, 0.1 ms per token, 1 us per cached token read."""
    tokens = sum(c for c, _ in prefills) + len(decodes)
    keys = sum(p + c for c, p in prefills) + sum(decodes)
    return 0.005 + 1e-4 * tokens + 1e-6 * keys


@pytest.fixture()
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "log.csv"
    write_log(synthetic_log("tiny", "a100-80gb", roofline_time, per_kind=40, seed=0), path)
    return path


def test_fit_writes_coefficients_and_plot(log_path: Path, tmp_path: Path) -> None:
    out, plot = tmp_path / "pm.json", tmp_path / "fit.png"
    result = runner.invoke(app, ["fit-perf-model", str(log_path), "--out", str(out), "--plot", str(plot), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"model", "gpu", "tp", "seed", "kinds", "out", "plot"} <= set(report)
    assert set(report["kinds"]) == {"prefill", "decode", "mixed"}
    for kind in report["kinds"].values():
        assert {"r2", "rmse_ms", "mape_pct", "n"} <= set(kind["test"])
        assert kind["test"]["r2"] > 0.9
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"
    perf = PerfModel.from_file(out)
    assert (perf.model, perf.gpu, perf.tp) == ("tiny", "a100-80gb", 1)
    assert perf.predict_prefill(100) == pytest.approx(roofline_time([(100, 0)], []), rel=0.05)


def test_table_output_and_default_out_name(log_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["fit-perf-model", str(log_path)])
    assert result.exit_code == 0, result.output
    assert "prefill" in result.stdout and "MAPE" in result.stdout
    assert (tmp_path / "perf_model_tiny_a100-80gb_tp1.json").is_file()


def test_existing_outputs_need_force(log_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "pm.json"
    out.write_text("{}")
    result = runner.invoke(app, ["fit-perf-model", str(log_path), "--out", str(out)])
    assert result.exit_code == 2
    assert "--force" in result.stderr
    assert out.read_text() == "{}"
    assert runner.invoke(app, ["fit-perf-model", str(log_path), "--out", str(out), "--force"]).exit_code == 0
    assert PerfModel.from_file(out).model == "tiny"


def test_bad_inputs_exit_2(log_path: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    pd.read_csv(log_path).drop(columns=["seconds"]).to_csv(broken, index=False)
    bad_json = tmp_path / "bad_json.csv"
    frame = pd.read_csv(log_path)
    frame.loc[3, "prefills"] = "[[1,"
    frame.to_csv(bad_json, index=False)
    cases = [
        ([str(tmp_path / "missing.csv")], "does not exist"),
        ([str(broken)], "lacks column"),
        ([str(bad_json)], "row 3"),
        ([str(log_path), "--gpu", "h100-80gb"], "no rows with gpu"),
        ([str(log_path), "--plot", str(tmp_path / "fit.jpg")], ".png"),
        ([str(log_path), "--outlier-k", "0"], "outlier threshold"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["fit-perf-model", *args, "--out", str(tmp_path / "x.json")])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1


def test_parquet_logs_fit_too(log_path: Path, tmp_path: Path) -> None:
    parquet = tmp_path / "log.parquet"
    write_log(pd.read_csv(log_path), parquet)
    result = runner.invoke(app, ["fit-perf-model", str(parquet), "--out", str(tmp_path / "pm.json"), "--json"])
    assert result.exit_code == 0, result.output
    from_csv = runner.invoke(app, ["fit-perf-model", str(log_path), "--out", str(tmp_path / "pm2.json"), "--json"])
    assert json.loads(result.stdout)["kinds"] == json.loads(from_csv.stdout)["kinds"]
