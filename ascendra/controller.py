"""Ascendra's controller: routes arrivals with the ticket rule and moves at-risk requests from LP to HP.

New arrival: ask the high-priority instances, in order, for a ticket; with one the request goes straight to
that HP, otherwise round-robin over the low-priority instances. After every LP scheduling step, the LP's
at-risk requests (never started, predicted to miss TTFT there) are offloaded to the HP instance with the
shortest queue. Offloaded requests never move again.
"""

from __future__ import annotations

from ascendra.batch import Batch
from ascendra.hp_scheduler import HighPriorityScheduler
from ascendra.instance import Instance
from ascendra.lp_scheduler import LowPriorityScheduler
from ascendra.request import Request
from ascendra.router import Move
from ascendra.urgency import Predictor


class AscendraController:
    """The router of an Ascendra cluster (implements ``ascendra.router.Router``)."""

    def __init__(self, low: list[Instance], high: list[Instance], predictor: Predictor) -> None:
        self.low = low
        self.high = high
        self.predictor = predictor
        self._lp_ids = {id(i) for i in low}
        self._next = 0

    def route(self, request: Request, now: float) -> Instance:
        for instance in self.high:
            scheduler: HighPriorityScheduler = instance.scheduler  # type: ignore[assignment]
            if scheduler.grants_ticket():
                return instance
        instance = self.low[self._next]
        self._next = (self._next + 1) % len(self.low)
        return instance

    def moves_after(self, instance: Instance, batch: Batch, now: float) -> list[Move]:
        if id(instance) not in self._lp_ids:
            return []
        scheduler: LowPriorityScheduler = instance.scheduler  # type: ignore[assignment]
        if not scheduler.waiting:
            return []
        batch_time = self.predictor.perf.predict_batch(batch) if batch else 0.0
        queued = {id(i): i.scheduler.num_waiting for i in self.high}
        moves = []
        for request in scheduler.take_at_risk(now, batch_time):
            request.offload_time = now
            target = min(self.high, key=lambda i: (queued[id(i)], i.scheduler.num_running))
            queued[id(target)] += 1
            moves.append(Move(request, target))
        return moves
