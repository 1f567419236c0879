"""Refining a grid capacity by bisection inside its bracket (``capacity --refine``)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import ascendra.harness.cli.main  # noqa: F401  (registers the commands)
from ascendra.errors import UserError
from ascendra.harness.cli.app import app
from ascendra.metrics import capacity_from_sweep, refine_capacity


def knee(rate: float) -> float:
    """A monotone attainment: 1 up to 20 QPS, then a steep drop that crosses 0.9 at exactly 20.5 QPS."""
    return 1.0 if rate <= 20 else max(0.0, 1.0 - 0.2 * (rate - 20))


def test_refinement_finds_the_crossing_that_the_integer_grid_misses() -> None:
    rates = [18.0, 19.0, 20.0, 21.0, 22.0]
    grid = capacity_from_sweep(rates, [knee(r) for r in rates])
    assert grid.capacity == pytest.approx(20 + 0.1 / 0.2)  # 20.5: linear between 20 (1.0) and 21 (0.8) here
    coarse = [18.0, 20.0, 22.0]  # another grid: the line from (20, 1.0) to (22, 0.6) crosses at 20.5 too
    evaluated: list[float] = []

    def evaluate(rate: float) -> float:
        evaluated.append(rate)
        return knee(rate)

    refined = refine_capacity(evaluate, capacity_from_sweep(coarse, [knee(r) for r in coarse]), tol=0.05)
    assert refined.capacity == pytest.approx(20.5, abs=0.05)
    assert evaluated[:2] == [21.0, 20.5] and len(evaluated) == 6  # 2 QPS halved six times: 0.03 QPS wide
    assert all(20 <= r <= 22 for r in evaluated) and refined.points == tuple((r, knee(r)) for r in evaluated)
    assert refined.upper[0] - refined.lower[0] <= 0.05  # type: ignore[index]


def test_a_knee_between_grid_points_moves_the_grid_value_but_not_the_refined_one() -> None:
    def convex(rate: float) -> float:  # crosses 0.9 at 21.0, but curves: grid interpolation is biased
        return 1.0 if rate <= 20 else 1.0 - 0.1 * (rate - 20) ** 2

    results = []
    for rates in ([18.0, 20.0, 22.0], [18.0, 20.0, 21.5, 23.0]):
        grid = capacity_from_sweep(rates, [convex(r) for r in rates])
        results.append((grid.capacity, refine_capacity(convex, grid, tol=0.01).capacity))
    assert results[0][0] != pytest.approx(results[1][0], abs=0.1)  # grids disagree (20.25 vs 20.53)
    assert results[0][1] == pytest.approx(21.0, abs=0.01) and results[1][1] == pytest.approx(21.0, abs=0.01)


def test_results_without_a_bracket_are_left_alone() -> None:
    at_least = capacity_from_sweep([1.0, 2.0], [1.0, 0.95])
    assert refine_capacity(lambda r: pytest.fail("no point to run"), at_least) is at_least
    with pytest.raises(UserError, match="tolerance"):
        refine_capacity(knee, at_least, tol=0)


ARGS = ["--system", "vllm", "--workload", "uniform:prompt=32-1500,output=8-300", "--num-requests", "200"]
ARGS += ["--instances", "2", "--json"]


def test_cli_capacity_refine_reports_grid_and_refined_values(tmp_path) -> None:
    out = tmp_path / "out"
    args = ["capacity", *ARGS, "--rates", "5:65:20", "--refine", "--tol", "1", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    if data["status"] == "interpolated":
        lower, upper = data["lower"][0], data["upper"][0]
        assert lower <= data["refined_capacity_qps"] <= upper
        assert data["refined_upper"][0] - data["refined_lower"][0] <= 1
        assert len(list((out / "points").glob("*.json"))) == 4 + len(data["refined_points"])
    plain = json.loads(CliRunner().invoke(app, ["capacity", *ARGS, "--rates", "5:65:20"]).stdout)
    assert plain["capacity_qps"] == data["capacity_qps"] and "refined_capacity_qps" not in plain


def test_cli_refine_with_search_is_refused() -> None:
    result = CliRunner().invoke(app, ["capacity", "--rates", "5,10", "--refine", "--search"])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
