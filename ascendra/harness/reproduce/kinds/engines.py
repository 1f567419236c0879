"""Engines: our engine under the baseline policies against the real vLLM engine, live on the same host.

Per system variant and rate: throughput (output tokens/s), TTFT and TBT percentiles and SLO attainment. The
speed ratio is each variant's best throughput over the rates (the highest rate saturates the engine) divided by
the reference variant's (``[options] reference``, the real vLLM). Wall-clock numbers: they hold for the host
that produced them, so such specs set ``[options] live = true`` and run serially, outside ``reproduce all``.
Several seeds (repeated rounds) are averaged per variant and rate.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ascendra.harness.reproduce.context import KindResult, RunContext
from ascendra.harness.reproduce.kinds import style
from ascendra.harness.sweep import aggregate_seeds

METRICS = ("throughput_tps", "ttft_p50", "ttft_p99", "tbt_p50", "tbt_p99", "attainment")


def analyze(ctx: RunContext) -> KindResult:
    rows = []
    for point in ctx.points:
        summary = ctx.store.row(point.config)
        seed = point.config.workload.seed
        rows.append(
            {"label": point.label, "rate": point.config.rate, "seed": seed, **{k: summary.get(k) for k in METRICS}}
        )
    order = {label: i for i, label in enumerate(dict.fromkeys(p.label for p in ctx.points))}  # the spec's order
    table = aggregate_seeds(pd.DataFrame(rows), METRICS, by=("label", "rate")).sort_values(
        ["label", "rate"], key=lambda c: c.map(order) if c.name == "label" else c
    )
    table = table.reset_index(drop=True)
    reference = str(ctx.spec.options.get("reference", table["label"].iloc[0]))
    best = table.groupby("label", sort=False)["throughput_tps"].max()
    if reference not in best.index:
        reference = str(best.index[0])
    ratios = pd.DataFrame(
        {"label": best.index, "peak_tps": best.to_numpy(), "ratio_to_reference": (best / best[reference]).to_numpy()}
    )
    lines = [
        "| system | QPS | tokens/s | TTFT p50 / p99 (ms) | TBT p50 / p99 (ms) | attainment |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.label} | {r.rate:g} | {r.throughput_tps:,.0f} | {1e3 * r.ttft_p50:.1f} / {1e3 * r.ttft_p99:.1f} | "
            f"{1e3 * r.tbt_p50:.2f} / {1e3 * r.tbt_p99:.2f} | {r.attainment:.1%} |"
        )
    lines += ["", f"Peak throughput relative to {reference}:", ""]
    lines += [f"- {r.label}: {r.peak_tps:,.0f} tokens/s ({r.ratio_to_reference:.2f}x)" for r in ratios.itertuples()]
    return KindResult({"engines": table, "speed": ratios}, "\n".join(lines))


def plot(points: pd.DataFrame, tables: dict[str, pd.DataFrame], path: Path) -> None:
    """Throughput, TTFT p99 and TBT p99 against the offered rate, one line per system variant."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    style.theme()
    table = tables["engines"].copy()
    table["ttft_p99_ms"] = 1e3 * table["ttft_p99"]
    table["tbt_p99_ms"] = 1e3 * table["tbt_p99"]
    panels = [
        ("throughput_tps", "output tokens/s"),
        ("ttft_p99_ms", "TTFT p99 (ms)"),
        ("tbt_p99_ms", "TBT p99 (ms)"),
    ]
    colours = style.palette(list(dict.fromkeys(table["label"])))
    fig, axes = plt.subplots(1, len(panels), figsize=(11, 3.4))
    for i, (ax, (column, label)) in enumerate(zip(axes, panels, strict=True)):
        sns.lineplot(data=table, x="rate", y=column, hue="label", palette=colours, marker="o", ax=ax, legend=i == 0)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(table["rate"].unique()), [f"{r:g}" for r in sorted(table["rate"].unique())])
        ax.minorticks_off()
        ax.set_xlabel("offered rate (QPS, log scale)")
        ax.set_ylabel(label)
    axes[0].legend(title=None, fontsize=8)
    style.save(fig, path)
