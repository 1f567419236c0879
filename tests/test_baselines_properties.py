"""Property tests: both baseline policies on random workloads, driven by a tiny fixed-cost loop written here.

The loop is independent of the simulator: each batch takes 0.01 s + 1e-5 s per token, requests are added when
the clock passes their arrival, and an idle scheduler jumps to the next arrival. After every ``schedule`` the
invariants of the KV pool, the batch and the policy are checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import event, given, settings
from hypothesis import strategies as st

from ascendra.batch import Batch
from ascendra.kv_cache import BlockManager
from ascendra.policy import BasePolicy
from ascendra.request import Request, RequestSpec
from baselines.sarathi import SarathiScheduler
from baselines.vllm import VllmScheduler


@dataclass(frozen=True)
class Before:
    """The scheduler's state just before ``schedule``: what the policy decided on."""

    waiting: list[Request]
    num_free: int
    num_running: int


Check = Callable[[BasePolicy, Batch, Before], None]


def drive(scheduler: BasePolicy, specs: list[RequestSpec], check: Check) -> tuple[list[Request], list[Request]]:
    """Run every request to completion or rejection; returns (finished in completion order, rejected)."""
    requests = [Request(spec) for spec in specs]
    finished: list[Request] = []
    rejected: list[Request] = []
    now, next_arrival = 0.0, 0
    for _ in range(200_000):
        while next_arrival < len(requests) and requests[next_arrival].arrival <= now:
            scheduler.add(requests[next_arrival], now)
            next_arrival += 1
        rejected += scheduler.drain_rejected()
        if not scheduler.has_work() and next_arrival == len(requests):
            return finished, rejected
        before = Before(list(scheduler.waiting), scheduler.blocks.num_free, scheduler.num_running)
        batch = scheduler.schedule(now)
        if not batch:
            assert not scheduler.running, "running requests but nothing scheduled: a stall"
            now = requests[next_arrival].arrival
            continue
        check(scheduler, batch, before)
        now += 0.01 + 1e-5 * batch.num_tokens
        finished += scheduler.on_batch_done(batch, now)
    raise AssertionError("the workload did not drain: a livelock")


def check_common(scheduler: BasePolicy, batch: Batch) -> None:
    """KV and bookkeeping invariants every policy keeps."""
    blocks = scheduler.blocks
    tables = {r.id: blocks.block_table(r.id) for r in scheduler.running}
    held = [b for t in tables.values() for b in t]
    assert len(held) == len(set(held)) == blocks.num_used, "blocks shared, leaked or held by non-running requests"
    assert all(0 <= b < blocks.num_blocks for b in held)
    assert not any(blocks.holds(r) for r in scheduler.waiting)
    assert len(scheduler.running) <= scheduler.max_num_seqs
    items = [item.request for item in batch.items]
    assert len(items) == len(set(map(id, items))), "a request appears twice in one batch"
    running = set(map(id, scheduler.running))
    for item in batch.items:
        r = item.request
        assert id(r) in running
        assert item.context == r.num_computed and item.num_tokens >= 1
        assert r.first_scheduled is not None
        # The reservation covers every slot the item writes.
        assert len(tables[r.id]) * blocks.block_size >= r.num_computed + item.num_tokens
        if item.is_prefill:
            assert r.num_computed + item.num_tokens <= r.prefill_target
        else:
            assert item.num_tokens == 1 and not r.in_prefill


def check_vllm(scheduler: BasePolicy, batch: Batch, before: Before) -> None:
    assert isinstance(scheduler, VllmScheduler)
    check_common(scheduler, batch)
    assert batch.num_tokens <= scheduler.max_num_batched_tokens
    assert batch.kind in ("prefill", "decode"), "vLLM mixed prefills and decodes"
    if batch.kind == "prefill":
        # Whole prompts, and exactly a prefix of the waiting queue (FCFS, no skipping).
        assert all(item.context == 0 and item.num_tokens == item.request.prefill_target for item in batch.items)
        assert [item.request for item in batch.items] == before.waiting[: len(batch)]
    else:
        # Decode-only only when the head of the queue did not fit; then every running request decodes.
        assert len(batch) == len(scheduler.running)
        if before.waiting:
            head = before.waiting[0]
            assert (
                before.num_running >= scheduler.max_num_seqs
                or scheduler.blocks.blocks_for(head.prefill_target) > before.num_free
            )


def check_sarathi(scheduler: BasePolicy, batch: Batch, before: Before) -> None:
    assert isinstance(scheduler, SarathiScheduler)
    check_common(scheduler, batch)
    assert batch.num_tokens <= scheduler.chunk_size
    decoding = [r for r in scheduler.running if not r.in_prefill]
    decodes = [item.request for item in batch.items if not item.is_prefill]
    assert decodes == decoding, "a running decode was stalled"
    # Order: decodes, then chunks of running partial prefills, then new admissions, which are a prefix of the
    # waiting queue (FCFS). Only the last prefill item may be cut short of its remaining prefill.
    prefills = [item for item in batch.items if item.is_prefill]
    assert batch.items == [item for item in batch.items if not item.is_prefill] + prefills
    waiting = set(map(id, before.waiting))
    is_new = [id(item.request) in waiting for item in prefills]
    assert is_new == sorted(is_new), "a new request went before a partial prefill"
    new = [item.request for item in prefills if id(item.request) in waiting]
    assert new == before.waiting[: len(new)], "admission skipped the head of the queue"
    for item in prefills[:-1]:
        assert item.num_tokens == item.request.remaining_prefill


def check_done(specs: list[RequestSpec], finished: list[Request], rejected: list[Request], blocks: BlockManager):
    """Every request finished exactly once (or was rejected), with output_len strictly increasing token times."""
    ids = [r.id for r in finished] + [r.id for r in rejected]
    assert sorted(ids) == sorted(s.request_id for s in specs)
    for r in finished:
        assert not r.dropped
        assert len(r.token_times) == r.output_len
        assert all(a < b for a, b in zip(r.token_times, r.token_times[1:], strict=False))
        assert r.arrival <= r.first_scheduled < r.token_times[0] and r.finish_time == r.token_times[-1]
    assert all(r.dropped and not r.token_times for r in rejected)
    assert blocks.num_free == blocks.num_blocks, "KV blocks leaked"


@st.composite
def workloads(draw: st.DrawFn, max_prompt: int = 300) -> list[RequestSpec]:
    n = draw(st.integers(1, 25))
    gaps = draw(st.lists(st.floats(0.0, 0.05), min_size=n, max_size=n))
    prompts = draw(st.lists(st.integers(1, max_prompt), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, 40), min_size=n, max_size=n))
    specs, t = [], 0.0
    for i in range(n):
        t += gaps[i]
        specs.append(RequestSpec(i, t, prompts[i], outputs[i]))
    return specs


PROPERTY = settings(max_examples=150, deadline=None)


def longest(specs: list[RequestSpec]) -> int:
    """KV slots the longest request holds at its longest."""
    return max(s.prompt_tokens + s.output_tokens - 1 for s in specs)


# Sizes are drawn relative to the longest request so that most runs serve most requests under KV pressure
# (preemptions), while some requests still fall over the edge (rejections).
SCALE = st.floats(0.8, 4.0)


@PROPERTY
@given(
    specs=workloads(),
    pool_scale=SCALE,
    budget_scale=SCALE,
    block_size=st.sampled_from([1, 4, 16]),
    max_num_seqs=st.integers(1, 12),
)
def test_vllm_invariants(
    specs: list[RequestSpec], pool_scale: float, budget_scale: float, block_size: int, max_num_seqs: int
) -> None:
    num_blocks = max(1, int(pool_scale * longest(specs)) // block_size)
    budget = max(1, int(budget_scale * longest(specs)))
    blocks = BlockManager(num_blocks, block_size)
    scheduler = VllmScheduler(blocks, max_num_seqs=max_num_seqs, max_num_batched_tokens=budget)
    finished, rejected = drive(scheduler, specs, check_vllm)
    check_done(specs, finished, rejected, blocks)
    event(f"preempted: {scheduler.num_preemptions > 0}, rejected: {bool(rejected)}")
    for r in rejected:
        peak = r.prompt_len + r.output_len - 1
        assert peak > budget or blocks.blocks_for(peak) > num_blocks
    # First admissions happen in arrival order (re-admissions after preemption go first, but are not first).
    order = sorted(finished, key=lambda r: (r.first_scheduled, r.id))
    assert [r.id for r in order] == sorted(r.id for r in finished)


@PROPERTY
@given(
    specs=workloads(),
    pool_scale=SCALE,
    block_size=st.sampled_from([1, 4, 16]),
    chunk_size=st.integers(1, 256),
    max_num_seqs=st.integers(1, 12),
)
def test_sarathi_invariants(
    specs: list[RequestSpec], pool_scale: float, block_size: int, chunk_size: int, max_num_seqs: int
) -> None:
    num_blocks = max(1, int(pool_scale * longest(specs)) // block_size)
    blocks = BlockManager(num_blocks, block_size)
    scheduler = SarathiScheduler(blocks, chunk_size=chunk_size, max_num_seqs=max_num_seqs)
    finished, rejected = drive(scheduler, specs, check_sarathi)
    check_done(specs, finished, rejected, blocks)
    event(f"preempted: {scheduler.num_preemptions > 0}, rejected: {bool(rejected)}")
    assert all(blocks.blocks_for(r.prompt_len + r.output_len - 1) > num_blocks for r in rejected)
    order = sorted(finished, key=lambda r: (r.first_scheduled, r.id))
    assert [r.id for r in order] == sorted(r.id for r in finished)


def tiny_kv_workload() -> list[RequestSpec]:
    """Twelve requests at once whose decodes outgrow a 16-block pool (64 slots): preemption is unavoidable."""
    return [RequestSpec(i, 0.0, 10 + i, 30) for i in range(12)]


def test_vllm_preempts_under_a_tiny_pool_and_still_finishes() -> None:
    blocks = BlockManager(16, 4)
    scheduler = VllmScheduler(blocks, max_num_seqs=12, max_num_batched_tokens=256)
    specs = tiny_kv_workload()
    finished, rejected = drive(scheduler, specs, check_vllm)
    assert not rejected
    assert scheduler.num_preemptions > 0 and any(r.preemptions for r in finished)
    check_done(specs, finished, rejected, blocks)


def test_sarathi_preempts_under_a_tiny_pool_and_still_finishes() -> None:
    blocks = BlockManager(16, 4)
    scheduler = SarathiScheduler(blocks, chunk_size=32, max_num_seqs=12)
    specs = tiny_kv_workload()
    finished, rejected = drive(scheduler, specs, check_sarathi)
    assert not rejected
    assert scheduler.num_preemptions > 0 and any(r.preemptions for r in finished)
    check_done(specs, finished, rejected, blocks)
