"""`ascbench reproduce` end to end on a tiny spec: outputs, resume (nothing recomputed), and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ascendra.errors import UserError
from ascendra.harness.cli.main import app
from ascendra.harness.reproduce.spec import load_spec

TINY = """
id = "tiny"
kind = "goodput"
title = "tiny"
about = "A tiny goodput grid."
[fixed]
num_requests = 30
[quick]
num_requests = 20
[[grid]]
name = "rate"
axis = "rate"
systems = ["vllm", {label = "asc", system = "ascendra"}]
workloads = ["sharegpt"]
[grid.workload.sharegpt]
values = [5, 10]
quick_values = [5]
[[grid]]
name = "scale"
axis = "slo_scale"
systems = ["sarathi"]
workloads = ["sharegpt"]
[grid.workload.sharegpt]
rate = 10
values = [0.5, 1.0]
"""


@pytest.fixture()
def specs(tmp_path: Path) -> Path:
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "tiny.toml").write_text(TINY)
    return folder


def _run(specs: Path, out: Path, *extra: str) -> dict:
    args = ["reproduce", "tiny", "--specs", str(specs), "--out", str(out), "--json", *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_runs_writes_outputs_and_resumes(specs: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    first = _run(specs, out, "--jobs", "2")["experiments"][0]
    assert (first["points"], first["computed"]) == (6, 6)
    folder = out / "tiny"
    points = pd.read_csv(folder / "points.csv")
    assert set(points["label"]) == {"vllm", "asc", "sarathi"}
    assert len(points) == 6 and points["attainment"].between(0, 1).all()
    scaled = points[points["axis"] == "slo_scale"].sort_values("value")
    assert scaled["ttft_slo"].tolist() == [0.5, 1.0]
    assert set(pd.read_csv(folder / "capacity.csv")["label"]) == {"vllm", "asc"}
    assert len(json.loads((folder / "configs.json").read_text())) == 6
    assert (folder / "figure.png").read_bytes()[:4] == b"\x89PNG"
    assert "## tiny" in (out / "README.md").read_text()

    again = _run(specs, out, "--jobs", "1")["experiments"][0]
    assert again["computed"] == 0
    pd.testing.assert_frame_equal(pd.read_csv(folder / "points.csv"), points)


def test_interrupted_point_is_recomputed_and_temp_files_ignored(specs: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    _run(specs, out, "--jobs", "1")
    cache = out / ".points"
    victim = sorted(cache.glob("*.json"))[0]
    victim.unlink()  # as if killed after the records but before the summary
    (cache / f".{victim.name}.tmp-999").write_text("{half")
    assert _run(specs, out, "--jobs", "1")["experiments"][0]["computed"] == 1


def test_quick_goes_to_its_own_folder(specs: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = _run(specs, out, "--quick", "--jobs", "1")["experiments"][0]
    assert result["points"] == 4  # the rate grid's one quick value, the scale grid's two values
    assert (out / "quick" / "tiny" / "points.csv").exists()
    assert not (out / "tiny").exists()
    summary = (out / "quick" / "tiny" / "summary.md").read_text()
    stated = "**Quick variant**, which replaces the above with: num_requests = 20; rate/sharegpt: values = [5]."
    assert stated in summary


def test_seeds_replace_the_specs_and_give_intervals(specs: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = _run(specs, out, "--quick", "--jobs", "1", "--seeds", "1-2")["experiments"][0]
    assert result["points"] == 8  # the quick grid's 4 points, once per seed
    caps = pd.read_csv(out / "quick" / "tiny" / "capacity.csv")
    assert (caps["seeds"] == 2).all() and {"ci_low", "ci_high"} <= set(caps.columns)
    assert "Workload seeds 1,2" in (out / "quick" / "tiny" / "summary.md").read_text()
    bad = CliRunner().invoke(app, ["reproduce", "tiny", "--specs", str(specs), "--out", str(out), "--seeds", "2-1"])
    assert bad.exit_code == 2 and "bad --seeds" in bad.output


def test_unknown_experiment_is_a_user_error(specs: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["reproduce", "nope", "--specs", str(specs), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown experiment 'nope'" in result.output


def test_bad_spec_option_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(TINY.replace("num_requests = 30", "num_reqs = 30"))
    with pytest.raises(UserError, match="num_reqs"):
        load_spec(path)


def test_shipped_specs_are_valid() -> None:
    from ascendra.harness.reproduce import load_specs

    specs = load_specs()
    assert "goodput" in specs
    for spec in specs.values():
        assert spec.points(quick=True) or spec.kind in ("perf-model", "sim-validation")  # kinds without a grid
