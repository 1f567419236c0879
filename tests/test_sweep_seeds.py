"""Several seeds on sweep and capacity: rows per (rate, seed), per-rate aggregates, capacities with intervals."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

import ascendra.harness.cli.main  # noqa: F401  (registers the commands)
from ascendra.errors import UserError
from ascendra.harness.cli.app import app
from ascendra.harness.sweep import aggregate_seeds, parse_seeds
from ascendra.metrics import mean_ci

ARGS = ["--system", "vllm", "--workload", "uniform:prompt=32-1500,output=8-300", "--num-requests", "200"]
ARGS += ["--instances", "2"]


def test_parse_seeds() -> None:
    assert parse_seeds("1-5") == [1, 2, 3, 4, 5]
    assert parse_seeds("3,1,2") == [1, 2, 3]
    assert parse_seeds("1-3,7,2") == [1, 2, 3, 7]
    for bad in ("", "a", "5-1", "-1", "1-", "0-1000"):
        with pytest.raises(UserError, match="bad --seeds"):
            parse_seeds(bad)


def test_aggregate_is_the_mean_and_interval_per_rate() -> None:
    table = pd.DataFrame(
        {"rate": [10.0, 10.0, 10.0, 20.0], "seed": [1, 2, 3, 1], "attainment": [0.9, 1.0, 0.8, 0.5], "x": list("abcd")}
    )
    agg = aggregate_seeds(table, ["rate", "attainment"])
    ci = mean_ci([0.9, 1.0, 0.8])
    assert agg["seeds"].tolist() == [3, 1] and agg["attainment"].tolist() == pytest.approx([0.9, 0.5])
    assert agg["attainment_ci_low"].iloc[0] == pytest.approx(ci.low) and agg["attainment_ci_high"].iloc[1] == 0.5


def test_cli_sweep_with_seeds_has_a_row_per_rate_and_seed(tmp_path) -> None:
    out = tmp_path / "out"
    args = ["sweep", *ARGS, "--rates", "10,40", "--seeds", "1-2", "--out", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(r["rate"], r["seed"]) for r in data["rows"]] == [(10.0, 1), (10.0, 2), (40.0, 1), (40.0, 2)]
    assert [a["seeds"] for a in data["aggregate"]] == [2, 2] and data["seeds"] == [1, 2]
    assert (out / "seed-1" / "sweep.json").exists() and (out / "seed-2" / "sweep.json").exists()
    assert len(pd.read_csv(out / "summary.csv")) == 4
    # A single-seed sweep of seed 2 reproduces that seed's rows exactly.
    alone = json.loads(CliRunner().invoke(app, ["sweep", *ARGS, "--rates", "10,40", "--seed", "2", "--json"]).stdout)
    seed2 = [r["attainment"] for r in data["rows"] if r["seed"] == 2]
    assert [r["attainment"] for r in alone["rows"]] == seed2 and "seed" not in alone["rows"][0]


def test_cli_capacity_with_seeds_is_the_mean_of_the_per_seed_capacities() -> None:
    base = ["capacity", *ARGS, "--rates", "5:65:20", "--json"]
    many = json.loads(CliRunner().invoke(app, [*base, "--seeds", "1,2,3"]).stdout)
    singles = [json.loads(CliRunner().invoke(app, [*base, "--seed", str(s)]).stdout) for s in (1, 2, 3)]
    assert [p["capacity_qps"] for p in many["per_seed"]] == [s["capacity_qps"] for s in singles]
    assert "ci_low" not in singles[0]  # one seed: today's output
    if all(s["capacity_qps"] is not None for s in singles):
        ci = mean_ci([s["capacity_qps"] for s in singles])
        assert (many["capacity_qps"], many["ci_low"], many["ci_high"]) == pytest.approx((ci.estimate, ci.low, ci.high))


@pytest.mark.parametrize("command", ["sweep", "capacity"])
def test_bad_seeds_are_one_line_exit_2(command: str, tmp_path) -> None:
    result = CliRunner().invoke(app, [command, "--seeds", "5-1", "--out", str(tmp_path / "never")])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "bad --seeds" in result.stderr
    assert not (tmp_path / "never").exists()


def test_several_seeds_refuse_a_single_seed_folder(tmp_path) -> None:
    out = tmp_path / "out"
    assert CliRunner().invoke(app, ["sweep", *ARGS, "--rates", "10", "--out", str(out)]).exit_code == 0
    result = CliRunner().invoke(app, ["sweep", *ARGS, "--rates", "10", "--seeds", "1-2", "--out", str(out)])
    assert result.exit_code == 2 and "single-seed sweep" in result.stderr
