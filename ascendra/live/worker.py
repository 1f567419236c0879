"""One live instance's loop, and the wall-clock control that the live runtime and the server run it under.

The loop is the simulator's instance step run on a real clock: ``schedule(now)``, hand the step to the
coordinator (rejections, the router's moves), execute the batch, then ``on_batch_done(batch, end)`` with the
time the batch really ended. Everything but the execution runs under the cluster's control lock, because routers
read and change other instances' schedulers (tickets, offloads); the execution runs without it, so the other
instances' batches overlap with this one as they would on separate GPUs. An idle instance blocks on a condition
of that lock until work is delivered or the run stops: no busy waiting.

``Control`` is everything the loop needs from its cluster. A distributed variant (one Ray actor per GPU) keeps
this loop and replaces ``Control`` with calls to the driver that owns the router. ``WallClockControl`` is the
part of it ``LiveCluster`` and ``ServingCluster`` share: the lock, the clock, one thread per instance, and the
``Coordinator`` wired to them (given work wakes its instance's thread; a move in transit is delivered by a
timer when it is due), and, when the instances' executors are engines, the ``EngineKV`` that copies a moved
request's KV pages from engine to engine (``ascendra.live.kv_moves``).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from typing import Protocol

from ascendra.batch import Batch
from ascendra.coordinator import Coordinator, TransferTime
from ascendra.instance import Instance
from ascendra.live.kv_moves import EngineKV
from ascendra.request import Request
from ascendra.router import Router


class Control(Protocol):
    """The cluster side of an instance loop."""

    lock: threading.Lock
    stopping: bool

    def clock(self) -> float:
        """Seconds since the run started."""

    def after_schedule(self, node: Instance, batch: Batch, now: float) -> None:
        """Drop the node's rejected requests and deliver the router's moves; called right after ``schedule``."""

    def after_batch(self, requests: list[Request], now: float) -> None:
        """A batch ended at ``now`` completing ``requests`` (maybe none); cancellations waiting for it go now."""

    def idle(self) -> None:
        """An instance has gone idle (the live runtime checks for a stall)."""

    def fail(self, exc: BaseException) -> None:
        """The loop died; the run must stop and re-raise ``exc``."""


class InstanceThread:
    """Runs one instance's loop on its own thread. ``node.execute`` is its executor (real engine)."""

    def __init__(self, node: Instance, control: Control) -> None:
        self.node = node
        self.control = control
        self.wake = threading.Condition(control.lock)
        #: True while the loop waits for work with nothing undelivered (read under the control lock).
        self.is_idle = False
        self._thread = threading.Thread(target=self._run, name=f"live-{node.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def notify(self) -> None:
        """Work was delivered or the run is stopping; call with the control lock held."""
        self.is_idle = False
        self.wake.notify()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # re-raised on the thread that runs the cluster
            with self.control.lock:
                self.control.fail(exc)

    def _loop(self) -> None:
        control, node = self.control, self.node
        scheduler = node.scheduler
        execute = node.execute
        with control.lock:
            while not control.stopping:
                now = control.clock()
                batch = scheduler.schedule(now)
                self.is_idle = not batch  # before the moves: one that frees KV here wakes this loop again
                control.after_schedule(node, batch, now)
                if not batch:
                    control.idle()
                    while self.is_idle and not control.stopping:
                        self.wake.wait()
                    continue
                node.batch = batch
                control.lock.release()
                try:
                    execute(batch)
                finally:
                    control.lock.acquire()
                end = control.clock()
                node.batch = None
                node.num_batches += 1
                if node.batch_log is not None:
                    node.batch_log.append((now, batch, end - now))
                control.after_batch(scheduler.on_batch_done(batch, end), end)


class WallClockControl(ABC):
    """The ``Control`` of a wall-clock cluster: a ``Coordinator`` plus a thread per instance, under one lock.

    Subclasses say what an ended request (``_ended``), an idle instance and a failure mean to them,
    and when the threads start (``_start_threads``, once) and stop (``_stop_threads``).
    """

    def __init__(self, instances: list[Instance], router: Router, transfer_time: TransferTime) -> None:
        self.instances = instances
        self.router = router
        self.lock = threading.Lock()
        self.stopping = False
        self.started = False
        self.coordinator = Coordinator(
            instances,
            router,
            transfer_time,
            on_give=self._wake,
            on_end=self._ended,
            on_transit=self._deliver_at,
            kv=EngineKV.of(instances),
        )
        self._threads = {id(node): InstanceThread(node, self) for node in instances}
        self._timers: set[threading.Timer] = set()
        self._t0 = time.perf_counter()

    def clock(self) -> float:
        return time.perf_counter() - self._t0

    def after_schedule(self, node: Instance, batch: Batch, now: float) -> None:
        self.coordinator.after_schedule(node, batch, now)

    def after_batch(self, requests: list[Request], now: float) -> None:
        if requests:
            self.coordinator.finished(requests)
        self.coordinator.cancel_pending(now)

    @abstractmethod
    def idle(self) -> None: ...

    @abstractmethod
    def fail(self, exc: BaseException) -> None: ...

    @abstractmethod
    def _ended(self, request: Request, error: str | None) -> None:
        """``request`` finished (``error`` None), was dropped or was cancelled; called with the lock held."""

    def _start_threads(self) -> None:
        """Start the clock and the instance threads."""
        self.started = True
        self._t0 = time.perf_counter()
        for thread in self._threads.values():
            thread.start()

    def _stop_threads(self) -> None:
        """Stop the instance threads (each finishes its batch in progress) and the pending deliveries."""
        with self.lock:
            self.stopping = True
            for thread in self._threads.values():
                thread.notify()
            for timer in self._timers:
                timer.cancel()
        if self.started:
            for thread in self._threads.values():
                thread.join()

    def _wake(self, node: Instance, now: float) -> None:
        self._threads[id(node)].notify()

    def _deliver_at(self, due: float) -> None:
        timer = threading.Timer(max(0.0, due - self.clock()), self._deliver, (due,))
        timer.daemon = True
        self._timers.add(timer)
        timer.start()

    def _deliver(self, due: float) -> None:
        """A timer's delivery, at ``due`` or later (never timestamped earlier, should the timer fire early)."""
        with self.lock:
            self._timers.discard(threading.current_thread())  # type: ignore[arg-type]
            if self.stopping:
                return
            try:
                now = max(self.clock(), due)
                self.coordinator.deliver_due(now)
                self.coordinator.cancel_pending(now)
            except BaseException as exc:  # the run must see it, as an instance thread's failure
                self.fail(exc)
