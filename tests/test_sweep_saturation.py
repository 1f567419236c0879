"""Over-saturation: a sweep stops raising the rate after two consecutive rates below the floor (fake runner)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

import ascendra.harness.cli.main  # noqa: F401  (registers the commands)
import ascendra.harness.sweep as sweep
from ascendra.errors import UserError
from ascendra.harness.cli.app import app
from ascendra.harness.config import RunConfig

#: Attainment by rate: one dip below 0.5 at 30 (then a recovery), then two in a row at 50 and 60.
CURVE = {10.0: 1.0, 20.0: 0.8, 30.0: 0.4, 40.0: 0.6, 50.0: 0.45, 60.0: 0.3, 70.0: 0.2, 80.0: 0.1}


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Replace the simulator by the curve; returns the rates actually run."""
    calls: list[float] = []

    def fake_run_point(config: RunConfig, data_dir=None, on_progress=None):
        calls.append(config.rate)
        attainment = CURVE[config.rate] - 0.01 * (config.workload.seed - 1)
        return pd.DataFrame({"rid": [0]}), {"system": config.label, "rate": config.rate, "attainment": attainment}

    monkeypatch.setattr(sweep, "run_point", fake_run_point)
    return calls


def test_two_consecutive_rates_below_the_floor_stop_the_sweep(ran: list[float]) -> None:
    table = sweep.run_sweep(RunConfig.of(), list(CURVE), saturation_floor=0.5)
    assert ran == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]  # one dip at 30 does not stop it
    assert table["status"].tolist() == ["ok"] * 6 + ["skipped"] * 2
    assert table["rate"].tolist() == list(CURVE) and table["attainment"].iloc[6:].isna().all()
    assert sweep.measured(table)["rate"].tolist() == list(CURVE)[:6]


def test_without_a_floor_every_rate_runs_and_the_table_is_unchanged(ran: list[float]) -> None:
    table = sweep.run_sweep(RunConfig.of(), list(CURVE))
    assert ran == list(CURVE) and "status" not in table
    assert "status" not in sweep.run_sweep(RunConfig.of(), [10.0, 20.0], saturation_floor=0.5)  # nothing skipped
    sweep.run_sweep(RunConfig.of(), list(CURVE), saturation_floor=0.0)  # 0: never stops
    assert ran[-8:] == list(CURVE)


def test_a_higher_floor_stops_earlier_and_a_bad_floor_is_refused(ran: list[float]) -> None:
    table = sweep.run_sweep(RunConfig.of(), list(CURVE), saturation_floor=0.9)
    assert ran == [10.0, 20.0, 30.0] and (table["status"] == "skipped").sum() == 5
    with pytest.raises(UserError, match="saturation-floor"):
        sweep.run_sweep(RunConfig.of(), [10.0], saturation_floor=1.5)


def test_each_seed_stops_on_its_own(ran: list[float], tmp_path) -> None:
    table = sweep.run_seeds(RunConfig.of(), [1, 2], list(CURVE), tmp_path / "out", saturation_floor=0.5)
    assert len(table) == 16 and (table["status"] == "skipped").sum() == 4
    agg = sweep.aggregate_seeds(table, ["attainment"])
    assert agg.loc[agg["rate"] == 70.0, "attainment"].isna().all() and agg["seeds"].iloc[0] == 2


def test_cli_sweep_marks_skipped_rows(ran: list[float]) -> None:
    result = CliRunner().invoke(app, ["sweep", "--rates", "10:80:10", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["status"] for r in data["rows"]][-2:] == ["skipped", "skipped"]
    assert data["rows"][-1]["attainment"] is None and data["capacity_qps"] == pytest.approx(10 + 10 * 0.1 / 0.2)


def test_cli_bad_floor_is_one_line_exit_2(tmp_path) -> None:
    result = CliRunner().invoke(app, ["sweep", "--saturation-floor", "2", "--out", str(tmp_path / "never")])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert "--saturation-floor" in result.stderr and not (tmp_path / "never").exists()
