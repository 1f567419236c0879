"""Simulated runs end to end: determinism, sweep storage (resume, refusal), rates parsing and the CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

import ascendra.harness.cli.main  # noqa: F401  (registers the commands)
from ascendra.errors import UserError
from ascendra.harness.cli.app import app
from ascendra.harness.config import RunConfig
from ascendra.harness.simulate import simulate
from ascendra.harness.sweep import parse_rates, run_sweep
from ascendra.records import write_records

SMALL = RunConfig.of(
    system="vllm", workload="uniform:prompt=32-1500,output=8-300", num_requests=300, rate=30.0, instances=2
)


def test_same_config_gives_byte_identical_tables(tmp_path):
    paths = []
    for i in range(2):
        outcome = simulate(SMALL)
        path = tmp_path / f"r{i}.parquet"
        write_records(outcome.records, path)
        paths.append(path.read_bytes())
    assert paths[0] == paths[1]
    assert pd.Series(simulate(SMALL).summary).equals(pd.Series(simulate(SMALL).summary))  # NaN equals NaN


@pytest.mark.parametrize("system", ["vllm", "sarathi"])
def test_every_request_finishes_and_attainment_falls_with_load(system):
    low = simulate(SMALL.replace(system=system, rate=5.0)).summary
    high = simulate(SMALL.replace(system=system, rate=200.0)).summary
    assert low["finished"] == high["finished"] == SMALL.workload.num_requests
    assert low["attainment"] > high["attainment"]
    assert low["ttft_p99"] < high["ttft_p99"]


def test_vllm_stalls_decodes_more_than_sarathi():
    """Prefill-first vLLM interrupts decodes with whole prefills; Sarathi's chunks keep TBT tails low."""
    vllm = simulate(SMALL.replace(system="vllm")).summary
    sarathi = simulate(SMALL.replace(system="sarathi")).summary
    assert vllm["tbt_p99"] > sarathi["tbt_p99"]


def test_configs_are_stored_by_part_and_refuse_another_systems_knobs():
    workload = {"name": "uniform:prompt=32-1500,output=8-300", "num_requests": 300, "rate": 30.0}
    assert SMALL.to_dict() == {"schema": 2, "system": "vllm", "workload": workload, "cluster": {"instances": 2}}
    assert RunConfig.from_dict(SMALL.to_dict()) == SMALL and RunConfig.from_dict(SMALL.flat()) == SMALL
    assert SMALL.replace(rate=30.0).key() == SMALL.key() and SMALL.with_rate(5.0).key() != SMALL.key()
    with pytest.raises(UserError, match="--chunk-size: not an option of system vllm"):
        RunConfig.of(system="vllm", chunk_size=256)
    with pytest.raises(UserError, match="--chunk-size: not an option of system vllm"):
        SMALL.replace(chunk_size=256)
    sarathi = SMALL.replace(system="sarathi", chunk_size=256)
    assert sarathi.knobs.chunk_size == 256 and sarathi.workload == SMALL.workload


def test_parse_rates():
    assert parse_rates("18:25:1") == [18, 19, 20, 21, 22, 23, 24, 25]
    assert parse_rates("4:5:0.5") == [4.0, 4.5, 5.0]
    assert parse_rates("22,18,20,18") == [18, 20, 22]
    for bad in ("", "a,b", "5:1:1", "1:5:0", "0,1", "-2"):
        with pytest.raises(UserError):
            parse_rates(bad)


def test_sweep_resumes_and_refuses_a_different_sweep(tmp_path):
    out = tmp_path / "sweep"
    first = run_sweep(SMALL, [10.0, 20.0], out)
    stored = {p.name: p.stat().st_mtime_ns for p in (out / "points").iterdir()}
    calls = []
    again = run_sweep(SMALL, [10.0, 20.0, 30.0], out, on_point=calls.append)
    assert calls == [10.0, 20.0, 30.0]
    for name, mtime in stored.items():  # finished points are reused, not recomputed
        assert (out / "points" / name).stat().st_mtime_ns == mtime
    assert again["rate"].tolist() == [10.0, 20.0, 30.0]
    assert again.iloc[:2]["attainment"].tolist() == first["attainment"].tolist()
    assert json.loads((out / "sweep.json").read_text())["rates"] == [10.0, 20.0, 30.0]
    with pytest.raises(UserError, match="different sweep"):
        run_sweep(SMALL.replace(seed=2), [10.0], out)


def test_sweep_refuses_a_folder_that_is_not_a_sweep(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a sweep directory"):
        run_sweep(SMALL, [10.0], tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


ARGS = ["--system", "vllm", "--workload", SMALL.workload.name, "--num-requests", "300", "--instances", "2"]


def test_cli_sweep_json_and_outputs(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["sweep", *ARGS, "--rates", "10,30", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["system"] == "vllm"
    assert data["capacity_qps"] is None or 10 <= data["capacity_qps"] <= 30
    assert [row["rate"] for row in data["rows"]] == [10.0, 30.0]
    assert {"attainment", "attainment_strict", "ttft_p99", "tbt_p99"} <= set(data["rows"][0])
    assert (out / "summary.csv").exists() and len(list((out / "points").glob("*.parquet"))) == 2
    summary = pd.read_csv(out / "summary.csv")  # each row names its point's records file
    assert all((out / name).is_file() for name in summary["records"]) and summary["records"].nunique() == 2
    assert [row["records"] for row in data["rows"]] == summary["records"].tolist()


def test_a_simulated_run_reports_its_progress():
    seen = []
    simulate(SMALL.replace(num_requests=2100), on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1024, 2100), (2048, 2100), (2100, 2100)]


def test_cli_capacity_interpolates_and_searches():
    runner = CliRunner()
    swept = json.loads(runner.invoke(app, ["capacity", *ARGS, "--rates", "5:80:25", "--json"]).stdout)
    assert swept["method"] == "interpolation" and swept["target"] == 0.9
    searched = json.loads(runner.invoke(app, ["capacity", *ARGS, "--rates", "5,80", "--search", "--json"]).stdout)
    assert searched["method"] == "bisection"
    for result in (swept, searched):
        if result["status"] == "interpolated":
            assert 5 <= result["capacity_qps"] <= 80


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "--rates", "0"],
        ["sweep", "--ttft-slo", "-1"],
        ["sweep", "--model", "gpt-9"],
        ["sweep", "--system", "nope"],
        ["sweep", "--system", "vllm", "--chunk-size", "256"],
        ["sweep", "--workload", "no-such-workload"],
        ["capacity", "--slo-metric", "nope"],
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args, tmp_path):
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "never")])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()


def test_vllm_engine_backend_needs_one_instance_and_is_not_simulated():
    with pytest.raises(UserError, match="--instances 1"):
        RunConfig.of(system="vllm", backend="vllm-engine")
    with pytest.raises(UserError, match="--instances 1"):
        RunConfig.from_flat({"system": "vllm-engine"}, notices=False)  # the old system name is an alias
    engine = RunConfig.of(
        system="vllm", backend="vllm-engine", instances=1, workload="fixed:prompt=8,output=2", num_requests=2
    )
    with pytest.raises(UserError, match="vLLM's own engine"):
        simulate(engine)
