"""The live runtime on the tiny model on CPU: real engines, wall clock, the simulator's schedulers and result."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ascendra.batch import Batch  # noqa: E402
from ascendra.engine import Engine, EngineConfig, dummy_weights  # noqa: E402
from ascendra.harness.config import RunConfig  # noqa: E402
from ascendra.harness.live_run import run_live  # noqa: E402
from ascendra.instance import Instance  # noqa: E402
from ascendra.kv_cache import BlockManager  # noqa: E402
from ascendra.live.cluster import LiveCluster  # noqa: E402
from ascendra.live.engines import LiveOptions  # noqa: E402
from ascendra.live.executor import EngineExecutor  # noqa: E402
from ascendra.models import get_model  # noqa: E402
from ascendra.records import RECORD_COLUMNS  # noqa: E402
from ascendra.request import Request, RequestSpec  # noqa: E402
from ascendra.router import Move  # noqa: E402
from baselines.sarathi import SarathiScheduler  # noqa: E402
from baselines.vllm import VllmScheduler  # noqa: E402
from workloads import Workload, make_workload  # noqa: E402

WORKLOAD = "fixed:prompt=16,output=8"


def config(system: str, instances: int = 2, num_requests: int = 8, rate: float = 40.0) -> RunConfig:
    return RunConfig.of(
        system=system, workload=WORKLOAD, model="tiny", instances=instances, rate=rate, num_requests=num_requests
    )


def workload(cfg: RunConfig) -> Workload:
    w = cfg.workload
    return make_workload(w.name, model="tiny", num_requests=w.num_requests, rate=w.rate, seed=w.seed)


def solo_outputs(specs: list[RequestSpec]) -> dict[int, list[int]]:
    """Each request served alone by its own engine (same dummy weights as the live run's default)."""
    engine_config = EngineConfig.from_model_spec(get_model("tiny"))
    weights = dummy_weights(engine_config, seed=0)
    out = {}
    for spec in specs:
        blocks = BlockManager(8)
        scheduler = SarathiScheduler(blocks, chunk_size=512)
        execute = EngineExecutor(Engine(engine_config, weights, 8, synthetic_prompts=True), blocks)
        request = Request(spec)
        scheduler.add(request, 0.0)
        while scheduler.has_work():
            batch = scheduler.schedule(0.0)
            execute(batch)
            scheduler.on_batch_done(batch, 0.0)
        out[spec.request_id] = request.output_ids
    return out


@pytest.mark.parametrize("system", ["vllm", "sarathi"])
def test_every_request_finishes_in_real_time_with_solo_greedy_outputs(system: str) -> None:
    cfg = config(system)
    wl = workload(cfg)
    outcome = run_live(cfg, wl, LiveOptions(num_blocks=64))
    requests = outcome.result.requests
    assert len(requests) == cfg.workload.num_requests
    for r in requests:
        assert r.finished and not r.dropped
        assert len(r.token_times) == len(r.output_ids) == r.output_len == 8
        assert r.first_scheduled >= r.arrival  # released no earlier than its arrival time
        assert r.token_times[0] > r.first_scheduled
        assert all(b > a for a, b in zip(r.token_times, r.token_times[1:], strict=False))
    assert {r.instances[0] for r in requests} == {"gpu0", "gpu1"}  # round robin over both engines
    assert {r.id: r.output_ids for r in requests} == solo_outputs(wl.requests)
    assert list(outcome.records.columns) == list(RECORD_COLUMNS)
    assert outcome.summary["finished"] == cfg.workload.num_requests
    assert outcome.summary["ttft_mean"] > 0 and outcome.summary["tbt_mean"] > 0
    busy = [node.num_batches for node in outcome.result.instances]
    assert all(n > 0 for n in busy)
    assert sum(len(node.batch_log) for node in outcome.result.instances) == sum(busy)


@pytest.mark.parametrize("system", ["vllm", "sarathi"])
def test_tiny_kv_pool_preempts_and_still_finishes_with_the_same_outputs(system: str) -> None:
    # 3 blocks of 16 slots: three 16-token prompts fit, their 17th slots do not, so decodes preempt.
    cfg = config(system, instances=1, num_requests=6, rate=1000.0)
    wl = workload(cfg)
    outcome = run_live(cfg, wl, LiveOptions(num_blocks=3))
    requests = outcome.result.requests
    assert all(r.finished and len(r.output_ids) == 8 for r in requests)
    assert sum(r.preemptions for r in requests) > 0
    assert outcome.summary["preemptions"] > 0
    assert {r.id: r.output_ids for r in requests} == solo_outputs(wl.requests)


class MoveAllRouter:
    """Arrivals go to the first instance; after each of its scheduling steps every waiting request that never
    started moves to the second (a stand-in for Ascendra's offloads)."""

    def __init__(self, instances: list[Instance]) -> None:
        self.instances = instances

    def route(self, request: Request, now: float) -> Instance:
        return self.instances[0]

    def moves_after(self, instance: Instance, batch: Batch, now: float) -> list[Move]:
        if instance is not self.instances[0]:
            return []
        moving = [r for r in instance.scheduler.waiting if r.never_started]
        for r in moving:
            instance.scheduler.release(r)
            r.offload_time = now
        return [Move(r, self.instances[1]) for r in moving]


def engine_instances(n: int, num_blocks: int = 32) -> list[Instance]:
    engine_config = EngineConfig.from_model_spec(get_model("tiny"))
    weights = dummy_weights(engine_config, seed=0)
    nodes = []
    for i in range(n):
        blocks = BlockManager(num_blocks)
        engine = Engine(engine_config, weights, num_blocks, synthetic_prompts=True)
        nodes.append(Instance(f"gpu{i}", VllmScheduler(blocks, max_num_seqs=1), EngineExecutor(engine, blocks)))
    return nodes


def test_router_moves_are_delivered_and_their_latency_recorded() -> None:
    nodes = engine_instances(2)
    specs = [RequestSpec(i, 0.0, 16, 4) for i in range(4)]
    result = LiveCluster(nodes, MoveAllRouter(nodes)).run(specs)
    assert all(r.finished and len(r.output_ids) == 4 for r in result.requests)
    moved = {m.request_id for m in result.moves}
    # gpu0 runs one sequence at a time, so the three requests it could not admit move to gpu1.
    assert moved == {1, 2, 3}
    for m in result.moves:
        assert (m.source, m.target) == ("gpu0", "gpu1")
        assert 0 <= m.latency < 0.5
    for r in result.requests:
        assert r.instances == (["gpu0", "gpu1"] if r.id in moved else ["gpu0"])
        assert (r.offload_time is not None) == (r.id in moved)
