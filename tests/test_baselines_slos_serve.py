"""Hand-built cases for SLOs-Serve: the admission DP against brute force, soft admission control (defer or drop),
TBT-sized batches (decodes, then deadline-ordered chunks, best effort last) and the admission-probing router."""

from __future__ import annotations

import itertools
import random

import pytest

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.kv_cache import BlockManager
from ascendra.perfmodel import PerfModel
from ascendra.request import Request, RequestSpec
from ascendra.system import BuildContext, ClusterSpec
from baselines.slos_serve import (
    SYSTEM,
    Candidate,
    Planner,
    SlosServeConfig,
    SlosServeRouter,
    SlosServeScheduler,
    admission_dp,
)

PERF = PerfModel.load("llama-3.1-8b", "a100-80gb", 1)
TTFT, TBT = 1.0, 0.15


def req(request_id: int, prompt: int, output: int, arrival: float = 0.0) -> Request:
    return Request(RequestSpec(request_id, arrival, prompt, output))


def shape(batch: Batch) -> list[tuple[int, int, bool]]:
    return [(item.request.id, item.num_tokens, item.is_prefill) for item in batch.items]


def scheduler(num_blocks: int = 4000, **kwargs) -> SlosServeScheduler:
    return SlosServeScheduler(BlockManager(num_blocks, 16), Planner(PERF), TTFT, TBT, **kwargs)


# --- the DP ----------------------------------------------------------------------------------------------------


def feasible(now, decoders, cands, chosen, rate, mem_free, seqs_free) -> bool:
    """The model, written independently: EDF over deadlines, the window before each candidate with ``decoders`` +
    the chosen ones before it decoding; every chosen one's prefill covered by its deadline; blocks and slots."""
    if not all(i in chosen for i, c in enumerate(cands) if c.old):
        return False
    t, left, before, mem, new = now, 0.0, 0, 0, 0
    for i in sorted(range(len(cands)), key=lambda i: (cands[i].deadline, i)):
        c = cands[i]
        if c.deadline > t:
            left += rate(decoders + before) * (c.deadline - t)
            t = c.deadline
        if i in chosen:
            if left < c.tokens - 1e-9:
                return False
            left -= c.tokens
            before += 1
            if not c.old:
                mem += c.blocks
                new += 1
    return mem <= mem_free and new <= seqs_free


def brute_force(now, decoders, cands, rate, mem_free, seqs_free) -> int:
    """The most new candidates any feasible choice admits, by enumerating every subset."""
    olds = {i for i, c in enumerate(cands) if c.old}
    news = [i for i, c in enumerate(cands) if not c.old]
    best = -1
    for k in range(len(news) + 1):
        for subset in itertools.combinations(news, k):
            if feasible(now, decoders, cands, olds | set(subset), rate, mem_free, seqs_free):
                best = max(best, k)
    return best


def test_the_dp_admits_the_most_requests_brute_force_agrees() -> None:
    """Random small rounds (up to 7 new and 2 old candidates, a budget that shrinks with every decoder, scarce
    blocks and slots): the DP admits as many new requests as the best of all 2^n choices, and its choice is
    feasible."""

    def rate(n: int) -> float:
        return 1000.0 / (1.0 + 0.35 * n)

    rng = random.Random(7)
    checked = 0
    for _ in range(400):
        now = rng.uniform(0.0, 1.0)
        decoders = rng.randint(0, 4)
        olds = [Candidate(now + rng.uniform(0.5, 3.0), rng.randint(0, 200), 0, True) for _ in range(rng.randint(0, 2))]
        news = [
            Candidate(now + rng.uniform(0.0, 2.5), rng.randint(1, 1200), rng.randint(1, 6), False)
            for _ in range(rng.randint(1, 7))
        ]
        cands = olds + news
        rng.shuffle(cands)
        mem_free, seqs_free = rng.randint(3, 25), rng.randint(1, 7)
        best = brute_force(now, decoders, cands, rate, mem_free, seqs_free)
        if best < 0:
            continue  # the old ones alone miss: the DP relaxes them (tested below), brute force has no answer
        chosen = admission_dp(now, decoders, cands, rate, mem_free, seqs_free)
        assert chosen is not None
        assert feasible(now, decoders, cands, set(chosen), rate, mem_free, seqs_free)
        assert sum(not cands[i].old for i in chosen) == best
        checked += 1
    assert checked > 300


def test_the_dp_beats_greedy_edf() -> None:
    """A 1,000-token prompt due first would use the whole budget; admitting it in deadline order (greedy) loses
    the two 550-token prompts due just after it. The DP admits those two instead."""
    cands = [Candidate(1.0, 1000, 1, False), Candidate(1.1, 550, 1, False), Candidate(1.2, 550, 1, False)]
    assert admission_dp(0.0, 0, cands, lambda n: 1000.0, mem_free=10, seqs_free=10) == [1, 2]


def test_admitted_requests_decode_and_slow_later_prefills() -> None:
    """The budget shrinks with every admitted decoder: two 600-token prompts fit by t = 1.2 at 1,000 tokens/s, but
    once the first one decodes the budget halves and the second misses; the DP admits one, the later one (it
    leaves 600 tokens of budget at t = 1.2, the earlier one 300)."""
    cands = [Candidate(0.6, 600, 1, False), Candidate(1.2, 600, 1, False)]
    assert admission_dp(0.0, 0, cands, lambda n: 1000.0, 10, 10) == [0, 1]
    assert admission_dp(0.0, 0, cands, lambda n: 1000.0 / (1 + n), 10, 10) == [1]


def test_blocks_and_slots_bound_the_new_requests() -> None:
    cands = [Candidate(5.0, 10, 6, False), Candidate(5.0, 10, 5, False), Candidate(5.0, 10, 5, False)]
    assert admission_dp(0.0, 0, cands, lambda n: 1000.0, mem_free=10, seqs_free=10) == [1, 2]
    assert admission_dp(0.0, 0, cands, lambda n: 1000.0, mem_free=100, seqs_free=1) == [1]  # a tie: the earlier


def test_old_requests_stay_and_a_late_one_is_relaxed_not_blocking() -> None:
    """An admitted request past its deadline is finished first (its deadline becomes the time EDF completes it,
    0.5 s here) instead of making every new admission infeasible; a new request that would delay an old one past
    its deadline is declined."""
    late = Candidate(0.0, 500, 0, True)
    assert admission_dp(0.0, 0, [late, Candidate(1.0, 500, 1, False)], lambda n: 1000.0, 10, 10) == [0, 1]
    assert admission_dp(0.0, 0, [late, Candidate(1.0, 501, 1, False)], lambda n: 1000.0, 10, 10) == [0]
    due = Candidate(1.0, 900, 0, True)
    assert admission_dp(0.0, 0, [due, Candidate(0.5, 200, 1, False)], lambda n: 1000.0, 10, 10) == [0]
    assert admission_dp(0.0, 0, [due, Candidate(0.5, 100, 1, False)], lambda n: 1000.0, 10, 10) == [0, 1]
    assert admission_dp(0.0, 0, [late], lambda n: 0.0, 10, 10) is None


# --- admission control in a replica -------------------------------------------------------------------------------


def test_a_request_that_can_meet_its_ttft_is_admitted() -> None:
    s = scheduler()
    s.add(req(0, 2000, 5), 0.0)
    batch = s.schedule(0.0)
    assert 0 in s.slo and s.num_admitted == 1 and s.num_declined == 0
    assert batch.items[0].request.id == 0 and batch.items[0].is_prefill


def test_a_request_that_cannot_meet_its_ttft_is_deferred_to_best_effort() -> None:
    """20,000 prompt tokens cannot be computed within 1 s at the TBT-bounded batch size (about 12,600 tokens/s):
    declined, it is not dropped but served from the leftover budget, here the whole idle GPU."""
    s = scheduler()
    s.add(req(0, 20000, 5), 0.0)
    batch = s.schedule(0.0)
    assert s.num_declined == 1 and 0 not in s.slo
    assert s.drain_rejected() == []
    assert shape(batch)[0][0] == 0 and batch.items[0].is_prefill  # best effort runs when nothing else does


def test_with_reject_a_declined_request_is_dropped() -> None:
    s = scheduler(declined="reject")
    s.add(req(0, 20000, 5), 0.0)
    s.add(req(1, 2000, 5), 0.0)
    batch = s.schedule(0.0)
    assert [r.id for r in s.drain_rejected()] == [0]
    assert [item.request.id for item in batch.items] == [1]
    assert not s.waiting or all(r.id != 0 for r in s.waiting)


def test_an_admitted_request_has_priority_over_a_later_one() -> None:
    """B (4,000 tokens) alone would be admitted; behind the admitted A (8,000 tokens, one chunk done) both cannot
    finish by their deadlines, so B is declined and waits while A's chunks fill every batch."""
    alone = scheduler()
    alone.add(req(1, 4000, 5), 0.0)
    alone.schedule(0.0)
    assert 1 in alone.slo

    s = scheduler()
    s.add(req(0, 8000, 5), 0.0)
    first = s.schedule(0.0)
    s.add(req(1, 4000, 5), 0.0)
    now = 0.15
    s.on_batch_done(first, now)
    batch = s.schedule(now)
    assert 0 in s.slo and 1 not in s.slo and s.num_declined == 1
    assert [item.request.id for item in batch.items] == [0]


# --- batches ------------------------------------------------------------------------------------------------------


def test_decodes_first_then_the_largest_chunk_the_tbt_target_allows() -> None:
    """A decoding request and a long prompt: the decode goes first and the chunk is the largest whose batch is
    predicted within TBT SLO - 1 ms; one more token would exceed it."""
    s = scheduler()
    s.add(req(0, 100, 50), 0.0)
    s.on_batch_done(s.schedule(0.0), 0.05)
    s.add(req(1, 6000, 5), 0.05)
    batch = s.schedule(0.05)
    assert [(i, p) for i, _, p in shape(batch)] == [(0, False), (1, True)]
    chunk = batch.items[1].num_tokens
    target = TBT - 0.001
    assert PERF.predict_batch(batch) <= target
    assert PERF.predict([(chunk + 1, 0)], [100]) > target


def test_chunks_go_in_deadline_order_and_best_effort_only_gets_leftovers() -> None:
    """Two admitted prompts (the earlier arrival first) share a batch; a declined one gets nothing while they
    fill it, and its own chunk once they are done."""
    s = scheduler(declined="best-effort")
    s.add(req(0, 20000, 5, arrival=0.0), 0.0)  # declined: best effort
    s.add(req(2, 900, 5, arrival=0.02), 0.02)
    s.add(req(1, 700, 5, arrival=0.01), 0.02)
    batch = s.schedule(0.02)
    assert s.num_declined == 1 and {1, 2} <= set(s.slo)
    assert [(i, n) for i, n, _ in shape(batch)][:2] == [(1, 700), (2, 900)]
    assert [item.request.id for item in batch.items] == [1, 2, 0]  # the rest of the target: best effort
    assert PERF.predict_batch(batch) <= TBT - 0.001
    assert PERF.predict([(700, 0), (900, 0), (batch.items[2].num_tokens + 1, 0)], []) > TBT - 0.001


def test_best_effort_requests_are_preempted_first_when_an_admitted_one_needs_kv() -> None:
    """A pool of 100 blocks. B, already late on arrival, is declined and runs best-effort; A arrives after it and is
    admitted (its whole footprint, 95 blocks, fits the pool). When both decode and the pool fills up, B, the older
    request, is the one preempted: best-effort requests go before any admitted one, however new."""
    s = scheduler(num_blocks=100)
    b = req(1, 960, 600, arrival=-2.0)
    s.add(b, 0.0)
    batch = s.schedule(0.0)
    assert s.num_declined == 1 and [item.request.id for item in batch.items] == [1]
    a = req(0, 320, 1200, arrival=0.05)
    s.add(a, 0.05)
    now = 0.1
    s.on_batch_done(batch, now)
    batch = s.schedule(now)
    assert 0 in s.slo and s.running == [a, b]
    while b.preemptions == 0 and not a.finished:
        now += 0.05
        s.on_batch_done(batch, now)
        batch = s.schedule(now)
    assert b.preemptions == 1 and a.preemptions == 0
    assert s.be_waiting[0] is b and s.running == [a]
    assert [item.request.id for item in batch.items] == [0]


def test_the_online_slack_learns_from_full_batches_only() -> None:
    s = scheduler()
    s.add(req(0, 6000, 5), 0.0)
    full = s.schedule(0.0)  # a chunk filling the target
    s.on_batch_done(full, PERF.predict_batch(full) + 0.02)  # 20 ms late: the error is clipped to 10 ms
    assert s.slack == pytest.approx((1 - 0.99) * 0.01)
    small = scheduler()
    small.add(req(0, 10, 5), 0.0)
    small.on_batch_done(small.schedule(0.0), 1.0)  # a small batch, very late: not learned from
    assert small.slack == 0.0
    off = scheduler(online_slack=False)
    off.add(req(0, 6000, 5), 0.0)
    off.on_batch_done(off.schedule(0.0), 1.0)
    assert off.slack == 0.0


# --- routing ------------------------------------------------------------------------------------------------------


def cluster(instances: int = 3, **knobs):
    spec = ClusterSpec("llama-3.1-8b", "a100-80gb", 1, instances, ttft_slo=TTFT, tbt_slo=TBT)
    ctx = BuildContext(spec, lambda: BlockManager(4000, 16), lambda name, blocks: lambda batch: 0.1)
    return SYSTEM.build(SlosServeConfig(**knobs), ctx)


def test_the_router_goes_to_the_first_replica_whose_dp_admits() -> None:
    """gpu0 already committed to a 10,000-token prompt: a 4,000-token arrival that round-robin would give it goes
    to gpu1, whose DP admits it; the next arrival starts at gpu1."""
    built = cluster()
    router: SlosServeRouter = built.router  # type: ignore[assignment]
    gpu0, gpu1, gpu2 = built.instances
    gpu0.scheduler.add(req(0, 10000, 5), 0.0)
    gpu0.scheduler.schedule(0.0)
    assert 0 in gpu0.scheduler.slo
    assert router.route(req(1, 4000, 5), 0.01) is gpu1
    assert router.route(req(2, 100, 5), 0.02) is gpu1  # starts at gpu1 (round robin), which admits it
    assert router.route(req(3, 100, 5), 0.03) is gpu2
    assert router.moves_after(gpu0, Batch(), 0.03) == []


def test_a_request_no_replica_admits_goes_to_the_last_one_tried() -> None:
    built = cluster()
    router = built.router
    assert router.route(req(0, 30000, 5), 0.0) is built.instances[2]  # tried gpu0, gpu1, then gpu2 takes it
    assert router.route(req(1, 30000, 5), 0.0) is built.instances[0]  # tried gpu1, gpu2, then gpu0
    limited = cluster(route_tries=1)
    assert limited.router.route(req(0, 30000, 5), 0.0) is limited.instances[0]  # no other replica is asked


def test_the_probe_changes_nothing() -> None:
    s = cluster().instances[0].scheduler
    s.add(req(0, 2000, 5), 0.0)
    assert s.probe(req(1, 100, 5), 0.0)
    assert [r.id for r in s.pending] == [0] and not s.slo


def test_knobs_are_checked() -> None:
    with pytest.raises(UserError, match="route-tries"):
        SlosServeConfig(route_tries=-1)
    with pytest.raises(UserError, match="declined"):
        SlosServeConfig(declined="drop")
    with pytest.raises(UserError, match="slo-slack"):
        SlosServeConfig(slo_slack=0.2).check(ClusterSpec("llama-3.1-8b", "a100-80gb", 1, 3, ttft_slo=1.0, tbt_slo=0.15))
