"""Urgency: how close a waiting request is to missing its TTFT deadline, under a choice of value functions.

The default (``edf``) is the paper's: ``value = 1 / slack`` with ``slack = TTFT_SLO - (waited +
predicted_prefill)``; a request whose slack is <= 0 has lost its deadline and gets an infinite value. ``basic`` is
``(1 + waited) / TTFT_SLO / remaining_prompt`` and ``sjf`` is ``1 / remaining_prompt`` (shortest first). The TTFT
SLO is the request's own (its SLO class), else the run's.

Predicted prefill times come from Ascendra's performance model and are memoised per (tokens, context), since
the same prompts are re-ranked after every scheduling step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ascendra.errors import UserError
from ascendra.perfmodel import PerfModel
from ascendra.perfmodel.work import BatchStats
from ascendra.request import Request

#: The value functions ``value_function`` knows, the paper's first.
VALUE_FUNCTIONS = ("edf", "basic", "sjf")


class Predictor:
    """Ascendra's view of time and work: memoised prefill predictions and prefill FLOPs from its perf model."""

    def __init__(self, perf: PerfModel) -> None:
        self.perf = perf
        self._prefill: dict[tuple[int, int], float] = {}
        self._flops: dict[int, float] = {}

    def prefill_time(self, request: Request) -> float:
        """Predicted seconds of the request's remaining prefill run alone."""
        key = (request.remaining_prefill, request.num_computed)
        value = self._prefill.get(key)
        if value is None:
            value = self._prefill[key] = self.perf.predict_prefill(*key)
        return value

    def error_bound(self, kind: str) -> float:
        """Seconds a batch of ``kind`` may take beyond its prediction: the held-out under-prediction quantile the
        fit stored (``meta.fit.residual_ms``, see ``ascendra.perfmodel.fit``); 0 for a model fitted without it."""
        residual = self.perf.meta.get("fit", {}).get("residual_ms", {}).get(kind, 0.0)
        return max(0.0, float(residual)) * 1e-3

    def prefill_flops(self, tokens: int) -> float:
        """FLOPs of a whole prefill of ``tokens`` tokens (used by the LP compute cap)."""
        value = self._flops.get(tokens)
        if value is None:
            pairs = tokens * (tokens + 1) // 2
            stats = BatchStats(tokens, 1, pairs, tokens, tokens, 0)
            value = self._flops[tokens] = self.perf.counter.flops_bytes(stats)[0]
        return value


def slack(request: Request, now: float, ttft_slo: float, predictor: Predictor) -> float:
    """Seconds to spare before the request's TTFT deadline (its own SLO, else ``ttft_slo``) if its prefill
    started now."""
    return (request.ttft_slo or ttft_slo) - (now - request.arrival) - predictor.prefill_time(request)


def value_function(name: str, ttft_slo: float, predictor: Predictor) -> Callable[[Request, float], float]:
    """The urgency value of a request at time ``now``: higher is more urgent; ``inf`` means the deadline is lost
    (edf only). ``ttft_slo`` is the run's, for requests without their own."""
    if name == "edf":

        def edf(request: Request, now: float) -> float:
            s = slack(request, now, ttft_slo, predictor)
            return 1.0 / s if s > 0 else math.inf

        return edf
    if name == "basic":
        return lambda r, now: (1.0 + now - r.arrival) / (r.ttft_slo or ttft_slo) / max(1, r.remaining_prefill)
    if name == "sjf":
        return lambda r, now: 1.0 / max(1, r.remaining_prefill)
    raise UserError(f"unknown value function {name!r}; known: {', '.join(VALUE_FUNCTIONS)}")
