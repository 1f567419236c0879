"""Performance model accuracy: predicted against actual batch time, per batch kind, with R^2 on held-out batches.

The batch log comes from ``ascendra.harness.profiling`` (one instance under vLLM and Sarathi-Serve at the spec's
rates, the paper's setup); the fit is ``ascendra.perfmodel.fit.fit`` (its own train/validation/test split)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ascendra.harness.reproduce.context import KindResult, RunContext
from ascendra.harness.reproduce.kinds import style


def batch_log(options: dict, quick: bool, data_dir: Path | None) -> tuple[pd.DataFrame, str]:
    """The batch log and where it came from."""
    model, gpu = options.get("model", "llama-3.1-8b"), options.get("gpu", "a100-80gb")
    rates = tuple(float(r) for r in options.get("rates", [2, 4, 6, 8, 10]))
    requests = int(options.get("quick_num_requests" if quick else "num_requests", 100 if quick else 250))
    from ascendra.harness.profiling import ProfileSpec, profile

    spec = ProfileSpec(
        model=model, gpu=gpu, workload=options.get("workload", "sharegpt"), rates=rates, num_requests=requests
    )
    log = profile(spec, data_dir)
    source = (
        f"ascendra.harness.profiling: {spec.workload}, {requests} requests at QPS {', '.join(f'{r:g}' for r in rates)} "
        f"on one {gpu} instance under {' and '.join(spec.systems)} (simulator backend)"
    )
    return log, source


def analyze(ctx: RunContext) -> KindResult:
    from ascendra.perfmodel.fit import fit

    log, source = batch_log(ctx.spec.options, ctx.quick, ctx.data_dir)
    _, report = fit(log, seed=0)
    metrics = []
    for kind, kr in report.kinds.items():
        metrics.append(
            {
                "kind": kind,
                "n_train": kr.n_train,
                "n_outliers": kr.n_outliers,
                **{f"test_{k}": v for k, v in kr.test.to_dict().items()},
            }
        )
    table = pd.DataFrame(metrics)
    predictions = report.predictions[report.predictions["split"] == "test"].reset_index(drop=True)
    lines = [
        f"Batch log: {len(log)} batches from {source}.",
        "",
        "| batch kind | test batches | R^2 | RMSE (ms) | MAPE (%) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        lines.append(f"| {r.kind} | {r.test_n} | {r.test_r2:.4f} | {r.test_rmse_ms:.2f} | {r.test_mape_pct:.2f} |")
    return KindResult({"metrics": table, "predictions": predictions}, "\n".join(lines))


def plot(points: pd.DataFrame, tables: dict[str, pd.DataFrame], path: Path) -> None:
    """One panel per batch kind: predicted against actual milliseconds with the y = x line."""
    import matplotlib.pyplot as plt

    style.theme()
    metrics = tables["metrics"].set_index("kind")
    predictions = tables["predictions"]
    kinds = list(metrics.index)
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.8 * len(kinds), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        part = predictions[predictions["kind"] == kind]
        actual, predicted = part["actual_s"] * 1e3, part["predicted_s"] * 1e3
        ax.scatter(actual, predicted, s=6, alpha=0.5, color="#1f77b4", label="test batches")
        lo, hi = min(actual.min(), predicted.min()), max(actual.max(), predicted.max())
        ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, label="y = x")
        ax.set_xlabel("actual batch time (ms)")
        ax.set_ylabel("predicted batch time (ms)" if ax is axes[0][0] else "")
        ax.set_title(f"{kind} batches: R^2 = {metrics.loc[kind, 'test_r2']:.4f}", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    style.save(fig, path)
