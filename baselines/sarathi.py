"""Sarathi-Serve's stall-free batching: decodes first, then chunked prefills within a per-iteration token budget.

Every iteration has a budget of ``chunk_size`` tokens. It takes, in order: one decode token for every running
request past its prefill (oldest first, preempting the newest running request when a decode cannot get a KV
slot, as vLLM does); then the next chunk of each running request still in prefill, in admission order; then
new (or preempted) waiting requests FCFS, each with a chunk of ``min(remaining prefill, budget left)``,
stopping at the first that does not fit (sequence cap or free KV for its whole prefill).

Decodes are never stalled: they are scheduled before anything else and all of them run even if they alone
filled the budget. They cannot overflow it, though: a request is admitted only with at least one token of
budget left after every decode and partial prefill got theirs, so at most ``chunk_size`` requests ever run and
every batch holds at most ``chunk_size`` tokens.

A request is rejected at ``add`` only when its longest KV footprint exceeds the whole pool; chunking serves
prompts of any length.
"""

from __future__ import annotations

from dataclasses import dataclass

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.kv_cache import BlockManager
from ascendra.policy import BasePolicy
from ascendra.request import Request
from ascendra.system import ADMISSION_HELP, BuildContext, Built, System, SystemConfig, knob, round_robin


class SarathiScheduler(BasePolicy):
    """Sarathi-Serve (chunked prefill, stall-free hybrid batches) as a policy over a block manager."""

    steady_decodes = True

    def __init__(self, blocks: BlockManager, chunk_size: int = 512, max_num_seqs: int = 128) -> None:
        super().__init__(blocks, max_num_seqs)
        if chunk_size <= 0:
            raise UserError(f"chunk_size must be positive, got {chunk_size}")
        self.chunk_size = chunk_size

    def schedule(self, now: float) -> Batch:
        batch = Batch()
        self._drop_hopeless(now)
        prefilling: list[Request] = []
        self._schedule_decodes(batch, now, prefilling)
        budget = self.chunk_size - batch.num_decodes
        if budget <= 0:
            return batch
        for request in prefilling:
            num_tokens = min(request.remaining_prefill, budget)
            self._add_item(batch, request, num_tokens, True, now)
            budget -= num_tokens
            if budget == 0:
                return batch
        if self.waiting:
            self._admit_waiting(batch, budget, now, chunked=True)
        return batch


@dataclass(frozen=True, slots=True)
class SarathiConfig(SystemConfig):
    max_num_seqs: int = knob(128, "Max running sequences per instance.")
    chunk_size: int = knob(512, "Sarathi-Serve's token budget per iteration (its chunk size).")
    admission_control: bool = knob(False, ADMISSION_HELP)

    def __post_init__(self) -> None:
        SystemConfig.__post_init__(self)
        self.positive("max_num_seqs", "chunk_size")


def build(config: SarathiConfig, ctx: BuildContext) -> Built:
    """One Sarathi-Serve instance per GPU behind a round-robin router."""

    def policy(blocks: BlockManager) -> SarathiScheduler:
        scheduler = SarathiScheduler(blocks, chunk_size=config.chunk_size, max_num_seqs=config.max_num_seqs)
        scheduler.admission = ctx.cluster.ttft_admission() if config.admission_control else None
        return scheduler

    return round_robin(ctx, policy)


SYSTEM = System(
    "sarathi", "Sarathi-Serve: decodes first, then chunked prefills in a token budget.", SarathiConfig, build
)
