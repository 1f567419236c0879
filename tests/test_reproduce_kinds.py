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


def _spec(kind: str, tmp_path: Path) -> Path:
    systems, workload, _ = CASES[kind]
    text = f'id = "t-{kind}"\nkind = "{kind}"\n' + GRID.replace("SYSTEMS", systems).replace("WORKLOAD", workload)
    if kind == "trace":
        text = text.replace("num_requests = 40", 'num_requests = 40\narrival = "trace"')
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("kind", sorted(CASES))
def test_kind_writes_tables_and_figure(kind: str, tmp_path: Path) -> None:
    outcome = run_experiment(
        load_spec(_spec(kind, tmp_path)), tmp_path / "out", False, 1, Console(quiet=True), quiet=True
    )
    for name in CASES[kind][2]:
        assert len(pd.read_csv(outcome.folder / f"{name}.csv")) > 0
    assert (outcome.folder / "figure.png").stat().st_size > 0
    assert "|" in (outcome.folder / "summary.md").read_text()


@pytest.mark.parametrize(("kind", "column"), [("offload", "attainment"), ("admission", "ttft_p99")])
def test_seeds_are_averaged(kind: str, column: str, tmp_path: Path) -> None:
    """``--seeds``: one point per seed, and the kind's table holds each variant's mean over them."""
    path = _spec(kind, tmp_path)
    path.write_text(path.read_text().replace("values = [30]", "values = [60]"))  # a load where seeds differ
    outcome = run_experiment(load_spec(path), tmp_path / "out", False, 1, Console(quiet=True), quiet=True, seeds=[1, 2])
    points = pd.read_csv(outcome.folder / "points.csv")
    assert sorted(points["seed"].unique()) == [1, 2]
    assert (points.groupby("label")[column].nunique() == 2).all()  # the seeds differ: the mean is a real one
    result = pd.read_csv(outcome.folder / f"{kind}.csv")
    assert (result["seeds"] == 2).all() and len(result) == len(points) // 2
    means = points.groupby("label", sort=False)[column].mean()
    assert sorted(result[column]) == pytest.approx(sorted(means), rel=1e-5)
    assert "Workload seeds 1,2" in (outcome.folder / "summary.md").read_text()


def test_fairness_pools_seeds_and_traces_ignore_them(tmp_path: Path) -> None:
    """Fairness tests the pooled requests of every seed; a trace replay (the same for any seed) runs once."""
    fair = run_experiment(
        load_spec(_spec("fairness", tmp_path)), tmp_path / "f", False, 1, Console(quiet=True), quiet=True, seeds=[1, 2]
    )
    ks = pd.read_csv(fair.folder / "ks.csv")
    assert (ks["n_all"] == 80).all() and (ks["seeds"] == 2).all()
    spec = load_spec(_spec("trace", tmp_path))
    assert len(spec.points(seeds=[1, 2, 3])) == len(spec.points()) and spec.seeds([1, 2, 3]) == [1]


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


def test_slo_classes_kind_reports_each_class_against_its_own_slos(tmp_path: Path) -> None:
    text = 'id = "t-classes"\nkind = "slo-classes"\n' + GRID.replace("SYSTEMS", '["vllm"]').replace(
        "WORKLOAD", "sharegpt"
    ).replace("num_requests = 40", 'num_requests = 40\nslo_classes = "tight:0.5:ttft=0.01;loose:0.5:ttft=50"')
    path = tmp_path / "spec.toml"
    path.write_text(text.replace("values = [30]", "values = [10, 20]"))
    outcome = run_experiment(load_spec(path), tmp_path / "out", False, 1, Console(quiet=True), quiet=True)
    classes = pd.read_csv(outcome.folder / "classes.csv")
    assert sorted(set(classes["slo_class"])) == ["loose", "overall", "tight"]
    by_class = classes.groupby("slo_class")["attainment"].mean()
    # No first token comes within 10 ms (a prefill takes longer); 50 s TTFT is met by every request.
    assert by_class["tight"] == 0.0 and by_class["loose"] == 1.0 and by_class["overall"] == pytest.approx(0.5)
    caps = pd.read_csv(outcome.folder / "capacity.csv").set_index("slo_class")
    assert caps.loc["loose", "status"] == "at least" and caps.loc["tight", "status"] != "at least"
    assert (outcome.folder / "figure.png").stat().st_size > 0
