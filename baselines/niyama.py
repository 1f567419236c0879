"""Niyama's deadline-aware scheduling: dynamic chunking under TBT deadlines, hybrid priority, eager relegation.

Source: Goel et al., "Niyama: Breaking the Silos of LLM Inference Serving" (ASPLOS'26, arXiv:2503.22562: dynamic
chunking, hybrid prioritization, eager relegation), and its code on the ``niyama_asplos2026`` branch of
``microsoft/sarathi-serve``: ``sarathi/core/scheduler/deadline_scheduler.py`` (scheduler type ``deadline``),
``sarathi/core/datatypes/sequence.py`` (deadlines and the priority comparator) and ``DeadlineSchedulerConfig`` in
``sarathi/config/config.py`` (defaults).

Each iteration:

1. Every running request past its prefill decodes one token (preempting the newest running request when a decode
   cannot get a KV slot). Each decode's next token has a deadline; the iteration's slack is the smallest
   ``deadline - now`` among them (infinite without decodes).
2. Dynamic chunking: the iteration size (decodes + prefill tokens) is the largest candidate whose predicted
   batch time, times a safety factor, fits the slack; the smallest candidate when none does. Candidates are
   Niyama's ``TOKEN_SEARCH_SPACE`` (or ``LOW_MEMORY_TOKEN_SEARCH_SPACE`` when few KV slots are free), searched by
   bisection (``ascendra.chunking.largest_fitting``, shared with Ascendra's decode-aware HP): at most four
   predictions per iteration. The prediction is one prefill chunk on top of the first
   prefill candidate's context plus the decodes, by Ascendra's performance model (``PerfModel.predict``).
3. Prefill candidates (running requests mid-prefill and waiting ones) are served in hybrid-priority order, each
   with ``min(remaining prefill, budget left)`` tokens, until the budget is spent. The priority is
   ``arrival + TTFT SLO + hybrid_weight * remaining prefill tokens`` (lower first): the TTFT deadline plus a
   remaining-work (SRPF) term.
4. Eager relegation: a waiting request that has emitted no token is relegated when ``now + remaining prefill /
   prefill throughput > arrival + TTFT SLO``, the throughput being Niyama's running estimate (an exponential
   moving average of prefill tokens per second of past iterations). Relegation is permanent: the request is
   still served, but behind every non-relegated one (also for its later chunks); it is never dropped.

Deadlines: with ``tbt_deadline=per-token`` (the default, as the issue asks) a decode's next token is due
``tbt_slo`` after its last one. ``niyama`` is the code's form (``Sequence._get_TBT_deadline``): token ``n + 1``
after ``n`` emitted is due at ``max(first token, arrival + TTFT SLO) + (n + 1) * tbt_slo``, which banks the
slack of an early first token (and one extra TBT) for later tokens; it may break this harness's per-request TBT
metrics, which is why it is not the default. A first token is due at ``arrival + TTFT SLO`` (the priority).

Constants (all from the branch):

- candidate iteration sizes 128, 256, 512, ..., 2048 (step 256), 2552; 128..512 (step 128) when fewer than 32,000
  KV slots are free (``free slots // 32 < 1000``): ``deadline_scheduler.py`` lines 19-20 and 113-122;
- safety factor 1.2 on predicted times (``pred_thres``): ``deadline_scheduler.py`` line 53;
- hybrid weight 0.008 s per remaining prompt token (``hybrid_prioritization_param``): ``sequence.py`` line 79
  and ``DeadlineSchedulerConfig``;
- prefill-throughput average decay 0.995 per iteration (``prefill_throughput_weight_decay``): line 45;
- ``max_num_seqs`` 128 (``BaseSchedulerConfig``).

Deviations, with their reasons:

- Prediction: Ascendra's performance model for this model/GPU/TP instead of Niyama's two hand-fitted linear
  regressions (Llama-3-8B on A100 only); for the same reason the throughput average starts at the model's
  predicted throughput of a prefill of ``max_iteration_tokens`` tokens instead of 8,500 tokens/s.
- SLO classes: every deadline (priority, relegation, decode deadlines) uses the request's own TTFT/TBT SLOs
  (``--slo-classes``, drawn per request from the workload seed; the cluster's for a request without its own),
  which is what Niyama's QoS tiers (``TIER_DEADLINES``) do; the TTLT tiers (``execution_threshold_batched``,
  ``output_len_pred``) are not modelled.
- Decodes: all of them run every iteration (Niyama caps them at ``chunk_size``, 512 tokens, which never binds
  with at most 128 sequences), and KV shortage preempts the newest request as vLLM does (Niyama has no
  preemption). A preempted request that had emitted tokens is served first (to resume its decode), as in
  Sarathi-Serve; one that had not is ordered like a new request.
- Admission: a waiting request needs a free sequence slot (``max_num_seqs``, enforced here; Niyama's check looks
  at an always-empty list) and free KV for its whole prefill (as Niyama's ``can_allocate``); the first one that
  does not fit stops admission for this iteration, while requests already mid-prefill keep getting chunks.
- Relegation is checked for every waiting request each iteration rather than only for those the priority loop
  reaches; relegated requests still wait behind every non-relegated one, as in the code.
- Several instances: round robin (``ascendra.system.round_robin``), as Niyama's benchmark runner splits the
  requests across replicas (``requests[replica_id::num_replicas]``); there is no migration or global queue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ascendra.batch import Batch
from ascendra.chunking import largest_fitting
from ascendra.errors import UserError
from ascendra.kv_cache import BlockManager
from ascendra.perfmodel import PerfModel
from ascendra.policy import BasePolicy
from ascendra.request import Request
from ascendra.system import BuildContext, Built, System, SystemConfig, knob, round_robin

#: Niyama's candidate iteration sizes in tokens (decodes + prefill), and those used when KV runs low.
TOKEN_SEARCH_SPACE = (128, *range(256, 2049, 256), 2552)
LOW_MEMORY_SEARCH_SPACE = (128, 256, 384, 512)
#: Below this many free KV slots the low-memory candidates apply (Niyama: ``free slots // 32 < 1000``).
LOW_MEMORY_FREE_SLOTS = 32 * 1000
#: Weight of the previous estimate in the moving average of prefill throughput, per iteration.
THROUGHPUT_DECAY = 0.995
TBT_DEADLINES = ("per-token", "niyama")
#: Ordering classes of prefill candidates: resuming a preempted decode, normal, relegated.
_RESUMING, _NORMAL, _RELEGATED = 0, 1, 2


class NiyamaScheduler(BasePolicy):
    """Niyama (deadline-aware dynamic chunking) as a policy over a block manager."""

    def __init__(
        self,
        blocks: BlockManager,
        perf: PerfModel,
        ttft_slo: float,
        tbt_slo: float,
        max_num_seqs: int = 128,
        max_iteration_tokens: int = 2552,
        hybrid_weight: float = 0.008,
        safety_factor: float = 1.2,
        relegation: bool = True,
        tbt_deadline: str = "per-token",
    ) -> None:
        super().__init__(blocks, max_num_seqs)
        if max_iteration_tokens <= 0:
            raise UserError(f"max_iteration_tokens must be positive, got {max_iteration_tokens}")
        if tbt_deadline not in TBT_DEADLINES:
            raise UserError(f"unknown tbt_deadline {tbt_deadline!r}; known: {', '.join(TBT_DEADLINES)}")
        self.perf = perf
        self.ttft_slo = ttft_slo
        self.tbt_slo = tbt_slo
        self.hybrid_weight = hybrid_weight
        self.safety_factor = safety_factor
        self.relegation = relegation
        self.tbt_deadline = tbt_deadline
        self.candidates = sorted({min(c, max_iteration_tokens) for c in TOKEN_SEARCH_SPACE})
        self.low_memory_candidates = sorted({min(c, max_iteration_tokens) for c in LOW_MEMORY_SEARCH_SPACE})
        #: Estimated prefill tokens per second (Niyama's ``expected_prefill_throughput``).
        self.prefill_rate = max_iteration_tokens / max(perf.predict_prefill(max_iteration_tokens), 1e-9)
        self.relegated: set[int] = set()
        self._last_call: float | None = None
        self._last_prefill_tokens = 0

    # --- the rules ----------------------------------------------------------------------------------------------

    def decode_deadline(self, request: Request) -> float:
        """When the next token of a decoding request is due."""
        tbt = request.tbt_slo or self.tbt_slo
        if self.tbt_deadline == "per-token":
            return request.last_token_time + tbt
        anchor = max(request.first_token_time, request.arrival + (request.ttft_slo or self.ttft_slo))
        return anchor + tbt * (request.num_generated + 1)

    def priority(self, request: Request) -> float:
        """Hybrid priority (lower first): the TTFT deadline plus a remaining-work term."""
        remaining = request.prefill_target - request.num_computed
        return request.spec.arrival + (request.ttft_slo or self.ttft_slo) + self.hybrid_weight * remaining

    def misses_ttft(self, request: Request, now: float) -> bool:
        """Predicted to miss its TTFT at the current prefill-throughput estimate (the relegation test)."""
        return now + request.remaining_prefill / self.prefill_rate > request.arrival + (
            request.ttft_slo or self.ttft_slo
        )

    def predict(self, prefill_tokens: int, prior: int, decode_contexts: list[int]) -> float:
        """Predicted seconds of the decodes plus one prefill chunk on top of ``prior`` cached tokens."""
        return self.perf.predict([(prefill_tokens, prior)] if prefill_tokens > 0 else [], decode_contexts)

    def iteration_tokens(self, decode_contexts: list[int], slack: float, prior: int) -> int:
        """The largest candidate iteration size whose predicted time (times the safety factor) fits ``slack``;
        the smallest candidate when none does."""
        low_memory = self.blocks.num_free * self.blocks.block_size < LOW_MEMORY_FREE_SLOTS
        candidates = self.low_memory_candidates if low_memory else self.candidates
        decodes = len(decode_contexts)
        if not slack > 0:
            return candidates[0]

        def fits(size: int) -> bool:
            return self.safety_factor * self.predict(max(0, size - decodes), prior, decode_contexts) <= slack

        best = largest_fitting(candidates, fits)
        return candidates[0 if best is None else best]

    # --- the Scheduler contract ---------------------------------------------------------------------------------

    def schedule(self, now: float) -> Batch:
        batch = Batch()
        self._observe_throughput(now)
        self._schedule_decodes(batch, now)
        order = self._prefill_order(now)
        if order:
            decoding = batch.decodes
            slack = min(map(self.decode_deadline, decoding), default=math.inf) - now
            contexts = batch.decode_contexts
            budget = self.iteration_tokens(contexts, slack, order[0].num_computed) - batch.num_decodes
            self._add_prefills(batch, order, budget, now)
        self._last_prefill_tokens = batch.num_prefill_tokens
        return batch

    def on_batch_done(self, batch: Batch, now: float) -> list[Request]:
        finished = super().on_batch_done(batch, now)
        for request in finished:
            self.relegated.discard(request.id)
        return finished

    def release(self, request: Request) -> int:
        self.relegated.discard(request.id)
        return super().release(request)

    # --- steps of schedule() ------------------------------------------------------------------------------------

    def _observe_throughput(self, now: float) -> None:
        """Fold the last iteration's prefill tokens per second into the estimate (Niyama: once per call)."""
        last = self._last_call
        if self._last_prefill_tokens and last is not None and now > last:
            observed = self._last_prefill_tokens / (now - last)
            self.prefill_rate = THROUGHPUT_DECAY * self.prefill_rate + (1.0 - THROUGHPUT_DECAY) * observed
        self._last_call = now

    def _prefill_order(self, now: float) -> list[Request]:
        """Relegate waiting requests predicted to miss their TTFT, then order every prefill candidate."""
        if self.relegation:
            relegated = self.relegated
            for request in self.waiting:
                if not request.token_times and request.id not in relegated and self.misses_ttft(request, now):
                    relegated.add(request.id)
        relegated, priority = self.relegated, self.priority

        def key(r: Request) -> tuple[int, float, int]:
            request_id = r.spec.request_id
            kind = _RESUMING if r.token_times else _RELEGATED if request_id in relegated else _NORMAL
            return kind, priority(r), request_id

        started = [r for r in self.running if r.num_computed < r.prefill_target]
        return sorted([*started, *self.waiting], key=key)

    def _add_prefills(self, batch: Batch, order: list[Request], budget: int, now: float) -> None:
        """Give each candidate in order ``min(remaining prefill, budget left)`` tokens. A waiting request is
        admitted (KV for its whole prefill reserved) if a sequence slot and the blocks are free; the first that
        is not stops admission, but requests already holding KV still get their chunks."""
        blocks = self.blocks
        seqs_left = self.max_num_seqs - len(self.running)
        admitting = True
        for request in order:
            if budget <= 0:
                break
            if not blocks.holds(request):
                if not admitting:
                    continue
                if seqs_left <= 0 or not blocks.can_grow(request, request.prefill_target):
                    admitting = False
                    continue
                self._take_waiting(request)
                blocks.grow(request, request.prefill_target)
                self.running.append(request)
                seqs_left -= 1
            tokens = min(request.remaining_prefill, budget)
            self._add_item(batch, request, tokens, True, now)
            budget -= tokens


@dataclass(frozen=True, slots=True)
class NiyamaConfig(SystemConfig):
    max_num_seqs: int = knob(128, "Max running sequences per instance.")
    max_iteration_tokens: int = knob(2552, "Cap on dynamic chunking's iteration size, tokens (Niyama: 2552).")
    hybrid_weight: float = knob(0.008, "Niyama's hybrid priority: seconds added per remaining prompt token.")
    safety_factor: float = knob(1.2, "Niyama's factor on predicted batch time when sizing the chunk.")
    relegation: bool = knob(True, "Niyama's eager relegation of requests predicted to miss their TTFT.")
    tbt_deadline: str = knob("per-token", "Niyama's decode deadline: last token + TBT, or the code's.", TBT_DEADLINES)

    def __post_init__(self) -> None:
        SystemConfig.__post_init__(self)
        self.positive("max_num_seqs", "max_iteration_tokens", "safety_factor")
        if self.hybrid_weight < 0:
            raise UserError(f"--hybrid-weight must be >= 0, got {self.hybrid_weight}")


def build(config: NiyamaConfig, ctx: BuildContext) -> Built:
    """One Niyama instance per GPU behind a round-robin router."""
    cluster = ctx.cluster
    perf = PerfModel.load(cluster.model, cluster.gpu, cluster.tp)

    def policy(blocks: BlockManager) -> NiyamaScheduler:
        return NiyamaScheduler(
            blocks,
            perf,
            cluster.ttft_slo,
            cluster.tbt_slo,
            max_num_seqs=config.max_num_seqs,
            max_iteration_tokens=config.max_iteration_tokens,
            hybrid_weight=config.hybrid_weight,
            safety_factor=config.safety_factor,
            relegation=config.relegation,
            tbt_deadline=config.tbt_deadline,
        )

    return round_robin(ctx, policy)


SYSTEM = System(
    "niyama",
    "Niyama: deadline-aware dynamic chunking, hybrid priority, eager relegation.",
    NiyamaConfig,
    build,
)
