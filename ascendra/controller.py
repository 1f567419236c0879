"""Ascendra's controller: routes arrivals with the ticket rule and moves at-risk requests from LP to HP.

New arrival: ask the high-priority instances, in order, for a ticket; with one the request goes straight to
that HP, otherwise round-robin over the low-priority instances. After every LP scheduling step, the LP's
at-risk requests (never started, predicted to miss TTFT there) are offloaded to the HP instance with the
shortest queue. Offloaded requests never move again, unless ``--migration`` moves running requests
(``ascendra.rebalance``). With ``--adaptive-partition`` the LP and HP sets change with load
(``ascendra.partition``).

Model-derived margin (``auto_margin``, ``--auto-margin``; off in the paper's system, which uses a constant per
model): the offload margin is the performance model's error bound for a prefill (``Predictor.error_bound``: the
held-out P99 under-prediction its fit stored, 29 ms for Llama-3.1-8B on A100) plus the predicted drain time of the
least loaded HP (its batch in flight and the prefills waiting there, predicted), plus the LP's own predicted
batch time (the next at-risk check comes one LP batch later): a request leaves the LP once what is left of its TTFT
is no more than what the HP needs to reach it by the next check, and no earlier. With ``--tbt-admission`` a prompt
that cannot join the LP's running decodes within the TBT budget is at risk at once (its wait there is unbounded).
"""

from __future__ import annotations

from collections.abc import Callable

from ascendra.batch import Batch
from ascendra.hp_scheduler import HighPriorityScheduler
from ascendra.instance import Instance
from ascendra.lp_scheduler import LowPriorityScheduler
from ascendra.partition import AdaptivePartition
from ascendra.rebalance import Rebalancer
from ascendra.request import Request
from ascendra.router import Move
from ascendra.urgency import Predictor


class AscendraController:
    """The router of an Ascendra cluster (implements ``ascendra.router.Router``)."""

    def __init__(
        self,
        low: list[Instance],
        high: list[Instance],
        predictor: Predictor,
        auto_margin: bool = False,
        rebalancer: Rebalancer | None = None,
    ) -> None:
        #: The active low- and high-priority instances (an adaptive partition changes them in place).
        self.low = low
        self.high = high
        self.predictor = predictor
        self.auto_margin = auto_margin
        self.rebalancer = rebalancer
        #: The router's optional hook (``ascendra.router``): instances an aborted migration gave work to, to wake.
        self.take_woken: Callable[[], list[Instance]] | None = (
            rebalancer.migrator.take_woken if rebalancer is not None else None
        )
        self.partition: AdaptivePartition | None = None
        self.prefill_error = predictor.error_bound("prefill") if auto_margin else 0.0
        self._next = 0

    def route(self, request: Request, now: float) -> Instance:
        for instance in self.high:
            scheduler: HighPriorityScheduler = instance.scheduler  # type: ignore[assignment]
            if scheduler.grants_ticket(request):
                return instance
        self._next = (self._next + 1) % len(self.low)
        return self.low[self._next - 1]

    def moves_after(self, instance: Instance, batch: Batch, now: float) -> list[Move]:
        moves: list[Move] = []
        if self.rebalancer is not None:
            self.rebalancer.moves_after(instance, batch, now, self.low, self.high, moves)
        if instance.scheduler.waiting and any(instance is i for i in self.low):  # type: ignore[attr-defined]
            moves += self._offloads(instance, batch, now)
        if self.partition is not None:
            self.partition.step(instance, bool(batch), now, self._migrating(now))
        return moves

    def arrivals_elsewhere(self, instance: Instance) -> int | None:
        """For the simulator's bulk advance (``ascendra.router``): an LP instance is reached only by arrivals
        (without migration or an adaptive partition), at most one in ``len(low)`` of them in round-robin order, and
        routing reads only the HP instances; an HP instance receives offloads at any LP step."""
        if self.rebalancer is not None or self.partition is not None:
            return None
        for index, low in enumerate(self.low):
            if low is instance:
                return (index - self._next) % len(self.low)
        return None

    def _migrating(self, now: float) -> Callable[[Instance], bool]:
        """Whether an instance takes part in a migration now (never, without ``--migration``), for the adaptive
        partition: until a final copy to it is delivered too, as a new policy would not know the blocks its pool
        holds for the request (``Migratable.incoming``)."""
        if self.rebalancer is None:
            return lambda node: False
        migrator = self.rebalancer.migrator
        return lambda node: migrator.migrating(node, now) or migrator.receiving(node)

    def _offloads(self, instance: Instance, batch: Batch, now: float) -> list[Move]:
        """The LP's at-risk waiting requests, each to the HP with the shortest queue (then fewest running)."""
        scheduler: LowPriorityScheduler = instance.scheduler  # type: ignore[assignment]
        batch_time = self.predictor.perf.predict_batch(batch) if batch else 0.0
        queued = {id(i): i.scheduler.num_waiting for i in self.high}
        moves = []
        margin = self.margin(batch_time) if self.auto_margin else None
        for request in scheduler.take_at_risk(now, batch_time, margin, blocked=self.auto_margin):
            request.offload_time = now
            target = min(self.high, key=lambda i: (queued[id(i)], i.scheduler.num_running))
            queued[id(target)] += 1
            moves.append(Move(request, target))
        return moves

    def drain_time(self, instance: Instance) -> float:
        """Predicted seconds before a request offloaded to ``instance`` now could start: the rest of its batch in
        flight (at most its predicted time) plus the prefills of everything waiting there."""
        prefill_time = self.predictor.prefill_time
        in_flight = self.predictor.perf.predict_batch(instance.batch) if instance.batch else 0.0
        return in_flight + sum(prefill_time(r) for r in instance.scheduler.waiting)  # type: ignore[attr-defined]

    def margin(self, batch_time: float) -> float:
        """The model-derived offload margin after an LP batch of predicted ``batch_time`` s (its next check comes
        that much later): the prefill error bound, that batch time and the least loaded HP's drain time."""
        return self.prefill_error + batch_time + min(self.drain_time(i) for i in self.high)
