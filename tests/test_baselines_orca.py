"""Hand-built cases for Orca: no token budget, decodes and whole prompts in one batch, KV reserved up front."""

from __future__ import annotations

from ascendra.batch import Batch
from ascendra.kv_cache import BlockManager
from ascendra.request import Request, RequestSpec
from baselines.orca import OrcaScheduler


def req(request_id: int, prompt: int, output: int) -> Request:
    return Request(RequestSpec(request_id, 0.0, prompt, output))


def shape(batch: Batch) -> list[tuple[int, int, bool]]:
    return [(item.request.id, item.num_tokens, item.is_prefill) for item in batch.items]


def test_whole_prompts_are_admitted_without_a_token_budget() -> None:
    """Three 6,000-token prompts (18,000 tokens, over any vLLM budget) start in one iteration."""
    s = OrcaScheduler(BlockManager(2000, 16), max_num_seqs=8)
    for i in range(3):
        s.add(req(i, 6000, 4), 0.0)
    batch = s.schedule(0.0)
    assert shape(batch) == [(0, 6000, True), (1, 6000, True), (2, 6000, True)]
    assert batch.num_tokens == 18000


def test_running_requests_decode_in_the_same_batch_as_new_prompts() -> None:
    s = OrcaScheduler(BlockManager(100, 4), max_num_seqs=8)
    s.add(req(0, 10, 3), 0.0)
    s.on_batch_done(s.schedule(0.0), 1.0)
    s.add(req(1, 20, 3), 1.0)
    batch = s.schedule(1.0)
    assert shape(batch) == [(0, 1, False), (1, 20, True)]
    assert batch.kind == "mixed"


def test_kv_is_reserved_at_admission_so_decodes_never_preempt() -> None:
    """A pool of 10 blocks of 4 slots holds two reservations of 5 blocks (prompt 8 + output 13 - 1 = 20 slots):
    the third request waits (FCFS, no skipping) and the first two decode to the end without a preemption."""
    s = OrcaScheduler(BlockManager(10, 4), max_num_seqs=8)
    for i in range(3):
        s.add(req(i, 8, 13), 0.0)
    batch = s.schedule(0.0)
    assert shape(batch) == [(0, 8, True), (1, 8, True)]
    assert s.blocks.num_free == 0 and s.num_waiting == 1
    now, finished = 0.0, []
    while len(finished) < 2:
        now += 1.0
        finished += s.on_batch_done(batch, now)
        batch = s.schedule(now)
    assert s.num_preemptions == 0
    assert shape(batch) == [(2, 8, True)]  # admitted once the first two freed their reservations


def test_sequence_cap_and_model_length_reservation() -> None:
    s = OrcaScheduler(BlockManager(64, 16), max_num_seqs=2, max_model_len=256)
    for i in range(4):
        s.add(req(i, 10, 5), 0.0)
    batch = s.schedule(0.0)
    assert shape(batch) == [(0, 10, True), (1, 10, True)]  # the cap, not the pool, stops admission
    assert s.blocks.num_free == 64 - 2 * 16  # 256 slots reserved per request


def test_a_request_whose_reservation_exceeds_the_pool_is_rejected() -> None:
    s = OrcaScheduler(BlockManager(8, 16), max_model_len=256)
    s.add(req(0, 10, 5), 0.0)
    assert [r.id for r in s.drain_rejected()] == [0]
