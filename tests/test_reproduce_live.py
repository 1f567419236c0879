"""Live experiments (`[options] live = true`): real engines, one point at a time, and only when named."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from ascendra.harness.cli.main import app  # noqa: E402
from baselines.vllm_engine import vllm_available  # noqa: E402

SIMULATED = """
id = "sim"
kind = "goodput"
[fixed]
num_requests = 20
[[grid]]
systems = ["vllm"]
workloads = ["sharegpt"]
[grid.workload.sharegpt]
values = [5]
"""

LIVE = """
id = "live"
kind = "engines"
[options]
live = true
reference = "{reference}"
[fixed]
instances = 1
num_requests = 6
ttft_slo = 1.0
tbt_slo = 0.2
[[grid]]
systems = [{systems}]
models = ["tiny"]
workloads = ["fixed:prompt=24,output=6"]
[grid.workload."fixed:prompt=24,output=6"]
values = [20, 1000]
"""
OURS = '{label = "ours", system = "sarathi", backend = "engine", chunk_size = 16}'
VLLM = '{label = "vLLM", system = "vllm", backend = "vllm-engine", max_batched_tokens = 512}'


def _specs(folder: Path) -> Path:
    folder.mkdir()
    (folder / "sim.toml").write_text(SIMULATED)
    with_vllm = vllm_available()
    systems = f"{VLLM}, {OURS}" if with_vllm else OURS
    (folder / "live.toml").write_text(LIVE.format(systems=systems, reference="vLLM" if with_vllm else "ours"))
    return folder


def _reproduce(which: str, specs: Path, out: Path) -> dict:
    result = CliRunner().invoke(app, ["reproduce", which, "--specs", str(specs), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_all_leaves_live_experiments_out(tmp_path: Path) -> None:
    specs, out = _specs(tmp_path / "specs"), tmp_path / "results"
    ran = _reproduce("all", specs, out)
    assert [e["id"] for e in ran["experiments"]] == ["sim"]
    assert not (out / "live").exists()
    assert "Not yet run: live." in (out / "README.md").read_text()


def test_a_live_experiment_runs_by_name_and_reports_throughput_latency_and_speed(tmp_path: Path) -> None:
    specs, out = _specs(tmp_path / "specs"), tmp_path / "results"
    ran = _reproduce("live", specs, out)
    (experiment,) = ran["experiments"]
    labels = ["vLLM", "ours"] if vllm_available() else ["ours"]
    assert experiment["points"] == experiment["computed"] == 2 * len(labels)
    table = pd.read_csv(out / "live" / "engines.csv")
    assert list(dict.fromkeys(table["label"])) == labels and table["rate"].tolist() == [20, 1000] * len(labels)
    assert (table["throughput_tps"] > 0).all() and (table["ttft_p99"] >= table["ttft_p50"]).all()
    speed = pd.read_csv(out / "live" / "speed.csv").set_index("label")
    assert speed.loc[labels[0], "ratio_to_reference"] == 1.0
    for label in labels:  # peak: the best rate's throughput, relative to the reference's
        assert speed.loc[label, "peak_tps"] == table[table["label"] == label]["throughput_tps"].max()
    summary = (out / "live" / "summary.md").read_text()
    assert f"Peak throughput relative to {labels[0]}" in summary and (out / "live" / "figure.png").exists()
    again = _reproduce("live", specs, out)  # resumes: nothing is measured twice
    assert again["experiments"][0]["computed"] == 0
