"""`ascbench sweep --backend engine`: all three systems served live by the real engine write the same tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

import ascendra.harness.cli.main  # noqa: E402,F401  (registers the commands)
from ascendra.harness.cli.app import app  # noqa: E402
from ascendra.harness.config import RunConfig  # noqa: E402

ARGS = ["--backend", "engine", "--model", "tiny", "--workload", "fixed:prompt=24,output=6", "--num-requests", "12"]


@pytest.mark.parametrize("system", ["vllm", "sarathi", "ascendra"])
def test_live_sweep_writes_the_simulator_tables(system, tmp_path):
    out = tmp_path / system
    result = CliRunner().invoke(app, ["sweep", "--system", system, *ARGS, "--rates", "20", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["rows"][0]
    assert row["finished"] == 12 and row["dropped"] == 0
    records = pd.read_parquet(next((out / "points").glob("*.parquet")))
    assert (records["token_times"].map(len) == 6).all()
    assert (out / "summary.csv").exists()


def test_backend_fields_are_hashed_only_when_set():
    base = RunConfig()
    assert "backend" not in base.to_dict()
    live = RunConfig.of(backend="engine", model="tiny")
    assert live.to_dict()["backend"] == {"name": "engine"}
    assert live.key() != RunConfig.of(model="tiny").key()


def test_live_sweep_with_ray_actors(tmp_path, ray_session):
    args = ["sweep", "--system", "vllm", "--instances", "2", *ARGS, "--rates", "20", "--distributed", "ray"]
    result = CliRunner().invoke(app, [*args, "--json", "--out", str(tmp_path / "ray")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"][0]["finished"] == 12
    assert RunConfig.of(distributed="ray").to_dict()["backend"] == {"distributed": "ray"}
