"""The coordinator every runtime shares: routing, handing requests to instances, rejections, moves, the final check.

The simulator (``ascendra.sim.cluster``), the live runtime (``ascendra.live.cluster``) and the server
(``ascendra.serve.cluster``) differ only in their clock and in who runs each instance's executor loop; whatever
decides where a request is lives here, once, so the three cannot drift apart. The coordinator never reads a clock
(every call is given ``now``) and never starts work itself; it tells its runtime through three hooks:

- ``on_give(instance, now)``: the instance was given a request, or a move freed KV on it (the simulator starts
  it if idle, the live runtimes wake its thread; an idle instance may now admit what waits there);
- ``on_end(request, error)``: a request finished (``error`` None), was dropped or was cancelled (the server ends
  its stream);
- ``on_transit(due)``: a move is in transit until ``due``; the runtime calls ``deliver_due`` at that time (the
  simulator as an event, the live runtimes on a timer).

A move costs ``transfer_time(move, source)`` seconds (default: none). A free move is delivered at once, as the
simulator always did; otherwise the request is in no instance until its delivery. A live runtime whose engines
hold real KV pages also passes ``kv`` (a ``KVCarrier``): a move carrying KV is then really copied, and timed by
that copy instead of ``transfer_time``.

A served request whose client went away is ``cancel``led: taken out of its instance (its KV freed) at once, or,
while a batch computes it or a move carries it, right after that batch or delivery (``cancel_pending``, which the
wall-clock runtimes call after each; the simulator never cancels, so its paths carry no check).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ascendra.batch import Batch
from ascendra.instance import Instance
from ascendra.request import Request
from ascendra.router import Move, Router

#: Seconds a move takes to reach its target, given the move and the instance it leaves.
TransferTime = Callable[[Move, Instance], float]

#: Why a request an instance's scheduler rejected was dropped (the server reports it to the client).
REJECTED = "dropped by admission control: its TTFT SLO could not be met"
#: Why a request the router placed nowhere was dropped.
UNROUTED = "dropped by admission control"
#: Why a cancelled request ended (nobody reads it: its client is gone).
CANCELLED = "cancelled: the client went away"


def instant(move: Move, source: Instance) -> float:
    """The default transfer time: a move is free and delivered when it is decided."""
    return 0.0


@dataclass(slots=True)
class MoveRecord:
    """A request the router moved between instances, carrying ``kv_tokens`` of KV, and when (runtime seconds).

    ``decided`` is when the request left its source (it stops running there); a migration with a pre-copy
    started earlier, at ``started``, and sent ``precopied`` tokens over ``stages`` copies before that (for a
    one-shot move ``started == decided``, ``stages == 1``). ``delivered`` is None while the request is in transit.
    """

    request_id: int
    source: str
    target: str
    kv_tokens: int
    decided: float
    delivered: float | None = None
    precopied: int = 0
    started: float | None = None
    stages: int = 1

    def __post_init__(self) -> None:
        if self.started is None:
            self.started = self.decided

    @property
    def latency(self) -> float:
        """Seconds from the request leaving its source to the target receiving it: the time it runs nowhere
        (a migration's downtime)."""
        if self.delivered is None:
            raise ValueError(f"the move of request {self.request_id} has not been delivered yet")
        return self.delivered - self.decided


class KVCarrier(Protocol):
    """Copies the KV of moves between the instances' engines (live runtimes; the simulator only accounts KV).

    A move carrying KV is carried at once: ``take`` copies the request's KV off its source right after the
    router's step, before any move of that step is delivered (the router's ``release`` freed the blocks, but no
    engine has written those pages since); the target ``adopt``s the request, and ``put`` writes the copy into
    the blocks it reserved there, or discards it when the target fell back to recomputation. ``put`` returns the
    measured seconds of the whole copy: the move's transfer time, during which the request is in no instance.
    """

    def take(self, move: Move, source: Instance) -> object:
        """The request's KV, copied off ``source``."""

    def discard(self, request: Request, source: Instance) -> None:
        """``request`` was released from ``source`` but will not move (it was cancelled): forget its KV there."""

    def put(self, move: Move, kv: object) -> float:
        """Write ``kv`` into the blocks the target holds for the request (if any); seconds take + put took."""


#: The ways a request ends, as ``check_all_done`` names them.
_ENDS = ("finished", "dropped", "cancelled")


def _nothing(*args: object) -> None:
    """The default hook: the runtime does not need to hear about it."""


class Coordinator:
    """The instances and router of a cluster, and the bookkeeping around them, for any runtime's clock.

    ``outstanding`` counts requests that arrived and have not finished, been dropped or been cancelled (a request
    in transit is outstanding); ``moves`` records every move in the order decided.
    """

    def __init__(
        self,
        instances: list[Instance],
        router: Router,
        transfer_time: TransferTime = instant,
        on_give: Callable[[Instance, float], None] = _nothing,
        on_end: Callable[[Request, str | None], None] = _nothing,
        on_transit: Callable[[float], None] = _nothing,
        kv: KVCarrier | None = None,
    ) -> None:
        self.instances = instances
        self.router = router
        self.transfer_time = transfer_time
        self.on_give = on_give
        self.on_end = on_end
        self.on_transit = on_transit
        self.kv = kv
        self.outstanding = 0
        self.moves: list[MoveRecord] = []
        self._in_transit: list[tuple[float, int, MoveRecord, Move]] = []
        self._seq = 0
        self._by_name = {node.name: node for node in instances}
        #: The router's optional ``take_woken`` (``ascendra.router``): instances its step gave work to without a move.
        self._take_woken: Callable[[], list[Instance]] | None = getattr(router, "take_woken", None)
        #: Requests to cancel once the batch computing them or the move carrying them is over.
        self._cancelling: dict[int, Request] = {}

    @property
    def num_in_transit(self) -> int:
        return len(self._in_transit)

    def arrive(self, request: Request, now: float) -> None:
        """A new request: route it, or drop it when the router places it nowhere (admission control)."""
        self.outstanding += 1
        instance = self.router.route(request, now)
        if instance is None:
            request.dropped = True
            self._dropped([request], UNROUTED)
            return
        self.give(instance, request, now)

    def give(self, instance: Instance, request: Request, now: float) -> None:
        """Hand ``request`` to ``instance``: queued when it holds no KV, adopted with its KV otherwise."""
        request.instances.append(instance.name)
        if request.num_computed:
            instance.scheduler.adopt(request, now)
        else:
            instance.scheduler.add(request, now)
        self.on_give(instance, now)

    def after_schedule(self, instance: Instance, batch: Batch, now: float) -> None:
        """Right after ``instance`` scheduled ``batch``: record its rejected requests as dropped and carry out the
        router's moves away from it."""
        rejected = instance.scheduler.drain_rejected()
        if rejected:
            self._dropped(rejected, REJECTED)
        moves = self.router.moves_after(instance, batch, now)
        if moves:  # rare: most steps move nothing
            if self.kv is not None:
                taken = [self._take(move, move.source or instance) for move in moves]
                for move, kv in zip(moves, taken, strict=True):
                    self._move(move.source or instance, move, now, kv)
            else:
                for move in moves:
                    self._move(move.source or instance, move, now)
            freed = {id(m.source or instance): m.source or instance for m in moves if m.kv_tokens}
            for source in freed.values():
                self.on_give(source, now)  # a move freed KV there: wake it, it may now admit what waits
        if self._take_woken is not None:
            # An aborted migration gave these work (its request back, freed KV) with no move: an idle one would
            # otherwise never schedule it (``ascendra.migration.Migrator._abort``).
            for node in self._take_woken():
                self.on_give(node, now)

    def finished(self, requests: list[Request]) -> None:
        """Requests an instance just completed."""
        self.outstanding -= len(requests)
        for request in requests:
            self.on_end(request, None)

    def deliver_due(self, now: float) -> None:
        """Deliver every move in transit due by ``now``."""
        transit = self._in_transit
        while transit and transit[0][0] <= now:
            _, _, record, move = heapq.heappop(transit)
            record.delivered = now
            self.give(move.target, move.request, now)

    def cancel(self, request: Request, now: float) -> None:
        """Abort ``request``, whose client has gone: out of its instance now, its KV freed, or right after the
        batch computing it or the move carrying it (``cancel_pending``). One that has already ended stays as is."""
        if not (request.finished or request.dropped or request.cancelled) and not self._cancel_now(request, now):
            self._cancelling[request.id] = request

    def cancel_pending(self, now: float) -> None:
        """Carry out the cancellations that waited for a batch or a move to end (a runtime calls it after each)."""
        if not self._cancelling:
            return
        for request in list(self._cancelling.values()):
            if request.finished or request.dropped or self._cancel_now(request, now):
                del self._cancelling[request.id]

    @staticmethod
    def check_all_done(requests: Iterable[Request]) -> None:
        """The run's invariant: every arrived request ended exactly one way: finished, dropped or cancelled."""
        for request in requests:
            if request.finished + request.dropped + request.cancelled != 1:
                flags = (request.finished, request.dropped, request.cancelled)
                ends = [end for end, on in zip(_ENDS, flags, strict=True) if on]
                state = f"both {' and '.join(ends)}" if ends else "neither finished, dropped nor cancelled"
                raise AssertionError(f"request {request.id} is {state} at the end of the run")

    def _cancel_now(self, request: Request, now: float) -> bool:
        """Take ``request`` out of the instance holding it and end it as cancelled; False, changing nothing, while
        a move carries it or a batch computes it (the batch writes its KV: its blocks must stay allocated)."""
        if any(move.request is request for *_, move in self._in_transit):
            return False
        instance = self._by_name[request.instances[-1]]
        if instance.batch is not None and instance.batch.computes(request):
            return False
        instance.scheduler.release(request)
        if self.kv is not None:
            self.kv.discard(request, instance)
        request.cancelled = True
        self.outstanding -= 1
        self.on_end(request, CANCELLED)
        self.on_give(instance, now)  # its KV is free: what waits there may start
        return True

    @staticmethod
    def _check(move: Move) -> None:
        request = move.request
        if move.kv_tokens != request.num_computed:
            raise ValueError(
                f"request {request.id} moves with {move.kv_tokens} KV tokens but has {request.num_computed} computed"
            )

    def _take(self, move: Move, source: Instance) -> object:
        """The KV a move carries, copied off its source by the ``KVCarrier``; None for a move without KV."""
        assert self.kv is not None
        self._check(move)
        return self.kv.take(move, source) if move.kv_tokens else None

    def _move(self, source: Instance, move: Move, now: float, kv: object = None) -> None:
        """Record a move and deliver it: with ``kv`` (taken off its source) at once, after the measured copy;
        otherwise after ``transfer_time``."""
        request = move.request
        self._check(move)
        record = MoveRecord(request.id, source.name, move.target.name, move.kv_tokens, now)
        precopy = move.precopy
        if precopy is not None:
            record.precopied, record.started, record.stages = precopy.tokens, precopy.started, precopy.stages + 1
        self.moves.append(record)
        if kv is not None:
            assert self.kv is not None
            target = move.target
            request.instances.append(target.name)
            target.scheduler.adopt(request, now)
            record.delivered = now + self.kv.put(move, kv)
            self.on_give(target, record.delivered)
            return
        cost = self.transfer_time(move, source)
        if cost == 0.0:
            record.delivered = now
            self.give(move.target, request, now)
        elif cost > 0.0:
            due = now + cost
            self._seq += 1
            heapq.heappush(self._in_transit, (due, self._seq, record, move))
            self.on_transit(due)
        else:
            raise ValueError(f"the transfer of request {request.id} takes {cost} s, which is negative")

    def _dropped(self, requests: list[Request], error: str) -> None:
        self.outstanding -= len(requests)
        for request in requests:
            self.on_end(request, error)
