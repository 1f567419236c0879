"""Pareto views: the frontier keeps exactly the non-dominated points; view tables from sweep and reproduce
tables; the frontier figure draws exactly the frontier."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ascendra.harness import pareto


def test_frontier_keeps_exactly_the_non_dominated_points() -> None:
    points = pd.DataFrame(
        {
            "name": ["a", "b", "c", "d", "e", "f", "g"],
            "x": [1.0, 2.0, 2.0, 3.0, 0.5, 3.0, math.nan],
            "y": [5.0, 4.0, 3.0, 1.0, 5.0, 1.0, 9.0],
        }
    )
    # c: b has the same x and a higher y; e: a has the same y and a higher x; d and f are the same point (both
    # stay); g has no x (never on the front, and it dominates nothing).
    front = pareto.pareto_front(points, "x", "y")
    assert front["name"].tolist() == ["a", "b", "d", "f"]
    assert pareto.pareto_front(points.iloc[:0], "x", "y").empty


def _points() -> pd.DataFrame:
    """A reproduce points table: two seeds at each rate, one SLO-scale row that is not a rate point."""
    rows = []
    for seed, shift in ((1, 0.0), (2, 0.2)):
        for rate, tbt in ((10.0, 0.02), (20.0, 0.04)):
            rows.append(
                {
                    "grid": "rate",
                    "label": "vllm",
                    "model": "m",
                    "workload": "w",
                    "seed": seed,
                    "axis": "rate",
                    "value": rate,
                    "rate": rate,
                    "ttft_p50": 0.1 + shift,
                    "ttft_p99": 0.5,
                    "tbt_p50": tbt,
                    "tbt_p99": 0.1,
                    "throughput_rps": rate - 1 + shift,
                }
            )
    rows.append({**rows[0], "axis": "slo_scale", "value": 0.5})
    return pd.DataFrame(rows)


def test_points_views_average_seeds_and_keep_rate_rows_only() -> None:
    views = pareto.points_views(_points())
    assert views["panel"].unique().tolist() == ["m / w"] and views["rate"].tolist() == [10.0, 20.0]
    assert views["ttft_p50"].tolist() == pytest.approx([0.2, 0.2])  # mean of 0.1 and 0.3
    assert views["throughput_rps"].tolist() == pytest.approx([9.1, 19.1])
    assert views["interactivity"].tolist() == pytest.approx([50.0, 25.0])  # 1 / median token gap
    two_grids = pd.concat([_points(), _points().assign(grid="other")])
    assert set(pareto.points_views(two_grids)["panel"]) == {"[rate] m / w", "[other] m / w"}
    assert pareto.points_views(pd.DataFrame({"kind": ["fairness"]})).empty


def test_sweep_views_drop_skipped_rows() -> None:
    summary = pd.DataFrame(
        {
            "system": ["vllm"] * 3,
            "rate": [10.0, 20.0, 30.0],
            "status": ["ok", "ok", "skipped"],
            "throughput_rps": [9.0, 15.0, math.nan],
            "tbt_p50": [0.02, 0.05, math.nan],
        }
    )
    views = pareto.sweep_views(summary, "sharegpt")
    assert views["rate"].tolist() == [10.0, 20.0] and set(views["panel"]) == {"sharegpt"}
    assert views["ttft_p99"].isna().all()  # a column the table lacks is NaN, not an error


def test_frontier_figure_draws_each_systems_frontier(tmp_path) -> None:
    views = pd.DataFrame(
        {
            "panel": ["w"] * 4,
            "system": ["s"] * 4,
            "rate": [1.0, 2.0, 3.0, 4.0],
            "throughput_rps": [1.0, 2.0, 1.5, 3.0],
            "interactivity": [40.0, 30.0, 20.0, 10.0],  # the rate-3 point is dominated by the rate-2 one
        }
    ).reindex(columns=pareto.VIEW_COLUMNS)
    fig = pareto.frontier_figure(views)
    line = fig.axes[0].lines[0].get_xydata().tolist()
    assert line == [[10.0, 3.0], [30.0, 2.0], [40.0, 1.0]]
    assert pareto.write_figures(views, tmp_path) == ["pareto.png", "frontier.png"]
    assert all((tmp_path / name).read_bytes()[:4] == b"\x89PNG" for name in pareto.FIGURES)
    assert pareto.write_figures(views.iloc[:0], tmp_path / "none") == []
