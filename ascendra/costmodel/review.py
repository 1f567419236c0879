"""What a reviewer checks in a cost model: predicted times of standard iterations and the published point.

Kept apart from the CLI so tests and reports can use the same numbers the ``cost-model`` command prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ascendra.costmodel.model import Breakdown, CostModel

PREFILL_TOKENS: tuple[int, ...] = (512, 2048, 8192)
DECODE_BATCHES: tuple[int, ...] = (1, 32, 128)
DECODE_CONTEXTS: tuple[int, ...] = (1024, 4096)

# The published measurement (Llama-3.1-8B, one A100-80GB, Sarathi-Serve-based engine, decode-only iterations):
# (requests, context tokens each, measured ms). See ../shared/data/README.md.
MEASURED_SETUP = ("llama-3.1-8b", "a100-80gb", 1)
MEASURED_POINTS: tuple[tuple[int, int, float], ...] = ((20, 2000, 26.0), (27, 2000, 30.0))
MEASURED_TOLERANCE = 0.15
# Published first-token latencies of Llama-2-70B at batch 1 in FP16 on four A100-80GB SXM GPUs (TP 4) in
# TensorRT-LLM v0.5 (NVIDIA/TensorRT-LLM, docs/source/performance.md, "Low Latency", A100 GPUs (FP16)):
# (prompt tokens, measured ms). Its H100 rows are FP8, which the cost model does not model.
PUBLISHED_70B_SETUP = ("a100-80gb", 4)
PUBLISHED_70B_POINTS: tuple[tuple[int, float], ...] = ((128, 47.0), (2048, 377.0))


@dataclass(frozen=True, slots=True)
class Case:
    """One reviewed iteration and its predicted breakdown."""

    name: str
    prefills: tuple[tuple[int, int], ...]
    decode_contexts: tuple[int, ...]
    breakdown: Breakdown

    def as_dict(self) -> dict[str, Any]:
        ms = {f"{k}_ms": v * 1e3 for k, v in self.breakdown.as_dict().items()}
        return {
            "case": self.name,
            "prefill_tokens": sum(c for c, _ in self.prefills),
            "decodes": len(self.decode_contexts),
            **ms,
        }


def _case(cm: CostModel, name: str, prefills: list[tuple[int, int]], decodes: list[int]) -> Case:
    return Case(name, tuple(prefills), tuple(decodes), cm.breakdown(prefills, decodes))


def standard_cases(cm: CostModel) -> list[Case]:
    """Whole-prompt prefills of 512/2048/8192 tokens; decode batches of 1/32/128 at 1K and 4K context."""
    cases = [_case(cm, f"prefill {n}", [(n, 0)], []) for n in PREFILL_TOKENS]
    cases += [_case(cm, f"decode {b} x {c}", [], [c] * b) for c in DECODE_CONTEXTS for b in DECODE_BATCHES]
    return cases


def measured_comparison(path: Path | None = None) -> list[dict[str, Any]]:
    """Predicted vs measured decode iterations of the published point, with the relative error.

    ``path``: the calibration file to check (default: the packaged one)."""
    cm = CostModel.load(*MEASURED_SETUP, path=path)
    rows = []
    for n, ctx, measured in MEASURED_POINTS:
        predicted = cm.time_of([], [ctx] * n) * 1e3
        error = predicted / measured - 1
        rows.append(
            {
                "case": f"decode {n} x {ctx}",
                "predicted_ms": predicted,
                "measured_ms": measured,
                "error": error,
                "within_tolerance": abs(error) <= MEASURED_TOLERANCE,
            }
        )
    return rows


def published_for(cm: CostModel) -> list[dict[str, Any]]:
    """Published measurements of the loaded model's shape and setup, against ``cm`` (empty when none is known):
    TensorRT-LLM's Llama-2-70B batch-1 first-token latency for a 70B Llama shape at TP 4 on an A100 (Llama-3-70B
    differs only in its vocabulary: its LM head adds ~0.3 ms)."""
    m = cm.model
    if (m.num_layers, m.hidden, m.ffn) != (80, 8192, 28672) or (cm.gpu.name, cm.tp) != PUBLISHED_70B_SETUP:
        return []
    rows = []
    for tokens, measured in PUBLISHED_70B_POINTS:
        predicted = cm.time_of([(tokens, 0)], []) * 1e3
        rows.append({"case": f"prefill {tokens}", "predicted_ms": predicted, "measured_ms": measured,
                     "error": predicted / measured - 1})  # fmt: skip
    return rows


def review(cm: CostModel, path: Path | None = None) -> dict[str, Any]:
    """Everything the ``cost-model`` command shows, as one JSON-ready object (``path``: the file ``cm`` came from)."""
    model, gpu, tp = MEASURED_SETUP
    return {
        "model": cm.model.name,
        "gpu": cm.gpu.name,
        "tp": cm.tp,
        "profile": cm.profile,
        "params": cm.params,
        "cases": [c.as_dict() for c in standard_cases(cm)],
        "measured": {"model": model, "gpu": gpu, "tp": tp, "tolerance": MEASURED_TOLERANCE,
                     "points": measured_comparison(path)},
        "published": published_for(cm),
    }  # fmt: skip
