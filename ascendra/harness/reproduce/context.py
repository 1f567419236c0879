"""What an experiment kind's analysis receives and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ascendra.harness.reproduce.spec import Point, Spec
from ascendra.harness.store import PointStore
from ascendra.metrics.moves import MOVE_KEYS

#: Summary columns copied into every experiment's points table.
SUMMARY_COLUMNS = (
    "attainment",
    "attainment_strict_p99",
    "ttft_p50",
    "ttft_p99",
    "tbt_p50",
    "tbt_p99",
    "req_mean_tbt_p50",
    "throughput_rps",
    "arrived",
    "finished",
    "dropped",
    "offloaded",
    "offloaded_attainment",
    "preemptions",
    *MOVE_KEYS,
)


@dataclass(slots=True)
class RunContext:
    """A finished grid: the spec, its points, their summary table and the store holding per-request tables."""

    spec: Spec
    points: list[Point]
    table: pd.DataFrame  # one row per point: its labels and SUMMARY_COLUMNS
    store: PointStore
    quick: bool
    data_dir: Path | None = None


@dataclass(slots=True)
class KindResult:
    """Tables to write as CSV (name -> table; drawn by the kind's figure) and the README's headline text."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    headline: str = ""


def points_table(points: list[Point], store: PointStore) -> pd.DataFrame:
    """One row per point: its labels and the stored summary's headline columns."""
    rows = []
    for point in points:
        summary = store.row(point.config)
        rows.append({**point.labels(), **{k: summary.get(k) for k in SUMMARY_COLUMNS}})
    return pd.DataFrame(rows)


def cell_name(model: str, workload: str) -> str:
    """A panel's title: model and workload."""
    return f"{model} / {workload}"
