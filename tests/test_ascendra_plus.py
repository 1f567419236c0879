"""Ascendra's mechanisms beyond the paper, each on hand-built states: the decode-aware HP's chunk, the
model-derived offload margin, the migration of running requests, the adaptive partition's drain rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ascendra.batch import Batch
from ascendra.chunking import chunk_within, decode_slack, largest_fitting
from ascendra.controller import AscendraController
from ascendra.hp_scheduler import HighPriorityScheduler, MigratingHighPriorityScheduler
from ascendra.instance import Instance
from ascendra.kv_cache import BlockManager
from ascendra.link import get_link, kv_move_time
from ascendra.lp_scheduler import LowPriorityScheduler, MigratingLowPriorityScheduler
from ascendra.migration import Migrator
from ascendra.models import get_model
from ascendra.partition import AdaptivePartition, Switch, swap_policy
from ascendra.perfmodel import PerfModel
from ascendra.perfmodel.fit import RESIDUAL_QUANTILE, fit, residual_quantile
from ascendra.perfmodel.synthetic_log import cost_model_time_fn, synthetic_log
from ascendra.perfmodel.work import batch_stats
from ascendra.rebalance import Rebalancer, decode_time
from ascendra.request import Request, RequestSpec
from ascendra.router import Move
from ascendra.sim.cluster import Cluster
from ascendra.urgency import Predictor

MODEL, GPU = "llama-3.1-8b", "a100-80gb"
PERF = PerfModel.load(MODEL, GPU, 1)
PRED = Predictor(PERF)
TBT = 0.15


def req(i: int, arrival: float, prompt: int, output: int = 50) -> Request:
    return Request(RequestSpec(i, arrival, prompt, output))


def decoding(i: int, context: int, last_token: float, blocks: BlockManager) -> Request:
    """A running request past its prefill: ``context`` tokens of KV, its last token at ``last_token``."""
    r = req(i, 0.0, context, 500)
    blocks.grow(r, context)
    r.num_computed = context
    r.first_scheduled = 0.0
    r.token_times = [last_token]
    return r


def decode_aware_hp(blocks: int = 20_000) -> HighPriorityScheduler:
    return HighPriorityScheduler(BlockManager(blocks), PRED, ttft_slo=1.0, decode_tbt=TBT)


# --- 1. decode-aware HP -----------------------------------------------------------------------------------------


def test_the_search_is_a_bisection_over_ascending_candidates() -> None:
    calls: list[int] = []

    def fits(c: int) -> bool:
        calls.append(c)
        return c <= 700

    assert largest_fitting(range(1, 8193), fits) == 699 and len(calls) <= 14
    assert largest_fitting([5, 6], lambda c: False) is None
    assert decode_slack([], TBT, 3.0) == np.inf


def test_the_hp_chunk_keeps_every_running_decode_within_the_tbt_under_the_predictor() -> None:
    s = decode_aware_hp()
    now = 10.0
    for i, (context, last) in enumerate([(3000, now - 0.04), (800, now - 0.01), (5000, now - 0.02)]):
        s.running.append(decoding(i, context, last, s.blocks))
    long = req(9, now - 0.2, 6000)
    s.add(long, now)
    batch = s.schedule(now)
    assert batch.num_decodes == 3 and batch.num_prefill_tokens > 0  # decodes every iteration, and a chunk
    chunk = next(item for item in batch.items if item.is_prefill)
    assert chunk.request is long and 0 < chunk.num_tokens < 6000  # the prompt is chunked
    deadline = min(now - 0.04, now - 0.01, now - 0.02) + TBT  # the earliest next-token deadline
    guard = PRED.error_bound("mixed")
    assert guard == pytest.approx(PERF.meta["fit"]["residual_ms"]["mixed"] * 1e-3) and guard > 0
    assert now + PERF.predict_batch(batch) + guard <= deadline  # every decode on time, with the error bound
    decodes = batch_stats((), [3000, 800, 5000])
    one_more = decodes.with_chunk(chunk.num_tokens + 1)
    assert now + PERF.predict_stats(one_more) + guard > deadline  # and the chunk is the largest that is


def test_without_decodes_whole_prompts_fill_the_budget_and_a_late_decode_gets_no_prefill() -> None:
    s = decode_aware_hp()
    a, b = req(0, 0.0, 3000), req(1, 0.0, 4000)
    s.add(a, 0.0)
    s.add(b, 0.0)
    batch = s.schedule(0.0)
    assert sorted((i.request.id, i.num_tokens) for i in batch.items) == [(0, 3000), (1, 4000)]
    late = decode_aware_hp()
    late.running.append(decoding(0, 1000, 0.0, late.blocks))
    late.add(req(1, 0.0, 100), 0.0)
    batch = late.schedule(TBT - 0.01)  # the decode is due in 10 ms: no room for any prefill token
    assert batch.num_decodes == 1 and batch.num_prefill_tokens == 0


def test_chunk_within_is_exact_at_the_boundary() -> None:
    stats = batch_stats((), [2000] * 64)
    slack = 0.12
    t = chunk_within(stats, PERF.predict_stats, 8000, 0, slack)
    assert PERF.predict_stats(stats.with_chunk(t)) <= slack < PERF.predict_stats(stats.with_chunk(t + 1))
    assert chunk_within(stats, PERF.predict_stats, 50, 0, slack) == 50
    assert chunk_within(stats, PERF.predict_stats, 8000, 0, 0.0) == 0


def test_the_chunked_lp_keeps_its_decodes_within_the_tbt_and_serves_any_prompt_length() -> None:
    s = LowPriorityScheduler(BlockManager(20_000), PRED, 1.0, margin=0.7, chunk_tbt=TBT)
    assert s.whole_prefill_budget is None  # chunked: no prompt is too long for the token budget
    now = 5.0
    for i in range(60):
        s.running.append(decoding(i, 2000, now - 0.01 * (i % 3), s.blocks))
    long = req(99, now, 9000)
    s.add(long, now)
    assert not s.rejected
    batch = s.schedule(now)
    assert batch.num_decodes == 60 and 0 < batch.num_prefill_tokens < 9000
    guard = PRED.error_bound("mixed")
    assert now + PERF.predict_batch(batch) + guard <= now - 0.02 + TBT
    while long.in_prefill:  # later chunks continue it (it holds KV), until its prefill is done
        s.on_batch_done(batch, now)
        now += 0.05
        batch = s.schedule(now)
        assert (
            now + PERF.predict_batch(batch) + guard <= min(r.token_times[-1] for r in s.running if r.token_times) + TBT
        )
    assert long.num_computed == 9000


def test_the_ticket_looks_at_hp_decode_pressure() -> None:
    s = decode_aware_hp()
    for i in range(40):
        s.running.append(decoding(i, 1500, 0.0, s.blocks))
    assert s.grants_ticket(req(100, 0.0, 200))  # a short prompt fits one iteration beside the decodes
    assert not s.grants_ticket(req(101, 0.0, 4000))  # a long one would stall them past the TBT
    paper = HighPriorityScheduler(BlockManager(20_000), PRED, ttft_slo=1.0)
    paper.running.extend(s.running)
    assert paper.grants_ticket(req(101, 0.0, 4000))  # the paper's ticket does not look


# --- 2. model-derived offload margin ----------------------------------------------------------------------------


def test_the_error_bound_is_the_documented_quantile_of_a_known_residual_set() -> None:
    actual = np.arange(1, 101) * 1e-3  # residuals 1..100 ms over a zero prediction
    assert RESIDUAL_QUANTILE == 0.99
    assert residual_quantile(actual, np.zeros(100)) == pytest.approx(0.09901)  # numpy's linear interpolation
    assert residual_quantile(actual, actual) == 0.0


def test_the_fit_stores_the_held_out_quantile_and_the_shipped_models_carry_it() -> None:
    log = synthetic_log("tiny", GPU, cost_model_time_fn("tiny", GPU, 1), per_kind=60, seed=3)
    perf, report = fit(log, seed=0)
    held = report.predictions[report.predictions["split"].isin(["validation", "test"])]
    for kind, stored in perf.meta["fit"]["residual_ms"].items():
        rows: pd.DataFrame = held[held["kind"] == kind]
        expected = np.quantile(rows["actual_s"] - rows["predicted_s"], RESIDUAL_QUANTILE) * 1e3
        assert stored == pytest.approx(expected)
    assert PERF.meta["fit"]["residual_quantile"] == RESIDUAL_QUANTILE
    assert set(PERF.meta["fit"]["residual_ms"]) == {"prefill", "decode", "mixed"}


def _ascendra(lows: int = 1, highs: int = 1, blocks: int = 20_000, **kw) -> AscendraController:
    low = [
        Instance(f"lp{i}", LowPriorityScheduler(BlockManager(blocks), PRED, 1.0, margin=0.7), lambda b: 0.01)
        for i in range(lows)
    ]
    high = [
        Instance(f"hp{i}", HighPriorityScheduler(BlockManager(blocks), PRED, 1.0), lambda b: 0.01) for i in range(highs)
    ]
    return AscendraController(low, high, PRED, **kw)


def test_the_margin_is_the_error_bound_plus_the_lp_batch_plus_the_least_loaded_hp_drain() -> None:
    c = _ascendra(highs=2, auto_margin=True)
    busy, idle = c.high
    for i, prompt in enumerate((1000, 2000)):
        busy.scheduler.add(req(i, 0.0, prompt), 0.0)
    idle.scheduler.add(req(5, 0.0, 300), 0.0)
    drains = [PRED.prefill_time(r) for r in (*busy.scheduler.waiting,)], PRED.prefill_time(req(5, 0.0, 300))
    assert c.drain_time(busy) == pytest.approx(sum(drains[0]))
    assert c.drain_time(idle) == pytest.approx(drains[1])
    error = PERF.meta["fit"]["residual_ms"]["prefill"] * 1e-3
    assert c.margin(0.05) == pytest.approx(error + 0.05 + drains[1])
    batch = Batch()
    batch.add(req(7, 0.0, 400), 400, True)
    idle.batch = batch  # a batch in flight counts at its predicted time
    assert c.drain_time(idle) == pytest.approx(PERF.predict_batch(batch) + drains[1])


def test_auto_margin_offloads_what_the_margin_says_and_a_prompt_blocked_by_tbt_admission() -> None:
    c = _ascendra(auto_margin=True)
    lp = c.low[0].scheduler
    lp.tbt_budget = TBT
    for i in range(100):
        lp.running.append(decoding(i, 1000, 0.0, lp.blocks))
    fresh, blocked, late = req(200, 0.95, 100), req(201, 0.95, 3000), req(202, 0.0, 100)
    for r in (fresh, blocked, late):
        lp.add(r, 0.95)
    moves = c.moves_after(c.low[0], Batch(), 1.0)
    moved = {m.request.id for m in moves}
    assert moved == {201, 202}  # late: its TTFT is at risk; blocked: it cannot join the decodes within the TBT
    assert [r.id for r in lp.waiting] == [200]


# --- 3. migration ---------------------------------------------------------------------------------------------


def _pair(link: str = "1") -> tuple[Instance, Instance, Migrator]:
    def node(name: str) -> Instance:
        return Instance(name, MigratingLowPriorityScheduler(BlockManager(2000), PRED, 1.0, margin=0.7), lambda b: 0.03)

    return node("a"), node("b"), Migrator(kv_move_time(get_link(link), get_model(MODEL), 1))


def test_migration_charges_each_stage_by_the_link_model() -> None:
    source, target, migrator = _pair("1")
    move_time = migrator.move_time
    r = decoding(0, 2000, 0.0, source.scheduler.blocks)
    source.scheduler.running.append(r)
    moves: list[Move] = []
    migrator.start_migration(r, source, target, 0.0, source, Batch(), moves)
    m = migrator._active[0]
    assert m.stages == 1 and m.copied == (125 - 1) * 16  # every block but the last one being written
    assert m.due == pytest.approx(move_time(m.copied))  # the first stage: its tokens over the link
    assert target.scheduler.incoming == [r]  # the destination pre-allocated them
    for step in range(1, 40):  # the source keeps decoding while the copy proceeds
        now = step * 0.03
        source.scheduler.blocks.grow(r, r.num_computed + 1)
        r.num_computed += 1
        r.token_times.append(now)
        copied, due = m.copied, m.due
        migrator.advance_migrations(source, Batch(), now, moves)
        if moves:
            break
        if m.stages > 1 and m.copied != copied:  # a later stage: what was written since, over the link
            assert m.due == pytest.approx(now + move_time(m.copied - copied)) and now >= due
    (move,) = moves
    assert move.source is source and move.target is target and move.kv_tokens == r.num_computed
    assert move.precopy is not None and move.precopy.tokens == m.copied and move.precopy.stages == m.stages
    assert move.sent_tokens == r.num_computed - m.copied <= 16 * 16  # the final stop-and-copy: the rest only
    assert migrator.stats["migrated"] == 1 and not source.scheduler.blocks.holds(r)


def test_an_aborted_migration_hands_the_instances_it_gave_work_to_to_be_woken() -> None:
    # The last stage of a request in its source's batch: it sits out the source's next batch, then the destination
    # has no room: it runs at its source again, which may have scheduled nothing (idle): it must be woken.
    source, target, migrator = _pair()
    r = decoding(0, 100, 0.0, source.scheduler.blocks)
    source.scheduler.running.append(r)
    batch = Batch()
    batch.add_decode(r, r.num_computed)
    moves: list[Move] = []
    migrator.start_migration(r, source, target, 0.0, source, batch, moves)
    assert source.scheduler.leaving == [r] and not moves
    target.scheduler.blocks.grow(req(1, 0.0, 1), 2000 * 16)  # the destination fills up meanwhile
    migrator.advance_migrations(source, Batch(), 0.03, moves)
    assert not moves and migrator.aborts == [(0, "destination full", 0)]
    assert source.scheduler.running == [r] and not source.scheduler.leaving
    assert migrator.take_woken() == [source] and migrator.take_woken() == []
    # A pre-copy stage's blocks freed by an abort while requests wait at the destination: it is woken too.
    source, target, migrator = _pair()
    r = decoding(0, 2000, 0.0, source.scheduler.blocks)
    source.scheduler.running.append(r)
    migrator.start_migration(r, source, target, 0.0, source, Batch(), moves)
    assert target.scheduler.blocks.holds(r)
    target.scheduler.add(req(2, 0.0, 100), 0.0)
    r.finish_time = 0.01
    migrator.advance_migrations(source, Batch(), 0.03, moves)
    assert migrator.aborts == [(0, "finished", 1)] and not target.scheduler.blocks.holds(r)
    assert migrator.take_woken() == [target]


def _rebalanced(lp_decodes: int, hp_decodes: int, hp_waiting: int) -> tuple[AscendraController, Rebalancer]:
    blocks = 20_000
    low = [Instance("lp0", MigratingLowPriorityScheduler(BlockManager(blocks), PRED, 1.0, margin=0.7), lambda b: 0.03)]
    hp_policy = MigratingHighPriorityScheduler(BlockManager(blocks), PRED, 1.0, max_num_seqs=512)
    high = [Instance("hp0", hp_policy, lambda b: 0.03)]
    rebalancer = Rebalancer(Migrator(kv_move_time(get_link("nvlink"), get_model(MODEL), 1)), PRED, TBT)
    for i in range(lp_decodes):
        low[0].scheduler.running.append(decoding(i, 1000, 0.0, low[0].scheduler.blocks))
    for i in range(hp_decodes):
        high[0].scheduler.running.append(decoding(100 + i, 100 + 50 * i, 0.0, hp_policy.blocks))
    for i in range(hp_waiting):
        hp_policy.add(req(900 + i, 0.0, 500), 0.0)
    return AscendraController(low, high, PRED, rebalancer=rebalancer), rebalancer


def test_an_overloaded_hp_sheds_its_decodes_to_the_lp_shortest_first() -> None:
    c, rebalancer = _rebalanced(lp_decodes=10, hp_decodes=5, hp_waiting=1)
    moves = c.moves_after(c.high[0], Batch(), 0.0)
    # Short caches (at most 16 blocks) move at once, the longest starts its pre-copy.
    assert [(m.request.id, m.target.name, m.sent_tokens) for m in moves] == [
        (100 + i, "lp0", 100 + 50 * i) for i in range(4)
    ]
    assert [(m.request.id, m.target.name) for m in rebalancer.migrator._active] == [(104, "lp0")]
    quiet, rebalancer = _rebalanced(lp_decodes=10, hp_decodes=5, hp_waiting=0)
    quiet.moves_after(quiet.high[0], Batch(), 0.0)
    assert not rebalancer.migrator._active  # nothing waits there: the HP keeps its decodes


def test_an_lp_whose_decodes_alone_break_the_tbt_moves_one_to_the_hp() -> None:
    c, rebalancer = _rebalanced(lp_decodes=128, hp_decodes=0, hp_waiting=0)
    lp = c.low[0]
    lp.scheduler.max_num_seqs = 10_000
    for i in range(2000):  # long contexts until a decode-only iteration is predicted past the budget
        if rebalancer.at_risk(lp):
            break
        lp.scheduler.running.append(decoding(1000 + i, 4000, 0.0, BlockManager(10_000)))
    assert decode_time(PRED, lp.scheduler.running) > TBT - PRED.error_bound("decode")
    c.moves_after(lp, Batch(), 0.0)
    (m,) = rebalancer.migrator._active
    assert m.source is lp and m.target is c.high[0] and m.request.num_computed == 1000  # LP -> HP, the least KV


# --- 4. adaptive partition ------------------------------------------------------------------------------------


def _partitioned(blocks: int = 5000) -> tuple[AscendraController, AdaptivePartition]:
    def low_policy(b: BlockManager) -> LowPriorityScheduler:
        return LowPriorityScheduler(b, PRED, 1.0, margin=0.7)

    def high_policy(b: BlockManager) -> HighPriorityScheduler:
        return HighPriorityScheduler(b, PRED, 1.0, decode_tbt=TBT)

    def cost(batch: Batch) -> float:
        return PERF.predict_batch(batch)

    low = [Instance(f"lp{i}", low_policy(BlockManager(blocks)), cost) for i in range(2)]
    high = [Instance("hp0", high_policy(BlockManager(blocks)), cost)]
    c = AscendraController(low, high, PRED)
    c.partition = AdaptivePartition(c.low, c.high, low_policy, high_policy, c.drain_time, 1.0, low_budget=8192)
    return c, c.partition


def test_a_switch_keeps_every_request_and_an_hp_leaves_only_once_drained() -> None:
    c, part = _partitioned()
    hp = c.high[0]
    mid = req(0, 0.0, 5000)
    hp.scheduler.add(mid, 0.0)
    hp.scheduler.add(req(1, 0.0, 100), 0.0)
    hp.scheduler.running.append(decoding(2, 700, 0.0, hp.scheduler.blocks))
    hp.scheduler.schedule(0.0)  # chunks the 5000-token prompt: it is mid-prefill now
    assert mid.in_prefill and mid.num_computed == 0 and any(r is mid for r in hp.scheduler.running)
    c.high.append(c.low.pop())  # a second HP, so one may leave
    part.pending.append(Switch(hp, to_high=False))
    c.high.remove(hp)
    held = {id(r) for r in [*hp.scheduler.running, *hp.scheduler.waiting]}
    part.step(hp, True, 0.0, lambda node: False)
    assert isinstance(hp.scheduler, HighPriorityScheduler) and part.pending  # not drained: it stays HP
    assert not any(hp is i for i in c.high + c.low)  # ... but takes nothing new meanwhile
    hp.scheduler.waiting.clear()
    hp.scheduler.running = [r for r in hp.scheduler.running if not r.in_prefill]
    part.step(hp, True, 1.0, lambda node: False)
    assert isinstance(hp.scheduler, LowPriorityScheduler) and hp in c.low and not part.pending
    assert {id(r) for r in hp.scheduler.running} <= held and hp.scheduler.running


def test_swap_policy_takes_over_the_queues_and_the_pool() -> None:
    node = Instance("x", LowPriorityScheduler(BlockManager(100), PRED, 1.0, margin=0.7), lambda b: 0.01)
    old = node.scheduler
    old.add(req(0, 0.0, 10), 0.0)
    old.running.append(decoding(1, 20, 0.0, old.blocks))
    swap_policy(node, lambda b: HighPriorityScheduler(b, PRED, 1.0))
    new = node.scheduler
    assert isinstance(new, HighPriorityScheduler) and new.blocks is old.blocks
    assert [r.id for r in new.waiting] == [0] and [r.id for r in new.running] == [1]


def test_role_switches_under_load_never_strand_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    import ascendra.partition as partition

    monkeypatch.setattr(partition, "DWELL", 0.5)
    monkeypatch.setattr(partition, "SUSTAIN", 1)
    monkeypatch.setattr(partition, "GROW", 0.05)
    c, part = _partitioned(blocks=3000)
    nodes = [*c.low, *c.high]
    # A burst of long prompts (the HP backlog grows: an LP becomes HP), then a stream of short ones.
    specs = [RequestSpec(i, 0.01 * i, 2500 + 37 * i % 900, 20 + i % 30) for i in range(60)]
    specs += [RequestSpec(60 + i, 1.0 + 0.02 * i, 50 + i % 200, 10 + i % 40) for i in range(150)]
    result = Cluster(nodes, c).run(specs)
    assert part.log, "no role switch happened"
    assert all(r.finished and len(r.token_times) == r.output_len for r in result.requests)
    assert all(not n.scheduler.has_work() for n in nodes)
    assert len(c.low) + len(c.high) + len(part.pending) == 3
