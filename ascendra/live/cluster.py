"""The live runtime's coordinator: releases arrivals on the wall clock, routes them, delivers moves, ends the run.

Instances run on their own threads (``InstanceThread``); this coordinator runs on the caller's thread. The
timeline is ``time.perf_counter()`` relative to the run start, so request arrivals (seconds from the start in
the workload) and every token time are on the same axis as in the simulator, and the result has the
simulator's shape (``RunResult``), so records, metrics and sweep tables are identical.

What the live run adds to the simulator's result:

- ``moves``: every request the router moved (offloads) with the time it was decided and the time it was
  delivered to its new instance; the simulator delivers instantly, here the latency is measured.
- ``release_lag``: how late each arrival was handed to its instance (timer and lock jitter); the request's
  arrival stays the workload's, so this lag counts in its TTFT as queueing would.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ascendra.batch import Batch
from ascendra.live.worker import InstanceThread
from ascendra.request import Request
from ascendra.sim.cluster import Cluster, RunResult
from ascendra.sim.instance import SimInstance
from ascendra.sim.router import Router
from workloads.spec import RequestSpec


@dataclass(frozen=True, slots=True)
class Move:
    """A request the router moved from one instance to another, and when (run seconds)."""

    request_id: int
    source: str
    target: str
    decided: float
    delivered: float

    @property
    def latency(self) -> float:
        return self.delivered - self.decided


@dataclass(slots=True)
class LiveRunResult(RunResult):
    """The simulator's result plus what only a live run can measure."""

    moves: list[Move] = field(default_factory=list)
    release_lag: list[float] = field(default_factory=list)


class StallError(AssertionError):
    """Work remained but no instance could schedule it: a policy bug, reported like the simulator's invariant."""


class LiveCluster:
    """Instances (scheduler + block manager + real executor in ``batch_time``) plus a router, on the wall clock."""

    def __init__(self, instances: list[SimInstance], router: Router) -> None:
        self.instances = instances
        self.router = router
        self.lock = threading.Lock()
        self.stopping = False
        self._changed = threading.Condition(self.lock)
        self._threads = {id(node): InstanceThread(node, self) for node in instances}
        self._outstanding = 0
        self._error: BaseException | None = None
        self._moves: list[Move] = []
        self._t0 = 0.0

    # --- Control (called by instance threads, with the lock held) ----------------------------------------------

    def clock(self) -> float:
        return time.perf_counter() - self._t0

    def after_schedule(self, node: SimInstance, batch: Batch, now: float) -> None:
        rejected = node.scheduler.drain_rejected()
        if rejected:
            self._done(len(rejected))
        for request, target in self.router.moves_after(node, batch, now):
            self._give(target, request)
            self._moves.append(Move(request.id, node.name, target.name, now, self.clock()))

    def finished(self, requests: list[Request]) -> None:
        self._done(len(requests))

    def idle(self) -> None:
        self._changed.notify()

    def fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._changed.notify()

    # --- the run ----------------------------------------------------------------------------------------------

    def run(self, specs: list[RequestSpec]) -> LiveRunResult:
        """Serve ``specs`` in real time; returns when every request has finished or was dropped. Once per cluster:
        its instance threads and schedulers are spent afterwards."""
        if self._t0:
            raise RuntimeError("a LiveCluster runs once; build a new system for another run")
        requests = [Request(spec) for spec in sorted(specs, key=lambda s: (s.arrival, s.request_id))]
        lags: list[float] = []
        self._outstanding = len(requests)
        self._t0 = time.perf_counter()
        for thread in self._threads.values():
            thread.start()
        try:
            with self.lock:
                self._serve(requests, lags)
        finally:
            self._stop()
        Cluster._check_all_done(requests)
        end = max((t for r in requests for t in r.token_times), default=0.0)
        return LiveRunResult(requests, self.instances, end, moves=self._moves, release_lag=lags)

    def _serve(self, requests: list[Request], lags: list[float]) -> None:
        next_arrival = 0
        while True:
            if self._error is not None:
                raise self._error
            now = self.clock()
            while next_arrival < len(requests) and requests[next_arrival].arrival <= now:
                request = requests[next_arrival]
                self._arrive(request)
                lags.append(now - request.arrival)
                next_arrival += 1
            if next_arrival == len(requests):
                if self._outstanding == 0:
                    return
                if all(t.is_idle for t in self._threads.values()):
                    raise StallError(f"{self._outstanding} requests left but every instance is idle")
                self._changed.wait()
            else:
                self._changed.wait(max(0.0, requests[next_arrival].arrival - self.clock()))

    def _arrive(self, request: Request) -> None:
        node = self.router.route(request, self.clock())
        if node is None:
            request.dropped = True
            self._done(1)
            return
        self._give(node, request)

    def _give(self, node: SimInstance, request: Request) -> None:
        request.instances.append(node.name)
        node.scheduler.add(request, self.clock())
        self._threads[id(node)].notify()

    def _done(self, count: int) -> None:
        self._outstanding -= count
        if self._outstanding == 0:
            self._changed.notify()

    def _stop(self) -> None:
        with self.lock:
            self.stopping = True
            for thread in self._threads.values():
                thread.notify()
        for thread in self._threads.values():
            thread.join()
