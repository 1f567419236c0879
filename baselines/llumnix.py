"""Llumnix: load-balancing dispatch by freeness and live migration of running requests with a multi-stage pre-copy.

Sources: Sun et al., "Llumnix: Dynamic Scheduling for Large Language Model Serving", OSDI'24 (the live-migration
design: pre-copy stages while the request keeps decoding, a short final stop-and-copy, a handshake that
pre-allocates the destination's blocks and aborts on failure; the scheduling policy: virtual usage, freeness,
dispatch, migration pairing, priorities) and its code, ``AlibabaPAI/llumnix``. Constants and rules are read from
commit e4048ac8 (2024-09-09, the first release whose defaults live in ``llumnix/config/default.py``), checked
against the newest snapshot (24220fb, 2025-08), where the same mechanisms sit in ``load_computation.py``,
``global_scheduler/migration_{filter,policy}.py`` and ``llumlet/migration_coordinator.py``.

Instances run Sarathi-Serve's stall-free chunked-prefill policy (``baselines.sarathi``); ``LlumnixScheduler``
only adds the hooks a migration needs (below). The router is Llumnix's global scheduler (``LlumnixRouter``):

- Load metric, freeness (``remaining_steps``, ``llumnix/instance_info.py``): the free blocks less vLLM's
  watermark (1% of the pool, ``num_available_gpu_blocks``) less the virtual usage of the waiting requests,
  divided by the requests counted: free blocks per request (a block is 16 more decode steps). Dispatch counts
  every waiting request (blocks = its length / block size) and divides by running + waiting; migration, with
  ``defrag`` on (``ENABLE_DEFRAG = True``), counts only the head of the queue (the paper's virtual usage of the
  head-of-line request: its whole demand, so a blocked queue makes its instance look overloaded) and divides by
  running + 1 when anything waits. An instance with no request is infinitely free. (The newest code keeps this
  formula but defaults to ``ENABLE_DEFRAG = False`` and ``MIGRATE_OUT_THRESHOLD = -3.0``; we follow the release
  above.)
- Dispatch (``DISPATCH_POLICY = 'load'``): each arrival goes to the freest instance (first on ties);
  ``dispatch=balanced`` is Llumnix's other policy, the instance given the fewest requests so far.
- Migration pairing (``PAIR_MIGRATION_POLICY = 'defrag_constrained'``, every ``POLLING_INTERVAL = 0.05`` s with
  ``PAIR_MIGRATION_FREQUENCY = 1``): sources are instances with migration freeness below
  ``MIGRATE_OUT_THRESHOLD = 3.0`` or with preempted ("killed": waiting after having run) requests, least free first;
  destinations are instances above it with none killed, freest first; the i-th source pairs with the i-th
  destination, a pair whose instance is still in a migration is skipped (``instance_migrating`` in
  ``llm_engine_manager.py``), and each pair migrates one request.
- Request selection (``REQUEST_MIGRATION_POLICY = 'SJF'``; 'SR' in the newest code, the same rule): the shortest
  running request in decode (``local_migration_scheduler.py``); ``LJF`` and ``LCFS`` as options.
- Multi-stage migration (``migration_coordinator.py``): each stage copies the blocks not yet copied except the
  last one (still being written) while the request keeps decoding at the source, the destination
  pre-allocating them (refused, and the migration aborted, unless its free blocks stay at or above the
  watermark). Once the blocks not yet copied are at most ``LAST_STAGE_MAX_BLOCKS = 16`` the last stage stops
  the request and copies them all: that copy is the downtime. ``MAX_STAGES = 3`` stages in all, the last one
  included; a migration whose third stage is still not the last is aborted (``FINISHED_ABORTED`` "exceed max
  stages"; ``ABORTED_SRC`` in the newest code), as is one whose request finished, was preempted or left its
  running queue (``should_abort_migration``), or whose destination cannot pre-allocate; an abort frees the
  destination's blocks and the request carries on at its source.
- Priorities (the paper; the public code has none): with ``priority_share`` > 0 that share of requests, spread
  evenly by id, is high priority (the workloads carry no priorities). A high-priority request is admitted
  ahead of normal ones, is migrated only when no normal request can be, and adds a headroom to its instance's
  virtual usage: ``priority_headroom`` of the pool (0.5, our choice: the public code has no value), shared by the
  instance's high-priority requests, so an instance serving one looks busier, gets fewer arrivals and sheds
  normal requests sooner.

The stage machinery (pre-allocation, ``incoming``/``leaving``, stages, aborts) is the core's
``ascendra.migration`` (``Migratable``, ``Migrator``), which Ascendra's own migration reuses; this module keeps
Llumnix's policy (load, dispatch, pairing, selection, priorities) and its constants.

The project's hooks (``ascendra.router``): the router sees every instance step (``moves_after``) and uses it as
its clock. A stage's copy takes ``ClusterSpec.kv_move_time`` (the ``--link`` model the coordinator charges any
move); a stage that is due completes at the source's next iteration boundary. The destination holds the
pre-allocated blocks in its own pool for the request (``LlumnixScheduler.incoming``) as the copy proceeds, and
``adopt`` continues from them. When the last stage is due the request sits out the source's next batch
(``LlumnixScheduler.leaving``, so nothing releases a request a batch computes), is released right after that
batch is scheduled and moves with ``Move(..., precopy=PreCopy(copied, started, stages))``: the coordinator
charges only the tokens not yet copied (``Move.sent_tokens``) as the downtime and records the migration.

Deviations, each for a reason:

- Stage completion, and the final stop, happen at the source's iteration boundaries (a due stage waits for the
  source's next step; the request stops after the batch it is in, whose KV slot its block table already holds,
  so the last stage stays within 16 blocks). Llumnix's llumlet works at step granularity too
  (``remove_running_request`` waits for the step to end).
- Each stage is charged the link's latency plus its bytes, alone on the link: concurrent migrations do not share
  bandwidth, as in the coordinator's charge of any move.
- The source's blocks are freed when the request leaves (the coordinator's move), not once the last copy is
  done; a request that finishes mid-stage is given up at the source's next step rather than when the stage's
  copy ends. Either frees memory a copy's time (well under an iteration on NVLink) early.
- The router reads the instances' state when it decides, not a copy polled every 0.05 s: the dispatch rule sees
  the requests it just placed (Llumnix would send every arrival of a polling interval to the same instance).
- A destination takes a migration only with a free running slot (``max_num_seqs``), so that ``adopt`` never
  falls back to recomputing it; Llumnix's pre-allocation checks blocks only.
- A pair stays busy until the final copy is due (Llumnix's ``migrate_out`` returns once the last stage is sent).
- Llumnix's auto-scaling (a terminating instance's infinite virtual usage) is out of scope: the cluster is fixed.
- Live (``--backend engine`` and ``serve``), the engines copy the request's whole KV at the final move
  (``ascendra.live.kv_moves``, timed): the pre-copy stages are this router's plan, charged by the link model, not
  copies that overlap the source's decoding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.instance import Instance
from ascendra.kv_cache import BlockManager
from ascendra.migration import Migratable, Migrator
from ascendra.request import Request
from ascendra.router import Move
from ascendra.system import ADMISSION_HELP, BuildContext, Built, System, SystemConfig, knob
from baselines.sarathi import SarathiScheduler

#: vLLM's KV watermark (``CacheConfig``'s default 0.01 of the pool), which Llumnix subtracts from the free blocks
#: (``num_available_gpu_blocks``) and which a pre-allocation must leave free.
WATERMARK = 0.01
DISPATCH_POLICIES = ("load", "balanced")
MIGRATION_POLICIES = ("SJF", "LJF", "LCFS")
INF = math.inf


def high_priority(share: float) -> Callable[[Request], bool] | None:
    """Marks ``share`` of requests high priority, evenly by id (request i is when ``floor((i + 1) * share)``
    steps up); None when ``share`` is 0 (no priorities)."""
    if share <= 0.0:
        return None
    return lambda request: math.floor((request.id + 1) * share) > math.floor(request.id * share)


class LlumnixScheduler(Migratable, SarathiScheduler):
    """Sarathi-Serve plus what a live migration needs from an instance (``ascendra.migration.Migratable``:
    ``incoming``, ``leaving``), with vLLM's watermark as the floor a pre-allocation leaves free. ``is_high``
    (priorities on): high-priority waiting requests are admitted first."""

    def __init__(
        self,
        blocks: BlockManager,
        chunk_size: int = 512,
        max_num_seqs: int = 128,
        is_high: Callable[[Request], bool] | None = None,
    ) -> None:
        super().__init__(blocks, chunk_size, max_num_seqs)
        self.is_high = is_high
        #: Blocks a pre-allocation must leave free (vLLM's watermark).
        self.watermark = self.reserve_floor = int(WATERMARK * blocks.num_blocks)

    def _admission_order(self, now: float) -> Iterable[Request]:
        if self.is_high is None:
            return self.waiting
        is_high = self.is_high
        return sorted(self.waiting, key=lambda r: not is_high(r))


class LlumnixRouter(Migrator):
    """Llumnix's global scheduler and migration coordinator (implements ``ascendra.router.Router``); the stages
    of each migration are ``ascendra.migration.Migrator``'s."""

    def __init__(
        self,
        instances: list[Instance],
        move_time: Callable[[int], float],
        *,
        migration: bool = True,
        period: float = 0.05,
        threshold: float = 3.0,
        defrag: bool = True,
        dispatch: str = "load",
        policy: str = "SJF",
        max_stages: int = 3,
        last_stage_max_blocks: int = 16,
        precopy: bool = True,
        is_high: Callable[[Request], bool] | None = None,
        headroom: float = 0.0,
    ) -> None:
        if dispatch not in DISPATCH_POLICIES or policy not in MIGRATION_POLICIES:
            raise UserError(f"unknown dispatch {dispatch!r} or migration policy {policy!r}")
        super().__init__(move_time, max_stages=max_stages, last_stage_max_blocks=last_stage_max_blocks, precopy=precopy)
        self.instances = instances
        self.migration = migration
        self.period = period
        self.threshold = threshold
        self.defrag = defrag
        self.dispatch = dispatch
        self.policy = policy
        self.is_high = is_high
        self.headroom = headroom
        self._next_pass = 0.0
        self._dispatched = [0] * len(instances)

    # --- load -------------------------------------------------------------------------------------------------

    def freeness(self, instance: Instance, action: str = "migrate") -> float:
        """Llumnix's ``remaining_steps`` for ``action`` ('dispatch' or 'migrate'): available blocks less the
        waiting requests' virtual usage (and any priority headroom), per request counted; inf when empty."""
        s: LlumnixScheduler = instance.scheduler  # type: ignore[assignment]
        blocks = s.blocks
        available = blocks.num_free - s.watermark
        num_running, waiting = len(s.running), s.waiting
        if action == "dispatch":
            num = num_running + len(waiting)
            available -= sum(r.prefill_target for r in waiting) / blocks.block_size
        elif self.defrag and waiting:
            num = num_running + 1
            available -= waiting[0].prefill_target / blocks.block_size
        else:
            num = num_running
        if num == 0:
            return INF
        if self.is_high is not None and self.headroom > 0 and any(self.is_high(r) for r in s.running):
            available -= self.headroom * blocks.num_blocks
        return available / num

    @staticmethod
    def killed(instance: Instance) -> int:
        """Waiting requests that ran before (preempted): vLLM puts them at the front of the queue."""
        count = 0
        for request in instance.scheduler.waiting:  # type: ignore[attr-defined]
            if request.first_scheduled is None:
                break
            count += 1
        return count

    def pairs(self) -> list[tuple[Instance, Instance]]:
        """``defrag_constrained``: (source, destination) pairs by migration freeness, busy pairs included."""
        infos = sorted(((-self.freeness(i), self.killed(i), i) for i in self.instances), key=lambda x: x[0])
        load = -self.threshold
        destinations = [i for lo, k, i in infos if k == 0 and lo < load]
        sources = [i for lo, k, i in reversed(infos) if k > 0 or lo > load]
        return list(zip(sources, destinations, strict=False))

    # --- the Router contract ----------------------------------------------------------------------------------

    def route(self, request: Request, now: float) -> Instance:
        if self.dispatch == "balanced":
            index = min(range(len(self.instances)), key=self._dispatched.__getitem__)
        else:
            index = max(range(len(self.instances)), key=lambda k: self.freeness(self.instances[k], "dispatch"))
        self._dispatched[index] += 1
        return self.instances[index]

    def moves_after(self, instance: Instance, batch: Batch, now: float) -> list[Move]:
        moves: list[Move] = []
        self.advance_migrations(instance, batch, now, moves)
        if self.migration and now >= self._next_pass:
            self._next_pass = now + self.period
            self._pass(instance, batch, now, moves)
        return moves

    # --- migrations -------------------------------------------------------------------------------------------

    def _pass(self, instance: Instance, batch: Batch, now: float, moves: list[Move]) -> None:
        for source, target in self.pairs():
            if self.migrating(source, now) or self.migrating(target, now):
                continue
            request = self._select(source)
            if request is not None:
                self.start_migration(request, source, target, now, instance, batch, moves)

    def _select(self, source: Instance) -> Request | None:
        """The request ``source`` migrates out: running, in decode, not already leaving."""
        s: LlumnixScheduler = source.scheduler  # type: ignore[assignment]
        leaving = s.leaving
        candidates = [r for r in s.running if r.num_generated and not r.in_prefill and not any(r is x for x in leaving)]
        if not candidates:
            return None
        is_high = self.is_high
        if is_high is not None:  # lower priority first
            normal = [r for r in candidates if not is_high(r)]
            candidates = normal or candidates
        if self.policy == "LCFS":
            return candidates[-1]
        if self.policy == "LJF":
            return max(candidates, key=lambda r: r.num_computed)
        return min(candidates, key=lambda r: r.num_computed)


@dataclass(frozen=True, slots=True)
class LlumnixConfig(SystemConfig):
    max_num_seqs: int = knob(128, "Max running sequences per instance.")
    chunk_size: int = knob(512, "Sarathi-Serve's token budget per iteration (its chunk size).")
    admission_control: bool = knob(False, ADMISSION_HELP)
    dispatch: str = knob("load", "Llumnix's dispatch: the freest instance or the fewest sent.", DISPATCH_POLICIES)
    migration: bool = knob(True, "Llumnix's live migration of running requests between instances.")
    migration_period: float = knob(0.05, "Seconds between Llumnix's migration passes (its polling interval).")
    migrate_out_threshold: float = knob(3.0, "Llumnix's freeness (free blocks per request) to migrate out below.")
    defrag: bool = knob(True, "Llumnix's virtual usage of the head-of-line waiting request in the migration load.")
    migration_policy: str = knob("SJF", "Which running request Llumnix migrates out.", MIGRATION_POLICIES)
    max_stages: int = knob(3, "Llumnix's migration stages, the last included, before it gives up.")
    last_stage_max_blocks: int = knob(16, "Llumnix stops the request and copies the rest once it is this many blocks.")
    precopy: bool = knob(True, "Llumnix's multi-stage pre-copy; off: stop the request and copy its whole KV at once.")
    priority_share: float = knob(0.0, "Share of requests (by id) Llumnix treats as high priority; 0: no priorities.")
    priority_headroom: float = knob(0.5, "Llumnix's headroom, a share of the pool, where a high-priority request runs.")

    def __post_init__(self) -> None:
        SystemConfig.__post_init__(self)
        self.positive("max_num_seqs", "chunk_size", "migration_period", "max_stages", "last_stage_max_blocks")
        for name in ("priority_share", "priority_headroom"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UserError(f"--{name.replace('_', '-')} must be in [0, 1], got {value}")


def build(config: LlumnixConfig, ctx: BuildContext) -> Built:
    """One Sarathi-Serve instance per GPU (``gpu0``...) behind Llumnix's global scheduler."""
    is_high = high_priority(config.priority_share)

    def policy(blocks: BlockManager) -> LlumnixScheduler:
        scheduler = LlumnixScheduler(blocks, config.chunk_size, config.max_num_seqs, is_high)
        scheduler.admission = ctx.cluster.ttft_admission() if config.admission_control else None
        return scheduler

    instances = [ctx.instance(f"gpu{i}", policy) for i in range(ctx.cluster.instances)]
    router = LlumnixRouter(
        instances,
        ctx.cluster.kv_move_time(),
        migration=config.migration,
        period=config.migration_period,
        threshold=config.migrate_out_threshold,
        defrag=config.defrag,
        dispatch=config.dispatch,
        policy=config.migration_policy,
        max_stages=config.max_stages,
        last_stage_max_blocks=config.last_stage_max_blocks,
        precopy=config.precopy,
        is_high=is_high,
        headroom=config.priority_headroom,
    )
    return Built(instances, router)


SYSTEM = System(
    "llumnix",
    "Llumnix: Sarathi-Serve instances, dispatch by freeness, live migration with a multi-stage pre-copy.",
    LlumnixConfig,
    build,
)
