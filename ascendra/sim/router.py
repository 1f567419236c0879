"""How requests reach instances: the router contract, and the round-robin router the baselines use."""

from __future__ import annotations

from typing import Protocol

from ascendra.batch import Batch
from ascendra.request import Request
from ascendra.sim.instance import SimInstance


class Router(Protocol):
    """Places new arrivals and may move waiting requests between instances after a scheduling step."""

    def route(self, request: Request, now: float) -> SimInstance | None:
        """The instance a new arrival goes to, or None to drop it (admission control)."""

    def moves_after(self, instance: SimInstance, batch: Batch, now: float) -> list[tuple[Request, SimInstance]]:
        """Requests taken from ``instance`` right after it scheduled ``batch``, each with its new instance."""


class RoundRobinRouter:
    """The baselines' router: arrivals cycle over the instances; nothing ever moves."""

    def __init__(self, instances: list[SimInstance]) -> None:
        self.instances = instances
        self._next = 0

    def route(self, request: Request, now: float) -> SimInstance:
        instance = self.instances[self._next]
        self._next = (self._next + 1) % len(self.instances)
        return instance

    def moves_after(self, instance: SimInstance, batch: Batch, now: float) -> list[tuple[Request, SimInstance]]:
        return []
