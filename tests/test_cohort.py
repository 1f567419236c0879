"""Decode cohorts (``ascendra.cohort``): a member follows the cohort's clock and keeps exactly what it computed
and emitted when it leaves; members finish in running order; a policy's cohort batch is the one-by-one batch."""

from __future__ import annotations

import pytest

from ascendra.batch import Batch
from ascendra.cohort import Cohort
from ascendra.kv_cache import BlockManager
from ascendra.request import CohortMember, Request, RequestSpec
from baselines.sarathi import SarathiScheduler


def _decoding(request_id: int, prompt: int, output: int, generated: int, first_token: float = 0.5) -> Request:
    """A request past its prefill: ``prompt + generated - 1`` tokens cached, ``generated`` tokens emitted."""
    request = Request(RequestSpec(request_id, 0.0, prompt, output))
    request.num_computed = prompt + generated - 1
    request.own_token_times.extend(first_token + 0.1 * i for i in range(generated))
    return request


def test_a_member_follows_the_clock_and_keeps_what_it_emitted_when_it_leaves() -> None:
    cohort = Cohort(block_size=16)
    cohort.tick(1.0)  # a tick before it joins is not its own
    request = _decoding(0, prompt=10, output=8, generated=1)
    cohort.join(request, key=0)
    assert type(request) is CohortMember and request.cohort is cohort
    cohort.tick(2.0)
    cohort.tick(3.0)
    assert request.num_computed == 12
    assert request.num_generated == 3
    assert request.token_times.tolist() == [0.5, 2.0, 3.0]
    with pytest.raises(RuntimeError):
        request.num_computed = 0
    cohort.tick(4.0)
    request.leave_cohort(at=3)  # tick 3 ended at 3.0: the one at 4.0 is not kept
    assert type(request) is Request and request.cohort is None
    assert (request.num_computed, request.token_times.tolist()) == (12, [0.5, 2.0, 3.0])


def test_members_finish_at_their_last_token_in_running_order() -> None:
    cohort = Cohort(block_size=16)
    late = _decoding(1, prompt=20, output=3, generated=1)  # two more tokens
    early = _decoding(2, prompt=20, output=2, generated=1)  # one more
    also = _decoding(3, prompt=30, output=3, generated=1)
    for key, request in ((2, also), (0, late), (1, early)):
        cohort.join(request, key)
    assert cohort.members == [late, early, also]
    assert cohort.kv == 20 + 20 + 30
    assert cohort.tick(1.0) == [early]
    assert early.finish_time == 1.0 and early.token_times.tolist() == [0.5, 1.0] and early.num_computed == 21
    assert cohort.tick(2.0) == [late, also]
    assert len(cohort) == 0 and cohort.kv == 0 and not cohort.finishing and not cohort.leaving


def test_advance_is_ticks_one_by_one() -> None:
    def run(advance: bool) -> list[tuple[object, ...]]:
        cohort = Cohort(block_size=4)
        requests = [_decoding(i, prompt=5 + i, output=2 + 2 * i, generated=1) for i in range(4)]
        for key, request in enumerate(requests):
            cohort.join(request, key)
        ends = [1.0, 2.0, 3.0, 4.0, 5.0]
        finished = cohort.advance(ends) if advance else [r for end in ends for r in cohort.tick(end)]
        return [(r.id, r.finish_time, r.token_times, r.num_computed) for r in finished + cohort.members]

    assert run(advance=True) == run(advance=False)


def _sarathi(cohorts: bool) -> SarathiScheduler:
    """Running: decodes at and off a block boundary, one request mid-prefill; one block left in the pool."""
    blocks = BlockManager(num_blocks=9, block_size=16)
    policy = SarathiScheduler(blocks, chunk_size=64)
    policy.use_cohorts(cohorts)
    for request, reserve in (
        (_decoding(0, prompt=16, output=50, generated=1), 16),  # 16 cached: its next slot starts a block
        (_decoding(1, prompt=20, output=50, generated=3), 22),
        (Request(RequestSpec(2, 0.0, 40, 5)), 40),  # in prefill
        (_decoding(3, prompt=32, output=50, generated=1), 32),  # at a boundary: no block left for it
    ):
        blocks.grow(request, reserve)
        policy.running.append(request)
    return policy


def test_a_cohort_batch_is_the_one_by_one_batch_even_when_a_decode_preempts() -> None:
    batches = []
    for cohorts in (False, True):
        policy = _sarathi(cohorts)
        batch = policy.schedule(0.0)
        batches.append(
            (
                batch.composition(),
                [r.id for r in batch.requests()],
                [r.id for r in policy.running],
                [r.id for r in policy.waiting],
                list(policy.blocks._free),  # type: ignore[attr-defined]
            )
        )
    assert batches[0] == batches[1]
    assert batches[0][3] == [3]  # the newest running request was preempted for want of a block


def test_a_cohort_batch_refuses_decodes_added_one_by_one() -> None:
    cohort = Cohort(block_size=16)
    batch = Batch()
    batch.take_cohort(cohort)
    with pytest.raises(ValueError):
        batch.add_decode(_decoding(0, 8, 4, 1), 8)
