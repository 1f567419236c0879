"""The discrete-event loop: arrivals, batch completions and move deliveries on a virtual clock.

Events are processed in time order; at equal times arrivals come before batch completions, so a request that
arrives exactly when a batch ends can join the next batch. An idle instance starts a batch as soon as it is
given work. Routing, rejections and moves are the shared ``Coordinator``'s; a move is delivered at once when it
is free (the default, as the design prescribes for simulation), else by an event ``transfer_time`` later.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from ascendra.coordinator import Coordinator, MoveRecord, TransferTime, instant
from ascendra.instance import Instance
from ascendra.request import Request, RequestSpec
from ascendra.router import Router

#: Told (requests arrived so far, total requests) while a run goes on.
OnProgress = Callable[[int, int], None]
#: The event index of a move delivery (batch completions carry their instance's index, >= 0).
_DELIVERY = -1


@dataclass(slots=True)
class RunResult:
    """Every arrived request (finished or dropped), the instances' activity and the moves between them."""

    requests: list[Request]
    instances: list[Instance]
    end_time: float
    moves: list[MoveRecord] = field(default_factory=list)


class Cluster:
    """Instances plus a router, advanced by one virtual clock."""

    def __init__(self, instances: list[Instance], router: Router, transfer_time: TransferTime = instant) -> None:
        self.instances = instances
        self.router = router
        self.coordinator = Coordinator(
            instances, router, transfer_time, on_give=self._wake, on_transit=self._deliver_at
        )
        self._events: list[tuple[float, int, int]] = []
        self._seq = 0
        self._index = {id(inst): i for i, inst in enumerate(instances)}

    def run(self, specs: list[RequestSpec], on_progress: OnProgress | None = None) -> RunResult:
        """Run every request to its end; ``on_progress(arrived, total)`` is told every 1,024 arrivals (a progress
        bar for long runs)."""
        requests = [Request(spec) for spec in sorted(specs, key=lambda s: (s.arrival, s.request_id))]
        coordinator = self.coordinator
        events = self._events
        now = 0.0
        next_arrival = 0
        total = len(requests)
        while next_arrival < total or events:
            arrival_time = requests[next_arrival].arrival if next_arrival < total else float("inf")
            if not events or arrival_time <= events[0][0]:
                now = arrival_time
                coordinator.arrive(requests[next_arrival], now)
                next_arrival += 1
                if on_progress is not None and (next_arrival & 1023 == 0 or next_arrival == total):
                    on_progress(next_arrival, total)
            else:
                now, _, index = heapq.heappop(events)
                if index == _DELIVERY:
                    coordinator.deliver_due(now)
                else:
                    self._complete(self.instances[index], now)
        coordinator.check_all_done(requests)
        return RunResult(requests, self.instances, now, coordinator.moves)

    def _wake(self, instance: Instance, now: float) -> None:
        if instance.idle:
            self._start(instance, now)

    def _deliver_at(self, due: float) -> None:
        self._seq += 1
        heapq.heappush(self._events, (due, self._seq, _DELIVERY))

    def _complete(self, instance: Instance, now: float) -> None:
        batch = instance.batch
        assert batch is not None
        instance.batch = None
        done = instance.scheduler.on_batch_done(batch, now)
        if done:
            self.coordinator.finished(done)
        self._start(instance, now)

    def _start(self, instance: Instance, now: float) -> None:
        batch = instance.scheduler.schedule(now)
        if batch:
            duration = instance.execute(batch)
            instance.batch = batch
            instance.num_batches += 1
            if instance.batch_log is not None:
                instance.batch_log.append((now, batch, duration))
            self._seq += 1
            heapq.heappush(self._events, (now + duration, self._seq, self._index[id(instance)]))
        self.coordinator.after_schedule(instance, batch, now)
