"""Ascendra's low-priority (throughput) instance: decodes never stall; whole prefills packed by urgency.

Each iteration first gives every running decode one token (as Sarathi-Serve does), then fills the remaining
token budget (``max_batched_tokens - decodes``) with *whole* prefills taken out of arrival order, most urgent
first, knapsack style: a prefill is taken if it fits the remaining budget, the sequence cap, the free KV blocks
and the compute cap (``compute_cap`` seconds of the GPU's peak FLOPs); one that does not fit is skipped and the
next is tried. Requests that were preempted (already started) go before never-started ones.

With ``tbt_budget`` set (``--tbt-admission``, the final paper's rule), a prefill is also skipped when the
performance model predicts that adding it would make the iteration longer than the budget (the tightest TBT SLO
of the decodes in it) while decodes run in it: the running requests' next tokens stay on time, and prompts too
long to fit beside them wait for a lighter iteration or are offloaded.

After each step the controller asks for the requests at risk (``take_at_risk``): a never-started waiting request
is at risk when ``waited + max(predicted batch time, predicted prefill time) + margin > TTFT_SLO``. Those leave
this instance for the high-priority side; no KV state moves because none was allocated.

SLOs are per request: a request of an SLO class is ranked and offloaded by its own TTFT SLO, and the TBT a
decode must keep is its own; ``ttft_slo`` and the TBT values the policy is built with (the run's SLOs) apply to
requests without their own.

Chunked (``chunk_tbt`` set, ``--chunked-lp``; off in the paper's system): instead of whole prefills, the
iteration's decodes are followed by prefill chunks, requests mid-prefill first and then waiting ones by urgency,
each the largest the performance model predicts keeps the earliest running decode's next token within
``chunk_tbt`` (the TBT SLO) less the model's error bound for mixed batches, as the decode-aware HP does
(``ascendra.chunking.add_chunks``); no prompt is too long for the token budget, and the compute cap does not
apply. A request offloaded from here has never been given a chunk.
"""

from __future__ import annotations

from ascendra.admission import Admission
from ascendra.batch import Batch
from ascendra.chunking import add_chunks, decode_slack
from ascendra.kv_cache import KVPool
from ascendra.migration import Migratable
from ascendra.perfmodel.work import batch_stats
from ascendra.policy import BasePolicy
from ascendra.request import Request
from ascendra.urgency import Predictor, value_function


class LowPriorityScheduler(BasePolicy):
    """The LP policy over one block manager."""

    def __init__(
        self,
        blocks: KVPool,
        predictor: Predictor,
        ttft_slo: float,
        margin: float,
        value_fn: str = "edf",
        max_num_seqs: int = 128,
        max_batched_tokens: int = 8192,
        compute_cap_flops: float = float("inf"),
        admission_control: bool = False,
        tbt_budget: float | None = None,
        chunk_tbt: float | None = None,
    ) -> None:
        super().__init__(blocks, max_num_seqs)
        self.tbt_budget = tbt_budget
        self.chunk_tbt = chunk_tbt
        self.steady_decodes = chunk_tbt is None  # whole prefills: decodes run alone while nothing waits
        #: Seconds kept off the decode slack for the model's under-prediction of a mixed batch (chunked only).
        self.tbt_guard = predictor.error_bound("mixed") if chunk_tbt is not None else 0.0
        self.predictor = predictor
        self.ttft_slo = ttft_slo
        self.margin = margin
        self.value = value_function(value_fn, ttft_slo, predictor)
        self.max_batched_tokens = max_batched_tokens
        self.whole_prefill_budget = max_batched_tokens if chunk_tbt is None else None
        self.compute_cap_flops = compute_cap_flops
        self.admission = Admission(ttft_slo, predictor.prefill_time) if admission_control else None

    def _ranked(self, now: float) -> list[Request]:
        """Waiting requests, already-started (preempted) first in queue order, then by urgency (highest first,
        ties by arrival)."""
        if len(self.waiting) < 2:  # nothing to order (most steps)
            return list(self.waiting)
        value = self.value
        started = [r for r in self.waiting if r.first_scheduled is not None]
        fresh = [r for r in self.waiting if r.first_scheduled is None]
        fresh.sort(key=lambda r: (-value(r, now), r.arrival))
        return started + fresh

    def schedule(self, now: float) -> Batch:
        batch = Batch()
        self._schedule_decodes(batch, now)
        if self.chunk_tbt is not None:
            slack = decode_slack(batch.decodes, self.chunk_tbt, now) - self.tbt_guard
            order = [*(r for r in self.running if r.in_prefill), *(self._ranked(now) if self.waiting else ())]
            add_chunks(self, batch, order, slack, self.predictor.perf.predict_stats, self.max_batched_tokens, now)
            return batch
        if not self.waiting:
            return batch
        budget = self.max_batched_tokens - batch.num_decodes
        seqs_left = self.max_num_seqs - len(self.running)
        free_blocks = self.blocks.num_free
        flops_left = self.compute_cap_flops
        timed = self.tbt_budget is not None and batch.num_decodes > 0
        stats = batch_stats(*batch.composition()) if timed else None
        tbt_budget = self.tbt_budget
        if timed:
            tbt_budget = min(r.tbt_slo or tbt_budget for r in batch.decodes)  # type: ignore[type-var]
        chosen: list[Request] = []
        for request in self._ranked(now):
            if seqs_left <= 0 or budget <= 0:
                break
            tokens = request.prefill_target
            need = self.blocks.blocks_for(tokens)
            flops = self.predictor.prefill_flops(tokens)
            if tokens > budget or need > free_blocks or (flops > flops_left and chosen):
                continue  # skip what does not fit and try the next (a lone prefill always passes the cap)
            if stats is not None:
                longer = stats.with_chunk(tokens)
                if self.predictor.perf.predict_stats(longer) > tbt_budget:  # type: ignore[operator]
                    continue
                stats = longer
            chosen.append(request)
            budget -= tokens
            free_blocks -= need
            flops_left -= flops
            seqs_left -= 1
        for request in chosen:
            self._take_waiting(request)
            self.blocks.grow(request, request.prefill_target)
            self.running.append(request)
            self._add_item(batch, request, request.prefill_target, True, now)
        return batch

    def take_at_risk(
        self,
        now: float,
        batch_time: float,
        margin: float | None = None,
        blocked: bool = False,
    ) -> list[Request]:
        """Remove and return never-started waiting requests predicted to miss their TTFT here (with ``margin``,
        default this instance's). With ``blocked`` and TBT admission, so is a request whose whole prefill cannot
        join the running decodes within the TBT budget (it would wait here for as long as they run). With
        admission control, those that would miss their TTFT even if started now are dropped (into ``rejected``)
        instead."""
        margin = self.margin if margin is None else margin
        decodes = None
        tbt_budget = self.tbt_budget
        if blocked and tbt_budget is not None and self.chunk_tbt is None:
            decoding = [r for r in self.running if not r.in_prefill]
            decodes = batch_stats((), [r.num_computed for r in decoding]) if decoding else None
            tbt_budget = min((r.tbt_slo or tbt_budget for r in decoding), default=tbt_budget)
        predict = self.predictor.perf.predict_stats
        at_risk: list[Request] = []
        keep = []
        for request in self.waiting:
            if request.first_scheduled is not None:
                keep.append(request)
                continue
            waited = now - request.arrival
            prefill = self.predictor.prefill_time(request)
            if self.admission is not None and self.admission.hopeless(request, now):
                self._reject(request)
            elif waited + max(batch_time, prefill) + margin > (request.ttft_slo or self.ttft_slo) or (
                decodes is not None and predict(decodes.with_chunk(request.prefill_target)) > tbt_budget
            ):
                at_risk.append(request)
            else:
                keep.append(request)
        self._replace_waiting(keep)
        return at_risk


class MigratingLowPriorityScheduler(Migratable, LowPriorityScheduler):
    """The LP policy with the hooks of a live migration (``--migration``: ``ascendra.rebalance``)."""
