"""How well the per-operation model predicts what it was not fitted on: held-out profiles and published points.

Held-out check (the error is reported, never tuned away): the efficiency curves are fitted on the Llama-3-8B
A100 profile alone, then predict every op of the Llama-2-7B profiles on the A100 (another shape: MHA instead
of GQA, a narrower MLP) and on the H100 (another shape and another GPU: the A100 curves against the H100's
peak rates), at TP 1, 2 and 4 and every profiled token count. Errors are given per op kind and per iteration
kind, an iteration kind being the layer's nine ops summed over a range of token counts:

- decode: 1-256 tokens (a batch of decodes, bandwidth-bound);
- mixed: 257-1024 tokens (a 512-token chunk with up to ~500 decodes: Sarathi-Serve's hybrid batches);
- prefill: 1025-4096 tokens (compute-bound).

The published points are whole iterations and go through the shipped cost model: Llama-3.1-8B decode iterations
on one A100, and TensorRT-LLM v0.5's Llama-2-70B batch-1 first-token latencies (FP16, TP 4 on A100-80GB: 47 ms
for 128 prompt tokens, 377 ms for 2,048) against one prefill iteration over each interconnect.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from ascendra.costmodel.calibrate import fit_curves, read_profiles
from ascendra.costmodel.ops import layer_problems, predict_ms
from ascendra.costmodel.review import MEASURED_POINTS, MEASURED_SETUP, PUBLISHED_70B_POINTS, PUBLISHED_70B_SETUP
from ascendra.costmodel.tables import isotonic
from ascendra.gpus import get_gpu
from ascendra.models import get_model

FIT_ON = ("a100-80gb", "a100/meta-llama/Meta-Llama-3-8B")
HELD_OUT: tuple[tuple[str, str], ...] = (
    ("a100-80gb", "a100/meta-llama/Llama-2-7b-hf"),
    ("h100-80gb", "h100/meta-llama/Llama-2-7b-hf"),
)
TP_DEGREES: tuple[int, ...] = (1, 2, 4)
ITERATION_KINDS: tuple[tuple[str, int, int], ...] = (("decode", 1, 256), ("mixed", 257, 1024), ("prefill", 1025, 4096))


def held_out_points(data_dir: Path) -> pd.DataFrame:
    """Measured and predicted ms of every held-out op: columns gpu, profile, tp, op, tokens, measured_ms,
    predicted_ms (measured: the median per token count, denoised as calibration does)."""
    profiles = read_profiles(data_dir)
    fit_gpu, fit_name = FIT_ON
    source = [p for p in profiles.compute[fit_gpu] if p.name == fit_name]
    curves = fit_curves(source, get_gpu(fit_gpu))
    frames = []
    for gpu_name, name in HELD_OUT:
        gpu = get_gpu(gpu_name)
        (profile,) = [p for p in profiles.compute[gpu_name] if p.name == name]
        for tp in TP_DEGREES:
            tokens, ops = profile.tables[tp]
            for op, problem in layer_problems(profile.shape, tp).items():
                frames.append(pd.DataFrame({
                    "gpu": gpu_name, "profile": name, "tp": tp, "op": op, "tokens": tokens.astype(int),
                    "measured_ms": isotonic(ops[op]), "predicted_ms": predict_ms(problem, tokens, gpu, curves),
                }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def _abs_pct(predicted: pd.Series, measured: pd.Series) -> pd.Series:
    return (predicted / measured - 1).abs() * 100


def op_errors(points: pd.DataFrame) -> pd.DataFrame:
    """Mean and P90 absolute % error per GPU, TP degree and op kind."""
    df = points.assign(abs_pct=_abs_pct(points["predicted_ms"], points["measured_ms"]))
    g = df.groupby(["gpu", "tp", "op"], sort=False)["abs_pct"]
    return pd.DataFrame({"mean_abs_pct": g.mean(), "p90_abs_pct": g.quantile(0.9), "points": g.size()}).reset_index()


def iteration_errors(points: pd.DataFrame) -> pd.DataFrame:
    """Mean and max absolute % error of the layer's summed ops per GPU, TP degree and iteration kind, with the
    signed mean (bias)."""
    layer = points.groupby(["gpu", "tp", "tokens"], sort=False)[["measured_ms", "predicted_ms"]].sum().reset_index()
    rows = []
    for kind, lo, hi in ITERATION_KINDS:
        part = layer[(layer["tokens"] >= lo) & (layer["tokens"] <= hi)]
        for (gpu, tp), g in part.groupby(["gpu", "tp"], sort=False):
            signed = (g["predicted_ms"] / g["measured_ms"] - 1) * 100
            rows.append({"gpu": gpu, "tp": tp, "iteration": kind, "tokens": f"{lo}-{hi}", "points": len(g),
                         "mean_abs_pct": float(signed.abs().mean()), "max_abs_pct": float(signed.abs().max()),
                         "bias_pct": float(signed.mean())})  # fmt: skip
    return pd.DataFrame(rows)


def published_points(path: Path | None = None) -> pd.DataFrame:
    """The published decode iterations against the shipped cost model."""
    from ascendra.costmodel.model import CostModel

    cm = CostModel.load(*MEASURED_SETUP, path=path)
    rows = []
    for n, ctx, measured in MEASURED_POINTS:
        predicted = cm.time_of([], [ctx] * n) * 1e3
        rows.append({"point": f"decode {n} x {ctx}", "measured_ms": measured, "predicted_ms": predicted,
                     "error_pct": (predicted / measured - 1) * 100})  # fmt: skip
    return pd.DataFrame(rows)


def published_70b_points(path: Path | None = None) -> pd.DataFrame:
    """TensorRT-LLM's published Llama-2-70B first-token latencies (TP 4, A100) against one prefill iteration of
    the cost model over each interconnect. Llama-2-70B is Llama-3-70B's shape with a 32,000-entry vocabulary;
    TensorRT-LLM has no Python engine around it, so the prediction's CPU overhead is shown apart."""
    from ascendra.costmodel.model import INTERCONNECTS, CostModel

    spec = replace(get_model("llama-3-70b"), name="llama-2-70b", hf_id="meta-llama/Llama-2-70b-hf", vocab=32000)
    gpu, tp = PUBLISHED_70B_SETUP
    rows = []
    for interconnect in INTERCONNECTS:
        cm = CostModel.load(spec, gpu, tp, path=path, interconnect=interconnect)
        for tokens, measured in PUBLISHED_70B_POINTS:
            b = cm.breakdown([(tokens, 0)], [])
            rows.append({"interconnect": interconnect, "prompt": tokens, "measured_ms": measured,
                         "predicted_ms": b.total * 1e3, "cpu_overhead_ms": b.overhead * 1e3,
                         "error_pct": (b.total * 1e3 / measured - 1) * 100})  # fmt: skip
    return pd.DataFrame(rows)


def summary(errors: pd.DataFrame, by: str) -> pd.DataFrame:
    """One row per GPU and ``by`` value, pooled over TP degrees (the mean of the per-TP means)."""
    return errors.groupby(["gpu", by], sort=False)["mean_abs_pct"].mean().round(2).unstack(by)


def chunking_overhead(model: str = "llama-3.1-8b", gpu: str = "a100-80gb", prompt: int = 8192) -> pd.DataFrame:
    """Prefill time of one ``prompt``-token prompt run whole or in chunks, with and without the chunked-prefill
    term: the overhead Sarathi-Serve's paper measures for its chunk sizes."""
    from ascendra.costmodel.model import CostModel

    rows = []
    for chunked in (False, True):
        cm = CostModel.load(model, gpu, chunked_prefill=chunked)
        whole = cm.time_of([(prompt, 0)], [])
        for chunk in (256, 512, 1024, 2048, prompt):
            total = sum(cm.time_of([(min(chunk, prompt - s), s)], []) for s in range(0, prompt, chunk))
            rows.append({"chunked_prefill_term": chunked, "chunk": chunk, "prefill_ms": total * 1e3,
                         "overhead_pct": (total / whole - 1) * 100})  # fmt: skip
    return pd.DataFrame(rows)


__all__ = [
    "chunking_overhead",
    "held_out_points",
    "iteration_errors",
    "op_errors",
    "published_70b_points",
    "published_points",
    "summary",
]
