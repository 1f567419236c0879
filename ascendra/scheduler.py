"""The scheduler contract shared by every policy (vLLM, Sarathi-Serve, Ascendra LP/HP).

A scheduler is pure policy over a KV block manager: it is told the time, it never reads a clock or sleeps,
so the same object runs under the discrete-event simulator and under the live runtime.
"""

from __future__ import annotations

from typing import Protocol

from ascendra.batch import Batch
from ascendra.request import Request


class Scheduler(Protocol):
    """One instance's batching policy."""

    def add(self, request: Request, now: float) -> None:
        """A request arrives at this instance (new, routed, or offloaded to it)."""

    def schedule(self, now: float) -> Batch:
        """The next iteration's batch; empty when there is nothing to run. Reserves the KV blocks it needs."""

    def on_batch_done(self, batch: Batch, now: float) -> list[Request]:
        """Advance the batch's requests at the batch's end time; free and return the requests that finished."""

    def has_work(self) -> bool:
        """True while any request is waiting or running here."""

    def release(self, request: Request) -> int:
        """Take ``request`` out of this instance, waiting or running, freeing its KV blocks, for a router to move
        it; returns the tokens of KV it held (``request.num_computed`` if it was running, else 0)."""

    def adopt(self, request: Request, now: float) -> None:
        """A request arrives with ``request.num_computed`` > 0 tokens of KV (moved from another instance): take
        over its KV and continue it from where it stopped, or recompute it when it cannot be taken in now."""

    def drain_rejected(self) -> list[Request]:
        """The requests dropped here since the last call (``dropped`` set, no KV held), for the runtime to record."""
