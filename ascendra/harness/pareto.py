"""Pareto views of a rate sweep, drawn from result tables only (a sweep's ``summary.csv``, a reproduction's
``points.csv``): what each system's latency costs in throughput, and the interactivity-throughput frontier.

- **Latency against throughput**: per workload, one row of four panels (TTFT P50 and P99, TBT P50 and P99, log
  scale) against the measured throughput; each system is one line across its rates.
- **Frontier**: per workload, interactivity (tokens/s one user sees: 1 / median gap between tokens) against
  throughput (finished requests/s); each system's points, with the non-dominated ones (no other point of the
  system is at least as good on both axes and better on one) joined into its frontier. Over several seeds, a
  rate's point is the mean over its seeds.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ascendra.harness.reproduce.kinds import style

#: (column, axis label) of the latency panels.
LATENCIES = (
    ("ttft_p50", "TTFT P50 (s)"),
    ("ttft_p99", "TTFT P99 (s)"),
    ("tbt_p50", "TBT P50 (s)"),
    ("tbt_p99", "TBT P99 (s)"),
)
THROUGHPUT = ("throughput_rps", "throughput (finished req/s)")
INTERACTIVITY = ("interactivity", "interactivity (tokens/s per user)")
#: Panels per row of the frontier figure.
FRONTIER_COLUMNS = 4
#: What a view table holds: the panel (workload), the system, the rate, then the numbers.
VIEW_COLUMNS = ["panel", "system", "rate", THROUGHPUT[0], *(c for c, _ in LATENCIES), INTERACTIVITY[0]]


def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The rows of ``points`` that no other row dominates, higher ``x`` and ``y`` being better (rows with a NaN
    in either are never on it), sorted by ``x``. Identical points do not dominate each other: both stay."""
    known = points.dropna(subset=[x, y])
    xs, ys = known[x].to_numpy(dtype=float), known[y].to_numpy(dtype=float)
    at_least = (xs[None, :] >= xs[:, None]) & (ys[None, :] >= ys[:, None])
    better = (xs[None, :] > xs[:, None]) | (ys[None, :] > ys[:, None])
    dominated = (at_least & better).any(axis=1)
    return known[~dominated].sort_values(x, kind="stable")


def _views(frame: pd.DataFrame, panel: pd.Series, system: pd.Series) -> pd.DataFrame:
    """``frame``'s points as a view table, averaged over seeds per (panel, system, rate)."""
    present = [c for c in (THROUGHPUT[0], *(c for c, _ in LATENCIES)) if c in frame]
    table = frame[["rate", *present]].apply(pd.to_numeric, errors="coerce").assign(panel=panel, system=system)
    table = table.groupby(["panel", "system", "rate"], sort=False, as_index=False)[present].mean()
    table = table.reindex(columns=VIEW_COLUMNS[:-1])
    with np.errstate(divide="ignore"):
        table[INTERACTIVITY[0]] = 1.0 / table["tbt_p50"].where(table["tbt_p50"] > 0)
    return table.sort_values(["panel", "system", "rate"], kind="stable", ignore_index=True)


def sweep_views(summary: pd.DataFrame, workload: str) -> pd.DataFrame:
    """A sweep's ``summary.csv`` (one system, one workload; rows skipped past saturation dropped)."""
    ran = summary[summary["status"] != "skipped"] if "status" in summary else summary
    return _views(ran, pd.Series(workload, index=ran.index), ran["system"].astype(str))


def points_views(points: pd.DataFrame) -> pd.DataFrame:
    """A reproduction's ``points.csv``: its rate-axis rows swept over several rates, a panel per (grid, model,
    workload), a line per variant label. Empty when the experiment has no such rows."""
    if "axis" not in points or "throughput_rps" not in points:
        return pd.DataFrame(columns=VIEW_COLUMNS)
    rated = points[points["axis"] == "rate"]
    curves = rated.groupby(["grid", "model", "workload", "label"])["rate"].transform("nunique")
    rated = rated[curves > 1]  # a single rate (a trace replay) is a point, not a curve across rates
    panel = rated["model"].astype(str) + " / " + rated["workload"].astype(str)
    if rated["grid"].nunique() > 1:
        panel = "[" + rated["grid"].astype(str) + "] " + panel
    return _views(rated, panel, rated["label"].astype(str))


def _panels(table: pd.DataFrame, panels: Sequence[str] | None) -> list[str]:
    return list(panels) if panels is not None else list(dict.fromkeys(table["panel"]))


def latency_figure(table: pd.DataFrame, panels: Sequence[str] | None = None):
    """One row per panel (workload): TTFT and TBT P50/P99 against throughput, a line per system."""
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    style.theme()
    rows = _panels(table, panels)
    fig, axes = plt.subplots(len(rows), len(LATENCIES), figsize=(13.5, 3.0 * len(rows)), squeeze=False)
    colours = style.palette(list(dict.fromkeys(table["system"])))
    for i, panel in enumerate(rows):
        part = table[table["panel"] == panel]
        for j, (column, label) in enumerate(LATENCIES):
            ax = axes[i][j]
            if part[column].isna().all():
                _absent(ax, column)
            for system, line in part.groupby("system", sort=False):
                line = line.sort_values("rate")
                ax.plot(line[THROUGHPUT[0]], line[column], marker="o", ms=3.5, color=colours[system], label=system)
            if (part[column] > 0).any():
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
                ax.yaxis.set_minor_formatter(ticker.NullFormatter())
            ax.set_xlabel(THROUGHPUT[1])
            ax.set_ylabel(label)
            ax.set_title(f"{panel}\n{label.split(' (')[0]}", fontsize=8)
        handles, labels = axes[i][0].get_legend_handles_labels()
        axes[i][-1].legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return fig


def frontier_figure(table: pd.DataFrame, panels: Sequence[str] | None = None):
    """One panel per workload: interactivity against throughput, each system's points and its frontier."""
    import matplotlib.pyplot as plt

    style.theme()
    cells = _panels(table, panels)
    ncols = min(FRONTIER_COLUMNS, len(cells))
    nrows = -(-len(cells) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 1.6, 3.2 * nrows), squeeze=False)
    colours = style.palette(list(dict.fromkeys(table["system"])))
    for ax in axes.flat[len(cells) :]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, cells, strict=False):
        part = table[table["panel"] == panel]
        for system, points in part.groupby("system", sort=False):
            colour = colours[system]
            ax.scatter(points[INTERACTIVITY[0]], points[THROUGHPUT[0]], s=12, color=colour, alpha=0.35)
            front = pareto_front(points, INTERACTIVITY[0], THROUGHPUT[0])
            ax.plot(front[INTERACTIVITY[0]], front[THROUGHPUT[0]], marker="o", ms=4, color=colour, label=system)
        if part[INTERACTIVITY[0]].isna().all():
            _absent(ax, "tbt_p50")
        ax.set_xlabel(INTERACTIVITY[1])
        ax.set_ylabel(THROUGHPUT[1])
        ax.set_title(panel, fontsize=8)
    legend = {}  # every system of every panel, once
    for ax in axes.flat:
        legend.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    axes[0][ncols - 1].legend(
        legend.values(), legend.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False
    )
    return fig


def _absent(ax, column: str) -> None:
    """Say so on a panel whose column the table lacks (tables written before the column existed)."""
    ax.text(0.5, 0.5, f"{column} not in this table", ha="center", va="center", transform=ax.transAxes, fontsize=8)


def png(fig) -> bytes:
    """The figure as PNG bytes (closed afterwards), for pages that embed it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format="png")
    plt.close(fig)
    return buffer.getvalue()


#: The files ``write_figures`` writes into an experiment's folder, with what they show.
FIGURES = {
    "pareto.png": "TTFT and TBT (P50, P99) against throughput",
    "frontier.png": "the interactivity-throughput frontier",
}


def write_figures(table: pd.DataFrame, folder: Path) -> list[str]:
    """``pareto.png`` and ``frontier.png`` of a view table into ``folder``; returns the names written (none for
    an empty table)."""
    if table.empty:
        return []
    style.save(latency_figure(table), folder / "pareto.png")
    style.save(frontier_figure(table), folder / "frontier.png")
    return list(FIGURES)
