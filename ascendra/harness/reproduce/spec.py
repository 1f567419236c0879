"""Experiment specs: declarative TOML files under experiments/, one per paper figure, expanded into run points.

A spec names a figure ``kind`` and one or more ``[[grid]]`` tables. A grid is the product
systems x models x workloads x axis values x seeds, on top of fixed ``RunConfig`` overrides::

    id = "goodput"
    kind = "goodput"                  # which analysis and figure (see ascendra.harness.reproduce.analysis)
    title = "..."
    about = "..."                     # what the figure shows (copied into results/README.md)
    [fixed]                           # RunConfig overrides for every point of every grid
    num_requests = 2000
    [quick]                           # --quick: overrides of [fixed] (fewer requests)
    num_requests = 300

    [[grid]]
    name = "rate"
    axis = "rate"                     # "rate" (QPS) or "slo_scale" (multiplies both SLOs)
    systems = ["vllm", "sarathi", "ascendra"]   # or tables {label = "2H1L", system = "ascendra", partition = "1L2H"}
    models = ["llama-3.1-8b"]
    workloads = ["sharegpt"]
    seeds = [1]
    [grid.fixed]                      # this grid's overrides
    [grid.workload.sharegpt]          # per-workload overrides plus the axis values;
    ttft_slo = 1.0                    # a quick_<key> entry replaces <key> in the quick variant
    values = [18, 19, 20]
    quick_values = [18, 22]

Every point's identity is its resolved ``RunConfig`` (its ``key()``), so two experiments that share a point
(goodput and offload) compute it once.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ascendra.errors import UserError
from ascendra.harness.config import FLAT, RunConfig
from ascendra.harness.registry import knob_types

AXES = ("rate", "slo_scale")


@dataclass(frozen=True, slots=True)
class Point:
    """One simulated run of a spec and the labels it is plotted under."""

    experiment: str
    grid: str
    label: str  # the system variant's label (the plot's hue)
    axis: str
    value: float  # the axis value: QPS or SLO scale
    config: RunConfig

    def labels(self) -> dict[str, object]:
        c = self.config
        return {
            "grid": self.grid,
            "label": self.label,
            "system": c.label,
            "model": c.cluster.model,
            "workload": c.workload.name,
            "seed": c.workload.seed,
            "axis": self.axis,
            "value": self.value,
            "rate": c.workload.rate,
            "ttft_slo": c.slo.ttft,
            "tbt_slo": c.slo.tbt,
            "key": c.key(),
        }


@dataclass(frozen=True, slots=True)
class Spec:
    id: str
    kind: str
    title: str
    about: str
    path: Path
    raw: dict[str, Any]

    def points(self, quick: bool = False, seeds: list[int] | None = None) -> list[Point]:
        """Every run point of the spec (the quick variant: fewer axis values and requests); ``seeds`` replaces
        the seeds of every grid the seed draws (``reproduce --seeds``; a trace replay is the same for any seed)."""
        fixed = dict(self.raw.get("fixed", {}))
        if quick:
            fixed.update(self.raw.get("quick", {}))
        out: list[Point] = []
        for grid in self._seeded(seeds):
            out += _grid_points(self.id, grid, fixed, quick)
        return out

    def seeds(self, seeds: list[int] | None = None) -> list[int]:
        """The workload seeds the spec's grids run (with ``seeds`` replacing those of seeded grids), in order."""
        return list(dict.fromkeys(s for grid in self._seeded(seeds) for s in grid.get("seeds", [1])))

    def _seeded(self, seeds: list[int] | None) -> list[dict[str, Any]]:
        """The grids, with ``seeds`` in place of the own seeds of each grid that is not a trace replay."""
        grids = list(self.raw.get("grid", []))
        if seeds is None:
            return grids
        arrival = self.raw.get("fixed", {}).get("arrival")
        return [
            grid if grid.get("fixed", {}).get("arrival", arrival) == "trace" else {**grid, "seeds": seeds}
            for grid in grids
        ]

    def quick_changes(self) -> list[str]:
        """What the quick variant changes, as ``key = value`` lines (``grid/workload: key = value`` for a grid's
        per-workload entries), so a quick result states the parameters it really used."""
        out = [f"{k} = {v!r}" for k, v in self.raw.get("quick", {}).items()]
        for grid in self.raw.get("grid", []):
            for workload, table in grid.get("workload", {}).items():
                for key, value in table.items():
                    if key.startswith("quick_"):
                        out.append(f"{grid.get('name', 'main')}/{workload}: {key.removeprefix('quick_')} = {value!r}")
        return out

    @property
    def options(self) -> dict[str, Any]:
        """Kind-specific options (the ``[options]`` table), e.g. the fairness test's significance level."""
        return dict(self.raw.get("options", {}))

    @property
    def live(self) -> bool:
        """Points measured on the wall clock (``[options] live = true``): they run one at a time, so no point
        competes with another for the cores, and only when named: ``reproduce all`` leaves them out."""
        return bool(self.options.get("live", False))


def _check_overrides(table: dict[str, Any], where: str) -> None:
    """Every key must be a run option (a system's knob is checked against its system when the point is made)."""
    unknown = sorted(set(table) - {"system", *FLAT, *knob_types()})
    if unknown:
        raise UserError(f"{where}: unknown run option(s) {', '.join(unknown)}")


def _variants(systems: list[Any], where: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, overrides) of each system entry: a system name, or a table with a label and overrides."""
    out = []
    for entry in systems:
        if isinstance(entry, str):
            out.append((entry, {"system": entry}))
        elif isinstance(entry, dict) and "label" in entry and "system" in entry:
            overrides = {k: v for k, v in entry.items() if k != "label"}
            _check_overrides(overrides, where)
            out.append((str(entry["label"]), overrides))
        else:
            raise UserError(f"{where}: a system is a name or a table with label and system, got {entry!r}")
    return out


def _resolve_quick(table: dict[str, Any], quick: bool) -> dict[str, Any]:
    """A per-workload table with its ``quick_<key>`` entries applied (quick) or dropped (full)."""
    out = {k: v for k, v in table.items() if not k.startswith("quick_")}
    if quick:
        out.update({k.removeprefix("quick_"): v for k, v in table.items() if k.startswith("quick_")})
    return out


def _grid_points(experiment: str, grid: dict[str, Any], fixed: dict[str, Any], quick: bool) -> list[Point]:
    name = str(grid.get("name", "main"))
    where = f"{experiment} grid {name}"
    axis = grid.get("axis", "rate")
    if axis not in AXES:
        raise UserError(f"{where}: axis must be one of {', '.join(AXES)}, got {axis!r}")
    base = {**fixed, **grid.get("fixed", {})}
    _check_overrides(base, where)
    per_workload: dict[str, dict[str, Any]] = grid.get("workload", {})
    points = []
    for model in grid.get("models", ["llama-3.1-8b"]):
        for workload in grid["workloads"]:
            local = _resolve_quick(per_workload.get(workload, {}), quick)
            values = local.pop("values", None)
            if not values:
                raise UserError(f"{where}: workload {workload} has no axis values")
            _check_overrides(local, f"{where} workload {workload}")
            for label, overrides in _variants(grid["systems"], where):
                for seed in grid.get("seeds", [1]):
                    for value in values:
                        options = {**base, **local, **overrides, "model": model, "workload": workload, "seed": seed}
                        config = RunConfig.from_flat(options, notices=False)
                        if axis == "rate":
                            config = config.with_rate(float(value))
                        else:
                            slo = config.slo
                            config = config.replace(
                                ttft_slo=round(slo.ttft * value, 6), tbt_slo=round(slo.tbt * value, 6)
                            )
                        points.append(Point(experiment, name, label, axis, float(value), config))
    return points


def load_spec(path: Path) -> Spec:
    """Parse and validate one spec file (expanding it once checks every run option)."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"cannot read experiment spec {path}: {exc}") from None
    for key in ("id", "kind"):
        if key not in raw:
            raise UserError(f"experiment spec {path} lacks {key!r}")
    spec = Spec(
        str(raw["id"]), str(raw["kind"]), str(raw.get("title", raw["id"])), str(raw.get("about", "")), path, raw
    )
    spec.points(quick=False)
    return spec


def specs_dir() -> Path:
    """experiments/ at the repository root (next to the ascendra package)."""
    return Path(__file__).resolve().parents[3] / "experiments"


def load_specs(folder: Path | None = None) -> dict[str, Spec]:
    """Every spec in ``folder`` (default experiments/), by id, in their ``order``."""
    folder = folder or specs_dir()
    specs: dict[str, Spec] = {}
    for path in sorted(folder.glob("*.toml")):
        spec = load_spec(path)
        if spec.id in specs:
            raise UserError(f"experiment id {spec.id!r} is defined twice ({specs[spec.id].path}, {path})")
        specs[spec.id] = spec
    # The README (and `all`) follow the paper's order: each spec's optional `order`, then its file name.
    return dict(sorted(specs.items(), key=lambda item: (item[1].raw.get("order", 1000), item[1].path.name)))
