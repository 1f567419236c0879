"""Summary numbers of a workload's lengths: what `ascbench workloads describe` prints and tests compare."""

from __future__ import annotations

import numpy as np

from workloads.arrivals import mean_rate
from workloads.spec import Workload


def _summary(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {key: float("nan") for key in ("mean", "median", "p90", "p99", "max")}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "mean": float(values.mean()),
        "median": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(values.max()),
    }


def lengths(workload: Workload) -> tuple[np.ndarray, np.ndarray]:
    """Prompt and output token counts as arrays, in request order."""
    prompt = np.fromiter((r.prompt_tokens for r in workload.requests), dtype=np.int64, count=len(workload.requests))
    output = np.fromiter((r.output_tokens for r in workload.requests), dtype=np.int64, count=len(workload.requests))
    return prompt, output


def describe(workload: Workload) -> dict[str, object]:
    """Count, trimmed count, realised arrival rate and mean/median/p90/p99/max of prompt and output tokens."""
    prompt, output = lengths(workload)
    times = np.fromiter((r.arrival for r in workload.requests), dtype=float, count=len(workload.requests))
    return {
        "name": workload.name,
        "count": len(workload.requests),
        "num_trimmed": workload.num_trimmed,
        "prompt_tokens": _summary(prompt),
        "output_tokens": _summary(output),
        "duration_s": float(times[-1] - times[0]) if len(times) else 0.0,
        "realised_rate": mean_rate(times),
    }
