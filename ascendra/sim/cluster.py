"""The discrete-event loop: arrivals, batch completions and moves between instances on a virtual clock.

Events are processed in time order; at equal times arrivals come before batch completions, so a request that
arrives exactly when a batch ends can join the next batch. An idle instance starts a batch as soon as it is
given work. Moves (offloads) are delivered immediately, as the design prescribes for simulation.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from ascendra.request import Request
from ascendra.sim.instance import SimInstance
from ascendra.sim.router import Router
from workloads.spec import RequestSpec


@dataclass(slots=True)
class RunResult:
    """Every arrived request (finished or dropped) and the instances' activity."""

    requests: list[Request]
    instances: list[SimInstance]
    end_time: float


class Cluster:
    """Instances plus a router, advanced by one virtual clock."""

    def __init__(self, instances: list[SimInstance], router: Router) -> None:
        self.instances = instances
        self.router = router
        self._events: list[tuple[float, int, int]] = []
        self._seq = 0
        self._index = {id(inst): i for i, inst in enumerate(instances)}

    def run(self, specs: list[RequestSpec]) -> RunResult:
        requests = [Request(spec) for spec in sorted(specs, key=lambda s: (s.arrival, s.request_id))]
        events = self._events
        now = 0.0
        next_arrival = 0
        while next_arrival < len(requests) or events:
            arrival_time = requests[next_arrival].arrival if next_arrival < len(requests) else float("inf")
            if not events or arrival_time <= events[0][0]:
                now = arrival_time
                self._arrive(requests[next_arrival], now)
                next_arrival += 1
            else:
                now, _, index = heapq.heappop(events)
                self._complete(self.instances[index], now)
        self._check_all_done(requests)
        return RunResult(requests, self.instances, now)

    def _arrive(self, request: Request, now: float) -> None:
        instance = self.router.route(request, now)
        if instance is None:
            request.dropped = True
            return
        self._give(instance, request, now)

    def _give(self, instance: SimInstance, request: Request, now: float) -> None:
        request.instances.append(instance.name)
        instance.scheduler.add(request, now)
        if instance.idle:
            self._start(instance, now)

    def _complete(self, instance: SimInstance, now: float) -> None:
        batch = instance.batch
        assert batch is not None
        instance.batch = None
        instance.busy_until = None
        instance.scheduler.on_batch_done(batch, now)
        self._start(instance, now)

    def _start(self, instance: SimInstance, now: float) -> None:
        batch = instance.scheduler.schedule(now)
        instance.scheduler.drain_rejected()  # already marked dropped: records count them as misses
        if batch:
            duration = instance.batch_time(batch)
            instance.batch = batch
            instance.busy_until = now + duration
            instance.num_batches += 1
            instance.busy_time += duration
            if instance.batch_log is not None:
                instance.batch_log.append((now, batch, duration))
            self._seq += 1
            heapq.heappush(self._events, (now + duration, self._seq, self._index[id(instance)]))
        for request, target in self.router.moves_after(instance, batch, now):
            self._give(target, request, now)

    @staticmethod
    def _check_all_done(requests: list[Request]) -> None:
        """The run's invariant: every arrived request finished or was dropped, exactly one of the two."""
        for request in requests:
            if request.finished == request.dropped:
                state = "both finished and dropped" if request.finished else "neither finished nor dropped"
                raise AssertionError(f"request {request.id} is {state} at the end of the run")
