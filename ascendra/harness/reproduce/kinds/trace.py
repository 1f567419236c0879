"""Trace replay: the request rate over time of a timestamped trace, and each system's cumulative SLO violations
(requests missing the TTFT or mean-TBT SLO, counted at their arrival time) over the same timeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ascendra.harness.reproduce.context import KindResult, RunContext
from ascendra.harness.reproduce.kinds import style


def timeline(compact: pd.DataFrame, bin_s: float) -> pd.DataFrame:
    """Per time bin: arrivals per second and violations so far (by arrival time)."""
    arrival = compact["arrival"].to_numpy()
    edges = np.arange(0.0, arrival.max() + bin_s, bin_s)
    arrivals, _ = np.histogram(arrival, edges)
    violations, _ = np.histogram(arrival[~compact["attained"].to_numpy()], edges)
    return pd.DataFrame({"t_s": edges[1:], "qps": arrivals / bin_s, "cum_violations": np.cumsum(violations)})


def analyze(ctx: RunContext) -> KindResult:
    bin_s = float(ctx.spec.options.get("bin_s", 60.0))
    parts, rows = [], []
    for point in ctx.points:
        compact = ctx.store.table(point.config)
        part = timeline(compact, bin_s)
        c = point.config
        part.insert(0, "workload", c.workload.name)
        part.insert(1, "label", point.label)
        parts.append(part)
        rows.append(
            {
                "workload": c.workload.name,
                "label": point.label,
                "requests": len(compact),
                "rate": c.rate,
                "ttft_slo": c.slo.ttft,
                "tbt_slo": c.slo.tbt,
                "violations": int((~compact["attained"]).sum()),
                "attainment": float(compact["attained"].mean()),
            }
        )
    totals = pd.DataFrame(rows)
    lines = [
        "| trace | SLO TTFT/TBT (s) | requests | mean QPS | system | violations | attainment |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for r in totals.itertuples():
        lines.append(
            f"| {r.workload} | {r.ttft_slo:g}/{r.tbt_slo:g} | {r.requests} | {r.rate:.2f} | {r.label} | "
            f"{r.violations} | {r.attainment:.1%} |"
        )
    return KindResult({"timeline": pd.concat(parts, ignore_index=True), "totals": totals}, "\n".join(lines))


def plot(points: pd.DataFrame, tables: dict[str, pd.DataFrame], path: Path) -> None:
    """Columns: traces. Top: request rate over time; bottom: cumulative violations per system."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    style.theme()
    table = tables["timeline"]
    totals = tables["totals"]
    traces = list(dict.fromkeys(table["workload"]))
    fig, axes = plt.subplots(2, len(traces), figsize=(5.2 * len(traces), 5.6), squeeze=False, sharex="col")
    colours = style.palette(list(dict.fromkeys(table["label"])))
    for j, trace in enumerate(traces):
        part = table[table["workload"] == trace]
        first = part[part["label"] == part["label"].iloc[0]]
        slo = totals[totals["workload"] == trace].iloc[0]
        top, bottom = axes[0][j], axes[1][j]
        top.plot(first["t_s"] / 60, first["qps"], color="#444444")
        top.set_ylabel("arrival rate (QPS, 1-min bins)")
        top.set_title(f"{trace} replay (SLO {slo['ttft_slo']:g}/{slo['tbt_slo']:g} s)", fontsize=9)
        sns.lineplot(
            data=part.assign(t_min=part["t_s"] / 60),
            x="t_min",
            y="cum_violations",
            hue="label",
            palette=colours,
            ax=bottom,
        )
        bottom.set_xlabel("time since trace start (min)")
        bottom.set_ylabel("cumulative SLO violations (requests)")
        bottom.legend(fontsize=7, loc="upper left")
    style.save(fig, path)
