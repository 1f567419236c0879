"""Fairness: are SLO violators longer than the requests at large? CDFs of prompt and output lengths for all
requests, TTFT violators and TBT violators, with a two-sample Kolmogorov-Smirnov test of each violator group
against all requests (scipy's ``ks_2samp``). Several seeds pool their requests (each seed is a fresh sample of
the same workload)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from scipy.stats import ks_2samp

from ascendra.harness.reproduce.context import KindResult, RunContext
from ascendra.harness.reproduce.kinds import style

GROUPS = {"all requests": None, "TTFT violators": "ttft_ok", "TBT violators": "tbt_ok"}
LENGTHS = {"prompt_tokens": "prompt length (tokens)", "output_tokens": "output length (tokens)"}


def _num(value: float, spec: str) -> str:
    """A table cell: the formatted number, or '-' where there were too few violators to compute it."""
    return "-" if pd.isna(value) else format(value, spec)


def analyze(ctx: RunContext) -> KindResult:
    runs: dict[tuple[str, str, float], list[pd.DataFrame]] = {}  # several seeds: their requests are pooled
    for point in ctx.points:
        compact = ctx.store.table(point.config)[["prompt_tokens", "output_tokens", "ttft_ok", "tbt_ok"]]
        key = (point.config.workload.name, point.label, point.config.rate)
        runs.setdefault(key, []).append(compact.assign(seed=point.config.workload.seed))
    lengths, tests = [], []
    for (workload, label, rate), parts in runs.items():
        compact = pd.concat(parts, ignore_index=True)
        part = compact.copy()
        part.insert(0, "workload", workload)
        part.insert(1, "label", label)
        part.insert(2, "rate", rate)
        lengths.append(part)
        for group, column in GROUPS.items():
            if column is None:
                continue
            violators = compact[~compact[column]]
            for length in LENGTHS:
                row = {
                    "workload": workload,
                    "label": label,
                    "rate": rate,
                    "seeds": len(parts),
                    "group": group,
                    "length": length,
                    "n_violators": len(violators),
                    "n_all": len(compact),
                }
                if len(violators) >= 2:
                    test = ks_2samp(violators[length], compact[length])
                    row.update(
                        ks_statistic=float(test.statistic),
                        p_value=float(test.pvalue),
                        median_violators=float(violators[length].median()),
                    )
                row["median_all"] = float(compact[length].median())
                tests.append(row)
    ks = pd.DataFrame(tests)
    lines = [
        "| workload | QPS | group | length | violators | median (violators / all) | KS D | p-value |",
        "|---|---:|---|---|---:|---|---:|---:|",
    ]
    for r in ks.itertuples():
        d = getattr(r, "ks_statistic", float("nan"))
        p = getattr(r, "p_value", float("nan"))
        med = getattr(r, "median_violators", float("nan"))
        lines.append(
            f"| {r.workload} | {r.rate:g} | {r.group} | {r.length.split('_')[0]} | {r.n_violators} / {r.n_all} | "
            f"{_num(med, '.0f')} / {r.median_all:.0f} | {_num(d, '.3f')} | {_num(p, '.2g')} |"
        )
    return KindResult({"lengths": pd.concat(lengths, ignore_index=True), "ks": ks}, "\n".join(lines))


def plot(points: pd.DataFrame, tables: dict[str, pd.DataFrame], path: Path) -> None:
    """Rows: workloads; columns: prompt and output length; one ECDF per group (lengths log-scaled when they span
    decades)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    style.theme()
    lengths = tables["lengths"]
    workloads = list(dict.fromkeys(lengths["workload"]))
    fig, axes = plt.subplots(
        len(workloads), len(LENGTHS), figsize=(4.2 * len(LENGTHS), 3.2 * len(workloads)), squeeze=False
    )
    colours = dict(zip(GROUPS, ["#444444", "#d62728", "#9467bd"], strict=True))
    for i, workload in enumerate(workloads):
        part = lengths[lengths["workload"] == workload]
        rate = part["rate"].iloc[0]
        for j, (length, axis_label) in enumerate(LENGTHS.items()):
            ax = axes[i][j]
            for group, column in GROUPS.items():
                values = part[length] if column is None else part.loc[~part[column], length]
                style_ = {"color": colours[group], "linestyle": "-" if column is None else "--"}
                if len(values) == 0:  # keep the class in the legend: no violators is a result
                    ax.plot([], [], label=f"{group} (n=0)", **style_)
                    continue
                sns.ecdfplot(x=values, ax=ax, label=f"{group} (n={len(values)})", **style_)
            _length_axis(ax, part[length])
            ax.set_xlabel(axis_label)
            ax.set_ylabel("CDF (fraction of requests)" if j == 0 else "")
            ax.set_title(f"{workload} @ {rate:g} QPS ({part['label'].iloc[0]})", fontsize=9)
            ax.legend(fontsize=7, loc="upper left")
    style.save(fig, path)


def _length_axis(ax: object, lengths: pd.Series) -> None:
    """Log-scaled lengths when they span more than a decade and a half (ShareGPT), linear otherwise (LongBench's
    long prompts sit within one decade, where a log axis shows one tick and squashes the curves)."""
    import matplotlib.ticker as ticker

    low = max(1.0, float(lengths.min()))
    if float(lengths.max()) / low > 30:
        ax.set_xscale("log")  # type: ignore[attr-defined]
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 3.0)))  # type: ignore[attr-defined]
        ax.xaxis.set_major_formatter(ticker.ScalarFormatter())  # type: ignore[attr-defined]
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())  # type: ignore[attr-defined]
