"""Moving a request's KV between live engines: the ``KVCarrier`` the wall-clock runtimes give the coordinator.

Why this design: a router's ``release`` frees the request's blocks at its source before the coordinator sees the
move, so the block table would be gone. The source's block manager keeps the freed table instead
(``BlockManager.moved``, switched on here, for live instances only: the simulator keeps nothing and pays
nothing) and ``take`` pops it. The pages themselves are intact: a freed block is written again only by a batch
scheduled after it was allocated again, or by a copy, and the coordinator takes the KV of every move of a router
step, under the cluster's lock, before it delivers any. Routers are unchanged; they still ``release`` and return
``Move``s.

The copy is synchronous and measured: the source engine gathers the request's whole blocks into one tensor (on
its device), the target scatters it into the blocks its ``adopt`` just reserved, each waiting for its device;
those seconds are the move's transfer time (``MoveRecord.latency``). With Ray the gathered blocks go from actor
to actor through the object store, timed the same way from the driver. A migration's pre-copy (``Move.precopy``,
planned by a simulated live-migration policy) is not replayed: live, the whole KV is copied at the move (a true
asynchronous pre-copy is out of scope).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ascendra.instance import Instance
from ascendra.kv_cache import BlockManager
from ascendra.request import Request
from ascendra.router import Move


@runtime_checkable
class KVEndpoint(Protocol):
    """An instance executor whose engine holds real KV pages, addressed by ``blocks``' block ids."""

    blocks: BlockManager

    def take_kv(self, request_id: int, block_ids: list[int]) -> object:
        """A copy of blocks ``block_ids`` (the request's, just freed), safe from later writes to the pool."""

    def put_kv(self, request_id: int, block_ids: list[int], pages: object) -> None:
        """Write ``pages`` (another endpoint's ``take_kv``) into blocks ``block_ids``; returns once written."""


@dataclass(slots=True)
class _Taken:
    pages: object
    seconds: float


class EngineKV:
    """The ``KVCarrier`` of instances whose executors are ``KVEndpoint``s (engines in process or in Ray actors)."""

    def __init__(self, endpoints: dict[int, KVEndpoint]) -> None:
        """``endpoints``: each instance's executor, by ``id(instance)``."""
        self._endpoints = endpoints
        for endpoint in endpoints.values():
            if endpoint.blocks.moved is None:
                endpoint.blocks.moved = {}

    @classmethod
    def of(cls, instances: list[Instance]) -> EngineKV | None:
        """The carrier for ``instances`` when their executors hold KV; None when none does (stand-in executors)."""
        endpoints = {id(node): node.execute for node in instances if isinstance(node.execute, KVEndpoint)}
        if not endpoints:
            return None
        if len(endpoints) != len(instances):
            raise ValueError("some instances' executors hold KV pages and some do not; KV could not move between them")
        return cls(endpoints)  # type: ignore[arg-type]  # the isinstance above checked each

    def take(self, move: Move, source: Instance) -> _Taken:
        endpoint = self._endpoints[id(source)]
        blocks = endpoint.blocks
        table = blocks.take_moved(move.request.id)[: blocks.blocks_for(move.kv_tokens)]
        start = time.perf_counter()
        pages = endpoint.take_kv(move.request.id, table)
        return _Taken(pages, time.perf_counter() - start)

    def discard(self, request: Request, source: Instance) -> None:
        blocks = self._endpoints[id(source)].blocks
        if blocks.moved is not None:
            blocks.moved.pop(request.id, None)

    def put(self, move: Move, kv: object) -> float:
        assert isinstance(kv, _Taken)
        request = move.request
        blocks = self._endpoints[id(move.target)].blocks
        start = time.perf_counter()
        # Adopted with its KV; otherwise (recomputation, rejection) the copy is dropped.
        if request.num_computed and not request.dropped and blocks.holds(request):
            table = blocks.block_table(request.id)[: blocks.blocks_for(move.kv_tokens)]
            self._endpoints[id(move.target)].put_kv(request.id, table, kv.pages)
        return kv.seconds + time.perf_counter() - start
