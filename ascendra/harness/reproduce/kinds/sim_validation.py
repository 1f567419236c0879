"""Simulator validation: the cost model's predictions against every measured point the project can cite.

The held-out per-op profiles (fit on Llama-3-8B A100, predict Llama-2-7B on A100 and H100; see
``ascendra.costmodel.validation``), the published A100 decode iterations, TensorRT-LLM's published Llama-2-70B
TP-4 first-token latencies over each interconnect, and the model's chunked-prefill overhead with and without its
chunking term. Reads the reference profiles (``--data-dir``); runs no grid.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ascendra.harness.reproduce.context import KindResult, RunContext
from ascendra.harness.reproduce.kinds import style


def _markdown(table: pd.DataFrame, fmt: str = "{:.1f}") -> list[str]:
    cols = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(fmt.format(v) if isinstance(v, float) else str(v) for v in row) + " |")
    return lines


def analyze(ctx: RunContext) -> KindResult:
    from ascendra.costmodel.calibrate import default_data_dir
    from ascendra.costmodel.validation import (
        FIT_ON,
        chunking_overhead,
        held_out_points,
        iteration_errors,
        op_errors,
        published_70b_points,
        published_points,
        summary,
    )

    points = held_out_points(ctx.data_dir if ctx.data_dir is not None else default_data_dir())
    ops, iterations = op_errors(points), iteration_errors(points)
    published, chunking = published_points(), chunking_overhead()
    published_70b = published_70b_points()
    by_kind = summary(iterations, "iteration").reset_index()
    by_op = summary(ops, "op").reset_index()
    lines = [
        f"Held-out check: efficiency curves fitted on {FIT_ON[1]} only; mean absolute error (%) of the predicted "
        "layer time (nine ops summed) per iteration kind, averaged over TP 1/2/4 (H100: the A100 curves on the "
        "H100's peak rates):",
        "",
        *_markdown(by_kind[["gpu", "decode", "mixed", "prefill"]]),
        "",
        "Per op kind (mean absolute error, %):",
        "",
        *_markdown(by_op),
        "",
        "Published point (Llama-3.1-8B, one A100-80GB, decode-only iterations), shipped cost model:",
        "",
        *_markdown(published),
        "",
        "Published Llama-2-70B first-token latency at batch 1, FP16, TP 4 on A100-80GB (TensorRT-LLM v0.5, "
        "docs/source/performance.md, Low Latency) against one prefill iteration, per interconnect (TensorRT-LLM "
        "has no Python engine around it: the prediction's CPU overhead is listed apart):",
        "",
        *_markdown(published_70b),
        "",
        "An 8,192-token prompt prefilled in chunks (Llama-3.1-8B, A100): total time and overhead over one "
        "whole-prompt iteration, without and with the chunked-prefill term:",
        "",
        *_markdown(chunking),
        "",
        "Published chunking overhead: none found to compare with. The Sarathi-Serve paper (Agrawal et al., "
        "OSDI'24, arXiv 2403.02310) discusses the overhead of chunked prefills against chunk size, but no number "
        "from it could be retrieved here (its repository ships no figure data); vLLM's chunked-prefill RFC "
        "(vllm-project/vllm#3130) says only that chunking slows TTFT through per-step overhead and repeated KV "
        "reads. The rows above are the model's own, not a validation.",
    ]
    layers = points.groupby(["gpu", "tp", "tokens"])[["measured_ms", "predicted_ms"]].sum().round(4).reset_index()
    tables = {"held_out_layers": layers, "op_errors": ops, "iteration_errors": iterations,
              "published": published, "published_70b": published_70b, "chunking": chunking}  # fmt: skip
    return KindResult(tables, "\n".join(lines))


def plot(points: pd.DataFrame, tables: dict[str, pd.DataFrame], path: Path) -> None:
    """Predicted against measured ms: held-out ops (left), held-out layer sums and published iterations (right)."""
    import matplotlib.pyplot as plt

    style.theme()
    layer = tables["held_out_layers"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    colours = {"a100-80gb": "#1f77b4", "h100-80gb": "#d62728"}
    for ax, gpu in zip(axes, colours, strict=True):
        part = layer[layer["gpu"] == gpu]
        for tp, g in part.groupby("tp"):
            ax.scatter(g["measured_ms"], g["predicted_ms"], s=5, alpha=0.5, label=f"TP {tp}")
        lo = part[["measured_ms", "predicted_ms"]].min().min()
        hi = part[["measured_ms", "predicted_ms"]].max().max()
        ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, label="y = x")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("measured layer time (ms)")
        ax.set_title(f"held out: Llama-2-7B on {gpu} (fit: Llama-3-8B A100)", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("predicted layer time (ms)")
    pub = tables["published"]
    inset = axes[1].inset_axes([0.62, 0.08, 0.35, 0.35])
    inset.scatter(pub["measured_ms"], pub["predicted_ms"], color="black", s=12)
    inset.plot([20, 35], [20, 35], color="grey", linestyle="--", linewidth=1)
    inset.set_title("published A100 decode", fontsize=7)
    inset.tick_params(labelsize=6)
    fig.tight_layout()
    style.save(fig, path)
