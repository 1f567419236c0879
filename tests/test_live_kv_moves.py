"""Live KV moves on the tiny model on CPU: a request moved with its KV mid-decode from one real engine to another
continues from the copied cache (no recomputation) with exactly the greedy tokens it has alone; a target that
cannot take the KV recomputes and still gets them; the copy is measured and the source's blocks are freed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from ascendra.batch import Batch  # noqa: E402
from ascendra.engine import Engine, EngineConfig, dummy_weights  # noqa: E402
from ascendra.harness.config import RunConfig  # noqa: E402
from ascendra.harness.live_run import run_live  # noqa: E402
from ascendra.instance import Executor, Instance  # noqa: E402
from ascendra.kv_cache import BlockManager  # noqa: E402
from ascendra.live.cluster import LiveCluster, LiveRunResult  # noqa: E402
from ascendra.live.engines import LiveOptions  # noqa: E402
from ascendra.live.executor import EngineExecutor  # noqa: E402
from ascendra.models import get_model  # noqa: E402
from ascendra.request import Request, RequestSpec  # noqa: E402
from ascendra.router import Move  # noqa: E402
from baselines.vllm import VllmScheduler  # noqa: E402
from workloads import make_workload  # noqa: E402

CONFIG = EngineConfig.from_model_spec(get_model("tiny"))
WEIGHTS = dummy_weights(CONFIG, seed=0)
BLOCKS = 32
PAUSE_AT = 3  # tokens generated on gpu0 before the move: prefill + 2 decodes, so 20 + 2 KV tokens move
HOG = 99  # fallback test: the request that holds gpu1's one sequence slot


class Pausing(VllmScheduler):
    """vLLM, except that a request is not decoded past ``PAUSE_AT`` tokens: it stays in ``running``, holding its
    KV, until the router moves it."""

    def schedule(self, now: float) -> Batch:
        paused = [r for r in self.running if r.num_generated >= PAUSE_AT]
        self.running = [r for r in self.running if r.num_generated < PAUSE_AT]
        batch = super().schedule(now)
        self.running += paused
        return batch


class MovePaused:
    """Arrivals go to gpu0 (the hog to gpu1). After any step, once ``ready(gpu1)``, the requests paused on gpu0
    move to gpu1 with their KV, naming gpu0 as their source."""

    def __init__(self, nodes: list[Instance], ready: Callable[[Instance], bool]) -> None:
        self.nodes = nodes
        self.ready = ready

    def route(self, request: Request, now: float) -> Instance:
        return self.nodes[1] if request.id == HOG else self.nodes[0]

    def moves_after(self, instance: Instance, batch: Batch, now: float) -> list[Move]:
        source, target = self.nodes
        if not self.ready(target):
            return []
        paused = [r for r in source.scheduler.running if r.num_generated >= PAUSE_AT]
        return [Move(r, target, source.scheduler.release(r), source=source) for r in paused]


def engine(blocks: BlockManager) -> EngineExecutor:
    return EngineExecutor(Engine(CONFIG, WEIGHTS, blocks.num_blocks, synthetic_prompts=True), blocks)


def nodes(target_seqs: int, executor: Callable[[BlockManager], Executor] = engine) -> list[Instance]:
    source, target = BlockManager(BLOCKS), BlockManager(BLOCKS)
    out = [
        Instance("gpu0", Pausing(source), executor(source)),
        Instance("gpu1", VllmScheduler(target, max_num_seqs=target_seqs), executor(target)),
    ]
    out[1].batch_log = []
    return out


def alone(spec: RequestSpec) -> list[int]:
    """The request's greedy tokens served alone by one engine, never moved."""
    blocks = BlockManager(BLOCKS)
    scheduler, execute = VllmScheduler(blocks), engine(blocks)
    request = Request(spec)
    scheduler.add(request, 0.0)
    while scheduler.has_work():
        batch = scheduler.schedule(0.0)
        execute(batch)
        scheduler.on_batch_done(batch, 0.0)
    return request.output_ids


def first_item_at_target(node: Instance, request_id: int) -> tuple[bool, int, int]:
    """(is_prefill, context, tokens) of the target's first batch item for the request."""
    assert node.batch_log is not None
    for _, batch, _ in node.batch_log:
        for item in batch.items:
            if item.request.id == request_id:
                return item.is_prefill, item.context, item.num_tokens
    raise AssertionError(f"request {request_id} never ran on {node.name}")


def check_sources_free(result: LiveRunResult) -> None:
    for node in result.instances:
        blocks = node.scheduler.blocks  # type: ignore[attr-defined]
        assert blocks.num_free == BLOCKS and blocks.moved == {}


SPECS = [RequestSpec(i, 0.0, 20, 10) for i in range(3)]  # 20-token prompts: the second block is partly filled


def run_round_trip(cluster_nodes: list[Instance]) -> LiveRunResult:
    """Run ``SPECS`` on gpu0 -> gpu1 and check every request continued at gpu1 from its copied KV."""
    result = LiveCluster(cluster_nodes, MovePaused(cluster_nodes, lambda target: True)).run(SPECS)
    assert {r.id: r.output_ids for r in result.requests} == {s.request_id: alone(s) for s in SPECS}
    assert sorted(m.request_id for m in result.moves) == [0, 1, 2]
    for move in result.moves:
        assert (move.source, move.target, move.kv_tokens) == ("gpu0", "gpu1", 20 + PAUSE_AT - 1)
        assert move.latency > 0  # the measured copy
    for r in result.requests:
        assert r.preemptions == 0 and r.instances == ["gpu0", "gpu1"]
        assert first_item_at_target(cluster_nodes[1], r.id) == (False, 20 + PAUSE_AT - 1, 1)  # a decode
    assert cluster_nodes[1].scheduler.num_preemptions == 0  # type: ignore[attr-defined]
    check_sources_free(result)
    return result


def test_a_request_moved_with_its_kv_mid_decode_continues_exactly_as_alone() -> None:
    run_round_trip(nodes(target_seqs=8))


def test_without_the_page_copy_the_moved_requests_tokens_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: the round trip's token check notices a target that decodes over a cache it does not hold."""
    monkeypatch.setattr(EngineExecutor, "put_kv", lambda self, request_id, block_ids, pages: None)
    cluster_nodes = nodes(target_seqs=8)
    result = LiveCluster(cluster_nodes, MovePaused(cluster_nodes, lambda target: True)).run(SPECS)
    assert len(result.moves) == 3 and all(r.preemptions == 0 for r in result.requests)
    assert all(r.output_ids != alone(r.spec) for r in result.requests)


def run_fallback(cluster_nodes: list[Instance]) -> None:
    """gpu1 runs one sequence and the hog holds it when request 0 arrives with its KV: adopt falls back, the copy
    is dropped, and request 0 waits for the hog to finish and recomputes."""
    hog, spec = RequestSpec(HOG, 0.0, 16, 200), SPECS[0]

    def hog_running(target: Instance) -> bool:
        return any(r.id == HOG for r in target.scheduler.running)  # type: ignore[attr-defined]

    result = LiveCluster(cluster_nodes, MovePaused(cluster_nodes, hog_running)).run([spec, hog])
    request = next(r for r in result.requests if r.id == spec.request_id)
    assert request.output_ids == alone(spec)
    assert request.preemptions == 1 and request.instances == ["gpu0", "gpu1"]
    # Its prompt and every token it generated: the prefill emits its next token.
    assert first_item_at_target(cluster_nodes[1], spec.request_id) == (True, 0, 20 + PAUSE_AT)
    (move,) = result.moves
    assert move.kv_tokens == 20 + PAUSE_AT - 1 and move.latency > 0
    check_sources_free(result)


def test_a_target_that_cannot_take_the_kv_recomputes_and_still_gets_the_same_tokens() -> None:
    run_fallback(nodes(target_seqs=1))


def test_a_kv_moving_system_runs_live_on_engines_with_the_tokens_it_has_alone() -> None:
    """DistServe hands every prefilled request to its decode instance with its KV, which ``run_live`` copies."""
    config = RunConfig.of(
        system="distserve",
        placement="1P1D",
        instances=2,
        model="tiny",
        workload="fixed:prompt=40,output=6",
        rate=40.0,
        num_requests=6,
    )
    w = config.workload
    workload = make_workload(w.name, model="tiny", num_requests=w.num_requests, rate=w.rate, seed=w.seed)
    result = run_live(config, workload, LiveOptions(num_blocks=BLOCKS)).result
    assert {r.id: r.output_ids for r in result.requests} == {s.request_id: alone(s) for s in workload.requests}
    assert len(result.moves) == 6 and all(m.kv_tokens == 40 and m.latency > 0 for m in result.moves)
    assert all(r.preemptions == 0 and r.instances == ["prefill0", "decode0"] for r in result.requests)


@pytest.fixture
def ray_engines(ray_session: Any) -> Iterator[Callable[[BlockManager], Executor]]:
    """Two tiny engines in Ray actors, as the executor factory of ``nodes``."""
    from ascendra.live.ray_executor import RayEngines

    engines = RayEngines("tiny", LiveOptions(num_blocks=BLOCKS, distributed="ray"), BLOCKS, True, 2)
    index = iter(range(2))
    try:
        yield lambda blocks: engines.executor(next(index), blocks)
    finally:
        engines.close()


def test_kv_moves_between_ray_actors_go_through_the_object_store(ray_engines) -> None:
    run_round_trip(nodes(target_seqs=8, executor=ray_engines))


def test_a_ray_target_that_cannot_take_the_kv_recomputes_from_the_tokens_sent_with_it(ray_engines) -> None:
    run_fallback(nodes(target_seqs=1, executor=ray_engines))
