"""One experiment end to end: run its grid (resuming), analyse, write results/<id>/ and its README section.

Output folder ``<out>/<id>/`` (``<out>/quick/<id>/`` with ``--quick``)::

    points.csv     one row per run point: labels and summary columns (the tidy table every figure starts from)
    <name>.csv     the kind's derived tables (capacities, ratios, KS tests, timelines...)
    configs.json   every point's resolved RunConfig, by config hash
    figure.png     drawn from the CSV tables only
    summary.md     the experiment's README section (what the figure shows, headline numbers)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console

from ascendra.harness.reproduce.context import RunContext, points_table
from ascendra.harness.reproduce.kinds import kind_module
from ascendra.harness.reproduce.runner import run_points
from ascendra.harness.reproduce.spec import Spec
from ascendra.harness.store import PointStore, make_dir, write_text


@dataclass(frozen=True, slots=True)
class Outcome:
    id: str
    folder: Path
    points: int
    computed: int
    seconds: float


def result_root(out: Path, quick: bool) -> Path:
    """Where results go: ``out`` itself, or ``out/quick`` so quick results never mix with full ones."""
    return out / "quick" if quick else out


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    write_text(path, table.to_csv(index=False, float_format="%.6g"))


def run_experiment(
    spec: Spec,
    out: Path,
    quick: bool,
    jobs: int,
    console: Console,
    data_dir: Path | None = None,
    quiet: bool = False,
) -> Outcome:
    """Compute the spec's missing points, then rewrite every output file of the experiment."""
    start = time.perf_counter()
    root = result_root(out, quick)
    folder = root / spec.id
    make_dir(folder)
    store = PointStore(root / ".points")
    points = spec.points(quick)
    jobs = 1 if spec.live else jobs
    computed = run_points([p.config for p in points], store, jobs, console, spec.id, data_dir, quiet)
    table = points_table(points, store) if points else pd.DataFrame()
    module = kind_module(spec.kind)
    result = module.analyze(RunContext(spec, points, table, store, quick, data_dir))
    if len(table):
        _write_csv(table, folder / "points.csv")
    for name, frame in result.tables.items():
        _write_csv(frame, folder / f"{name}.csv")
    configs = {p.config.key(): p.config.to_dict() for p in points}
    write_text(folder / "configs.json", json.dumps(configs, indent=1, sort_keys=True))
    module.plot(table, result.tables, folder / "figure.png")
    section = [f"## {spec.id}: {spec.title}", "", spec.about.strip(), ""]
    if quick and spec.quick_changes():
        section += ["**Quick variant**, which replaces the above with: " + "; ".join(spec.quick_changes()) + ".", ""]
    section += [f"![{spec.id}]({spec.id}/figure.png)", ""]
    section += [result.headline, ""]
    write_text(folder / "summary.md", "\n".join(section))
    return Outcome(spec.id, folder, len(points), computed, time.perf_counter() - start)
