"""Hand-built cases for the vLLM policy: prefill-first, FCFS head-of-line blocking, preempt-newest, rejection."""

from __future__ import annotations

import pytest

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.kv_cache import BlockManager
from ascendra.request import Request, RequestSpec
from baselines.vllm import VllmScheduler


def req(request_id: int, prompt: int, output: int, arrival: float = 0.0) -> Request:
    return Request(RequestSpec(request_id, arrival, prompt, output))


def shape(batch: Batch) -> list[tuple[int, int, bool]]:
    return [(item.request.id, item.num_tokens, item.is_prefill) for item in batch.items]


def test_prefill_batch_of_whole_prompts_stops_at_first_misfit() -> None:
    """Budget 100: 40 fits, 70 does not; the 10 behind it is not skipped (FCFS head-of-line blocking)."""
    s = VllmScheduler(BlockManager(100, 4), max_num_seqs=8, max_num_batched_tokens=100)
    for i, prompt in enumerate((40, 70, 10)):
        s.add(req(i, prompt, 3), 0.0)
    batch = s.schedule(0.0)
    assert shape(batch) == [(0, 40, True)]
    assert batch.kind == "prefill"
    assert s.num_waiting == 2 and s.num_running == 1
    assert s.on_batch_done(batch, 1.0) == []
    # Prefill-first: the waiting 70 and 10 now fit together, so request 0 does not decode this iteration.
    batch = s.schedule(1.0)
    assert shape(batch) == [(1, 70, True), (2, 10, True)]
    s.on_batch_done(batch, 2.0)
    batch = s.schedule(2.0)
    assert shape(batch) == [(0, 1, False), (1, 1, False), (2, 1, False)]
    assert [item.context for item in batch.items] == [40, 70, 10]


def test_new_arrival_preempts_decodes_with_a_prefill_only_batch() -> None:
    s = VllmScheduler(BlockManager(100, 4), max_num_batched_tokens=100)
    a = req(0, 8, 5)
    s.add(a, 0.0)
    s.on_batch_done(s.schedule(0.0), 1.0)
    s.on_batch_done(s.schedule(1.0), 2.0)
    assert a.token_times.tolist() == [1.0, 2.0]
    s.add(req(1, 20, 2, arrival=2.0), 2.0)
    batch = s.schedule(2.0)
    assert shape(batch) == [(1, 20, True)]  # request 0's decode waits: the TBT stall vLLM is known for


def test_sequence_cap_limits_admission() -> None:
    s = VllmScheduler(BlockManager(100, 4), max_num_seqs=2, max_num_batched_tokens=1000)
    for i in range(3):
        s.add(req(i, 10, 3), 0.0)
    batch = s.schedule(0.0)
    assert [item.request.id for item in batch.items] == [0, 1]
    s.on_batch_done(batch, 1.0)
    # Two running = the cap: the third waits and the iteration decodes.
    assert s.schedule(1.0).kind == "decode"


def test_kv_head_of_line_blocking_falls_back_to_decodes() -> None:
    """The head needs more blocks than are free: no prefill, and the smaller request behind it is not taken."""
    s = VllmScheduler(BlockManager(10, 4), max_num_batched_tokens=1000)
    s.add(req(0, 24, 10), 0.0)  # 6 blocks
    s.on_batch_done(s.schedule(0.0), 1.0)
    s.add(req(1, 20, 3), 1.0)  # 5 blocks > 4 free
    s.add(req(2, 4, 3), 1.0)  # 1 block would fit, but it is behind the head
    batch = s.schedule(1.0)
    assert shape(batch) == [(0, 1, False)]
    assert s.num_waiting == 2


def test_admission_reserves_the_whole_prompt_and_decodes_grow_by_slots() -> None:
    blocks = BlockManager(10, 4)
    s = VllmScheduler(blocks, max_num_batched_tokens=100)
    a = req(0, 8, 3)
    s.add(a, 0.0)
    s.on_batch_done(s.schedule(0.0), 1.0)
    assert len(blocks.block_table(0)) == 2
    s.schedule(1.0)  # decode writes slot 9: a third block
    assert len(blocks.block_table(0)) == 3


def test_decode_pressure_preempts_the_newest_running_request() -> None:
    """Three requests of 8 tokens fill 6 of 6 blocks (size 4); the first decode needs a new block, so the newest
    (request 2) is preempted: KV freed, front of the queue, recompute target = prompt + generated."""
    blocks = BlockManager(6, 4)
    s = VllmScheduler(blocks, max_num_batched_tokens=100)
    reqs = [req(i, 8, 4) for i in range(3)]
    for r in reqs:
        s.add(r, 0.0)
    s.on_batch_done(s.schedule(0.0), 1.0)
    assert blocks.num_free == 0
    s.add(req(3, 4, 2, arrival=1.0), 1.0)  # a later arrival queued behind: the victim must go in front of it
    batch = s.schedule(1.0)
    victim = reqs[2]
    assert victim.preemptions == 1
    assert not blocks.holds(victim)
    assert victim.num_computed == 0 and victim.prefill_target == 8 + 1
    assert [r.id for r in s.waiting] == [2, 3]
    assert [r.id for r in s.running] == [0, 1]
    # Request 0 took one freed block, request 1 the other.
    assert shape(batch) == [(0, 1, False), (1, 1, False)]
    # Run on: the victim is recomputed in one prefill of prompt + generated = 9 tokens that emits its 2nd token.
    now = 2.0
    recomputes = []
    while s.has_work():
        s.on_batch_done(batch, now)
        batch = s.schedule(now)
        recomputes += [item.num_tokens for item in batch.items if item.request is victim and item.is_prefill]
        now += 1.0
    assert recomputes == [9]
    assert len(victim.token_times) == 4
    assert blocks.num_free == 6


def test_several_preemptions_put_the_oldest_victim_first() -> None:
    """One block each, block size 2: the oldest request's decode needs a second block; none is free, so the
    newest (3), then the next newest (2) are preempted... until it fits. Oldest victim ends at the front."""
    blocks = BlockManager(4, 2)
    s = VllmScheduler(blocks, max_num_batched_tokens=100)
    reqs = [req(i, 2, 4) for i in range(4)]
    for r in reqs:
        s.add(r, 0.0)
    s.on_batch_done(s.schedule(0.0), 1.0)
    assert blocks.num_free == 0
    batch = s.schedule(1.0)
    # Request 0 takes request 3's block; request 1 takes request 2's block; 0 and 1 decode.
    assert shape(batch) == [(0, 1, False), (1, 1, False)]
    assert [r.id for r in s.waiting] == [2, 3]
    assert [r.preemptions for r in reqs] == [0, 0, 1, 1]


def test_the_newest_request_that_cannot_grow_preempts_itself() -> None:
    """The victim search reaches the request being decoded (the newest): it is preempted, older ones decode."""
    blocks = BlockManager(3, 2)
    s = VllmScheduler(blocks, max_num_batched_tokens=100)
    old, new = req(0, 3, 3), req(1, 2, 3)
    s.add(old, 0.0)
    s.add(new, 0.0)
    s.on_batch_done(s.schedule(0.0), 1.0)
    assert blocks.num_free == 0
    # old writes slot 4 (its 2nd block has room); new writes slot 3 and needs a 2nd block: none is free.
    batch = s.schedule(1.0)
    assert shape(batch) == [(0, 1, False)]
    assert new.preemptions == 1 and old.preemptions == 0
    assert list(s.waiting) == [new] and s.running == [old]


def test_rejects_prompts_over_the_budget_and_over_the_pool() -> None:
    s = VllmScheduler(BlockManager(10, 4), max_num_batched_tokens=64)
    too_long = req(0, 65, 1)
    recompute_too_long = req(1, 60, 6)  # a recompute after 5 tokens would prefill 65 > 64
    too_big_for_kv = req(2, 30, 20)  # 49 slots at its longest > 40
    ok = req(3, 30, 5)  # at most 34 slots
    for r in (too_long, recompute_too_long, too_big_for_kv, ok):
        s.add(r, 0.0)
    rejected = s.drain_rejected()  # as the runtime does after each schedule
    assert rejected == [too_long, recompute_too_long, too_big_for_kv] and s.drain_rejected() == []
    assert all(r.dropped for r in rejected)
    assert list(s.waiting) == [ok] and not ok.dropped
    while s.has_work():
        s.on_batch_done(s.schedule(0.0), 1.0)
    assert ok.finished


def test_idle_scheduler_returns_an_empty_batch() -> None:
    s = VllmScheduler(BlockManager(4, 4))
    assert not s.schedule(0.0)
    assert not s.has_work()


def test_bad_parameters_are_user_errors() -> None:
    with pytest.raises(UserError):
        VllmScheduler(BlockManager(4), max_num_batched_tokens=0)
    with pytest.raises(UserError):
        VllmScheduler(BlockManager(4), max_num_seqs=0)
