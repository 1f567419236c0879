"""Hand-built cases for Llumnix: the freeness load metric and the dispatch and pairing rules, the multi-stage
pre-copy (last stage at most 16 blocks, downtime bounded where a blocking copy grows with the sequence), the
abort after the maximum stages, never releasing a request a batch computes, and conservation with migrations."""

from __future__ import annotations

import math

import pytest

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.instance import Instance
from ascendra.kv_cache import BlockManager
from ascendra.link import get_link, kv_move_time
from ascendra.models import get_model
from ascendra.request import Request, RequestSpec
from ascendra.sim.cluster import Cluster, RunResult
from ascendra.system import BuildContext, Built, ClusterSpec
from baselines.llumnix import LlumnixConfig, LlumnixRouter, LlumnixScheduler, build, high_priority

MODEL = "llama-3.1-8b"


def decode_cost(batch: Batch) -> float:
    """50 ms per iteration plus 10 us per token: a few decode tokens per pre-copy stage."""
    return 0.05 + 1e-5 * batch.num_tokens


def built(num_blocks: int, instances: int = 2, link: str = "nvlink", **knobs: object) -> Built:
    spec = ClusterSpec(MODEL, "a100-80gb", 1, instances, ttft_slo=1.0, tbt_slo=0.1, link=link)
    ctx = BuildContext(spec, lambda: BlockManager(num_blocks), lambda name, blocks: decode_cost)
    return build(LlumnixConfig(**knobs), ctx)  # type: ignore[arg-type]


def run(system: Built, specs: list[RequestSpec], link: str = "nvlink") -> RunResult:
    move_time = kv_move_time(get_link(link), get_model(MODEL), 1)
    return Cluster(system.instances, system.router, lambda move, source: move_time(move.sent_tokens)).run(specs)


def first_migration(prompt: int, link: str, precopy: bool) -> tuple[RunResult, Built]:
    """One request on gpu0; a threshold no instance reaches makes the empty gpu1 pull it as soon as it decodes."""
    system = built(2000, link=link, precopy=precopy, migrate_out_threshold=1e9)
    return run(system, [RequestSpec(0, 0.0, prompt, 100)], link), system


# --- load metric, dispatch and pairing -------------------------------------------------------------------------


def req(request_id: int, prompt: int, output: int = 50) -> Request:
    return Request(RequestSpec(request_id, 0.0, prompt, output))


def instance(name: str, running: list[int], waiting: list[int], first_id: int) -> Instance:
    """A 100-block pool (watermark 1 block) whose ``running`` prompts are prefilled (exactly their blocks held) and
    whose ``waiting`` prompts queue behind them."""
    scheduler = LlumnixScheduler(BlockManager(100, 16), chunk_size=8192)
    ids = iter(range(first_id, first_id + 100))
    for prompt in running:
        scheduler.add(req(next(ids), prompt), 0.0)
    if running:
        scheduler.on_batch_done(scheduler.schedule(0.0), 0.1)
    for prompt in waiting:
        scheduler.add(req(next(ids), prompt), 0.1)
    return Instance(name, scheduler, decode_cost)


def test_freeness_dispatch_and_pairing_on_a_hand_built_state() -> None:
    gpu0 = instance("gpu0", running=[640], waiting=[320, 160], first_id=0)  # 40 blocks held, 20 + 10 waiting
    gpu1 = instance("gpu1", running=[480, 480], waiting=[], first_id=10)  # 2 x 30 blocks held
    gpu2 = instance("gpu2", running=[], waiting=[], first_id=20)
    router = LlumnixRouter([gpu0, gpu1, gpu2], lambda tokens: 0.0, threshold=3.0)
    # Migration: (free 60 - watermark 1 - the head-of-line request's 20 blocks) / (1 running + 1 for the queue).
    assert router.freeness(gpu0) == pytest.approx((60 - 1 - 20) / 2)
    # Dispatch counts every waiting request: (59 - 20 - 10) / 3.
    assert router.freeness(gpu0, "dispatch") == pytest.approx((59 - 30) / 3)
    assert router.freeness(gpu1) == router.freeness(gpu1, "dispatch") == pytest.approx(39 / 2)
    assert router.freeness(gpu2) == math.inf
    assert router.route(req(50, 100), 0.2) is gpu2  # an empty instance is the freest
    gpu2.scheduler = instance("gpu2", running=[1440], waiting=[], first_id=30).scheduler  # 90 blocks: 9 / 1
    assert router.freeness(gpu2) == pytest.approx(9.0)
    assert router.route(req(51, 100), 0.2) is gpu1  # 19.5 beats 9.67 (gpu0) and 9 (gpu2)

    assert router.pairs() == []  # every instance above 3 free blocks per request
    router.threshold = 15.0
    assert router.pairs() == [(gpu2, gpu0)]  # sources below 15, least free first; destinations above, freest first
    preempted = req(52, 64)
    preempted.first_scheduled = 0.0  # ran before: a killed request, at the front of the queue
    gpu1.scheduler.waiting.appendleft(preempted)
    assert router.killed(gpu1) == 1
    assert router.freeness(gpu1) == pytest.approx((39 - 4) / 3)
    assert router.pairs() == [(gpu2, gpu0)]  # gpu1 is now a source too, but the only destination is taken
    router.threshold = 3.0
    assert router.pairs() == [(gpu1, gpu0)]  # killed requests make a source whatever the freeness


def test_balanced_dispatch_sends_each_arrival_to_the_instance_given_the_fewest() -> None:
    nodes = [instance(f"gpu{i}", [], [], 10 * i) for i in range(3)]
    router = LlumnixRouter(nodes, lambda tokens: 0.0, dispatch="balanced")
    assert [router.route(req(i, 10), 0.0).name for i in range(5)] == ["gpu0", "gpu1", "gpu2", "gpu0", "gpu1"]


# --- multi-stage migration --------------------------------------------------------------------------------------


def test_the_last_stage_is_at_most_16_blocks_and_the_downtime_stays_bounded_where_a_blocking_copy_grows() -> None:
    link = "1"  # 1 GB/s: 131 us per token of Llama-3.1-8B KV, so a long cache takes over a second to copy
    move_time = kv_move_time(get_link(link), get_model(MODEL), 1)
    downtime, blocking = {}, {}
    for prompt in (1000, 8000):
        result, system = first_migration(prompt, link, precopy=True)
        record = result.moves[0]
        assert (record.source, record.target) == ("gpu0", "gpu1")
        assert record.stages >= 2 and record.precopied % 16 == 0 and record.started < record.decided
        assert record.kv_tokens - record.precopied <= 16 * 16  # the last stage
        assert record.latency == pytest.approx(move_time(record.kv_tokens - record.precopied))
        downtime[prompt] = record.latency
        result, _ = first_migration(prompt, link, precopy=False)
        record = result.moves[0]
        assert (record.stages, record.precopied) == (1, 0) and record.kv_tokens > prompt
        blocking[prompt] = record.latency
    bound = move_time(16 * 16)
    assert downtime[1000] <= bound and downtime[8000] <= bound
    assert blocking[8000] > 7 * blocking[1000]  # the blocking copy grows with the sequence...
    assert blocking[8000] > 20 * downtime[8000]  # ...far past the pre-copy's downtime
    assert blocking[8000] > 1.0 > bound


def test_a_migration_whose_copy_cannot_keep_up_is_aborted_after_the_maximum_stages() -> None:
    # At 1 MB/s a token takes 0.13 s to copy, longer than a decode step: every stage leaves more blocks behind
    # than it copied, so the third stage is still not the last and the migration is given up.
    link = "0.001"
    system = built(2000, link=link, migrate_out_threshold=1e9, migration_period=1.0)
    router: LlumnixRouter = system.router  # type: ignore[assignment]
    result = run(system, [RequestSpec(0, 0.0, 300, 10_000)], link)
    assert router.aborts[0] == (0, "max stages", 3)
    assert not result.moves and router.stats["migrated"] == 0
    request = result.requests[0]
    assert request.finished and request.instances == ["gpu0"] and request.preemptions == 0
    assert all(reason in ("max stages", "finished") for _, reason, _ in router.aborts)
    assert all(node.scheduler.blocks.num_used == 0 for node in system.instances)


def test_an_abort_frees_the_destination_and_the_request_carries_on() -> None:
    link = "0.001"
    system = built(2000, link=link, migrate_out_threshold=1e9, migration_period=1.0)
    router: LlumnixRouter = system.router  # type: ignore[assignment]
    gpu1: LlumnixScheduler = system.instances[1].scheduler  # type: ignore[assignment]
    held: list[int] = []
    abort = router._abort

    def watch(m, reason):  # type: ignore[no-untyped-def]
        held.append(gpu1.blocks.num_used)
        abort(m, reason)
        held.append(gpu1.blocks.num_used)

    router._abort = watch  # type: ignore[method-assign]
    run(system, [RequestSpec(0, 0.0, 300, 10_000)], link)
    assert held[0] > 100 and held[1] == 0  # the pre-allocated blocks of three stages, all freed


# --- whole runs -------------------------------------------------------------------------------------------------


def busy_specs(n: int) -> list[RequestSpec]:
    """Arrivals every 20 ms with prompts of 100-700 tokens and outputs of 40-340, deterministic."""
    return [RequestSpec(i, 0.02 * i, 100 + (i * 37) % 600, 40 + (i * 53) % 300) for i in range(n)]


@pytest.mark.parametrize("link", ["nvlink", "1"])
def test_no_request_is_released_while_a_batch_computes_it(link: str) -> None:
    system = built(300, instances=3, link=link)
    released: list[int] = []
    for node in system.instances:
        scheduler = node.scheduler
        release = scheduler.release

        def checked(request: Request, release=release) -> int:  # type: ignore[no-untyped-def]
            for other in system.instances:
                computing = other.batch.items if other.batch else []
                assert all(item.request is not request for item in computing), f"{request.id} in {other.name}"
            released.append(request.id)
            return release(request)

        scheduler.release = checked  # type: ignore[method-assign]
    result = run(system, busy_specs(120), link)
    assert len(released) == len(result.moves) > 10


def test_every_request_finishes_with_migrations_on_small_pools() -> None:
    """Pools of 250 blocks force preemptions; Llumnix's defaults then migrate requests between instances, and
    abort some for lack of room at the destination."""
    system = built(250, instances=3, link="1")
    router: LlumnixRouter = system.router  # type: ignore[assignment]
    result = run(system, busy_specs(120), "1")
    assert all(r.finished and not r.dropped and len(r.token_times) == r.output_len for r in result.requests)
    assert all(b > a for r in result.requests for a, b in zip(r.token_times, r.token_times[1:], strict=False))
    assert router.stats["migrated"] == len(result.moves) > 10 and router.stats["aborted: destination full"] > 0
    for record in result.moves:
        assert record.delivered is not None and 1 <= record.stages <= 3
        assert record.kv_tokens - record.precopied <= 16 * 16
    for node in system.instances:
        scheduler = node.scheduler
        assert not scheduler.running and not scheduler.waiting and not scheduler.leaving
        assert not scheduler.incoming and scheduler.blocks.num_used == 0


# --- priorities and knobs ---------------------------------------------------------------------------------------


def test_priorities_admit_high_first_and_migrate_normal_first() -> None:
    is_high = high_priority(0.25)
    assert is_high is not None and high_priority(0.0) is None
    assert [i for i in range(12) if is_high(req(i, 10))] == [3, 7, 11]
    scheduler = LlumnixScheduler(BlockManager(100, 16), chunk_size=8192, is_high=is_high)
    for i in range(4):
        scheduler.add(req(i, 10), 0.0)
    assert [r.id for r in scheduler._admission_order(0.0)] == [3, 0, 1, 2]
    scheduler.on_batch_done(scheduler.schedule(0.0), 0.1)
    node = Instance("gpu0", scheduler, decode_cost)
    router = LlumnixRouter([node], lambda tokens: 0.0, is_high=is_high, headroom=0.5)
    assert router._select(node).id == 0  # the shortest normal request, though request 3 is as short
    # The high-priority request's headroom: half the pool off the available blocks.
    assert router.freeness(node) == pytest.approx((100 - 4 - 1 - 50) / 4)


def test_knobs_are_checked() -> None:
    with pytest.raises(UserError, match="priority-share"):
        LlumnixConfig(priority_share=1.5)
    with pytest.raises(UserError, match="max-stages"):
        LlumnixConfig(max_stages=0)
    with pytest.raises(UserError, match="migration-policy"):
        LlumnixConfig(migration_policy="random")
