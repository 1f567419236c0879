"""Ascendra's high-priority (latency) instance: prefill-first like vLLM, but its queue is ordered by urgency.

Order of the waiting queue: requests already started (preempted here, recomputing) first; then offloaded
requests before new arrivals (offloads always take precedence); within each group by urgency, with requests
whose deadline is already lost moved to the back (serving them first would only make more requests miss).
An iteration is a prefill-only batch of whole prompts when any fits (skipping those that do not), otherwise a
decode-only batch. An offloaded request stays here until it finishes.

The sequence cap is soft, as in the authors' artifact: past ``max_num_seqs`` a prompt is still admitted as long
as ``SOFT_CAP_FREE_KV`` (5%) of the KV blocks stay free after it; ``hard_cap`` makes it hard (the artifact's
admission experiment does so, at 256 sequences).

The controller asks for a *ticket* before routing a new arrival here: granted only when nothing waits (in
particular no pending offload), fewer than ``ticket_seq_share`` of the sequence cap run, and more than
``ticket_free_kv`` of the KV blocks are free.
"""

from __future__ import annotations

import math

from ascendra.admission import Admission
from ascendra.batch import Batch
from ascendra.kv_cache import BlockManager
from ascendra.policy import BasePolicy
from ascendra.request import Request
from ascendra.urgency import Predictor, value_function

#: The share of the KV pool the HP instance keeps free when it admits past its sequence cap.
SOFT_CAP_FREE_KV = 0.05


class HighPriorityScheduler(BasePolicy):
    """The HP policy over one block manager."""

    skip_misfits = True

    def __init__(
        self,
        blocks: BlockManager,
        predictor: Predictor,
        ttft_slo: float,
        value_fn: str = "edf",
        max_num_seqs: int = 128,
        max_batched_tokens: int = 8192,
        admission_control: bool = False,
        ticket_seq_share: float = 0.5,
        ticket_free_kv: float = 0.1,
        hard_cap: bool = False,
    ) -> None:
        super().__init__(blocks, max_num_seqs)
        self.soft_cap_free_kv = None if hard_cap else SOFT_CAP_FREE_KV
        self.predictor = predictor
        self.ttft_slo = ttft_slo
        self.value = value_function(value_fn, ttft_slo, predictor)
        self.max_batched_tokens = max_batched_tokens
        self.whole_prefill_budget = max_batched_tokens
        self.admission = Admission(ttft_slo, predictor.prefill_time) if admission_control else None
        self.ticket_seq_share = ticket_seq_share
        self.ticket_free_kv = ticket_free_kv

    def grants_ticket(self) -> bool:
        """Whether a new arrival may come straight here."""
        return (
            not self.waiting
            and len(self.running) < self.ticket_seq_share * self.max_num_seqs
            and self.blocks.num_free > self.ticket_free_kv * self.blocks.num_blocks
        )

    def _rank_key(self, request: Request, now: float) -> tuple[int, int, int, float, float]:
        fresh = request.first_scheduled is None
        new_arrival = request.offload_time is None
        value = self.value(request, now)
        lost = value == math.inf
        return (int(fresh), int(new_arrival), int(lost), -value if not lost else 0.0, request.arrival)

    def _admission_order(self, now: float) -> list[Request]:
        return sorted(self.waiting, key=lambda r: self._rank_key(r, now))

    def schedule(self, now: float) -> Batch:
        batch = Batch()
        if self.waiting:
            self._drop_hopeless(now)
            self._admit_waiting(batch, self.max_batched_tokens, now, chunked=False)
            if batch:
                return batch
        self._schedule_decodes(batch, now)
        return batch
