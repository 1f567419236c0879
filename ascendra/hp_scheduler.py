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

Decode-aware (``decode_tbt`` set, ``--decode-aware-hp``; off in the paper's system): every iteration first gives
every running decode one token (as the LP instance does), then adds prefill chunks in the same queue order, each
the largest (``ascendra.chunking.add_chunks``) for which the performance model predicts the iteration ends
before the earliest running decode's next token is due (last token + ``decode_tbt``), less the model's error
bound for mixed batches (``Predictor.error_bound``: its held-out P99 under-prediction, 19 ms for Llama-3.1-8B on
A100); prompts are chunked, so none is too long for the token budget. Without decodes the slack is unbounded
and whole prompts fill the budget. The ticket also needs the arrival's whole prompt to fit one such iteration
beside the running decodes (its prefill would not stall them: HP decode pressure).

SLOs are per request: urgency and admission use the request's own TTFT SLO and a decode's next token is due its
own TBT SLO after its last one (``ttft_slo`` and ``decode_tbt``, the run's SLOs, apply to requests without one).
"""

from __future__ import annotations

import math

from ascendra.admission import Admission
from ascendra.batch import Batch
from ascendra.chunking import add_chunks, decode_slack
from ascendra.kv_cache import KVPool
from ascendra.migration import Migratable
from ascendra.perfmodel.work import batch_stats
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
        blocks: KVPool,
        predictor: Predictor,
        ttft_slo: float,
        value_fn: str = "edf",
        max_num_seqs: int = 128,
        max_batched_tokens: int = 8192,
        admission_control: bool = False,
        ticket_seq_share: float = 0.5,
        ticket_free_kv: float = 0.1,
        hard_cap: bool = False,
        decode_tbt: float | None = None,
    ) -> None:
        super().__init__(blocks, max_num_seqs)
        self.decode_tbt = decode_tbt
        #: Seconds kept off the decode slack for the model's under-prediction of a mixed batch.
        self.tbt_guard = predictor.error_bound("mixed") if decode_tbt is not None else 0.0
        self.soft_cap_free_kv = None if hard_cap else SOFT_CAP_FREE_KV
        self.predictor = predictor
        self.ttft_slo = ttft_slo
        self.value = value_function(value_fn, ttft_slo, predictor)
        self.max_batched_tokens = max_batched_tokens
        self.whole_prefill_budget = max_batched_tokens if decode_tbt is None else None
        self.admission = Admission(ttft_slo, predictor.prefill_time) if admission_control else None
        self.ticket_seq_share = ticket_seq_share
        self.ticket_free_kv = ticket_free_kv

    def grants_ticket(self, request: Request | None = None) -> bool:
        """Whether a new arrival (``request``, when known) may come straight here."""
        granted = (
            not self.waiting
            and len(self.running) < self.ticket_seq_share * self.max_num_seqs
            and self.blocks.num_free > self.ticket_free_kv * self.blocks.num_blocks
        )
        if not granted or self.decode_tbt is None or request is None or not self.running:
            return granted
        decodes = batch_stats((), [r.num_computed for r in self.running])
        predicted = self.predictor.perf.predict_stats(decodes.with_chunk(request.prefill_target))
        decode_tbt = self.decode_tbt
        return predicted + self.tbt_guard <= min(r.tbt_slo or decode_tbt for r in self.running)

    def _rank_key(self, request: Request, now: float) -> tuple[int, int, int, float, float]:
        fresh = request.first_scheduled is None
        new_arrival = request.offload_time is None
        value = self.value(request, now)
        lost = value == math.inf
        return (int(fresh), int(new_arrival), int(lost), -value if not lost else 0.0, request.arrival)

    def _admission_order(self, now: float) -> list[Request]:
        if len(self.waiting) < 2:  # nothing to order (most steps)
            return list(self.waiting)
        return sorted(self.waiting, key=lambda r: self._rank_key(r, now))

    def schedule(self, now: float) -> Batch:
        batch = Batch()
        if self.decode_tbt is not None:
            if self.waiting:
                self._drop_hopeless(now)
            self._schedule_decodes(batch, now)
            slack = decode_slack(batch.decodes, self.decode_tbt, now) - self.tbt_guard
            order = [*(r for r in self.running if r.in_prefill), *(self._admission_order(now) if self.waiting else ())]
            add_chunks(self, batch, order, slack, self.predictor.perf.predict_stats, self.max_batched_tokens, now)
            return batch
        if self.waiting:
            self._drop_hopeless(now)
            self._admit_waiting(batch, self.max_batched_tokens, now, chunked=False)
            if batch:
                return batch
        self._schedule_decodes(batch, now)
        return batch


class MigratingHighPriorityScheduler(Migratable, HighPriorityScheduler):
    """The HP policy with the hooks of a live migration (``--migration``: ``ascendra.rebalance``)."""
