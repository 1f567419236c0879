"""Ascendra's policy on hand-built states: urgency, LP knapsack, offload rule, HP ordering, ticket rule."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from ascendra.batch import Batch
from ascendra.controller import AscendraController
from ascendra.hp_scheduler import HighPriorityScheduler
from ascendra.instance import Instance
from ascendra.kv_cache import BlockManager
from ascendra.lp_scheduler import LowPriorityScheduler
from ascendra.request import Request, RequestSpec
from ascendra.router import Move
from ascendra.urgency import Predictor, slack, value_function


@dataclass
class _Counter:
    def flops_bytes(self, stats):  # 1 GFLOP per token
        return stats.tokens * 1e9, 0.0


class LinearPerf:
    """A performance model with round numbers: prefill 1 ms per token, batches 10 ms + 1 ms per token."""

    counter = _Counter()

    def predict_prefill(self, tokens: int, context: int = 0) -> float:
        return 0.001 * tokens

    def predict_batch(self, batch: Batch) -> float:
        return 0.01 + 0.001 * batch.num_tokens

    def predict_stats(self, stats) -> float:
        return 0.01 + 0.001 * stats.tokens


PRED = Predictor(LinearPerf())  # type: ignore[arg-type]


def req(i: int, arrival: float, prompt: int, output: int = 4) -> Request:
    return Request(RequestSpec(i, arrival, prompt, output))


def lp(blocks: int = 1000, budget: int = 8192, margin: float = 0.5, **kw) -> LowPriorityScheduler:
    return LowPriorityScheduler(
        BlockManager(blocks), PRED, ttft_slo=1.0, margin=margin, max_batched_tokens=budget, **kw
    )


def hp(blocks: int = 1000, **kw) -> HighPriorityScheduler:
    return HighPriorityScheduler(BlockManager(blocks), PRED, ttft_slo=1.0, **kw)


def test_edf_value_is_inverse_slack_and_infinite_once_lost():
    value = value_function("edf", 1.0, PRED)
    r = req(0, arrival=0.0, prompt=200)  # predicted prefill 0.2 s
    assert slack(r, 0.3, 1.0, PRED) == pytest.approx(0.5)
    assert value(r, 0.3) == pytest.approx(2.0)
    assert value(r, 0.6) == pytest.approx(5.0)  # urgency grows as the deadline approaches
    assert value(r, 0.8) == math.inf and value(r, 0.9) == math.inf


def test_other_value_functions():
    r = req(0, arrival=0.0, prompt=100)
    assert value_function("basic", 2.0, PRED)(r, 1.0) == pytest.approx((1 + 1.0) / 2.0 / 100)
    assert value_function("sjf", 2.0, PRED)(r, 5.0) == pytest.approx(1 / 100)


def test_lp_takes_prefills_by_urgency_and_skips_what_does_not_fit():
    s = lp(budget=100)
    old_big = req(0, 0.0, 80)  # most urgent (waited longest)
    mid = req(1, 0.1, 50)  # does not fit after old_big: skipped
    young_small = req(2, 0.2, 20)  # fits the 20 tokens left
    for r in (young_small, mid, old_big):
        s.add(r, 0.3)
    batch = s.schedule(0.3)
    assert [(i.request.id, i.num_tokens, i.is_prefill) for i in batch.items] == [(0, 80, True), (2, 20, True)]
    assert list(s.waiting) == [mid]


def test_lp_never_stalls_decodes_and_budget_excludes_them():
    s = lp(budget=64)
    running = [req(i, 0.0, 10, output=50) for i in range(3)]
    for r in running:
        s.add(r, 0.0)
    s.on_batch_done(s.schedule(0.0), 0.1)  # three whole prefills, now all decoding
    s.add(req(9, 0.1, 62), 0.1)  # 62 > 64 - 3 decodes: must wait
    s.add(req(10, 0.1, 61), 0.1)  # exactly fits next to the decodes
    batch = s.schedule(0.1)
    decodes = [i.request.id for i in batch.items if not i.is_prefill]
    prefills = [(i.request.id, i.num_tokens) for i in batch.items if i.is_prefill]
    assert decodes == [0, 1, 2] and prefills == [(10, 61)]
    assert batch.num_tokens == 64


def test_offload_rule_moves_only_never_started_requests_at_risk():
    s = lp(margin=0.5)
    fresh = req(0, 0.95, 100)  # waited 0.05 + max(0.2, 0.1) + 0.5 = 0.75 <= 1: stays
    at_risk = req(1, 0.6, 100)  # waited 0.4 + 0.2 + 0.5 = 1.1 > 1: offloaded
    long_prompt = req(2, 0.9, 400)  # waited 0.1 + max(0.2, 0.4) + 0.5 = 1.0: not above: stays
    for r in (fresh, at_risk, long_prompt):
        s.add(r, 1.0)
    preempted = req(3, 0.0, 10)
    preempted.first_scheduled = 0.0  # started before: never offloaded
    s.waiting.append(preempted)
    assert s.take_at_risk(1.0, batch_time=0.2) == [at_risk]
    assert list(s.waiting) == [fresh, long_prompt, preempted]


def test_admission_control_drops_hopeless_requests_instead_of_offloading():
    s = lp(admission_control=True)
    hopeless = req(0, 0.0, 300)  # waited 0.9 + prefill 0.3 > 1.0
    s.add(hopeless, 0.9)
    assert s.take_at_risk(0.9, 0.0) == []
    assert hopeless.dropped and s.rejected == [hopeless]


def test_hp_order_started_then_offloaded_then_new_with_lost_deadlines_last():
    s = hp()
    new_urgent = req(0, 0.5, 100)
    offloaded_lost = req(1, 0.0, 100)  # slack 1 - 0.95 - 0.1 < 0 at t=0.95
    offloaded_ok = req(2, 0.6, 100)
    for r in (offloaded_lost, offloaded_ok):
        r.offload_time = 0.9
    restarted = req(3, 0.7, 100)
    restarted.first_scheduled = 0.8
    for r in (new_urgent, offloaded_lost, offloaded_ok, restarted):
        s.waiting.append(r)
    order = [r.id for r in s._admission_order(0.95)]
    assert order == [3, 2, 1, 0]


def test_hp_is_prefill_first_and_skips_prompts_that_do_not_fit():
    s = hp(max_batched_tokens=100)
    s.add(req(0, 0.0, 10, output=5), 0.0)
    s.on_batch_done(s.schedule(0.0), 0.01)  # request 0 now decoding
    s.add(req(1, 0.0, 150), 0.02)  # rejected: a whole prefill can never fit the budget
    s.add(req(2, 0.0, 60), 0.02)
    batch = s.schedule(0.02)
    assert batch.kind == "prefill" and [i.request.id for i in batch.items] == [2]
    assert [r.id for r in s.rejected] == [1]


def test_ticket_rule():
    s = hp(blocks=100, max_num_seqs=4)
    assert s.grants_ticket()
    s.waiting.append(req(0, 0.0, 10))
    assert not s.grants_ticket()  # a queue (e.g. a pending offload) blocks tickets
    s.waiting.clear()
    for i in range(2):  # half the sequence cap running: no ticket
        s.add(req(i, 0.0, 10), 0.0)
    s.schedule(0.0)
    assert not s.grants_ticket()
    t = hp(blocks=100, max_num_seqs=128)
    t.add(req(5, 0.0, 16 * 90), 0.0)  # 90 of 100 blocks used: free KV not above 10%
    t.schedule(0.0)
    assert not t.grants_ticket()


def test_controller_routes_by_ticket_and_offloads_to_hp():
    low = [Instance(f"lp{i}", lp(margin=0.5), lambda b: 0.0) for i in range(2)]
    high = [Instance("hp0", hp(max_num_seqs=4), lambda b: 0.0)]
    ctl = AscendraController(low, high, PRED)
    assert ctl.route(req(0, 0.0, 10), 0.0) is high[0]  # idle HP grants a ticket
    high[0].scheduler.waiting.append(req(1, 0.0, 10))
    assert [ctl.route(req(i, 0.0, 10), 0.0).name for i in range(2, 5)] == ["lp0", "lp1", "lp0"]
    at_risk = req(7, 0.0, 100)
    low[1].scheduler.add(at_risk, 0.6)
    moves = ctl.moves_after(low[1], Batch(), 0.6)
    assert moves == [Move(at_risk, high[0])] and at_risk.offload_time == 0.6
    assert ctl.moves_after(high[0], Batch(), 0.6) == []


def _running(scheduler, prompts: list[int]) -> None:
    """Prefill requests of ``prompts`` tokens on ``scheduler`` so that they are running, in decode."""
    for i, prompt in enumerate(prompts):
        scheduler.add(req(100 + i, 0.0, prompt, output=50), 0.0)
    batch = scheduler.schedule(0.0)
    assert len(batch) == len(prompts)
    scheduler.on_batch_done(batch, 0.01)


@pytest.mark.parametrize("hard", [False, True])
def test_hp_admits_past_its_sequence_cap_while_5_percent_of_kv_stays_free_unless_hard(hard: bool) -> None:
    s = hp(blocks=100, max_num_seqs=2, hard_cap=hard)
    _running(s, [16 * 40, 16 * 40])  # the cap is reached; 80 of 100 blocks in use
    s.add(req(0, 0.0, 16 * 10), 0.0)  # 10 blocks: 10 of 100 stay free, at least 5% (the more urgent)
    s.add(req(1, 0.0, 16 * 6), 0.0)  # 6 more blocks would leave 4 free, under 5%
    batch = s.schedule(0.02)
    if hard:
        assert batch.kind == "decode" and batch.num_decodes == 2
    else:
        assert [item.request.id for item in batch.items] == [0]


def test_lp_tbt_admission_skips_prefills_that_would_make_the_iteration_too_long() -> None:
    # Predicted iteration: 10 ms + 1 ms per token. Two decodes run; the TBT budget is 100 ms.
    s = lp(tbt_budget=0.1)
    _running(s, [10, 10])
    for i, prompt in enumerate([100, 50, 30]):  # urgency order: the longest prompt first (least slack)
        s.add(req(i, 0.0, prompt), 0.01)
    batch = s.schedule(0.02)
    # 100 tokens: 10 + 102 ms > 100, skipped; 50: 62 ms, taken; 30: 92 ms, taken.
    assert [(item.request.id, item.num_tokens) for item in batch.items if item.is_prefill] == [(1, 50), (2, 30)]
    assert batch.num_decodes == 2
    unlimited = lp()
    _running(unlimited, [10, 10])
    for i, prompt in enumerate([100, 50, 30]):
        unlimited.add(req(i, 0.0, prompt), 0.01)
    assert unlimited.schedule(0.02).num_prefill_tokens == 180


def test_lp_tbt_admission_does_not_limit_an_iteration_without_decodes() -> None:
    s = lp(tbt_budget=0.1)
    s.add(req(0, 0.0, 500), 0.0)
    assert s.schedule(0.0).num_prefill_tokens == 500
