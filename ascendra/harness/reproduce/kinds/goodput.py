"""Goodput: SLO attainment against QPS (capacity at 90%) and against SLO scale, one line per system variant.

Rate grids give each variant's capacity per (model, workload) cell (``capacity_from_sweep``: the first crossing
of 90%), and the ratio of the reference variant's capacity to every other's. A cell with several seeds gets a
capacity per seed, reported as the mean with a 95% Student-t interval; its ratios are paired (per seed) with
their interval; one seed gives exactly the single-seed tables. SLO-scale grids give the smallest
scale at which attainment reaches 90% (linear interpolation between the bracketing scales).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ascendra.harness.reproduce.context import KindResult, RunContext, cell_name
from ascendra.harness.reproduce.kinds import style
from ascendra.metrics import capacity_from_sweep, combined_status, mean_ci, paired_ratio_ci

CELL = ["grid", "model", "workload"]


def seed_capacities(table: pd.DataFrame) -> pd.DataFrame:
    """Per rate-axis (grid, model, workload, label, seed): capacity in QPS at 90% attainment and its status."""
    rows = []
    rated = table[table["axis"] == "rate"]
    seeds = rated["seed"] if "seed" in rated else pd.Series(1, index=rated.index)
    for (grid, model, workload, label, seed), part in rated.assign(seed=seeds).groupby(
        [*CELL, "label", "seed"], sort=False
    ):
        part = part.groupby("value", as_index=False)["attainment"].mean().sort_values("value")
        result = capacity_from_sweep(part["value"].tolist(), part["attainment"].tolist(), style.TARGET)
        rows.append(
            {
                "grid": grid,
                "model": model,
                "workload": workload,
                "label": label,
                "seed": seed,
                "capacity_qps": result.capacity,
                "status": result.status,
            }
        )
    return pd.DataFrame(rows)


def capacities(table: pd.DataFrame) -> pd.DataFrame:
    """Per rate-axis (grid, model, workload, label): capacity in QPS at 90% attainment and its status; where a
    cell has several seeds, the mean over seeds with its 95% interval (``ci_low``, ``ci_high``, ``seeds``)."""
    return aggregate(seed_capacities(table))


def aggregate(per_seed: pd.DataFrame) -> pd.DataFrame:
    """``seed_capacities`` reduced to one row per variant (one seed: that seed's row, without the seed)."""
    if per_seed.empty:
        return per_seed
    several = per_seed.groupby([*CELL, "label"], sort=False)["seed"].nunique().max() > 1
    rows = []
    for (grid, model, workload, label), part in per_seed.groupby([*CELL, "label"], sort=False):
        row: dict[str, object] = {"grid": grid, "model": model, "workload": workload, "label": label}
        values = part["capacity_qps"].tolist()
        status = combined_status(part["status"].tolist())
        ci = mean_ci(values) if _usable(values, zero_ok=True) else None
        row |= {"capacity_qps": ci.estimate if ci else None, "status": status}
        if several:
            row |= {"ci_low": ci.low if ci else None, "ci_high": ci.high if ci else None, "seeds": len(part)}
        rows.append(row)
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
    """Per cell: reference capacity / each other variant's capacity (the first reference label in the cell). From
    per-seed capacities (a ``seed`` column) the ratio is paired: taken seed by seed, then its mean with a 95%
    interval (``ci_low``, ``ci_high``, ``seeds``) where the cell has several seeds."""
    if "seed" not in caps:
        caps = caps.assign(seed=1)
    several = bool(len(caps)) and caps.groupby(CELL, sort=False)["seed"].nunique().max() > 1
    rows = []
    for (grid, model, workload), part in caps.groupby(CELL, sort=False):
        by_label = {
            label: dict(zip(p["seed"], p["capacity_qps"], strict=True))
            for label, p in part.groupby("label", sort=False)
        }
        ref = next((r for r in references if r in by_label), None)
        if ref is None or not _usable(by_label[ref].values(), zero_ok=True):
            continue
        for label, caps_of in by_label.items():
            if label == ref or not _usable(caps_of.values()) or set(caps_of) != set(by_label[ref]):
                continue
            seeds = sorted(caps_of)
            ci = paired_ratio_ci([by_label[ref][s] for s in seeds], [caps_of[s] for s in seeds])
            row: dict[str, object] = {
                "grid": grid,
                "model": model,
                "workload": workload,
                "reference": ref,
                "other": label,
                "ratio": ci.estimate,
            }
            if several:
                row |= {"ci_low": ci.low, "ci_high": ci.high, "seeds": ci.n}
            rows.append(row)
    return pd.DataFrame(rows)


def _usable(values: Iterable[object], zero_ok: bool = False) -> bool:
    """Every per-seed capacity known (and positive, for a denominator)."""
    return all(v is not None and not pd.isna(v) and (zero_ok or v > 0) for v in values)  # type: ignore[operator]


def _fmt(value: object, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def interval_text(row: object, digits: int = 2) -> str:
    """`` [low, high]`` where the row has a several-seed interval, empty otherwise."""
    low, high = getattr(row, "ci_low", None), getattr(row, "ci_high", None)
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return ""
    return f" [{low:.{digits}f}, {high:.{digits}f}]"


def headline(caps: pd.DataFrame, ratio: pd.DataFrame, scales: pd.DataFrame) -> str:
    lines = []
    if "ci_low" in caps or "ci_low" in ratio:
        lines += ["Several seeds: mean over seeds [95% Student-t interval]; ratios are paired by seed.", ""]
    if len(caps):
        lines += ["| grid | model | workload | variant | capacity (QPS) | status |", "|---|---|---|---|---:|---|"]
        for r in caps.itertuples():
            value = f"{_fmt(r.capacity_qps)}{interval_text(r)}"
            lines.append(f"| {r.grid} | {r.model} | {r.workload} | {r.label} | {value} | {r.status} |")
    if len(ratio):
        lines += ["", "| grid | model | workload | ratio | value |", "|---|---|---|---|---:|"]
        for r in ratio.itertuples():
            value = f"{r.ratio:.3f}x{interval_text(r, 3)}"
            lines.append(f"| {r.grid} | {r.model} | {r.workload} | {r.reference} / {r.other} | {value} |")
    if len(scales):
        lines += ["", "| model | workload | QPS | variant | smallest SLO scale at 90% |", "|---|---|---:|---|---:|"]
        for r in scales.itertuples():
            scale = f"{_fmt(r.min_slo_scale)} ({r.status})"
            lines.append(f"| {r.model} | {r.workload} | {r.rate:g} | {r.label} | {scale} |")
    return "\n".join(lines)


def analyze(ctx: RunContext) -> KindResult:
    per_seed = seed_capacities(ctx.table)
    caps = aggregate(per_seed)
    scales = min_scales(ctx.table)
    refs = list(ctx.spec.options.get("reference", ["ascendra"]))
    ratio = ratios(per_seed, refs) if len(caps) else pd.DataFrame()
    tables = {"capacity": caps, "ratios": ratio, "slo_scale": scales}
    if "seeds" in caps:
        tables["capacity_per_seed"] = per_seed
    text = headline(caps, ratio, scales)
    if "warmup_excluded" in ctx.table:  # a spec with a warm-up or cool-down says so beside its numbers
        text = "Attainment excludes each run's warm-up and cool-down requests (see the spec).\n\n" + text
    return KindResult({k: v for k, v in tables.items() if len(v)}, text)


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
            # Several seeds: a band of the 95% bootstrap interval of attainment over seeds (seeded, so figures repeat).
            several = "seed" in part and part["seed"].nunique() > 1
            band = ("ci", 95) if several else None
            sns.lineplot(
                data=part,
                x="value",
                y="attainment",
                hue="label",
                palette=colours,
                marker="o",
                ax=ax,
                errorbar=band,
                seed=0,
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
