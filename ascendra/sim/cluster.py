"""The discrete-event loop: arrivals, batch completions and move deliveries on a virtual clock.

Events are processed in time order; at equal times arrivals come before batch completions, so a request that
arrives exactly when a batch ends can join the next batch. An idle instance starts a batch as soon as it is
given work. Routing, rejections and moves are the shared ``Coordinator``'s; a move is delivered at once when it
is free (the default, as the design prescribes for simulation), else by an event ``transfer_time`` later.

Bulk advance (``decode_times`` given): most iterations are decode-only steps between events, and simulating
each costs a Python pass over its requests. When an instance schedules a decode-only batch of every request it
runs with nothing waiting, and its policy promises the next batches are the same decodes less the finished ones
while nothing reaches it (``BasePolicy.steady``), and its router promises nothing but arrivals reaches it and
says how many upcoming arrivals go elsewhere first (``arrivals_elsewhere``), the steps up to the first that ends
at or after the next arrival that may reach it are advanced at once: their times from ``decode_times`` (the
cost model's, bit for bit those of its per-batch times), summed in the one-by-one order, and the state
(tokens, finishes, KV blocks, batch counts, the batch log) materialised as one-by-one scheduling would leave it
(``BasePolicy.decode_run``). The last step stays in flight on the clock (the arrival comes while it runs) but is
completed with the others, its outcome being fixed: its end event only schedules the next batch.

Cohorts (``cohorts``, on with ``decode_times`` by default): each policy advances its running decodes as one
``ascendra.cohort.Cohort``, so an iteration costs per request only for requests with an event (a block
boundary, a finish, a join). Without ``decode_times`` and cohorts every step is simulated one by one, request by
request: the reference the fast path is tested against.
"""

from __future__ import annotations

import gc
import heapq
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ascendra.batch import Batch, DecodeCounts
from ascendra.coordinator import Coordinator, MoveRecord, TransferTime, instant
from ascendra.instance import Instance
from ascendra.request import Request, RequestSpec
from ascendra.router import Router

#: Told (requests arrived so far, total requests) while a run goes on.
OnProgress = Callable[[int, int], None]
#: Seconds of the first ``steps`` of a run of decode-only steps, given in counts (``CostModel.decode_run_times``).
DecodeTimes = Callable[[DecodeCounts, int], list[float]]
#: The event index of a move delivery (batch completions carry their instance's index, >= 0).
_DELIVERY = -1


@dataclass(slots=True)
class RunResult:
    """Every arrived request (finished or dropped), the instances' activity and the moves between them."""

    requests: list[Request]
    instances: list[Instance]
    end_time: float
    moves: list[MoveRecord] = field(default_factory=list)
    #: Iterations completed by the bulk advance rather than one by one (of ``sum(i.num_batches)``).
    bulk_steps: int = 0


@contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector off meanwhile (left off if it was): a simulated run and the records computed
    from it allocate much that reference counting frees or that lives until the run is dropped, so collecting
    meanwhile only traverses it again and again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Cluster:
    """Instances plus a router, advanced by one virtual clock."""

    def __init__(
        self,
        instances: list[Instance],
        router: Router,
        transfer_time: TransferTime = instant,
        decode_times: DecodeTimes | None = None,
        cohorts: bool | None = None,
    ) -> None:
        self.instances = instances
        if cohorts is None:
            cohorts = decode_times is not None
        if cohorts:
            for instance in instances:
                use = getattr(instance.scheduler, "use_cohorts", None)
                if use is not None:
                    use()
        self.router = router
        self.coordinator = Coordinator(
            instances, router, transfer_time, on_give=self._wake, on_transit=self._deliver_at
        )
        self._events: list[tuple[float, int, int]] = []
        self._seq = 0
        self._index = {id(inst): i for i, inst in enumerate(instances)}
        self._decode_times = decode_times
        self._arrivals_elsewhere = getattr(router, "arrivals_elsewhere", None)
        self._requests: list[Request] = []
        self._next_arrival = 0
        self._bulk_steps = 0
        #: Per instance: its batch in flight was completed ahead by the bulk advance (nothing to do as it ends).
        self._ahead = [False] * len(instances)

    def run(self, specs: list[RequestSpec], on_progress: OnProgress | None = None) -> RunResult:
        """Run every request to its end; ``on_progress(arrived, total)`` is told every 1,024 arrivals (a progress
        bar for long runs). The cyclic garbage collector is paused meanwhile: what a run allocates is freed by
        reference counting or lives until its end (requests, cohorts), so collecting during it only costs time
        (~5%)."""
        with paused_gc():
            return self._run(specs, on_progress)

    def _run(self, specs: list[RequestSpec], on_progress: OnProgress | None) -> RunResult:
        requests = [Request(spec) for spec in sorted(specs, key=lambda s: (s.arrival, s.request_id))]
        self._requests = requests
        coordinator = self.coordinator
        events = self._events
        now = 0.0
        total = len(requests)
        while self._next_arrival < total or events:
            next_arrival = self._next_arrival
            arrival_time = requests[next_arrival].arrival if next_arrival < total else float("inf")
            if not events or arrival_time <= events[0][0]:
                now = arrival_time
                self._next_arrival = next_arrival + 1
                coordinator.arrive(requests[next_arrival], now)
                if on_progress is not None and (self._next_arrival & 1023 == 0 or self._next_arrival == total):
                    on_progress(self._next_arrival, total)
            else:
                now, _, index = heapq.heappop(events)
                if index == _DELIVERY:
                    coordinator.deliver_due(now)
                else:
                    self._complete(index, now)
        coordinator.check_all_done(requests)
        return RunResult(requests, self.instances, now, coordinator.moves, self._bulk_steps)

    def _wake(self, instance: Instance, now: float) -> None:
        if instance.idle:
            self._start(instance, now)

    def _deliver_at(self, due: float) -> None:
        self._seq += 1
        heapq.heappush(self._events, (due, self._seq, _DELIVERY))

    def _complete(self, index: int, now: float) -> None:
        instance = self.instances[index]
        batch = instance.batch
        assert batch is not None
        instance.batch = None
        if self._ahead[index]:
            self._ahead[index] = False
        else:
            done = instance.scheduler.on_batch_done(batch, now)
            if done:
                self.coordinator.finished(done)
        self._start(instance, now)

    def _start(self, instance: Instance, now: float) -> None:
        batch = instance.scheduler.schedule(now)
        if batch:
            duration = instance.execute(batch)
            if self._decode_times is not None and batch.num_prefill_tokens == 0:
                now, batch, duration = self._advance(instance, batch, now, duration)
            instance.batch = batch
            instance.num_batches += 1
            if instance.batch_log is not None:
                instance.batch_log.append((now, batch, duration))
            self._seq += 1
            heapq.heappush(self._events, (now + duration, self._seq, self._index[id(instance)]))
        self.coordinator.after_schedule(instance, batch, now)

    def _advance(self, instance: Instance, batch: Batch, now: float, duration: float) -> tuple[float, Batch, float]:
        """Complete the steady decode steps that start with ``batch`` (scheduled at ``now``) up to the first that
        ends at or after the next arrival that may reach ``instance``, that one included; returns that step, left
        in flight, as (start, batch, duration), or the arguments unchanged when the run cannot be advanced in bulk
        (see the module docstring)."""
        steady = getattr(instance.scheduler, "steady", None)
        if steady is None or self._arrivals_elsewhere is None:
            return now, batch, duration
        skip = self._arrivals_elsewhere(instance)  # first: an instance without the promise is never steady here
        if skip is None or not steady(batch):
            return now, batch, duration
        requests = self._requests
        reaching = self._next_arrival + skip
        horizon = requests[reaching].arrival if reaching < len(requests) else float("inf")
        first_end = now + duration
        if first_end >= horizon:
            return now, batch, duration
        times: list[float] = []

        def ends_of(counts: DecodeCounts, longest: int) -> list[float]:
            """Step ends up to the first at or after ``horizon``, summed in the one-by-one order."""
            wanted = longest if horizon == float("inf") else min(longest, 2 + int(2 * (horizon - first_end) / duration))
            while True:
                times[:] = self._decode_times(counts, wanted)  # type: ignore[misc]
                end = first_end
                ends = [end]
                for step_time in times[1:]:
                    end += step_time
                    ends.append(end)
                    if end >= horizon:
                        return ends
                if wanted >= longest:
                    return ends
                wanted = min(longest, 2 * wanted)

        scheduler = instance.scheduler
        log = instance.batch_log
        run = scheduler.decode_run(batch, ends_of, log is not None)  # type: ignore[attr-defined]
        steps, ends = run.steps, run.ends
        if steps == 0:
            return now, batch, duration
        if log is not None:
            log.append((now, batch, duration))
            log.extend((ends[s - 1], logged, times[s]) for s, logged in enumerate(run.logged, start=1))
        instance.num_batches += steps
        self._bulk_steps += steps + 1
        self._ahead[self._index[id(instance)]] = True
        if run.finished:
            self.coordinator.finished(run.finished)
        return ends[steps - 1], run.batch, times[steps]
