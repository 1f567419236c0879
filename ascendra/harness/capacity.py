"""Capacity of a system: interpolated over a rate sweep (optionally refined by bisection near the target), or
found by bisection; over several seeds, the mean capacity with its Student-t interval."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ascendra.errors import UserError
from ascendra.harness.config import POLICY_BACKENDS, RunConfig
from ascendra.harness.runs import run_point
from ascendra.harness.sweep import SweepDir, seed_folder, seed_tables
from ascendra.metrics import (
    ATTAINMENT_KEYS,
    CapacityResult,
    capacity_from_sweep,
    combined_status,
    mean_ci,
    refine_capacity,
    search_capacity,
)
from ascendra.metrics.attainment import NEEDS_SCHEDULING
from ascendra.metrics.intervals import CONFIDENCE
from ascendra.sim.cluster import OnProgress


def _column(slo_metric: str, config: RunConfig) -> str:
    """The summary column of ``slo_metric``, refused where the backend cannot measure it."""
    if slo_metric not in ATTAINMENT_KEYS:
        raise UserError(f"unknown --slo-metric {slo_metric!r}; known: {', '.join(ATTAINMENT_KEYS)}")
    backend = config.backend.name
    if slo_metric in NEEDS_SCHEDULING and backend not in POLICY_BACKENDS:
        usable = ", ".join(k for k in ATTAINMENT_KEYS if k not in NEEDS_SCHEDULING)
        raise UserError(
            f"--slo-metric {slo_metric} is unavailable with --backend {backend}: it needs each request's scheduling "
            f"delay, which only --backend {' and '.join(POLICY_BACKENDS)} record; use {usable}"
        )
    return ATTAINMENT_KEYS[slo_metric]


def _check(target: float, tol: float) -> None:
    if not 0 < target <= 1:
        raise UserError(f"--target must be in (0, 1], got {target}")
    if not tol > 0:
        raise UserError(f"--tol must be positive, got {tol}")


def _evaluator(
    config: RunConfig,
    store: SweepDir | None,
    column: str,
    data_dir: Path | None,
    on_point: Callable[[float], None] | None,
    on_progress: OnProgress | None,
) -> Callable[[float], float]:
    """Attainment at one rate, run once (and stored in ``store``, so a rerun resumes)."""

    def evaluate(rate: float) -> float:
        point = config.with_rate(round(rate, 6))
        row = store.load_row(point) if store else None
        if row is None:
            records, row = run_point(point, data_dir, on_progress)
            if store:
                store.save_point(point, records, row)
        if on_point:
            on_point(rate)
        return float(row[column])  # type: ignore[arg-type]

    return evaluate


def _one_seed(
    config: RunConfig,
    rate_list: list[float],
    out: Path | None,
    data_dir: Path | None,
    target: float,
    column: str,
    search: bool,
    tol: float,
    refine: bool,
    on_point: Callable[[float], None] | None,
    on_progress: OnProgress | None,
    grid: pd.DataFrame | None,
) -> tuple[CapacityResult, CapacityResult | None]:
    """The grid (``grid``: the seed's sweep table) or searched capacity of one config and, with ``refine``, its
    bisected refinement (bisection steps run here, one after the other)."""
    store = SweepDir(out, config) if out is not None and (search or refine) else None
    evaluate = _evaluator(config, store, column, data_dir, on_point, on_progress)
    if grid is None:
        result = search_capacity(evaluate, rate_list[0], rate_list[-1], target, tol)
    else:
        result = capacity_from_sweep(grid["rate"].tolist(), grid[column].tolist(), target)
    refined = refine_capacity(evaluate, result, tol) if refine else None
    if store:
        store.write_summary()
    return result, refined


def _fields(result: CapacityResult) -> dict[str, object]:
    fields = asdict(result)
    return {"capacity_qps": fields.pop("capacity"), **{k: v for k, v in fields.items() if k != "target"}}


def _refined_fields(refined: CapacityResult) -> dict[str, object]:
    return {f"refined_{k}": v for k, v in _fields(refined).items() if k in ("capacity_qps", "lower", "upper", "points")}


def capacity_of(
    config: RunConfig,
    rate_list: list[float],
    out: Path | None,
    data_dir: Path | None,
    target: float,
    slo_metric: str,
    search: bool,
    tol: float,
    on_point: Callable[[float], None] | None = None,
    on_progress: OnProgress | None = None,
    *,
    seeds: list[int] | None = None,
    refine: bool = False,
    executor: Executor | None = None,
) -> dict[str, object]:
    """The capacity result over ``rate_list`` (``parse_rates``) as a JSON-ready dict (``capacity_qps`` is None
    when no swept rate passes); ``on_point`` and ``on_progress`` follow the points and their requests, as in
    ``run_sweep``. With ``refine`` the grid bracket is bisected down to ``tol`` and reported as ``refined_*``
    beside the grid value. With several ``seeds``: ``capacity_qps`` is the mean over seeds with ``ci_low`` and
    ``ci_high`` (95% Student t), and ``per_seed`` holds each seed's result. ``executor`` runs the grid points
    (``ascendra.harness.executors``; default: here, one by one)."""
    column = _column(slo_metric, config)
    _check(target, tol)
    if search and len(rate_list) < 2:
        raise UserError("--search needs a range of at least two rates to bracket the capacity")
    if search and refine:
        raise UserError("--refine refines a grid; --search already bisects: pass one of them")
    seeds = seeds or [config.workload.seed]
    several = len(seeds) > 1
    head = {
        "system": config.label,
        "target": target,
        "slo_metric": slo_metric,
        "method": "bisection" if search else "interpolation",
    }
    if (config.slo.warmup, config.slo.cooldown) != ("0", "0"):
        head |= {"warmup": config.slo.warmup, "cooldown": config.slo.cooldown}
    # The grids of every seed at once, on the executor; bisections (--search, --refine) then run seed by seed.
    progress = (on_point, on_progress)
    grids = None if search else seed_tables(config, seeds, rate_list, out, data_dir, *progress, None, executor)
    per_seed = []
    for i, seed in enumerate(seeds):
        folder = seed_folder(out, seed, several)
        args = (rate_list, folder, data_dir, target, column, search, tol, refine, on_point, on_progress)
        result, refined = _one_seed(config.replace(seed=seed), *args, grids[i] if grids else None)
        per_seed.append((seed, result, refined))
    if not several:
        _, result, refined = per_seed[0]
        return {**head, **_fields(result), **(_refined_fields(refined) if refined else {})}
    return {
        **head,
        **seed_summary([r for _, r, _ in per_seed], ""),
        **(seed_summary([f for _, _, f in per_seed if f], "refined_") if refine else {}),
        "seeds": seeds,
        "per_seed": [{"seed": s, **_fields(r), **(_refined_fields(f) if f else {})} for s, r, f in per_seed],
    }


def seed_summary(results: list[CapacityResult], prefix: str = "") -> dict[str, object]:
    """Mean capacity over seeds with its interval; None (and no interval) when some seed has no capacity."""
    status = combined_status([r.status for r in results])
    values = [r.capacity for r in results]
    if any(v is None for v in values):
        out: dict[str, object] = {f"{prefix}capacity_qps": None, f"{prefix}ci_low": None, f"{prefix}ci_high": None}
    else:
        ci = mean_ci(values)  # type: ignore[arg-type]
        out = {f"{prefix}capacity_qps": ci.estimate, f"{prefix}ci_low": ci.low, f"{prefix}ci_high": ci.high}
    return out if prefix else {**out, "confidence": CONFIDENCE, "status": status}
