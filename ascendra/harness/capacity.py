"""Capacity of a system: interpolated over a rate sweep, or found by bisection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ascendra.errors import UserError
from ascendra.harness.config import POLICY_BACKENDS, RunConfig
from ascendra.harness.runs import run_point
from ascendra.harness.sweep import SweepDir, run_sweep
from ascendra.metrics import ATTAINMENT_KEYS, capacity_from_sweep, search_capacity
from ascendra.metrics.attainment import NEEDS_SCHEDULING
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
) -> dict[str, object]:
    """The capacity result over ``rate_list`` (``parse_rates``) as a JSON-ready dict (``capacity_qps`` is None
    when no swept rate passes); ``on_point`` and ``on_progress`` follow the points and their requests, as in
    ``run_sweep``."""
    column = _column(slo_metric, config)
    _check(target, tol)
    if search:
        if len(rate_list) < 2:
            raise UserError("--search needs a range of at least two rates to bracket the capacity")
        store = SweepDir(out, config) if out is not None else None

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

        result = search_capacity(evaluate, rate_list[0], rate_list[-1], target, tol)
        if store:
            store.write_summary()
    else:
        table = run_sweep(config, rate_list, out, data_dir, on_point, on_progress)
        table = table[table["rate"].isin(rate_list)]
        result = capacity_from_sweep(table["rate"].tolist(), table[column].tolist(), target)
    fields = asdict(result)
    return {
        "system": config.label,
        "capacity_qps": fields.pop("capacity"),
        "target": target,
        "slo_metric": slo_metric,
        "method": "bisection" if search else "interpolation",
        **{k: v for k, v in fields.items() if k != "target"},
    }
