"""SLO classes: a workload mixing request classes with their own SLOs (``slo_classes`` in the spec). Per system
and class: attainment against rate (each request judged against its own class's SLOs) and the capacity at which
the class still reaches 90%, next to the overall one (the capacity every other table reports). Several seeds:
means with 95% Student-t intervals, as in the goodput kind."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ascendra.harness.reproduce.context import KindResult, RunContext
from ascendra.harness.reproduce.kinds import goodput, style

#: A class's attainment in a run's summary: ``attainment[<class>]`` (paper metric).
_CLASS_KEY = re.compile(r"^attainment\[(?P<name>[^\]]+)\]$")
OVERALL = "overall"


def class_table(ctx: RunContext) -> pd.DataFrame:
    """One row per (point, class), the overall attainment as class ``overall``."""
    rows = []
    for point in ctx.points:
        summary = ctx.store.row(point.config)
        found = {m["name"]: summary[k] for k in summary if (m := _CLASS_KEY.match(k))}
        base = {
            "label": point.label,
            "workload": point.config.workload.name,
            "rate": point.config.rate,
            "seed": point.config.workload.seed,
        }
        rows.append({**base, "slo_class": OVERALL, "attainment": summary["attainment"]})
        rows += [{**base, "slo_class": name, "attainment": value} for name, value in found.items()]
    return pd.DataFrame(rows)


def class_capacities(table: pd.DataFrame) -> pd.DataFrame:
    """Per (workload, class, label): the capacity at 90% attainment of that class, mean over seeds with its
    interval (goodput's capacity code, a class standing in for a grid)."""
    shaped = table.assign(grid=table["slo_class"], model="", axis="rate", value=table["rate"])
    caps = goodput.aggregate(goodput.seed_capacities(shaped))
    return caps.rename(columns={"grid": "slo_class"}).drop(columns=["model"])


def analyze(ctx: RunContext) -> KindResult:
    table = class_table(ctx)
    caps = class_capacities(table)
    classes = list(dict.fromkeys(caps["slo_class"]))
    lines = [
        "Capacity (QPS) at which each class still reaches 90% attainment against its own SLOs "
        "(overall: every request, the capacity other tables report):",
        "",
        "| system | " + " | ".join(classes) + " |",
        "|---|" + "---:|" * len(classes),
    ]
    for label, part in caps.groupby("label", sort=False):
        by_class = {r.slo_class: r for r in part.itertuples()}
        cells = []
        for name in classes:
            r = by_class.get(name)
            if r is None or pd.isna(r.capacity_qps):
                cells.append("" if r is None else r.status)
            else:
                least = " (at least)" if r.status == "at least" else ""
                cells.append(f"{r.capacity_qps:.2f}{goodput.interval_text(r)}{least}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return KindResult({"classes": table, "capacity": caps}, "\n".join(lines))


def plot(points: pd.DataFrame, tables: dict[str, pd.DataFrame], path: Path) -> None:
    """One panel per class (overall first): attainment against rate, one line per system (bands: 95% bootstrap
    interval over seeds)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    style.theme()
    table = tables["classes"]
    classes = list(dict.fromkeys(table["slo_class"]))
    labels = list(dict.fromkeys(table["label"]))
    fig, axes = plt.subplots(1, len(classes), figsize=(3.8 * len(classes), 3.4), squeeze=False, sharey=True)
    several = table["seed"].nunique() > 1
    for i, (ax, name) in enumerate(zip(axes[0], classes, strict=True)):
        sns.lineplot(
            data=table[table["slo_class"] == name],
            x="rate",
            y="attainment",
            hue="label",
            hue_order=labels,
            palette=style.palette(labels),
            marker="o",
            errorbar=("ci", 95) if several else None,
            seed=0,
            ax=ax,
            legend=i == 0,
        )
        style.target_line(ax)
        ax.set_ylim(-0.02, 1.03)
        ax.set_title(f"{name} requests", fontsize=9)
        ax.set_xlabel("request rate (QPS)")
        ax.set_ylabel("SLO attainment (fraction)" if i == 0 else "")
    axes[0][0].legend(fontsize=7, loc="lower left")
    style.save(fig, path)
