"""Goodput: SLO attainment against QPS (capacity at 90%) and against SLO scale, one line per system variant.

Rate grids give each variant's capacity per (model, workload) cell (``capacity_from_sweep``: the first crossing
of 90%), and the ratio of the reference variant's capacity to every other's. SLO-scale grids give the smallest
scale at which attainment reaches 90% (linear interpolation between the bracketing scales).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ascendra.harness.reproduce.context import KindResult, RunContext, cell_name
from ascendra.harness.reproduce.kinds import style
from ascendra.metrics import capacity_from_sweep

CELL = ["grid", "model", "workload"]


def capacities(table: pd.DataFrame) -> pd.DataFrame:
    """Per rate-axis (grid, model, workload, label): capacity in QPS at 90% attainment and its status."""
    rows = []
    rated = table[table["axis"] == "rate"]
    for (grid, model, workload, label), part in rated.groupby([*CELL, "label"], sort=False):
        part = part.groupby("value", as_index=False)["attainment"].mean().sort_values("value")
        result = capacity_from_sweep(part["value"].tolist(), part["attainment"].tolist(), style.TARGET)
        rows.append(
            {
                "grid": grid,
                "model": model,
                "workload": workload,
                "label": label,
                "capacity_qps": result.capacity,
                "status": result.status,
            }
        )
    return pd.DataFrame(rows)


def min_scales(table: pd.DataFrame) -> pd.DataFrame:
    """Per SLO-scale (grid, model, workload, label): the smallest SLO scale reaching 90% attainment."""
    rows = []
    scaled = table[table["axis"] == "slo_scale"]
    for (grid, model, workload, label), group in scaled.groupby([*CELL, "label"], sort=False):
        part = group.groupby("value", as_index=False)["attainment"].mean().sort_values("value")
        xs, ys = part["value"].to_numpy(), part["attainment"].to_numpy()
        scale, status = math.nan, "above range"
        if ys[0] >= style.TARGET:
            scale, status = float(xs[0]), "at most"
        else:
            for i in range(1, len(xs)):
                if ys[i] >= style.TARGET:
                    frac = (style.TARGET - ys[i - 1]) / (ys[i] - ys[i - 1])
                    scale, status = float(xs[i - 1] + frac * (xs[i] - xs[i - 1])), "interpolated"
                    break
        rows.append(
            {
                "grid": grid,
                "model": model,
                "workload": workload,
                "label": label,
                "rate": float(group["rate"].iloc[0]),
                "min_slo_scale": scale,
                "status": status,
            }
        )
    return pd.DataFrame(rows)


def ratios(caps: pd.DataFrame, references: list[str]) -> pd.DataFrame:
    """Per cell: reference capacity / each other variant's capacity (the first reference label in the cell)."""
    rows = []
    for (grid, model, workload), part in caps.groupby(CELL, sort=False):
        by_label = dict(zip(part["label"], part["capacity_qps"], strict=True))
        ref = next((r for r in references if r in by_label), None)
        if ref is None or by_label[ref] is None or pd.isna(by_label[ref]):
            continue
        for label, cap in by_label.items():
            if label == ref or cap is None or pd.isna(cap) or cap <= 0:
                continue
            rows.append(
                {
                    "grid": grid,
                    "model": model,
                    "workload": workload,
                    "reference": ref,
                    "other": label,
                    "ratio": by_label[ref] / cap,
                }
            )
    return pd.DataFrame(rows)


def _fmt(value: object, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def headline(caps: pd.DataFrame, ratio: pd.DataFrame, scales: pd.DataFrame) -> str:
    lines = []
    if len(caps):
        lines += ["| grid | model | workload | variant | capacity (QPS) | status |", "|---|---|---|---|---:|---|"]
        for r in caps.itertuples():
            lines.append(f"| {r.grid} | {r.model} | {r.workload} | {r.label} | {_fmt(r.capacity_qps)} | {r.status} |")
    if len(ratio):
        lines += ["", "| grid | model | workload | ratio | value |", "|---|---|---|---|---:|"]
        for r in ratio.itertuples():
            lines.append(f"| {r.grid} | {r.model} | {r.workload} | {r.reference} / {r.other} | {r.ratio:.3f}x |")
    if len(scales):
        lines += ["", "| model | workload | QPS | variant | smallest SLO scale at 90% |", "|---|---|---:|---|---:|"]
        for r in scales.itertuples():
            scale = f"{_fmt(r.min_slo_scale)} ({r.status})"
            lines.append(f"| {r.model} | {r.workload} | {r.rate:g} | {r.label} | {scale} |")
    return "\n".join(lines)


def analyze(ctx: RunContext) -> KindResult:
    caps = capacities(ctx.table)
    scales = min_scales(ctx.table)
    refs = list(ctx.spec.options.get("reference", ["ascendra"]))
    ratio = ratios(caps, refs) if len(caps) else pd.DataFrame()
    tables = {"capacity": caps, "ratios": ratio, "slo_scale": scales}
    return KindResult({k: v for k, v in tables.items() if len(v)}, headline(caps, ratio, scales))


def plot(points: pd.DataFrame, tables: dict[str, pd.DataFrame], path: Path) -> None:
    """Rows: grids (QPS or SLO-scale axis); columns: (model, workload) cells; hue: variant."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    style.theme()
    grids = list(dict.fromkeys(points["grid"]))
    cells = {
        g: list(dict.fromkeys(zip(*(points.loc[points["grid"] == g, c] for c in ("model", "workload")), strict=True)))
        for g in grids
    }
    ncols = max(len(c) for c in cells.values())
    fig, axes = plt.subplots(len(grids), ncols, figsize=(3.6 * ncols + 1.8, 3.1 * len(grids)), squeeze=False)
    colours = style.palette(list(dict.fromkeys(points["label"])))
    for i, grid in enumerate(grids):
        for j in range(ncols):
            ax = axes[i][j]
            if j >= len(cells[grid]):
                ax.set_visible(False)
                continue
            model, workload = cells[grid][j]
            part = points[(points["grid"] == grid) & (points["model"] == model) & (points["workload"] == workload)]
            axis = part["axis"].iloc[0]
            sns.lineplot(
                data=part, x="value", y="attainment", hue="label", palette=colours, marker="o", ax=ax, errorbar=None
            )
            style.target_line(ax)
            ax.set_ylim(-0.02, 1.02)
            ttft, tbt = part["ttft_slo"].to_numpy(), part["tbt_slo"].to_numpy()
            if axis == "rate":
                ax.set_xlabel("request rate (QPS)")
                title = f"{cell_name(model, workload)}\nTTFT/TBT SLO {ttft.min():g}/{tbt.min():g} s"
            else:
                ax.set_xlabel("SLO scale (x TTFT and TBT SLOs)")
                base = f"{ttft[0] / part['value'].iloc[0]:g}/{tbt[0] / part['value'].iloc[0]:g} s"
                title = f"{cell_name(model, workload)} @ {part['rate'].iloc[0]:g} QPS\nSLO scale 1 = {base}"
            if len(grids) > 1 and set(points["axis"]) == {"rate"}:
                title = f"[{grid}] {title}"
            ax.set_title(title, fontsize=9)
            ax.set_ylabel("SLO attainment (fraction)" if j == 0 else "")
            ax.yaxis.set_major_locator(plt.MultipleLocator(0.2))
            ax.get_legend().remove()
        # One legend per row (its panels share the variants), beside its last panel.
        last = axes[i][len(cells[grid]) - 1]
        handles, labels = axes[i][0].get_legend_handles_labels()
        last.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    style.save(fig, path)
