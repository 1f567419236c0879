"""One experiment end to end: run its grid (resuming), analyse, write results/<id>/ and its README section.

Output folder ``<out>/<id>/`` (``<out>/quick/<id>/`` with ``--quick``)::

    points.csv     one row per run point: labels and summary columns (the tidy table every figure starts from)
    <name>.csv     the kind's derived tables (capacities, ratios, KS tests, timelines...)
    configs.json   every point's resolved RunConfig, by config hash
    figure.png     drawn from the CSV tables only
    pareto.png     goodput and baselines kinds: latency against throughput, and frontier.png, the
                   interactivity-throughput frontier (``ascendra.harness.pareto``, from points.csv)
    summary.md     the experiment's README section (what the figure shows, headline numbers)
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console

from ascendra.harness import pareto
from ascendra.harness.executors import ExecutorOptions, open_executor
from ascendra.harness.reproduce.context import RunContext, points_table
from ascendra.harness.reproduce.kinds import kind_module
from ascendra.harness.reproduce.runner import run_points
from ascendra.harness.reproduce.spec import Spec
from ascendra.harness.store import PointStore, make_dir, write_text
from ascendra.harness.sweep import seeds_text

#: Kinds whose rate grids also get the Pareto views (``ascendra.harness.pareto``).
PARETO_KINDS = ("goodput", "baselines")


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
    seeds: list[int] | None = None,
    executor: Executor | None = None,
) -> Outcome:
    """Compute the spec's missing points, then rewrite every output file of the experiment (``seeds`` replaces
    the spec's workload seeds). The points run on ``executor`` when given (``ascendra.harness.executors``), else
    on a local pool of ``jobs`` processes; a live spec's run here, one at a time."""
    start = time.perf_counter()
    root = result_root(out, quick)
    folder = root / spec.id
    make_dir(folder)
    store = PointStore(root / ".points")
    points = spec.points(quick, seeds)
    grid = [p.config for p in points]
    if spec.live or executor is None:
        with open_executor(ExecutorOptions(jobs=1 if spec.live else jobs)) as local:
            computed = run_points(grid, store, local, console, spec.id, data_dir, quiet)
    else:
        computed = run_points(grid, store, executor, console, spec.id, data_dir, quiet)
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
    views = pareto.write_figures(pareto.points_views(table), folder) if spec.kind in PARETO_KINDS else []
    section = [f"## {spec.id}: {spec.title}", "", spec.about.strip(), ""]
    if quick and spec.quick_changes():
        section += ["**Quick variant**, which replaces the above with: " + "; ".join(spec.quick_changes()) + ".", ""]
    used = spec.seeds(seeds) if points else []
    if len(used) > 1:
        section += [f"Workload seeds {seeds_text(used)}: numbers are means over seeds with their 95% intervals.", ""]
    section += [f"![{spec.id}]({spec.id}/figure.png)", ""]
    if views:
        links = ", ".join(f"[{pareto.FIGURES[name]}]({spec.id}/{name})" for name in views)
        section += [f"Pareto views: {links}.", ""]
    section += [result.headline, ""]
    write_text(folder / "summary.md", "\n".join(section))
    return Outcome(spec.id, folder, len(points), computed, time.perf_counter() - start)
