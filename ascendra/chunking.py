"""Deadline-bounded chunking: the largest prefill chunk whose predicted iteration time keeps every running
decode's next token on time.

One concept, one place: Niyama's dynamic chunking (``baselines.niyama``) searches its candidate iteration sizes
with ``largest_fitting``; Ascendra's decode-aware HP (``ascendra.hp_scheduler``) and chunked LP
(``ascendra.lp_scheduler``) fill an iteration with ``add_chunks``, which searches every token count of each chunk
with ``chunk_within``. All bisect, so a search costs a handful of performance-model predictions: the predicted
time of a batch grows with the tokens added to it (the model's coefficients are non-negative), which is what
makes bisection exact.

A decode's next token is due its TBT SLO after its last one (``decode_slack``; the request's own SLO with SLO
classes, else the run's): an iteration that starts now and ends within the slack keeps every running request's
next token on time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from ascendra.batch import Batch
from ascendra.perfmodel.work import BatchStats, batch_stats
from ascendra.request import Request

if TYPE_CHECKING:
    from ascendra.policy import BasePolicy


def largest_fitting(candidates: Sequence[int], fits: Callable[[int], bool]) -> int | None:
    """Index of the largest of ascending ``candidates`` that ``fits`` (true up to some candidate, false after),
    found by bisection; None when none fits."""
    best, lo, hi = None, 0, len(candidates) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(candidates[mid]):
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best


def decode_slack(decoding: Iterable[Request], tbt_slo: float, now: float) -> float:
    """Seconds from ``now`` to the earliest next-token deadline (last token + its TBT SLO, ``tbt_slo`` for a
    request without its own) of the decoding requests; infinite without any."""
    return min((r.last_token_time + (r.tbt_slo or tbt_slo) for r in decoding), default=math.inf) - now


def chunk_within(
    stats: BatchStats, predict: Callable[[BatchStats], float], tokens: int, context: int, slack: float
) -> int:
    """The most tokens, at most ``tokens``, of a chunk after ``context`` cached ones that ``stats`` can take while
    ``predict`` keeps the iteration within ``slack`` seconds; 0 when not even one token fits."""
    if tokens <= 0:
        return 0
    if predict(stats.with_chunk(tokens, context)) <= slack:  # the common case: the whole chunk fits
        return tokens
    best = largest_fitting(range(1, tokens), lambda t: predict(stats.with_chunk(t, context)) <= slack)
    return 0 if best is None else best + 1


def add_chunks(
    policy: BasePolicy,
    batch: Batch,
    order: Iterable[Request],
    slack: float,
    predict: Callable[[BatchStats], float],
    max_tokens: int,
    now: float,
) -> None:
    """Add prefill chunks to ``batch`` (which holds the iteration's decodes) for ``order``'s requests (running
    ones mid-prefill, then waiting ones), each the largest that keeps the predicted iteration within ``slack``
    and the batch within ``max_tokens``; stop at the first that cannot get a token. A waiting request is admitted
    when a running slot (the policy's soft cap, if any) and the KV of its whole prefill are free; one that is not
    is skipped."""
    budget = max_tokens - batch.num_tokens
    if budget <= 0 or slack <= 0:
        return
    blocks = policy.blocks
    stats = batch_stats(*batch.composition())
    seqs_left = policy.max_num_seqs - len(policy.running)
    soft = policy.soft_cap_free_kv
    keep_free = -1.0 if soft is None else soft * blocks.num_blocks
    for request in order:
        if budget <= 0:
            break
        waiting = not blocks.holds(request)
        if waiting:
            need = blocks.blocks_for(request.prefill_target)
            free = blocks.num_free
            if need > free or (seqs_left <= 0 and (soft is None or free - need < keep_free)):
                continue
        context = request.num_computed
        tokens = chunk_within(stats, predict, min(request.remaining_prefill, budget), context, slack)
        if tokens == 0:
            break
        if waiting:
            policy._take_waiting(request)
            blocks.grow(request, request.prefill_target)
            policy.running.append(request)
            seqs_left -= 1
        policy._add_item(batch, request, tokens, True, now)
        stats = stats.with_chunk(tokens, context)
        budget -= tokens
