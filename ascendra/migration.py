"""Live migration of a running request with a multi-stage pre-copy: the machinery, not the policy.

Llumnix's design (Sun et al., OSDI'24; ``baselines.llumnix`` documents its sources and constants): a migration
copies the request's KV in stages while the request keeps decoding at its source, the destination pre-allocating
the blocks of each stage; once what is left is small the last stage stops the request and copies the rest (the
downtime). Which request moves, from where to where and when, is a router's policy: Llumnix's global scheduler
(``baselines.llumnix.LlumnixRouter``) and Ascendra's TBT-driven migration (``ascendra.controller``) both drive
this one engine.

- ``Migratable``: what an instance's policy needs to take part (a mixin placed before a ``BasePolicy`` subclass):
  ``incoming`` (requests migrating here whose blocks this pool already holds; ``adopt`` continues from them),
  ``leaving`` (requests in their last stage: they sit out the next batch and keep their KV until the router
  releases them) and ``reserve_floor`` (blocks a pre-allocation must leave free).
- ``Migrator``: the stage engine. Each stage copies the blocks not yet copied except the last one (still being
  written); it takes ``move_time(tokens)`` (the cluster's link model, ``ClusterSpec.kv_move_time``) and completes
  at the source's next iteration boundary. Once at most ``last_stage_max_blocks`` blocks are left (or without
  ``precopy``) the request sits out its source's next batch and then moves with ``Move(..., precopy=PreCopy(...))``:
  the coordinator charges only the tokens not yet copied. A migration is aborted (the destination's blocks freed,
  the request carrying on at its source) when its request finishes or is preempted, when the destination cannot
  pre-allocate, or when ``max_stages`` stages (the last included) were not enough. An abort may give an idle
  instance work without any move (the request it held out of its batch to leave runs there again; blocks
  pre-allocated at the destination are freed for what waits there): the router hands such instances to the
  coordinator (``take_woken``), which wakes them as it wakes the source of a move.

Defaults are Llumnix's: 3 stages, a last stage of at most 16 blocks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ascendra.batch import Batch
from ascendra.instance import Instance
from ascendra.policy import BasePolicy
from ascendra.request import Request
from ascendra.router import Move, PreCopy

INF = float("inf")


class Migratable:
    """The hooks a live migration needs from an instance's policy (a mixin before a ``BasePolicy`` subclass)."""

    incoming: list[Request]
    leaving: list[Request]
    #: Blocks a pre-allocation for an incoming request must leave free.
    reserve_floor: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.incoming = []
        self.leaving = []
        self.reserve_floor = 0

    def can_reserve(self, request: Request, num_tokens: int) -> bool:
        """Whether ``num_tokens`` slots for an incoming ``request`` fit above the floor, with a running slot."""
        policy: BasePolicy = self  # type: ignore[assignment]
        seats = len(policy.running) + sum(1 for r in self.incoming if r is not request)
        extra = policy.blocks.extra_blocks(request, num_tokens)
        return seats < policy.max_num_seqs and policy.blocks.num_free - extra >= self.reserve_floor

    def reserve(self, request: Request, num_tokens: int) -> None:
        """Pre-allocate blocks covering ``num_tokens`` slots of an incoming request (grows what it holds)."""
        self.blocks.grow(request, num_tokens)  # type: ignore[attr-defined]
        if not any(r is request for r in self.incoming):
            self.incoming.append(request)

    def unreserve(self, request: Request) -> None:
        """An aborted migration: free what was pre-allocated for it."""
        self.incoming = [r for r in self.incoming if r is not request]
        blocks = self.blocks  # type: ignore[attr-defined]
        if blocks.holds(request):
            blocks.free(request)

    def adopt(self, request: Request, now: float) -> None:
        reserved = any(r is request for r in self.incoming)
        if reserved:
            self.incoming = [r for r in self.incoming if r is not request]
        super().adopt(request, now)  # type: ignore[misc]
        running = self.running  # type: ignore[attr-defined]
        blocks = self.blocks  # type: ignore[attr-defined]
        if reserved and not any(r is request for r in running) and blocks.holds(request):
            blocks.free(request)  # fell back to recomputation (or was rejected): no KV held while waiting

    def schedule(self, now: float) -> Batch:
        leaving = self.leaving
        if not leaving:
            return super().schedule(now)  # type: ignore[misc]
        policy: BasePolicy = self  # type: ignore[assignment]
        held = [r for r in policy.running if any(r is x for x in leaving)]
        policy.running = [r for r in policy.running if not any(r is x for x in leaving)]
        try:
            return super().schedule(now)  # type: ignore[misc]
        finally:
            policy.running.extend(held)


@dataclass(slots=True, eq=False)
class Migration:
    """A migration in progress: ``copied`` tokens pre-copied over ``stages`` stages since ``started``; the
    current stage's copy is done at ``due``; ``leaving``: the last stage is decided, the request stops at the
    source's next step."""

    request: Request
    source: Instance
    target: Instance
    started: float
    preemptions: int
    copied: int = 0
    stages: int = 0
    due: float = 0.0
    leaving: bool = False


def _migratable(node: Instance) -> Migratable:
    return node.scheduler  # type: ignore[return-value]


class Migrator:
    """The stage engine of live migrations, for a router to drive (see the module docstring).

    A router calls ``start_migration`` to begin one and ``advance_migrations`` after every instance step (with the
    moves list it returns); ``migrating`` says whether an instance takes part in a migration now."""

    def __init__(
        self,
        move_time: Callable[[int], float],
        *,
        max_stages: int = 3,
        last_stage_max_blocks: int = 16,
        precopy: bool = True,
    ) -> None:
        self.move_time = move_time
        self.max_stages = max_stages
        self.last_stage_max_blocks = last_stage_max_blocks
        self.precopy = precopy
        #: Counters: migrations started, migrated, and aborted by reason.
        self.stats: Counter[str] = Counter()
        #: Every aborted migration: (request id, reason, stages it had started).
        self.aborts: list[tuple[int, str, int]] = []
        self._active: list[Migration] = []
        self._busy: dict[int, float] = {}  # id(instance) -> until when its last migration's final copy runs
        self._woken: list[Instance] = []  # instances aborts gave work to since the last ``take_woken``

    def migrating(self, node: Instance, now: float) -> bool:
        """Whether ``node`` is the source or destination of a migration in progress or of a final copy."""
        if any(m.source is node or m.target is node for m in self._active):
            return True
        return self._busy.get(id(node), -INF) > now

    def take_woken(self) -> list[Instance]:
        """The instances aborted migrations gave work to since the last call, for the coordinator to wake (the
        router's optional ``take_woken``, ``ascendra.router``): one left idle would otherwise wait for ever."""
        woken, self._woken = self._woken, []
        return woken

    def in_migration(self, request: Request) -> bool:
        """Whether ``request`` is being migrated now."""
        return any(m.request is request for m in self._active)

    def sending(self, node: Instance) -> bool:
        """Whether ``node`` is the source of a migration in progress."""
        return any(m.source is node for m in self._active)

    @staticmethod
    def receiving(node: Instance) -> bool:
        """Whether ``node`` holds blocks for a request migrating to it (its policy's ``incoming``): from the first
        pre-allocation until the runtime delivers the final copy, which can be later than ``migrating`` estimates
        with ``move_time`` (a measured copy, a transfer cost other than the link model)."""
        return bool(_migratable(node).incoming)

    def start_migration(
        self,
        request: Request,
        source: Instance,
        target: Instance,
        now: float,
        instance: Instance,
        batch: Batch,
        moves: list[Move],
    ) -> None:
        """Begin moving running ``request`` from ``source`` to ``target``: its first stage (or, when little is
        left, its last) starts now; ``instance`` just scheduled ``batch``."""
        m = Migration(request, source, target, now, request.preemptions)
        self._active.append(m)
        self.stats["started"] += 1
        self._stage(m, instance, batch, now, moves)

    def advance_migrations(self, instance: Instance, batch: Batch, now: float, moves: list[Move]) -> None:
        """After ``instance`` scheduled ``batch``: complete the due stages of migrations whose source it is (or
        whose source is idle), starting the next stage or the final move."""
        if not self._active:
            return
        for m in list(self._active):
            # A stage completes at its source's iteration boundary (or at once if the source is idle).
            if m.source is instance or m.source.batch is None:
                self._advance(m, instance, batch, now, moves)

    @staticmethod
    def _computing(node: Instance, instance: Instance, batch: Batch) -> Batch | None:
        """The batch ``node`` computes now: ``batch`` for the instance that just scheduled it."""
        return batch if node is instance else node.batch

    def _advance(self, m: Migration, instance: Instance, batch: Batch, now: float, moves: list[Move]) -> None:
        if m.leaving:
            self._final(m, instance, batch, now, moves)
            return
        if m.request.finished:  # nothing left to copy for: give up at once rather than at the stage's end
            self._abort(m, "finished")
            return
        if now < m.due:
            return
        reason = self._abort_reason(m)
        if reason is not None:
            self._abort(m, reason)
            return
        self._stage(m, instance, batch, now, moves)

    def _abort_reason(self, m: Migration) -> str | None:
        request = m.request
        if request.finished:
            return "finished"
        running = m.source.scheduler.running  # type: ignore[attr-defined]
        if request.preemptions != m.preemptions or not any(r is request for r in running):
            return "preempted"
        return None

    def _stage(self, m: Migration, instance: Instance, batch: Batch, now: float, moves: list[Move]) -> None:
        """Start the next stage: the last one if what is left is small enough, else another pre-copy."""
        request = m.request
        blocks = m.source.scheduler.blocks  # type: ignore[attr-defined]
        block_size = blocks.block_size
        copied_blocks = m.copied // block_size
        # Its block table, as Llumnix reads it: the slot of a decode in flight is already there.
        incremental = blocks.num_blocks_of(request) - copied_blocks
        if m.stages >= self.max_stages:
            self._abort(m, "max stages")
            return
        if not self.precopy or incremental <= self.last_stage_max_blocks:
            computing = self._computing(m.source, instance, batch)
            if computing is not None and computing.computes(request):
                m.leaving = True  # stops after this batch; released at the source's next step
                _migratable(m.source).leaving.append(request)
                return
            self._final(m, instance, batch, now, moves)
            return
        tokens = (copied_blocks + incremental - 1) * block_size
        target = _migratable(m.target)
        if not target.can_reserve(request, tokens):
            self._abort(m, "destination full")
            return
        target.reserve(request, tokens)
        m.stages += 1
        m.due = now + self.move_time(tokens - m.copied)
        m.copied = tokens

    def _final(self, m: Migration, instance: Instance, batch: Batch, now: float, moves: list[Move]) -> None:
        """The last stage: release the request at its source and move it with the rest of its KV."""
        request, source = m.request, m.source
        src = _migratable(source)
        reason = self._abort_reason(m)
        target = _migratable(m.target)
        if reason is None and not target.can_reserve(request, request.num_computed):
            reason = "destination full"
        if reason is not None:
            self._abort(m, reason)
            return
        computing = self._computing(source, instance, batch)
        assert computing is None or not computing.computes(request)
        target.reserve(request, request.num_computed)
        src.leaving = [r for r in src.leaving if r is not request]
        kv_tokens = source.scheduler.release(request)
        self._active.remove(m)
        due = now + self.move_time(kv_tokens - m.copied)
        self._busy[id(source)] = self._busy[id(m.target)] = due
        self.stats["migrated"] += 1
        moves.append(Move(request, m.target, kv_tokens, source=source, precopy=PreCopy(m.copied, m.started, m.stages)))

    def _abort(self, m: Migration, reason: str) -> None:
        """Give the migration up: free the destination's blocks; the request stays (or ended) at its source.

        Nothing else wakes the instances this gives work to, so they go to ``take_woken``: the source when the
        request sat out its batch to leave (that batch may have been empty: the source is then idle, holding a request
        it has not scheduled), the destination when blocks it pre-allocated are freed while requests wait there
        (maybe for those blocks, with nothing running)."""
        freed = m.target.scheduler.blocks.holds(m.request)  # type: ignore[attr-defined]
        _migratable(m.target).unreserve(m.request)
        src = _migratable(m.source)
        src.leaving = [r for r in src.leaving if r is not m.request]
        self._active.remove(m)
        if m.leaving and any(r is m.request for r in m.source.scheduler.running):  # type: ignore[attr-defined]
            self._woken.append(m.source)
        if freed and m.target.scheduler.waiting:  # type: ignore[attr-defined]
            self._woken.append(m.target)
        self.stats[f"aborted: {reason}"] += 1
        self.aborts.append((m.request.id, reason, m.stages))
