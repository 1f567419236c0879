"""Hand-built cases for the Sarathi-Serve policy: chunk sizes, batch order, never-stalled decodes, preemption."""

from __future__ import annotations

import pytest

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.kv_cache import BlockManager
from ascendra.request import Request, RequestSpec
from baselines.sarathi import SarathiScheduler


def req(request_id: int, prompt: int, output: int, arrival: float = 0.0) -> Request:
    return Request(RequestSpec(request_id, arrival, prompt, output))


def shape(batch: Batch) -> list[tuple[int, int, bool]]:
    return [(item.request.id, item.num_tokens, item.is_prefill) for item in batch.items]


def test_a_long_prompt_is_split_into_budget_sized_chunks() -> None:
    s = SarathiScheduler(BlockManager(200, 16), chunk_size=512)
    a = req(0, 1200, 2)
    s.add(a, 0.0)
    chunks = []
    contexts = []
    now = 0.0
    while a.in_prefill:
        batch = s.schedule(now)
        chunks += [item.num_tokens for item in batch.items]
        contexts += [item.context for item in batch.items]
        now += 1.0
        s.on_batch_done(batch, now)
    assert chunks == [512, 512, 176]
    assert contexts == [0, 512, 1024]
    assert a.token_times.tolist() == [3.0]  # only the chunk that completes the prompt emits a token


def test_batch_order_is_decodes_then_partial_prefills_then_new_requests() -> None:
    s = SarathiScheduler(BlockManager(200, 16), chunk_size=512)
    s.add(req(0, 300, 5), 0.0)
    s.add(req(1, 400, 5), 0.0)
    batch = s.schedule(0.0)
    assert shape(batch) == [(0, 300, True), (1, 212, True)]
    s.on_batch_done(batch, 1.0)
    s.add(req(2, 1000, 5, arrival=1.0), 1.0)
    batch = s.schedule(1.0)
    # 1 decode, the rest of request 1 (188), then a 323-token first chunk of the new request 2.
    assert shape(batch) == [(0, 1, False), (1, 188, True), (2, 323, True)]
    assert batch.kind == "mixed"
    assert batch.num_tokens == 512


def test_admission_is_fcfs_and_stops_at_the_first_misfit() -> None:
    """Request 1 needs more free blocks than there are: request 2 behind it is not admitted either."""
    s = SarathiScheduler(BlockManager(10, 4), chunk_size=100)
    s.add(req(0, 20, 5), 0.0)  # 5 blocks
    s.add(req(1, 24, 3), 0.0)  # 6 blocks > 5 left
    s.add(req(2, 4, 3), 0.0)  # 1 block, but behind the head
    batch = s.schedule(0.0)
    assert shape(batch) == [(0, 20, True)]
    assert [r.id for r in s.waiting] == [1, 2]


def test_decodes_filling_the_budget_still_all_run_and_block_admission() -> None:
    """chunk_size 3 with 3 running decodes: every decode runs, the waiting request gets no chunk."""
    s = SarathiScheduler(BlockManager(100, 4), chunk_size=3, max_num_seqs=8)
    for i in range(3):
        s.add(req(i, 1, 4), 0.0)
    s.on_batch_done(s.schedule(0.0), 1.0)
    s.add(req(3, 10, 2, arrival=1.0), 1.0)
    batch = s.schedule(1.0)
    assert shape(batch) == [(0, 1, False), (1, 1, False), (2, 1, False)]
    assert s.num_waiting == 1


def test_running_never_exceeds_the_chunk_size() -> None:
    """Admission needs a token of budget per request after every decode and partial prefill got theirs, so at
    most chunk_size requests ever run and decodes alone can never overflow the budget."""
    s = SarathiScheduler(BlockManager(1000, 4), chunk_size=4, max_num_seqs=64)
    for i in range(20):
        s.add(req(i, 1 + i % 3, 5), 0.0)
    now = 0.0
    while s.has_work():
        batch = s.schedule(now)
        assert s.num_running <= 4 and batch.num_tokens <= 4
        now += 1.0
        s.on_batch_done(batch, now)


def test_sequence_cap_counts_partial_prefills() -> None:
    s = SarathiScheduler(BlockManager(100, 4), chunk_size=100, max_num_seqs=2)
    for i in range(3):
        s.add(req(i, 10, 3), 0.0)
    batch = s.schedule(0.0)
    assert [item.request.id for item in batch.items] == [0, 1]
    assert s.num_waiting == 1


def test_decode_pressure_preempts_the_newest_even_mid_prefill() -> None:
    """Request 0 decodes and needs a new block while request 1 (newer) is mid-prefill holding the rest: request
    1 is preempted, its KV freed and its progress discarded; it restarts from scratch at the queue's front."""
    blocks = BlockManager(4, 4)
    s = SarathiScheduler(blocks, chunk_size=6)
    a, b = req(0, 4, 3), req(1, 12, 2)
    s.add(a, 0.0)
    s.add(b, 0.0)
    batch = s.schedule(0.0)
    assert shape(batch) == [(0, 4, True), (1, 2, True)]  # b reserved 3 blocks for its whole prompt
    s.on_batch_done(batch, 1.0)
    assert blocks.num_free == 0 and b.num_computed == 2
    batch = s.schedule(1.0)
    # a writes slot 5 -> needs a 2nd block -> b (newest) is preempted, freeing 3; a takes one, and b cannot be
    # readmitted in the same iteration: 2 free < 3 needed for its whole prompt, so it waits at the front.
    assert shape(batch) == [(0, 1, False)]
    assert b.preemptions == 1 and b.num_computed == 0 and b.prefill_target == 12
    assert list(s.waiting) == [b]
    now = 2.0
    while s.has_work():
        s.on_batch_done(batch, now)
        batch = s.schedule(now)
        now += 1.0
    assert a.finished and b.finished and len(b.token_times) == 2
    assert blocks.num_free == 4


def test_rejects_only_what_the_pool_can_never_hold() -> None:
    s = SarathiScheduler(BlockManager(10, 4), chunk_size=8)
    long_prompt = req(0, 35, 6)  # 40 slots at its longest: fits the pool, chunked over several iterations
    too_big = req(1, 35, 7)  # 41 slots
    s.add(long_prompt, 0.0)
    s.add(too_big, 0.0)
    assert s.rejected == [too_big] and too_big.dropped
    now = 0.0
    while s.has_work():
        s.on_batch_done(s.schedule(now), now + 1.0)
        now += 1.0
    assert long_prompt.finished and len(long_prompt.token_times) == 6


def test_bad_chunk_size_is_a_user_error() -> None:
    with pytest.raises(UserError):
        SarathiScheduler(BlockManager(4), chunk_size=0)
