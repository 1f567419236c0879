"""The driver side of the vLLM backend: an instance executor (``Batch -> seconds``) whose batches a vLLM engine
runs, in this process or in the instance's Ray actor.

Per batch it builds a ``Plan`` from the batch and the instance's block manager: requests the engine has not
seen are added (prompt plus any tokens generated elsewhere); requests it holds that the policy has let go of are
aborted (they finished elsewhere, were dropped, cancelled or moved away without KV) or preempted (their KV is
gone here, they stay queued); and every item carries the block count the policy's table now has, which the
engine's KV cache manager must match. The tokens come back and are appended to the requests, as the project's
engine executor does, before the runtime calls ``on_batch_done``.

A move carrying KV (DistServe's hand-off, live migration) cannot be followed: vLLM engines here share no KV, so
a request arriving with computed tokens it never computed on this engine is a ``UserError``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.kv_cache import BlockManager
from ascendra.request import Request
from ascendra.vllm_backend.host import StepResult
from ascendra.vllm_backend.plan import MirrorError, NewRequest, Plan, PlanItem


class Engine(Protocol):
    """Where a plan runs: a ``VllmHost`` in this process, or ``RemoteHost`` in front of a Ray actor."""

    def execute(self, plan: Plan) -> StepResult: ...

    def num_free(self) -> int: ...


class RemoteHost:
    """A ``VllmHost`` in a Ray actor, called synchronously (the instance thread waits for its step)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def execute(self, plan: Plan) -> StepResult:
        import ray

        return ray.get(self.actor.execute.remote(plan))

    def num_free(self) -> int:
        import ray

        return int(ray.get(self.actor.num_free.remote()))


@dataclass(slots=True)
class StepTiming:
    """One batch: ``seconds`` as the instance saw it (plan, engine step, tokens back), the engine's step alone,
    the adapter's ``schedule`` inside it, and building the plan here."""

    seconds: float
    engine: float
    schedule: float
    plan: float


@dataclass(slots=True)
class VllmExecutor:
    """One instance's vLLM engine, addressed through that instance's block manager."""

    name: str
    blocks: BlockManager
    engine: Engine
    timings: list[StepTiming] = field(default_factory=list)
    #: Per batch, the tokens per request the engine's scheduler handed to vLLM's model runner.
    executed: list[dict[int, int]] = field(default_factory=list)
    _resident: dict[int, Request] = field(default_factory=dict)
    _holds_kv: set[int] = field(default_factory=set)

    def __call__(self, batch: Batch) -> float:
        start = time.perf_counter()
        plan = self.plan(batch)
        planned = time.perf_counter()
        result = self.engine.execute(plan)
        for request in batch.requests():
            token = result.tokens[request.id]
            if token is not None:
                request.output_ids.append(token)
                if request.id in result.logprobs and request.sampling is not None:
                    request.sampling.logprobs.append(result.logprobs[request.id])
        self.executed.append(result.scheduled)
        seconds = time.perf_counter() - start
        self.timings.append(StepTiming(seconds, result.seconds, result.schedule_seconds, planned - start))
        return seconds

    def plan(self, batch: Batch) -> Plan:
        """The plan of ``batch``: what the engine must add, forget and preempt first, then the items."""
        in_batch = {request.id for request in batch.requests()}
        aborted: list[int] = []
        preempted: list[int] = []
        for rid, request in list(self._resident.items()):
            if rid in in_batch or self.blocks.holds(request):
                continue
            if request.finished or request.dropped or request.cancelled or request.instances[-1:] != [self.name]:
                # Finished at its last token, vLLM has let it go too; ended earlier (a stop string), dropped,
                # cancelled or moved away, the engine aborts it.
                aborted.append(rid)
                self._forget(rid)
            elif rid in self._holds_kv:
                preempted.append(rid)
                self._holds_kv.discard(rid)
        added: list[NewRequest] = []
        items: list[PlanItem] = []
        for item in batch.items:
            request = item.request
            if request.id not in self._resident:
                if item.context:
                    raise UserError(
                        f"request {request.id} reached {self.name} with {item.context} tokens of KV computed "
                        "elsewhere: --backend vllm cannot move KV between engines (systems that hand KV over or "
                        "migrate running requests run on --backend sim or engine)"
                    )
                added.append(NewRequest(request.spec, tuple(request.output_ids), request.sampling))
                self._resident[request.id] = request
            self._holds_kv.add(request.id)
            end = item.context + item.num_tokens
            emits = end >= request.prefill_target
            items.append(PlanItem(request.id, item.num_tokens, item.context, self.blocks.num_blocks_of(request), emits))
        # vLLM allocates only for requests it computes; a policy may reserve blocks ahead for a request it starts
        # later (SLOs-Serve), so the engine's pool is compared with what the engine's requests hold here.
        held = sum(self.blocks.num_blocks_of(self._resident[rid]) for rid in self._holds_kv)
        return Plan(tuple(items), self.blocks.num_blocks - held, tuple(added), tuple(aborted), tuple(preempted))

    def _forget(self, rid: int) -> None:
        del self._resident[rid]
        self._holds_kv.discard(rid)


def check_pool(pool: tuple[int, int], blocks: BlockManager) -> None:
    """The engine's usable pool must be the policy's (the mirror starts equal)."""
    if pool != (blocks.num_blocks, blocks.block_size):
        raise MirrorError(
            f"vLLM's KV pool ({pool[0]} x {pool[1]}) differs from the block manager's "
            f"({blocks.num_blocks} x {blocks.block_size})"
        )
