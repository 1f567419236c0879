"""Orca's iteration-level scheduling: every running request decodes, whole prompts join the same batch FCFS.

Algorithm (Yu et al., OSDI'22, section 4 and Algorithm 1; the Orca scheduler of the Sarathi-Serve codebase,
``sarathi/core/scheduler/orca_scheduler.py`` with ``orca_block_space_manager.py``): each iteration runs every
running request (one decode token each, or its whole prompt in the iteration it was admitted), then admits
waiting requests in arrival order, each with its whole prompt, until one does not fit: the KV cache or the
sequence cap (``max_num_seqs``) runs out. There is no token budget and no chunking, so a burst of long prompts
makes one long iteration that every running request waits for (the TBT stall Sarathi-Serve removes).

KV: Orca predates paged attention and reserves a request's KV for its whole length when it is admitted, so a
running request never needs more memory and nothing is ever preempted. ``reserve`` chooses how much:
``max-tokens`` (the paper: the prompt plus the request's ``max_tokens``; benchmark clients ignore EOS and set
``max_tokens`` to the output length, so this is the request's exact footprint) or ``max-model-len`` (the
Sarathi-Serve codebase: the model's context length for every request, far more conservative).

Deviations: a request whose reservation exceeds the whole pool is rejected on arrival (Orca would never admit
it); a request recomputed after a move is admitted like a new one (Orca has no moves).
"""

from __future__ import annotations

from dataclasses import dataclass

from ascendra.batch import Batch
from ascendra.kv_cache import BlockManager
from ascendra.models import get_model
from ascendra.policy import BasePolicy, max_kv_tokens
from ascendra.request import Request
from ascendra.system import ADMISSION_HELP, BuildContext, Built, System, SystemConfig, knob, round_robin

RESERVATIONS = ("max-tokens", "max-model-len")


class OrcaScheduler(BasePolicy):
    """Orca as a policy over a block manager; ``max_model_len`` set: reserve that many slots per request."""

    steady_decodes = True

    def __init__(self, blocks: BlockManager, max_num_seqs: int = 128, max_model_len: int | None = None) -> None:
        super().__init__(blocks, max_num_seqs)
        self.max_model_len = max_model_len

    def reservation(self, request: Request) -> int:
        """KV slots reserved for ``request`` at admission: its longest footprint, or the model's length."""
        return self.max_model_len if self.max_model_len is not None else max_kv_tokens(request)

    def _reject_reason(self, request: Request) -> str | None:
        reason = super()._reject_reason(request)
        if reason is None and self.blocks.blocks_for(self.reservation(request)) > self.blocks.num_blocks:
            return f"its reservation of {self.reservation(request)} KV slots exceeds the pool"
        return reason

    def schedule(self, now: float) -> Batch:
        batch = Batch()
        self._drop_hopeless(now)
        self._schedule_decodes(batch, now)  # within the reservation: never preempts
        waiting, blocks = self.waiting, self.blocks
        while waiting and len(self.running) < self.max_num_seqs:
            request = waiting[0]
            reserve = self.reservation(request)
            if not blocks.can_grow(request, reserve):
                break
            waiting.popleft()
            blocks.grow(request, reserve)
            self.running.append(request)
            self._add_item(batch, request, request.prefill_target, True, now)
        return batch


@dataclass(frozen=True, slots=True)
class OrcaConfig(SystemConfig):
    max_num_seqs: int = knob(128, "Max running sequences per instance.")
    reserve: str = knob("max-tokens", "KV reserved at admission: the request's length or the model's.", RESERVATIONS)
    admission_control: bool = knob(False, ADMISSION_HELP)

    def __post_init__(self) -> None:
        SystemConfig.__post_init__(self)
        self.positive("max_num_seqs")


def build(config: OrcaConfig, ctx: BuildContext) -> Built:
    """One Orca instance per GPU behind a round-robin router."""
    max_model_len = get_model(ctx.cluster.model).max_model_len if config.reserve == "max-model-len" else None

    def policy(blocks: BlockManager) -> OrcaScheduler:
        scheduler = OrcaScheduler(blocks, config.max_num_seqs, max_model_len)
        scheduler.admission = ctx.cluster.ttft_admission() if config.admission_control else None
        return scheduler

    return round_robin(ctx, policy)


SYSTEM = System("orca", "Orca: iteration-level batching, whole prompts FCFS, KV reserved up front.", OrcaConfig, build)
