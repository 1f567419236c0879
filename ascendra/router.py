"""How requests reach instances: the router contract, moves between instances, and the round-robin router.

A router places each arrival and, after any instance has scheduled a batch, may move requests away from it (or,
naming the ``source``, from another instance: a decode instance that freed room pulls a request a prefill
instance holds). A move names the KV it carries: ``kv_tokens == 0`` for a request that holds no KV (taken from
a waiting queue, as Ascendra's offload), more for one whose cache travels with it (a prefill/decode hand-off, a
live migration). A live migration may have copied part of that KV while the request kept running at its
source (``PreCopy``); the move itself then carries only the rest. The coordinator charges each move's transfer
time and delivers it to the target afterwards; while it travels the request is in no instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ascendra.batch import Batch
from ascendra.instance import Instance
from ascendra.request import Request


@dataclass(frozen=True, slots=True)
class PreCopy:
    """The stages of a migration that copied ``tokens`` of KV while the request kept running at its source,
    from ``started`` (runtime seconds) over ``stages`` copies; the final move carries the rest."""

    tokens: int
    started: float
    stages: int


@dataclass(frozen=True, slots=True)
class Move:
    """``request`` leaves its instance for ``target`` carrying ``kv_tokens`` tokens of KV cache.

    The router has already taken the request out of its source scheduler (``release`` does: it frees the
    request's blocks there and returns its ``kv_tokens``, the request's ``num_computed``); the target ``adopt``s it
    when the transfer completes, or ``add``s it when it carries no KV."""

    request: Request
    target: Instance
    kv_tokens: int = 0
    #: The instance the request leaves; None: the one whose scheduling step the router is answering.
    source: Instance | None = None
    precopy: PreCopy | None = None

    @property
    def sent_tokens(self) -> int:
        """KV tokens this move itself transfers: all it carries, less what a pre-copy already sent."""
        return self.kv_tokens - (self.precopy.tokens if self.precopy else 0)


class Router(Protocol):
    """Places new arrivals and may move requests between instances after a scheduling step."""

    def route(self, request: Request, now: float) -> Instance | None:
        """The instance a new arrival goes to, or None to drop it (admission control)."""

    def moves_after(self, instance: Instance, batch: Batch, now: float) -> list[Move]:
        """Requests taken from an instance right after ``instance`` scheduled ``batch`` (from ``instance`` unless
        a move names its ``source``), each with where it goes; never one in a batch that computes it, since the
        move frees its KV."""


# Optional, for the simulator's bulk advance (``ascendra.sim.cluster``): a router may offer
# ``arrivals_elsewhere(instance) -> int | None``, promising that, while ``instance`` has nothing waiting, no move
# reaches or leaves it and no routing decision reads its state, and returning how many upcoming arrivals
# certainly go to other instances before one may reach it (None: no such promise now).

# Optional, for a router whose step may give an instance work without a move (an aborted live migration,
# ``ascendra.migration``): ``take_woken() -> list[Instance]`` (or None), the instances to wake after the step;
# the coordinator wakes them (an idle one schedules again) as it wakes the source of a move that freed KV.


class RoundRobinRouter:
    """The baselines' router: arrivals cycle over the instances; nothing ever moves."""

    def __init__(self, instances: list[Instance]) -> None:
        self.instances = instances
        self._next = 0

    def route(self, request: Request, now: float) -> Instance:
        instance = self.instances[self._next]
        self._next = (self._next + 1) % len(self.instances)
        return instance

    def moves_after(self, instance: Instance, batch: Batch, now: float) -> list[Move]:
        return []

    def arrivals_elsewhere(self, instance: Instance) -> int:
        """How many upcoming arrivals go to other instances before the next one reaches ``instance`` (this
        router reads no instance's state and moves nothing: the simulator's bulk advance relies on it)."""
        return (self.instances.index(instance) - self._next) % len(self.instances)
