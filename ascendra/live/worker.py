"""One live instance's loop: schedule at the wall-clock time, execute for real, advance, wait when idle.

The loop is the simulator's instance step run on a real clock: ``schedule(now)``, drop rejected requests, let
the router take requests away (offloads), execute the batch, then ``on_batch_done(batch, end)`` with the time
the batch really ended. Everything but the execution runs under the cluster's control lock, because routers
read and change other instances' schedulers (tickets, offloads); the execution runs without it, so the other
instances' batches overlap with this one as they would on separate GPUs. An idle instance blocks on a condition
of that lock until work is delivered or the run stops: no busy waiting.

``Control`` is everything the loop needs from its cluster. A distributed variant (one Ray actor per GPU) keeps
this loop and replaces ``Control`` with calls to the driver that owns the router.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from ascendra.batch import Batch
from ascendra.request import Request
from ascendra.sim.instance import SimInstance


class Control(Protocol):
    """The cluster side of an instance loop."""

    lock: threading.Lock
    stopping: bool

    def clock(self) -> float:
        """Seconds since the run started."""

    def after_schedule(self, node: SimInstance, batch: Batch, now: float) -> None:
        """Drop the node's rejected requests and deliver the router's moves; called right after ``schedule``."""

    def finished(self, requests: list[Request]) -> None:
        """Requests that just completed (for the end-of-run count)."""

    def idle(self) -> None:
        """An instance has gone idle (the coordinator checks for a stall)."""

    def fail(self, exc: BaseException) -> None:
        """The loop died; the run must stop and re-raise ``exc``."""


class InstanceThread:
    """Runs one instance's loop on its own thread. ``node.batch_time`` is its executor (real engine)."""

    def __init__(self, node: SimInstance, control: Control) -> None:
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
        except BaseException as exc:  # re-raised by the coordinator on its own thread
            with self.control.lock:
                self.control.fail(exc)

    def _loop(self) -> None:
        control, node = self.control, self.node
        scheduler = node.scheduler
        execute: Callable[[Batch], float] = node.batch_time
        with control.lock:
            while not control.stopping:
                now = control.clock()
                batch = scheduler.schedule(now)
                control.after_schedule(node, batch, now)
                if not batch:
                    self.is_idle = True
                    control.idle()
                    while self.is_idle and not control.stopping:
                        self.wake.wait()
                    continue
                node.batch = batch
                control.lock.release()
                try:
                    seconds = execute(batch)
                finally:
                    control.lock.acquire()
                end = control.clock()
                node.batch = None
                node.num_batches += 1
                node.busy_time += seconds
                if node.batch_log is not None:
                    node.batch_log.append((now, batch, end - now))
                done = scheduler.on_batch_done(batch, end)
                if done:
                    control.finished(done)
