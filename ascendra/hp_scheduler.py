"""Ascendra's high-priority (latency) instance: prefill-first like vLLM, but its queue is ordered by urgency.

Order of the waiting queue: requests already started (preempted here, recomputing) first; then offloaded
requests before new arrivals (offloads always take precedence); within each group by urgency, with requests
whose deadline is already lost moved to the back (serving them first would only make more requests miss).
An iteration is a prefill-only batch of whole prompts when any fits (skipping those that do not), otherwise a
decode-only batch. An offloaded request stays here until it finishes.

The controller asks for a *ticket* before routing a new arrival here: granted only when nothing waits (in
particular no pending offload), fewer than ``ticket_seq_share`` of the sequence cap run, and more than
``ticket_free_kv`` of the KV blocks are free.
"""

from __future__ import annotations

import math

from ascendra.batch import Batch
from ascendra.kv_cache import BlockManager
from ascendra.policy import BasePolicy
from ascendra.request import Request
from ascendra.urgency import Predictor, value_function


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
    ) -> None:
        super().__init__(blocks, max_num_seqs)
        self.predictor = predictor
        self.ttft_slo = ttft_slo
        self.value = value_function(value_fn, ttft_slo, predictor)
        self.max_batched_tokens = max_batched_tokens
        self.whole_prefill_budget = max_batched_tokens
        self.admission_control = admission_control
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

    def _drop_hopeless(self, now: float) -> None:
        """Admission control: drop never-started requests that would miss their TTFT even if started now."""
        keep = []
        for request in self.waiting:
            hopeless = request.first_scheduled is None and (
                now - request.arrival + self.predictor.prefill_time(request) > self.ttft_slo
            )
            if hopeless:
                self._reject(request)
            else:
                keep.append(request)
        self._replace_waiting(keep)

    def schedule(self, now: float) -> Batch:
        batch = Batch()
        if self.waiting:
            if self.admission_control:
                self._drop_hopeless(now)
            self._admit_waiting(batch, self.max_batched_tokens, now, chunked=False)
            if batch:
                return batch
        self._schedule_decodes(batch, now)
        return batch
