"""vLLM v1 schedulers loaded by the engine through ``SchedulerConfig.scheduler_cls``.

``PlanScheduler`` keeps everything of vLLM's ``Scheduler`` (request table, queues, KV cache manager, output
processing in ``update_from_output``, stop checks, freeing) and replaces only the decision in ``schedule``: it
runs the ``Step`` the host set just before ``engine.step()``, i.e. the policy's batch. For every item it asks
vLLM's ``KVCacheManager.allocate_slots`` for the tokens the item computes plus, as look-ahead, the slots the
policy's block manager reserved beyond them (a policy reserves a whole prefill at admission; Orca reserves the
whole output), so both pools hold the same number of blocks per request; a policy preemption is vLLM's own
``_preempt_request``. The output is built with vLLM's helpers as its ``schedule`` builds it (new, resumed and
cached request data), so the model runner sees an ordinary step.

Deviation from vLLM's ``schedule``: no watermark, no token or sequence budget, no prefix caching, speculative
decoding, encoder inputs, LoRA or KV connectors (the engine is started without them); the policy alone decides.

``TimedScheduler`` is vLLM's own scheduler, unchanged, timed per step and recording what it scheduled: the
baseline of the adapter's overhead and of the step-by-step cross-check.

This module imports vLLM; only the engine (``ascendra.vllm_backend.host``) loads it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from vllm.v1.core.sched.output import NewRequestData, SchedulerOutput
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.engine import EngineCoreEventType
from vllm.v1.request import Request, RequestStatus

from ascendra.vllm_backend.plan import MirrorError


@dataclass(slots=True)
class Step:
    """A plan in vLLM's request ids: items ``(request id, tokens, context, blocks after)``, ids to preempt first,
    and the free blocks the policy's pool has after scheduling."""

    items: list[tuple[str, int, int, int]]
    preempted: list[str] = field(default_factory=list)
    num_free: int = 0


class PlanScheduler(Scheduler):
    """vLLM's scheduler executing the policy's batch (``step``) instead of choosing one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.step: Step | None = None
        #: Seconds the last ``schedule`` took (the adapter's own overhead in the step).
        self.schedule_seconds = 0.0
        #: Tokens per request id of the last step, as handed to the model runner.
        self.scheduled: dict[str, int] = {}

    def schedule(self, throttle_prefills: bool = False) -> SchedulerOutput:
        start = time.perf_counter()
        step, self.step = self.step, None
        if step is None:
            raise MirrorError("the vLLM engine stepped without a plan from the policy")
        total = sum(item[1] for item in step.items)
        if total > self.max_num_scheduled_tokens or len(step.items) > self.max_num_running_reqs:
            raise MirrorError(
                f"the policy's batch ({total} tokens, {len(step.items)} requests) exceeds the engine's step buffers "
                f"({self.max_num_scheduled_tokens} tokens, {self.max_num_running_reqs} requests)"
            )
        self.current_step += 1
        self.kv_cache_manager.new_step_starts()
        now = time.monotonic()
        for req_id in step.preempted:
            self._preempt(self.requests[req_id], now)
        new: list[Request] = []
        resumed: list[Request] = []
        running: list[Request] = []
        blocks_of: dict[str, Any] = {}
        num_scheduled: dict[str, int] = {}
        for req_id, num_tokens, context, num_blocks in step.items:
            request = self.requests[req_id]
            if context != request.num_computed_tokens:
                if context != 0 or request.status != RequestStatus.RUNNING:
                    raise MirrorError(
                        f"request {req_id}: the policy computes from token {context}, vLLM holds "
                        f"{request.num_computed_tokens}"
                    )
                self._preempt(request, now)  # preempted and readmitted in the same policy step
            waiting = request.status in (RequestStatus.WAITING, RequestStatus.PREEMPTED)
            lookahead = max(0, num_blocks * self.block_size - context - num_tokens)
            blocks = self.kv_cache_manager.allocate_slots(
                request, num_tokens, num_lookahead_tokens=lookahead, has_scheduled_reqs=False
            )
            if blocks is None:
                raise MirrorError(f"vLLM's KV cache has no room for request {req_id}'s {num_blocks} blocks")
            if waiting:
                self.waiting.remove_request(request)
                self.deferred_waiting.discard(request)
                self.running.append(request)
                (new if request.status == RequestStatus.WAITING else resumed).append(request)
                request.status = RequestStatus.RUNNING
                if self.log_stats:
                    request.record_event(EngineCoreEventType.SCHEDULED, now)
                blocks = self.kv_cache_manager.get_blocks(req_id)
                if context + num_tokens < request.num_tokens:
                    self._inflight_prefills.add(request)
            else:
                running.append(request)
            blocks_of[req_id] = blocks
            num_scheduled[req_id] = num_tokens
        self._check_mirror(step)
        output = self._output(new, resumed, running, blocks_of, num_scheduled)
        self._update_after_schedule(output)
        self.scheduled = dict(num_scheduled)
        self.schedule_seconds = time.perf_counter() - start
        return output

    def _preempt(self, request: Request, now: float) -> None:
        """vLLM's own preemption (KV freed, back to the waiting queue, recomputed when next scheduled)."""
        if request.status != RequestStatus.RUNNING:
            return
        self.running.remove(request)
        self._preempt_request(request, now)

    def _check_mirror(self, step: Step) -> None:
        """The single source of truth is the policy's block manager; vLLM's pool must now mirror it exactly."""
        manager = self.kv_cache_manager
        for req_id, _, _, num_blocks in step.items:
            held = len(manager.get_block_ids(req_id)[0])
            if held != num_blocks:
                raise MirrorError(f"request {req_id} holds {held} vLLM blocks, {num_blocks} in the policy's pool")
        free = manager.block_pool.get_num_free_blocks()
        if free != step.num_free:
            raise MirrorError(f"vLLM's pool has {free} free blocks, the policy's {step.num_free}")

    def _output(
        self,
        new: list[Request],
        resumed: list[Request],
        running: list[Request],
        blocks_of: dict[str, Any],
        num_scheduled: dict[str, int],
    ) -> SchedulerOutput:
        """The ``SchedulerOutput`` of these requests, built as vLLM's ``schedule`` builds it."""
        uses_mrope = self.model_uses_mrope
        if self.use_v2_model_runner:
            new = new + resumed
            resumed = []
            new_data = [
                NewRequestData.from_request(
                    r, blocks_of[r.request_id].get_block_ids(), r._all_token_ids, uses_mrope=uses_mrope
                )
                for r in new
            ]
        else:
            new_data = [
                NewRequestData.from_request(r, blocks_of[r.request_id].get_block_ids(), uses_mrope=uses_mrope)
                for r in new
            ]
        cached = self._make_cached_request_data(running, resumed, num_scheduled, {}, blocks_of)
        if not self.use_v2_model_runner:
            self.prev_step_scheduled_req_ids.clear()
            self.prev_step_scheduled_req_ids.update(num_scheduled)
        self.kv_cache_manager.take_boundary_state_offloads()
        copies, _ = self.kv_cache_manager.take_kv_cache_block_copies()
        total = sum(num_scheduled.values())
        output = SchedulerOutput(
            scheduled_new_reqs=new_data,
            scheduled_cached_reqs=cached,
            num_scheduled_tokens=num_scheduled,
            total_num_scheduled_tokens=total,
            scheduled_spec_decode_tokens={},
            scheduled_encoder_inputs={},
            preempted_req_ids=self.reset_preempted_req_ids,
            finished_req_ids=self.finished_req_ids,
            free_encoder_mm_hashes=self.encoder_cache_manager.get_freed_mm_hashes(),
            new_block_ids_to_zero=self._get_new_block_ids_to_zero(),
            kv_cache_block_copies=copies or None,
            num_spec_tokens_to_schedule=self.num_spec_tokens,
            ec_manager_metadata=self.encoder_cache_manager.get_manager_metadata(),
        )
        if self.defer_block_free and total > 0:
            self.sched_step_seq += 1
        return output


class TimedScheduler(Scheduler):
    """vLLM's own scheduler, timed: ``schedule_seconds`` and ``scheduled`` (tokens per request id) of its last
    step."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schedule_seconds = 0.0
        self.scheduled: dict[str, int] = {}

    def schedule(self, throttle_prefills: bool = False) -> SchedulerOutput:
        start = time.perf_counter()
        output = super().schedule(throttle_prefills)
        self.schedule_seconds = time.perf_counter() - start
        self.scheduled = dict(output.num_scheduled_tokens)
        return output
