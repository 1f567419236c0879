"""Capacity of a system: interpolated over a rate sweep, or found by bisection."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ascendra.errors import UserError
from ascendra.harness.config import RunConfig
from ascendra.harness.runs import run_point
from ascendra.harness.sweep import SweepDir, parse_rates, run_sweep
from ascendra.metrics import ATTAINMENT_KEYS, capacity_from_sweep, search_capacity


def _column(slo_metric: str) -> str:
    try:
        return ATTAINMENT_KEYS[slo_metric]
    except KeyError:
        raise UserError(f"unknown --slo-metric {slo_metric!r}; known: {', '.join(ATTAINMENT_KEYS)}") from None


def capacity_of(
    config: RunConfig,
    rates: str,
    out: Path | None,
    data_dir: Path | None,
    target: float,
    slo_metric: str,
    search: bool,
    tol: float,
) -> dict[str, object]:
    """The capacity result as a JSON-ready dict (``capacity_qps`` is None when no swept rate passes)."""
    column = _column(slo_metric)
    rate_list = parse_rates(rates)
    if search:
        if len(rate_list) < 2:
            raise UserError("--search needs a range of at least two rates to bracket the capacity")
        store = SweepDir(out, config) if out is not None else None

        def evaluate(rate: float) -> float:
            point = config.with_rate(round(rate, 6))
            row = store.load_row(point) if store else None
            if row is None:
                records, row = run_point(point, data_dir)
                if store:
                    store.save_point(point, records, row)
            return float(row[column])  # type: ignore[arg-type]

        result = search_capacity(evaluate, rate_list[0], rate_list[-1], target, tol)
        if store:
            store.write_summary()
    else:
        table = run_sweep(config, rate_list, out, data_dir)
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
