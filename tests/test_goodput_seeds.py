"""The goodput kind over several seeds: per-seed capacities, mean and interval, paired ratios, bands."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ascendra.harness.reproduce.kinds import goodput
from ascendra.metrics import mean_ci, paired_ratio_ci

# (label, seed) -> attainment at 10 and 20 QPS; capacities by hand: 10 + (a10 - 0.9) * 10 / (a10 - a20).
ATTAINMENT = {
    ("A", 1): (1.0, 0.8),  # 15
    ("A", 2): (1.0, 0.6),  # 12.5
    ("A", 3): (0.95, 0.85),  # 15
    ("B", 1): (1.0, 0.5),  # 12
    ("B", 2): (0.9, 0.5),  # 10
    ("B", 3): (1.0, 0.7),  # 13.33
}
CAPS = {"A": [15.0, 12.5, 15.0], "B": [12.0, 10.0, 10 + 10 / 3]}


def _points(seeds: tuple[int, ...]) -> pd.DataFrame:
    rows = []
    for (label, seed), values in ATTAINMENT.items():
        if seed in seeds:
            for rate, value in zip((10.0, 20.0), values, strict=True):
                rows.append(
                    {"grid": "g", "model": "m", "workload": "w", "label": label, "seed": seed, "axis": "rate",
                     "value": rate, "rate": rate, "attainment": value, "ttft_slo": 1.0, "tbt_slo": 0.15}
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_several_seeds_give_mean_interval_and_paired_ratios() -> None:
    per_seed = goodput.seed_capacities(_points((1, 2, 3)))
    assert per_seed.loc[per_seed["label"] == "A", "capacity_qps"].tolist() == pytest.approx(CAPS["A"])
    caps = goodput.aggregate(per_seed)
    ci = mean_ci(CAPS["A"])
    a = caps[caps["label"] == "A"].iloc[0]
    assert (a["capacity_qps"], a["ci_low"], a["ci_high"], a["seeds"]) == pytest.approx(
        (ci.estimate, ci.low, ci.high, 3)
    )
    ratio = goodput.ratios(per_seed, ["A"]).iloc[0]
    paired = paired_ratio_ci(CAPS["A"], CAPS["B"])  # 1.25, 1.25, 1.125
    assert ratio["ratio"] == pytest.approx((1.25 + 1.25 + 1.125) / 3)
    assert (ratio["ci_low"], ratio["ci_high"]) == pytest.approx((paired.low, paired.high))
    assert ratio["ratio"] != pytest.approx(ci.estimate / mean_ci(CAPS["B"]).estimate)  # paired, not a ratio of means
    text = goodput.headline(caps, goodput.ratios(per_seed, ["A"]), pd.DataFrame())
    assert f"[{ci.low:.2f}, {ci.high:.2f}]" in text and "paired by seed" in text


def test_one_seed_keeps_the_single_seed_tables() -> None:
    caps = goodput.capacities(_points((2,)))
    assert list(caps.columns) == ["grid", "model", "workload", "label", "capacity_qps", "status"]
    assert caps["capacity_qps"].tolist() == pytest.approx([12.5, 10.0])
    ratio = goodput.ratios(caps, ["A"])  # the aggregated table (as the baselines kind passes it) works too
    assert list(ratio.columns) == ["grid", "model", "workload", "reference", "other", "ratio"]
    assert ratio["ratio"].tolist() == pytest.approx([1.25])
    assert "[" not in goodput.headline(caps, ratio, pd.DataFrame())


def test_figure_draws_bands_over_seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.collections import PolyCollection

    captured = []
    monkeypatch.setattr(goodput.style, "save", lambda fig, path: captured.append(fig))
    goodput.plot(_points((1, 2, 3)), {}, tmp_path / "f.png")
    goodput.plot(_points((1,)), {}, tmp_path / "g.png")
    bands = [sum(isinstance(c, PolyCollection) for ax in fig.axes for c in ax.collections) for fig in captured]
    assert bands[0] >= 2 and bands[1] == 0  # one band per variant with seeds, none with one seed


SEEDED = """
id = "seeded"
kind = "goodput"
title = "seeded"
[options]
reference = ["asc"]
[fixed]
num_requests = 300
[[grid]]
name = "rate"
axis = "rate"
systems = ["vllm", {label = "asc", system = "ascendra"}]
workloads = ["sharegpt"]
seeds = [1, 2, 3]
[grid.workload.sharegpt]
values = [10, 30, 60]
"""


def test_reproduce_with_seeds_writes_intervals_and_paired_ratios(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from ascendra.harness.cli.main import app

    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "seeded.toml").write_text(SEEDED)
    args = ["reproduce", "seeded", "--specs", str(tmp_path / "specs"), "--out", str(tmp_path / "out"), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["experiments"][0]["points"] == 18
    folder = tmp_path / "out" / "seeded"
    caps = pd.read_csv(folder / "capacity.csv")
    per_seed = pd.read_csv(folder / "capacity_per_seed.csv")
    assert {"ci_low", "ci_high", "seeds"} <= set(caps.columns) and len(per_seed) == 6
    for label, part in per_seed.groupby("label"):
        row = caps[caps["label"] == label].iloc[0]
        if part["capacity_qps"].notna().all():
            assert row["capacity_qps"] == pytest.approx(part["capacity_qps"].mean())
    ratios = pd.read_csv(folder / "ratios.csv")
    assert {"ci_low", "ci_high", "seeds"} <= set(ratios.columns) and ratios["seeds"].tolist() == [3]
    assert "paired by seed" in (folder / "summary.md").read_text()
    assert (caps["status"] == "interpolated").all()  # the grid brackets every seed's capacity
