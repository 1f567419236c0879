"""The verification figure: predicted against measured batch time on the test split, one panel per kind."""

from __future__ import annotations

from pathlib import Path

from ascendra.files import write_atomic
from ascendra.perfmodel.features import KINDS
from ascendra.perfmodel.fit import FitReport


def plot_fit(report: FitReport, path: str | Path) -> None:
    """Scatter predicted vs actual milliseconds of the test rows, with the y = x line and test R^2/MAPE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    kinds = [k for k in KINDS if k in report.kinds]
    test = report.predictions[report.predictions["split"] == "test"]
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 4.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        rows = test[test["kind"] == kind]
        actual_ms = rows["actual_s"].to_numpy() * 1e3
        predicted_ms = rows["predicted_s"].to_numpy() * 1e3
        sns.scatterplot(x=actual_ms, y=predicted_ms, ax=ax, s=12, alpha=0.6, edgecolor=None)
        lo = float(min(actual_ms.min(), predicted_ms.min()))
        hi = float(max(actual_ms.max(), predicted_ms.max()))
        if lo > 0 and hi / lo > 20:  # batch times span decades: log axes keep small batches visible
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                axis.set_minor_formatter(NullFormatter())
            lo, hi = lo / 1.15, hi * 1.15
        else:
            pad = 0.03 * (hi - lo if hi > lo else 1.0)
            lo, hi = lo - pad, hi + pad
        ax.plot([lo, hi], [lo, hi], color="0.3", linewidth=1, linestyle="--", label="y = x")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        m = report.kinds[kind].test
        ax.set_title(f"{kind}: R$^2$ = {m.r2:.3f}, MAPE = {m.mape_pct:.1f}% (n = {m.n})")
        ax.set_xlabel("measured batch time (ms)")
        ax.set_ylabel("predicted batch time (ms)")
        ax.legend(loc="upper left")
    fig.suptitle(f"Performance model, {report.model} on {report.gpu} (TP {report.tp}), test split")
    fig.tight_layout()
    write_atomic(Path(path), lambda p: fig.savefig(p, dpi=130, format=Path(path).suffix.lstrip(".") or "png"))
    plt.close(fig)
