"""Every registered system on one footing: the goodput grid (capacity against rate, attainment against SLO scale),
variant grids (a placement search, a memory-bound setting), trace replays, and what moving KV cost.

Grids are told apart by name: ``rate`` and ``slo-scale`` (the goodput grid), ``trace`` (one point per system
and trace), and any other rate-axis grid is a variant grid (e.g. DistServe's placements, or systems on smaller KV
pools), tabulated on its own. Points whose runs moved KV between instances also fill the move table (see
``ascendra.metrics.moves``).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ascendra.harness.reproduce.context import KindResult, RunContext, cell_name
from ascendra.harness.reproduce.kinds import goodput
from ascendra.metrics.moves import MOVE_KEYS

MAIN_GRIDS = ("rate", "slo-scale")
TRACE_GRID = "trace"


def _cells(caps: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(caps["model"], caps["workload"], strict=True)))


def capacity_table(caps: pd.DataFrame) -> str:
    """Systems as rows, (model, workload) cells as columns, capacities in QPS ('<x' below the grid's range)."""
    cells = _cells(caps)
    lines = [
        "| system | " + " | ".join(cell_name(m, w) for m, w in cells) + " |",
        "|---|" + "---:|" * len(cells),
    ]
    for label, part in caps.groupby("label", sort=False):
        by_cell = {(r.model, r.workload): r for r in part.itertuples()}
        row = []
        for cell in cells:
            r = by_cell.get(cell)
            if r is None:
                row.append("")
            elif r.capacity_qps is None or (isinstance(r.capacity_qps, float) and math.isnan(r.capacity_qps)):
                row.append(r.status)
            else:
                value = f"{r.capacity_qps:.2f}{goodput.interval_text(r)}"
                row.append(value + (" (at least)" if r.status == "at least" else ""))
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def ratio_table(ratio: pd.DataFrame) -> str:
    """Reference capacity over each other system's, per cell."""
    if not len(ratio):
        return ""
    cells = list(dict.fromkeys(zip(ratio["model"], ratio["workload"], strict=True)))
    ref = ratio["reference"].iloc[0]
    header = f"| {ref} / system | " + " | ".join(cell_name(m, w) for m, w in cells) + " |"
    lines = [header, "|---|" + "---:|" * len(cells)]
    for other, part in ratio.groupby("other", sort=False):
        by_cell = {(r.model, r.workload): f"{r.ratio:.3f}x{goodput.interval_text(r, 3)}" for r in part.itertuples()}
        lines.append(f"| {other} | " + " | ".join(by_cell.get(c, "") for c in cells) + " |")
    return "\n".join(lines)


def move_table(table: pd.DataFrame, at: dict[str, float]) -> pd.DataFrame:
    """Points that moved KV: their move statistics; ``shown`` marks the rows the headline shows (the rates in
    ``at`` per workload under the first seed, and every trace replay)."""
    moved = table[table["kv_moves"].fillna(0) > 0]
    if "seed" not in moved:
        moved = moved.assign(seed=1)
    out = moved[["grid", "label", "model", "workload", "rate", "seed", *MOVE_KEYS]].reset_index(drop=True)
    first = out["seed"].min() if len(out) else 1
    out["shown"] = [
        g == TRACE_GRID or (at.get(w) == r and s == first)
        for g, w, r, s in zip(out["grid"], out["workload"], out["rate"], out["seed"], strict=True)
    ]
    return out


def _move_lines(moves: pd.DataFrame) -> list[str]:
    shown = moves[moves["shown"]]
    if not len(shown):
        return []
    lines = [
        "| grid | system | model | workload | QPS | moves with KV | KV moved (GB) | downtime p50 / p99 / max (ms) | "
        "migration p50 / p99 (ms) | pre-copied |",
        "|---|---|---|---|---:|---:|---:|---|---|---:|",
    ]
    for r in shown.itertuples():
        down = f"{r.downtime_p50 * 1e3:.2f} / {r.downtime_p99 * 1e3:.2f} / {r.downtime_max * 1e3:.2f}"
        whole = f"{r.migration_p50 * 1e3:.2f} / {r.migration_p99 * 1e3:.2f}"
        lines.append(
            f"| {r.grid} | {r.label} | {r.model} | {r.workload} | {r.rate:.3g} | {int(r.kv_moves)} | {r.kv_gb:.1f} | "
            f"{down} | {whole} | {r.precopied_share:.0%} |"
        )
    return lines


def trace_totals(table: pd.DataFrame) -> pd.DataFrame:
    traced = table[table["grid"] == TRACE_GRID]
    return traced[["workload", "label", "rate", "ttft_slo", "tbt_slo", "arrived", "attainment"]].reset_index(drop=True)


def _trace_lines(totals: pd.DataFrame) -> list[str]:
    if not len(totals):
        return []
    traces = list(dict.fromkeys(totals["workload"]))
    header = " | ".join(
        f"{w} ({t.ttft_slo:g}/{t.tbt_slo:g} s)" for w in traces for t in [totals[totals["workload"] == w].iloc[0]]
    )
    lines = [f"| system | {header} |", "|---|" + "---:|" * len(traces)]
    for label, part in totals.groupby("label", sort=False):
        by_trace = dict(zip(part["workload"], part["attainment"], strict=True))
        lines.append(f"| {label} | " + " | ".join(f"{by_trace[w]:.1%}" if w in by_trace else "" for w in traces) + " |")
    return lines


def variant_grids(table: pd.DataFrame) -> list[str]:
    """Rate-axis grids beside the goodput grid and the traces, in spec order."""
    rated = table[(table["axis"] == "rate") & ~table["grid"].isin([*MAIN_GRIDS, TRACE_GRID])]
    return list(dict.fromkeys(rated["grid"]))


def analyze(ctx: RunContext) -> KindResult:
    table = ctx.table
    main = table[table["grid"].isin(MAIN_GRIDS)]
    per_seed = goodput.seed_capacities(main)
    caps = goodput.aggregate(per_seed)
    refs = list(ctx.spec.options.get("reference", ["ascendra"]))
    ratio = goodput.ratios(per_seed, refs) if len(caps) else pd.DataFrame()
    scales = goodput.min_scales(main)
    variants = goodput.capacities(table[table["grid"].isin(variant_grids(table))])
    moves = move_table(table, {k: float(v) for k, v in ctx.spec.options.get("moves_at", {}).items()})
    totals = trace_totals(table)

    several = "ci_low" in caps
    about = " mean over seeds [95% Student-t interval]; ratios paired by seed" if several else ""
    lines = [f"Capacity (QPS at 90% paper attainment{';' if several else ''}{about}):", "", capacity_table(caps)]
    if len(ratio):
        lines += ["", ratio_table(ratio)]
    for grid, part in variants.groupby("grid", sort=False):
        lines += ["", f"Variant grid {grid!r} (capacity, QPS):", "", capacity_table(part)]
    if len(scales):
        lines += ["", goodput.headline(pd.DataFrame(), pd.DataFrame(), scales)]
    if len(totals):
        lines += ["", "Trace replays (attainment, paper metric):", "", *_trace_lines(totals)]
    move_lines = _move_lines(moves)
    if move_lines:
        lines += ["", "KV moves between instances (one run per row):", "", *move_lines]
    tables = {
        "capacity": caps,
        "capacity_per_seed": per_seed if several else pd.DataFrame(),
        "ratios": ratio,
        "slo_scale": scales,
        "variants": variants,
        "moves": moves,
        "traces": totals,
    }
    return KindResult({k: v for k, v in tables.items() if len(v)}, "\n".join(lines))


def plot(points: pd.DataFrame, tables: dict[str, pd.DataFrame], path: Path) -> None:
    """The goodput figure over the rate, SLO-scale and variant grids (trace replays are tabulated only)."""
    shown = [*MAIN_GRIDS, *variant_grids(points)]
    goodput.plot(points[points["grid"].isin(shown)].reset_index(drop=True), tables, path)
