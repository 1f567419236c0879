"""Every experiment kind end to end on a few requests: its tables, figure and README section are written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from ascendra.harness.reproduce import load_spec, run_experiment

GRID = """
[fixed]
num_requests = 40
[[grid]]
name = "g"
axis = "rate"
systems = SYSTEMS
workloads = ["WORKLOAD"]
[grid.workload.WORKLOAD]
values = [30]
"""

CASES = {
    "offload": ('["ascendra"]', "sharegpt", ["offload"]),
    "fairness": ('["ascendra"]', "sharegpt", ["lengths", "ks"]),
    "admission": (
        '["vllm", {label = "vllm+ac", system = "vllm", admission_control = true}]',
        "sharegpt",
        ["admission"],
    ),
    "trace": ('["sarathi"]', "azure-code", ["timeline", "totals"]),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_kind_writes_tables_and_figure(kind: str, tmp_path: Path) -> None:
    systems, workload, tables = CASES[kind]
    text = f'id = "t-{kind}"\nkind = "{kind}"\n' + GRID.replace("SYSTEMS", systems).replace("WORKLOAD", workload)
    if kind == "trace":
        text = text.replace("num_requests = 40", 'num_requests = 40\narrival = "trace"')
    path = tmp_path / "spec.toml"
    path.write_text(text)
    outcome = run_experiment(load_spec(path), tmp_path / "out", False, 1, Console(quiet=True), quiet=True)
    for name in tables:
        assert len(pd.read_csv(outcome.folder / f"{name}.csv")) > 0
    assert (outcome.folder / "figure.png").stat().st_size > 0
    assert "|" in (outcome.folder / "summary.md").read_text()


def test_perf_model_kind(tmp_path: Path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text('id = "pm"\nkind = "perf-model"\n[options]\nrates = [4, 8]\nnum_requests = 60\n')
    outcome = run_experiment(load_spec(path), tmp_path / "out", False, 1, Console(quiet=True), quiet=True)
    metrics = pd.read_csv(outcome.folder / "metrics.csv")
    assert set(metrics["kind"]) <= {"prefill", "decode", "mixed"} and (metrics["test_r2"] > 0.5).all()
    assert (outcome.folder / "figure.png").stat().st_size > 0


BASELINES = """
id = "t-baselines"
kind = "baselines"
[options]
reference = ["sarathi"]
moves_at = {sharegpt = 30}
[fixed]
num_requests = 40
[[grid]]
name = "rate"
axis = "rate"
systems = ["sarathi", "distserve"]
workloads = ["sharegpt"]
[grid.workload.sharegpt]
values = [10, 30]
[[grid]]
name = "placement"
axis = "rate"
systems = [
  {label = "1P2D", system = "distserve", placement = "1P2D"},
  {label = "2P1D", system = "distserve", placement = "2P1D"},
]
workloads = ["sharegpt"]
[grid.workload.sharegpt]
values = [10, 30]
[[grid]]
name = "trace"
axis = "rate"
systems = ["distserve"]
workloads = ["azure-code"]
[grid.fixed]
arrival = "trace"
[grid.workload.azure-code]
values = [2.5]
"""


def test_baselines_kind_tabulates_capacities_variants_traces_and_kv_moves(tmp_path: Path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(BASELINES)
    outcome = run_experiment(load_spec(path), tmp_path / "out", False, 1, Console(quiet=True), quiet=True)
    caps = pd.read_csv(outcome.folder / "capacity.csv")
    assert set(caps["label"]) == {"sarathi", "distserve"} and set(caps["grid"]) == {"rate"}
    assert set(pd.read_csv(outcome.folder / "variants.csv")["label"]) == {"1P2D", "2P1D"}
    assert list(pd.read_csv(outcome.folder / "traces.csv")["workload"]) == ["azure-code"]
    moves = pd.read_csv(outcome.folder / "moves.csv")
    assert set(moves["label"]) >= {"distserve", "1P2D"} and (moves["kv_moves"] > 0).all()
    assert (moves["downtime_p50"] > 0).all() and moves["shown"].any()
    summary = (outcome.folder / "summary.md").read_text()
    assert "| sarathi |" in summary and "KV moves between instances" in summary and "azure-code" in summary
    assert (outcome.folder / "figure.png").stat().st_size > 0
