"""Admission control: every system with and without dropping requests that can no longer meet the TTFT SLO
(Ascendra: predicted wait plus prefill past the SLO; the baselines: waited past it unscheduled), at one load."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ascendra.harness.reproduce.context import KindResult, RunContext
from ascendra.harness.reproduce.kinds import style
from ascendra.harness.sweep import aggregate_seeds

#: Per-run numbers, averaged over seeds.
METRICS = ("arrived", "attainment", "dropped_share", "ttft_p99", "tbt_p99", "goodput_qps")


def analyze(ctx: RunContext) -> KindResult:
    rows = []
    for point, summary in zip(ctx.points, ctx.table.itertuples(), strict=True):
        rows.append(
            {
                "system": point.config.label,
                "admission_control": "on" if point.config.knobs.admission_control else "off",
                "rate": point.config.rate,
                "arrived": summary.arrived,
                "attainment": summary.attainment,
                "dropped_share": summary.dropped / summary.arrived,
                "ttft_p99": summary.ttft_p99,
                "tbt_p99": summary.tbt_p99,
                "goodput_qps": summary.attainment * point.config.rate,
                "seed": point.config.workload.seed,
            }
        )
    per_seed = pd.DataFrame(rows)
    table = aggregate_seeds(per_seed, METRICS, by=("system", "admission_control", "rate"), sort=False)
    several = table["seeds"].max() > 1
    lines = ["Mean over seeds [95% Student-t interval of attainment]:", ""] if several else []
    lines += [
        "| system | admission control | attainment | dropped | TTFT p99 (s) | goodput (QPS) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        ci = f" [{r.attainment_ci_low:.1%}, {r.attainment_ci_high:.1%}]" if several else ""
        lines.append(
            f"| {r.system} | {r.admission_control} | {r.attainment:.1%}{ci} | {r.dropped_share:.1%} | "
            f"{r.ttft_p99:.2f} | {r.goodput_qps:.2f} |"
        )
    tables = {"admission": table, **({"admission_per_seed": per_seed} if several else {})}
    return KindResult(tables, "\n".join(lines))


def plot(points: pd.DataFrame, tables: dict[str, pd.DataFrame], path: Path) -> None:
    """Grouped bars per system (admission control off/on): attainment, dropped share, TTFT p99."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    style.theme()
    table = tables["admission"]
    panels = [
        ("attainment", "SLO attainment (fraction)"),
        ("dropped_share", "dropped requests (fraction)"),
        ("ttft_p99", "TTFT p99 of served requests (s)"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(11, 3.4))
    colours = {"off": "#9e9e9e", "on": "#2ca02c"}
    for ax, (column, label) in zip(axes, panels, strict=True):
        sns.barplot(  # several seeds: bars are means with their 95% bootstrap interval (seeded: figures repeat)
            data=tables.get("admission_per_seed", table),
            x="system",
            y=column,
            hue="admission_control",
            palette=colours,
            errorbar=("ci", 95) if "admission_per_seed" in tables else None,
            seed=0,
            ax=ax,
        )
        ax.set_xlabel("system")
        ax.set_ylabel(label)
        ax.legend(title="admission control", fontsize=7, title_fontsize=7)
        if column == "attainment":
            style.target_line(ax)
            ax.set_ylim(0, 1.05)
    rate = table["rate"].iloc[0]
    fig.suptitle(f"Llama-3.1-8B, ShareGPT, {rate:g} QPS, {int(table['arrived'].iloc[0])} requests", fontsize=10)
    style.save(fig, path)
