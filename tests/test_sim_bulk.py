"""The simulator's fast path changes nothing: with decode cohorts (``ascendra.cohort``), stepped one by one or with
decode runs advanced in bulk, every registered system, on random workloads with small KV pools (so preemption
happens) and on a larger steady one, gives the same per-request token times, drops, preemptions, moves, batch
counts, batch log and block ids as simulating every iteration request by request."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ascendra.batch import Batch, DecodeCounts
from ascendra.costmodel import CostModel
from ascendra.harness.registry import systems
from ascendra.instance import Instance
from ascendra.kv_cache import BlockManager
from ascendra.request import Request, RequestSpec
from ascendra.sim.cluster import Cluster, RunResult
from ascendra.system import BuildContext, ClusterSpec

COST = CostModel.load("llama-3.1-8b", "a100-80gb", 1)
CLUSTER = ClusterSpec("llama-3.1-8b", "a100-80gb", 1, 3, ttft_slo=0.3, tbt_slo=0.05)
#: Every registered system, plus Ascendra with its whole-prefill LP under a controller that never migrates.
NAMES = sorted(systems())
KNOBS: dict[str, dict[str, object]] = {"ascendra --tbt-admission": {"tbt_admission": True}}


@st.composite
def workloads(draw: st.DrawFn) -> list[RequestSpec]:
    n = draw(st.integers(1, 40))
    gaps = draw(st.lists(st.floats(0.0, 0.4), min_size=n, max_size=n))
    prompts = draw(st.lists(st.integers(1, 600), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, 120), min_size=n, max_size=n))
    arrivals, t = [], 0.0
    for gap in gaps:
        t += gap
        arrivals.append(round(t, 6))
    return [RequestSpec(i, arrivals[i], prompts[i], outputs[i]) for i in range(n)]


def _run(
    name: str, specs: list[RequestSpec], num_blocks: int, bulk: bool, log: bool = False, cohorts: bool | None = None
) -> RunResult:
    """One run; ``bulk``: the fast path (decode runs in bulk and, unless ``cohorts`` says otherwise, cohorts)."""
    base = name.split(" ")[0]
    system = systems()[base]
    ctx = BuildContext(CLUSTER, lambda: BlockManager(num_blocks), lambda _name, _blocks: COST.batch_time)
    built = system.build(system.config(**KNOBS.get(name, {})), ctx)
    if log:
        for instance in built.instances:
            instance.batch_log = []
    decode_times = COST.decode_run_times if bulk else None
    return Cluster(built.instances, built.router, decode_times=decode_times, cohorts=cohorts).run(specs)


def _outcome(result: RunResult) -> list[tuple[object, ...]]:
    """Everything a run decides, per request and per instance."""
    requests = [
        (r.id, r.token_times, r.finish_time, r.dropped, r.preemptions, r.first_scheduled, r.instances)
        for r in result.requests
    ]
    moves = [(m.request_id, m.source, m.target, m.kv_tokens, m.decided, m.delivered) for m in result.moves]
    batches = [(i.name, i.num_batches) for i in result.instances]
    return [*requests, *moves, *batches, result.end_time]


def _log(result: RunResult) -> list[tuple[str, float, object, float]]:
    return [(i.name, start, b.composition(), d) for i in result.instances for start, b, d in i.batch_log or ()]


def _free_blocks(result: RunResult) -> list[int]:
    """Each pool's free list after the run (all free): block ids are handed out in the same order."""
    return [b for i in result.instances for b in i.scheduler.blocks._free]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", NAMES + list(KNOBS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=workloads(), num_blocks=st.integers(42, 200))
def test_bulk_advance_equals_one_by_one(name: str, specs: list[RequestSpec], num_blocks: int) -> None:
    reference = _run(name, specs, num_blocks, bulk=False, log=True)
    fast = _run(name, specs, num_blocks, bulk=True)
    logged = _run(name, specs, num_blocks, bulk=True, log=True)
    stepped = _run(name, specs, num_blocks, bulk=False, log=True, cohorts=True)  # cohorts, one step at a time
    assert _outcome(fast) == _outcome(reference)
    assert _outcome(logged) == _outcome(reference)
    assert _outcome(stepped) == _outcome(reference)
    assert _log(logged) == _log(reference)
    assert _log(stepped) == _log(reference)
    assert _free_blocks(fast) == _free_blocks(reference)
    assert _free_blocks(stepped) == _free_blocks(reference)
    assert reference.bulk_steps == 0


def _steady_workload(seed: int, n: int = 240, rate: float = 6.0) -> list[RequestSpec]:
    rng = random.Random(seed)
    t, specs = 0.0, []
    for i in range(n):
        t += rng.expovariate(rate)
        specs.append(RequestSpec(i, t, rng.randint(16, 1500), rng.randint(1, 400)))
    return specs


@pytest.mark.parametrize("name", ["vllm", "sarathi", "orca", "ascendra"])
@pytest.mark.parametrize("seed", [1, 2])
def test_bulk_advance_covers_most_decode_steps(name: str, seed: int) -> None:
    """On a steady load with a roomy pool most iterations of the round-robin systems and Ascendra's LP are
    advanced in bulk, with identical results; a pool tight enough to preempt changes neither."""
    specs = _steady_workload(seed)
    for num_blocks in (6000, 300):
        reference = _run(name, specs, num_blocks, bulk=False)
        fast = _run(name, specs, num_blocks, bulk=True)
        assert _outcome(fast) == _outcome(reference)
    if name != "orca":  # Orca reserves each request's KV up front: it never preempts
        assert sum(r.preemptions for r in reference.requests) > 0, "the small pool should preempt"
    roomy = _run(name, specs, 6000, bulk=True)
    batches = sum(i.num_batches for i in roomy.instances)
    assert roomy.bulk_steps > 0.3 * batches


@settings(max_examples=200, deadline=None)
@given(
    contexts=st.lists(st.integers(0, 5000), min_size=1, max_size=200),
    data=st.data(),
)
def test_decode_run_times_are_the_batch_times(contexts: list[int], data: st.DataObject) -> None:
    """``decode_run_times`` is bit for bit ``batch_time`` of each step's decode-only batch."""
    lasts = data.draw(st.lists(st.integers(1, 40), min_size=len(contexts), max_size=len(contexts)))
    steps = data.draw(st.integers(1, 45))
    requests = [Request(RequestSpec(i, 0.0, 1, 1)) for i in range(len(contexts))]
    expected = []
    for step in range(steps):
        batch = Batch()
        for request, context, last in zip(requests, contexts, lasts, strict=True):
            if last > step:
                request.num_computed = context + step
                batch.add(request, 1, False)
        if not batch:
            break
        expected.append(COST.batch_time(batch))
    leaving: dict[int, list[int]] = {}
    for context, last in zip(contexts, lasts, strict=True):  # decodes by the steps they take part in
        left = leaving.setdefault(last, [0, 0])
        left[0] += 1
        left[1] += context
    assert COST.decode_run_times(DecodeCounts(len(contexts), sum(contexts), leaving), steps) == expected


def test_a_router_that_promises_nothing_gets_no_bulk_advance() -> None:
    """Without ``arrivals_elsewhere`` on the router an instance is stepped one by one."""

    class Anywhere:
        def __init__(self, instances: list[Instance]) -> None:
            self.instances = instances

        def route(self, request: Request, now: float) -> Instance:
            return self.instances[request.id % len(self.instances)]

        def moves_after(self, instance: Instance, batch: Batch, now: float) -> list:
            return []

    vllm = systems()["vllm"]
    ctx = BuildContext(CLUSTER, lambda: BlockManager(6000), lambda _name, _blocks: COST.batch_time)
    built = vllm.build(vllm.config(), ctx)
    result = Cluster(built.instances, Anywhere(built.instances), decode_times=COST.decode_run_times).run(
        _steady_workload(3, n=60)
    )
    assert result.bulk_steps == 0


@settings(max_examples=200, deadline=None)
@given(
    computed=st.lists(st.tuples(st.integers(0, 90), st.integers(1, 90)), min_size=1, max_size=30),
    spare=st.integers(0, 2),
)
def test_schedule_decodes_fast_pass_equals_the_preempting_walk(computed: list[tuple[int, int]], spare: int) -> None:
    """``_schedule_decodes`` (a plain pass until a decode needs a block it cannot get) decides exactly what the
    general walk by index does from the first request: same batch, preemptions, queues and free blocks; and the
    running requests still in prefill it collects (Sarathi-Serve's chunk order) are those left running in prefill,
    in order, even when it preempts."""
    from baselines.sarathi import SarathiScheduler

    def policy() -> SarathiScheduler:
        blocks = BlockManager(sum(-(-max(c, t) // 16) for c, t in computed) + spare)
        scheduler = SarathiScheduler(blocks)
        for i, (num_computed, target) in enumerate(computed):
            request = Request(RequestSpec(i, 0.0, target, 5))
            request.num_computed = num_computed
            blocks.grow(request, max(num_computed, target))
            scheduler.running.append(request)
        return scheduler

    def state(scheduler: SarathiScheduler, items: list, prefilling: list[Request]) -> tuple[object, ...]:
        return (
            [(i.request.id, i.context) for i in items],
            [r.id for r in prefilling],
            [r.id for r in scheduler.running],
            [r.id for r in scheduler.waiting],
            scheduler.num_preemptions,
            list(scheduler.blocks._free),  # type: ignore[attr-defined]
        )

    walked = policy()
    walked_batch = Batch()
    walked_prefilling: list[Request] = []
    walked._decodes_preempting(0, walked_batch, walked_prefilling)
    fast = policy()
    batch, prefilling = Batch(), []
    fast._schedule_decodes(batch, 0.0, prefilling)
    assert state(fast, batch.items, prefilling) == state(walked, walked_batch.items, walked_prefilling)
    assert not batch.prefills
    assert [r.id for r in prefilling] == [r.id for r in fast.running if r.in_prefill]
