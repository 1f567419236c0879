"""vLLM's default policy (chunked prefill off): prefill-first, whole prompts, FCFS, preempt-newest on KV pressure.

Each iteration is either a prefill-only batch or a decode-only batch, never both. Whenever the head of the
waiting queue fits (its whole ``prefill_target`` within the token budget, blocks for it free, fewer than
``max_num_seqs`` running) the iteration prefills as many whole prompts as fit, in FCFS order, stopping at the
first that does not (no skipping). Otherwise every running request decodes one token, preempting the newest
running requests when a decode cannot get a KV slot. This is why long prefills stall decodes (TBT spikes).

Rejection: without chunking, vLLM ignores prompts longer than ``max_num_batched_tokens``. After a preemption
the recomputed prefill is prompt + generated tokens, so a request is rejected at ``add`` when that can ever
exceed the budget (``prompt + output - 1 > max_num_batched_tokens``, the analogue of vLLM requiring
``max_model_len <= max_num_batched_tokens``) or when its longest KV footprint exceeds the whole pool. A request
admitted here therefore always fits an empty instance, so the queue can never hang.
"""

from __future__ import annotations

from dataclasses import dataclass

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.kv_cache import BlockManager
from ascendra.policy import BasePolicy
from ascendra.system import ADMISSION_HELP, BuildContext, Built, System, SystemConfig, knob, round_robin


class VllmScheduler(BasePolicy):
    """vLLM (v0 default scheduler) as a policy over a block manager."""

    steady_decodes = True

    def __init__(self, blocks: BlockManager, max_num_seqs: int = 128, max_num_batched_tokens: int = 8192) -> None:
        super().__init__(blocks, max_num_seqs)
        if max_num_batched_tokens <= 0:
            raise UserError(f"max_num_batched_tokens must be positive, got {max_num_batched_tokens}")
        self.max_num_batched_tokens = max_num_batched_tokens
        self.whole_prefill_budget = max_num_batched_tokens

    def schedule(self, now: float) -> Batch:
        batch = Batch()
        self._drop_hopeless(now)
        if self.waiting:
            self._admit_waiting(batch, self.max_num_batched_tokens, now, chunked=False)
            if batch:
                return batch
        self._schedule_decodes(batch, now)
        return batch


@dataclass(frozen=True, slots=True)
class VllmConfig(SystemConfig):
    max_num_seqs: int = knob(128, "Max running sequences per instance.")
    max_batched_tokens: int = knob(8192, "Token budget per iteration (whole prefills must fit it).")
    admission_control: bool = knob(False, ADMISSION_HELP)

    def __post_init__(self) -> None:
        SystemConfig.__post_init__(self)
        self.positive("max_num_seqs", "max_batched_tokens")


def build(config: VllmConfig, ctx: BuildContext) -> Built:
    """One vLLM instance per GPU behind a round-robin router."""

    def policy(blocks: BlockManager) -> VllmScheduler:
        scheduler = VllmScheduler(blocks, config.max_num_seqs, config.max_batched_tokens)
        scheduler.admission = ctx.cluster.ttft_admission() if config.admission_control else None
        return scheduler

    return round_robin(ctx, policy)


SYSTEM = System("vllm", "vLLM's default scheduler: prefill-first whole prompts, FCFS.", VllmConfig, build)
