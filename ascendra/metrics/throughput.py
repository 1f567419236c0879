"""Throughput of a run: finished requests and emitted output tokens per second of the run's span.

The span runs from the first arrival to the last output token emitted by any request. In an ordinary run the
last token is the last request's finish, so this is "first arrival to last finish"; counting the last token
rather than the last finish keeps the span honest when a run is cut off with requests still decoding, whose
tokens are counted as output. A run that emitted nothing has throughput 0; a zero-length span gives NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ascendra.metrics.latency import Latencies


@dataclass(frozen=True, slots=True)
class Throughput:
    """Span (s), finished requests per second and output tokens per second."""

    span: float
    requests_per_s: float
    tokens_per_s: float


def run_span(lat: Latencies) -> float:
    """Seconds from the first arrival to the last emitted token; 0 when no token was emitted."""
    table = lat.requests
    if len(table) == 0 or not np.isfinite(table["last_token"]).any():
        return 0.0
    return float(np.nanmax(table["last_token"].to_numpy()) - table["arrival"].min())


def throughput(lat: Latencies) -> Throughput:
    """Finished requests/s and emitted output tokens/s over ``run_span``."""
    span = run_span(lat)
    finished = int(lat.column("finished").sum())
    tokens = int(lat.column("num_tokens").sum())
    if tokens == 0:
        return Throughput(span=span, requests_per_s=0.0, tokens_per_s=0.0)
    if span <= 0:
        return Throughput(span=span, requests_per_s=float("nan"), tokens_per_s=float("nan"))
    return Throughput(span=span, requests_per_s=finished / span, tokens_per_s=tokens / span)
