"""An FCFS serving system for ascbench, kept outside the project: every running request decodes, then waiting
requests join the same batch as whole prompts, in arrival order, while the token budget and the KV cache last.
"""

from __future__ import annotations

from dataclasses import dataclass

from ascendra.batch import Batch
from ascendra.kv_cache import KVPool
from ascendra.policy import BasePolicy
from ascendra.system import BuildContext, Built, System, SystemConfig, knob, round_robin


class FcfsPolicy(BasePolicy):
    """Decodes first, then whole prompts FCFS; the base class does KV reservation, preemption and bookkeeping."""

    def __init__(self, blocks: KVPool, max_num_seqs: int, token_budget: int) -> None:
        super().__init__(blocks, max_num_seqs)
        self.token_budget = token_budget
        self.whole_prefill_budget = token_budget  # a prompt that could never fit is rejected, not stuck

    def schedule(self, now: float) -> Batch:
        batch = Batch()
        self._schedule_decodes(batch, now)
        self._admit_waiting(batch, self.token_budget - batch.num_decodes, now, chunked=False)
        return batch


@dataclass(frozen=True, slots=True)
class FcfsConfig(SystemConfig):
    max_num_seqs: int = knob(128, "Max running sequences per instance.")
    token_budget: int = knob(4096, "Tokens per iteration: the decodes plus whole prompts.")

    def __post_init__(self) -> None:
        SystemConfig.__post_init__(self)
        self.positive("max_num_seqs", "token_budget")


def build(config: FcfsConfig, ctx: BuildContext) -> Built:
    """The policy on every instance, behind a round-robin router."""
    return round_robin(ctx, lambda blocks: FcfsPolicy(blocks, config.max_num_seqs, config.token_budget))


SYSTEM = System("fcfs-example", "FCFS: decodes, then whole prompts in arrival order.", FcfsConfig, build)
