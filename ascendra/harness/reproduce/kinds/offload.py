"""Offload: how many requests Ascendra offloads to its high-priority instance, and how many of those still make
both SLOs, per (model, workload) cell across the request rates of the goodput grid."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ascendra.harness.reproduce.context import KindResult, RunContext, cell_name
from ascendra.harness.reproduce.kinds import style
from ascendra.harness.sweep import aggregate_seeds

COLUMNS = ["model", "workload", "label", "rate", "arrived", "offloaded", "offloaded_attainment", "attainment"]


def analyze(ctx: RunContext) -> KindResult:
    keys = ["model", "workload", "label", "rate"]
    per_seed = ctx.table.assign(seed=ctx.table.get("seed", 1))[[*COLUMNS, "seed"]]
    table = aggregate_seeds(per_seed, COLUMNS, by=keys).sort_values(keys, ignore_index=True)
    table["offloaded_share"] = table["offloaded"] / table["arrived"]
    lines = ["Means over seeds:", ""] if table["seeds"].max() > 1 else []
    lines += [
        "| model | workload | QPS | offloaded | share of requests | offloaded attaining SLOs | all attaining |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        kept = "-" if pd.isna(r.offloaded_attainment) else f"{r.offloaded_attainment:.1%}"  # nothing offloaded
        lines.append(
            f"| {r.model} | {r.workload} | {r.rate:g} | {r.offloaded:.0f} | {r.offloaded_share:.1%} | "
            f"{kept} | {r.attainment:.1%} |"
        )
    return KindResult({"offload": table}, "\n".join(lines))


def plot(points: pd.DataFrame, tables: dict[str, pd.DataFrame], path: Path) -> None:
    """One panel per cell: offloaded count (x) against the offloaded requests' attainment (y), one marker per QPS."""
    import matplotlib.pyplot as plt

    style.theme()
    table = tables["offload"]
    cells = list(dict.fromkeys(zip(table["model"], table["workload"], strict=True)))
    fig, axes = plt.subplots(1, len(cells), figsize=(3.6 * len(cells), 3.3), squeeze=False)
    for ax, (model, workload) in zip(axes[0], cells, strict=True):
        part = table[(table["model"] == model) & (table["workload"] == workload)].sort_values("rate")
        ax.plot(part["offloaded"], part["offloaded_attainment"], "-o", color=style.PALETTE["ascendra"])
        for r in part.itertuples():
            ax.annotate(
                f"{r.rate:g}",
                (r.offloaded, r.offloaded_attainment),
                textcoords="offset points",
                xytext=(3, 4),
                fontsize=7,
            )
        style.target_line(ax)
        ax.set_ylim(-0.02, 1.05)
        ax.set_title(f"{cell_name(model, workload)}\n(labels: QPS)", fontsize=9)
        ax.set_xlabel("offloaded requests (count)")
        ax.set_ylabel("attainment of offloaded requests" if ax is axes[0][0] else "")
        ax.legend(fontsize=7, loc="lower left")
    style.save(fig, path)
