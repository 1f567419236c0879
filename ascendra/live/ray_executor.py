"""``--distributed ray``: each instance's engine runs in its own Ray actor (a GPU each on CUDA).

Only the engines move: schedulers, router, controller and the instance threads stay in the driver, so the
serving logic is exactly the in-process runtime's. Each instance thread calls a ``RayEngineExecutor`` (the
``EngineExecutor`` signature, ``Batch -> seconds``), which ships a compact description of the batch to its actor
and appends the returned tokens to the requests' ``output_ids``.

The actor keeps a mirror of every request it has seen (its spec, prefill target and generated ids), so a batch
only carries each item's shape and block table, plus the spec the first time a request reaches that actor. The
mirror's ``output_ids`` are the tokens the actor itself sampled, which are exactly the ones the executor appends
in the driver (``Request.output_ids`` is only ever appended to), so the engine reads the same token sequence
(prompt ids, or the synthetic ones it derives from the request id) as it would in process. A mirror is dropped
once its request has all its output tokens; requests dropped mid-run keep theirs until the actor exits.

A move between instances carrying KV (``ascendra.live.kv_moves``) gathers the request's blocks in the source
actor, which drops its mirror, and scatters them in the target actor: the gathered tensor goes between the actors
through Ray's object store, never through the driver. The target's mirror is built on its first batch there from
the spec and the tokens generated so far (``WireItem.output_ids``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.kv_cache import DEFAULT_BLOCK_SIZE, BlockManager
from ascendra.live.engines import LiveOptions
from ascendra.request import Request, RequestSpec


@dataclass(frozen=True, slots=True)
class WireItem:
    """One batch item as shipped to an actor. ``spec`` is set only on the request's first batch there."""

    request_id: int
    num_tokens: int
    context: int
    is_prefill: bool
    prefill_target: int
    num_known: int  # prompt + generated tokens in the driver: checks the mirror is in step
    block_table: tuple[int, ...]
    spec: RequestSpec | None = None
    output_ids: tuple[int, ...] = ()  # with ``spec``: the tokens generated before (elsewhere, for a moved request)


class EngineHost:
    """What runs inside an actor: one engine, built in the actor's own process, plus the request mirrors."""

    def __init__(
        self,
        model: str,
        options: LiveOptions,
        num_blocks: int,
        synthetic: bool,
        threads: int,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        import torch

        from ascendra.engine import Engine
        from ascendra.live.engines import default_dtype, load_model, resolve_device, warm_up

        torch.set_num_threads(threads)
        # Ray narrows CUDA_VISIBLE_DEVICES to the actor's GPU, so it is always index 0 here.
        device = resolve_device("cuda" if options.device.startswith("cuda") else options.device)
        dtype = default_dtype(device, options.dtype)
        config, weights = load_model(model, options, device, dtype)
        self.engine = Engine(
            config, weights, num_blocks, block_size, device=device, dtype=dtype, synthetic_prompts=synthetic
        )
        if options.warmup:
            warm_up(self.engine)
        self.requests: dict[int, Request] = {}
        self._cuda = device.type == "cuda"

    def pool(self) -> tuple[int, int]:
        """The KV pool's (blocks, block size); returning it also tells the driver the engine is built."""
        return self.engine.num_blocks, self.engine.block_size

    def execute(self, items: Sequence[WireItem]) -> tuple[dict[int, int | None], float]:
        """Run the batch; return the sampled tokens by request id and the engine's own seconds."""
        start = time.perf_counter()
        batch = Batch()
        tables: dict[int, list[int]] = {}
        for wire in items:
            if wire.spec is not None:
                self.requests[wire.request_id] = Request(wire.spec, output_ids=list(wire.output_ids))
            request = self.requests[wire.request_id]
            known = request.prompt_len + len(request.output_ids)
            if known != wire.num_known:
                raise RuntimeError(f"request {wire.request_id}: actor knows {known} tokens, driver {wire.num_known}")
            request.prefill_target = wire.prefill_target
            request.num_computed = wire.context
            batch.add(request, wire.num_tokens, wire.is_prefill)
            tables[wire.request_id] = list(wire.block_table)
        tokens = self.engine.execute(batch, tables)
        for request in batch.requests():
            token = tokens[request.id]
            if token is not None:
                request.output_ids.append(token)
                if len(request.output_ids) >= request.output_len:
                    del self.requests[request.id]
        return tokens, time.perf_counter() - start

    def take_kv(self, request_id: int, block_ids: list[int]) -> Any:
        """A host copy of the request's pages, for the object store; the request leaves this actor."""
        self.requests.pop(request_id, None)
        return self.engine.kv_cache.read_blocks(block_ids).cpu()

    def put_kv(self, block_ids: list[int], pages: Any) -> None:
        import torch

        self.engine.kv_cache.write_blocks(block_ids, pages)
        if self._cuda:
            torch.cuda.synchronize()


class RayEngineExecutor:
    """One instance's remote engine, addressed through that instance's block manager.

    Returns the round trip (shipping the batch, the actor's execution, shipping tokens back), because that is
    how long the instance is busy; ``timings`` keeps ``(round_trip, engine)`` seconds per batch, the engine's
    part as measured inside the actor."""

    def __init__(self, actor: Any, pool: tuple[int, int], blocks: BlockManager) -> None:
        if pool != (blocks.num_blocks, blocks.block_size):
            raise ValueError(
                f"engine KV pool ({pool[0]} x {pool[1]}) differs from the block manager's "
                f"({blocks.num_blocks} x {blocks.block_size})"
            )
        self.actor = actor
        self.blocks = blocks
        self._on_actor: set[int] = set()
        self.timings: list[tuple[float, float]] = []

    def __call__(self, batch: Batch) -> float:
        import ray

        start = time.perf_counter()
        items = []
        block_size = self.blocks.block_size
        for item in batch.items:
            request = item.request
            end = item.context + item.num_tokens
            first = request.id not in self._on_actor
            self._on_actor.add(request.id)
            items.append(
                WireItem(
                    request_id=request.id,
                    num_tokens=item.num_tokens,
                    context=item.context,
                    is_prefill=item.is_prefill,
                    prefill_target=request.prefill_target,
                    num_known=request.prompt_len + len(request.output_ids),
                    block_table=tuple(self.blocks.block_table(request.id)[: -(-end // block_size)]),
                    spec=request.spec if first else None,
                    output_ids=tuple(request.output_ids) if first else (),
                )
            )
        tokens, engine_seconds = ray.get(self.actor.execute.remote(items))
        for request in batch.requests():
            token = tokens[request.id]
            if token is not None:
                request.output_ids.append(token)
                if len(request.output_ids) >= request.output_len:
                    self._on_actor.discard(request.id)
        seconds = time.perf_counter() - start
        self.timings.append((seconds, engine_seconds))
        return seconds

    def take_kv(self, request_id: int, block_ids: list[int]) -> Any:
        """The ObjectRef of the actor's copy of the pages, at once: the actor runs it before any later batch of
        this executor (an actor runs one caller's calls in order), and ``put_kv`` waits for it."""
        self._on_actor.discard(request_id)
        return self.actor.take_kv.remote(request_id, block_ids)

    def put_kv(self, request_id: int, block_ids: list[int], pages: Any) -> None:
        """Scatter another actor's ``take_kv`` (an ObjectRef, resolved actor to actor) here; waits for it."""
        import ray

        ray.get(self.actor.put_kv.remote(block_ids, pages))


def start_ray() -> bool:
    """Ray for ``--distributed ray``: the cluster named by RAY_ADDRESS (or a running `ray start`), else a local
    one; True when this call started it (its caller shuts it down)."""
    try:
        import ray
    except ImportError:
        raise UserError("--distributed ray needs Ray: install the dist extra") from None
    if ray.is_initialized():
        return False
    ray.init(include_dashboard=False, log_to_driver=False)
    return True


class RayEngines:
    """The actors of one run: started (and Ray with them, if not yet running) here, killed by ``close``."""

    def __init__(
        self,
        model: str,
        options: LiveOptions,
        num_blocks: int,
        synthetic: bool,
        count: int,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        """``count`` actors, each with a pool of ``num_blocks`` blocks of ``block_size`` tokens (the size the
        driver's block managers use: ``RayEngineExecutor`` refuses a mismatch)."""
        self._started_ray = start_ray()
        import ray

        gpus = 1 if options.device.startswith("cuda") else 0
        # As in process: the driver's cores split between the instances (each actor is its own process).
        threads = options.torch_threads or max(1, (os.cpu_count() or 1) // count)
        actor_class = ray.remote(num_gpus=gpus)(EngineHost)
        self.actors = [
            actor_class.remote(model, options, num_blocks, synthetic, threads, block_size) for _ in range(count)
        ]
        try:
            # Build every engine (and surface a bad checkpoint or device) before the clock starts.
            self.pools: list[tuple[int, int]] = ray.get([actor.pool.remote() for actor in self.actors])
        except ray.exceptions.RayError as exc:
            self.close()
            raise UserError(f"a Ray engine actor failed to start: {exc}") from exc

    def executor(self, index: int, blocks: BlockManager) -> RayEngineExecutor:
        return RayEngineExecutor(self.actors[index], self.pools[index], blocks)

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
        if self._started_ray:
            ray.shutdown()
