"""Admission control, one rule for every system: drop a never-started waiting request once its wait plus its
predicted prefill exceeds its TTFT SLO (its own, with SLO classes, else the run's), since it can no longer meet it.

The authors' artifact applies this rule to every system in its admission experiment. The prediction is the
performance model's (Ascendra's own predictor; the baselines have none of their own and borrow the shipped one
for the same model and GPU), so every system drops by the same estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from ascendra.perfmodel import PerfModel
from ascendra.request import Request
from ascendra.urgency import Predictor


@dataclass(frozen=True, slots=True)
class Admission:
    """Drops a request whose TTFT SLO is lost: ``waited + prefill_time(request) > TTFT SLO`` (the request's own,
    else ``ttft_slo``, the run's)."""

    ttft_slo: float
    prefill_time: Callable[[Request], float]

    def hopeless(self, request: Request, now: float) -> bool:
        return now - request.arrival + self.prefill_time(request) > (request.ttft_slo or self.ttft_slo)


@lru_cache(maxsize=16)
def shipped_predictor(model: str, gpu: str, tp: int) -> Predictor:
    """The shipped performance model of (model, GPU, TP), memoised (its predictions are pure)."""
    return Predictor(PerfModel.load(model, gpu, tp))


def ttft_admission(model: str, gpu: str, tp: int, ttft_slo: float) -> Admission:
    """The rule with the shipped performance model's prefill predictions."""
    return Admission(ttft_slo, shipped_predictor(model, gpu, tp).prefill_time)
