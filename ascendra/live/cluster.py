"""The live runtime: releases a workload's arrivals on the wall clock and ends the run when every request is done.

Instances run on their own threads (``InstanceThread``); arrivals are released on the caller's thread, and the
shared ``Coordinator`` routes them, drops rejections and delivers moves. The timeline is
``time.perf_counter()`` relative to the run start, so request arrivals (seconds from the start in the workload)
and every token time are on the same axis as in the simulator, and the result has the simulator's shape
(``RunResult``, with its ``moves``), so records, metrics and sweep tables are identical.

What the live run adds to the simulator's result:

- ``release_lag``: how late each arrival was handed to its instance (timer and lock jitter); the request's
  arrival stays the workload's, so this lag counts in its TTFT as queueing would.
- in ``moves``, a move carrying KV between engines really copies its KV pages from the source engine's pool
  into the blocks the target reserved (``ascendra.live.kv_moves``), at once, and its ``latency`` is that
  copy's measured time, not the link model the simulator charges; a move without KV that has a transfer time
  is delivered by a timer, so its ``latency`` is the transfer time plus the timer's and the lock's delay.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ascendra.coordinator import TransferTime, instant
from ascendra.instance import Instance
from ascendra.live.worker import WallClockControl
from ascendra.request import Request, RequestSpec
from ascendra.router import Router
from ascendra.sim.cluster import RunResult


@dataclass(slots=True)
class LiveRunResult(RunResult):
    """The simulator's result plus what only a live run can measure."""

    release_lag: list[float] = field(default_factory=list)


class StallError(AssertionError):
    """Work remained but no instance could schedule it: a policy bug, reported like the simulator's invariant."""


class LiveCluster(WallClockControl):
    """Instances (scheduler + block manager + real executor in ``execute``) plus a router, on the wall clock."""

    def __init__(self, instances: list[Instance], router: Router, transfer_time: TransferTime = instant) -> None:
        super().__init__(instances, router, transfer_time)
        self._changed = threading.Condition(self.lock)
        self._error: BaseException | None = None

    # --- Control (called by instance threads, with the lock held) ----------------------------------------------

    def idle(self) -> None:
        self._changed.notify()

    def fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._changed.notify()

    def _ended(self, request: Request, error: str | None) -> None:
        if self.coordinator.outstanding == 0:
            self._changed.notify()

    # --- the run ----------------------------------------------------------------------------------------------

    def run(self, specs: list[RequestSpec]) -> LiveRunResult:
        """Serve ``specs`` in real time; returns when every request has finished or was dropped. Once per cluster:
        its instance threads and schedulers are spent afterwards."""
        if self.started:
            raise RuntimeError("a LiveCluster runs once; build a new system for another run")
        requests = [Request(spec) for spec in sorted(specs, key=lambda s: (s.arrival, s.request_id))]
        lags: list[float] = []
        self._start_threads()
        try:
            with self.lock:
                self._serve(requests, lags)
        finally:
            self._stop_threads()
        self.coordinator.check_all_done(requests)
        end = max((t for r in requests for t in r.token_times), default=0.0)
        return LiveRunResult(requests, self.instances, end, self.coordinator.moves, release_lag=lags)

    def _serve(self, requests: list[Request], lags: list[float]) -> None:
        coordinator = self.coordinator
        next_arrival = 0
        while True:
            if self._error is not None:
                raise self._error
            now = self.clock()
            while next_arrival < len(requests) and requests[next_arrival].arrival <= now:
                request = requests[next_arrival]
                coordinator.arrive(request, now)
                lags.append(now - request.arrival)
                next_arrival += 1
            if next_arrival == len(requests):
                if coordinator.outstanding == 0:
                    return
                if not coordinator.num_in_transit and all(t.is_idle for t in self._threads.values()):
                    raise StallError(f"{coordinator.outstanding} requests left but every instance is idle")
                self._changed.wait()
            else:
                self._changed.wait(max(0.0, requests[next_arrival].arrival - self.clock()))
