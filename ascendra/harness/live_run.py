"""One live run: workload -> engines and schedulers -> real-time serving -> per-request records and summary.

The counterpart of ``ascendra.harness.simulate.simulate``: the same ``build_system`` makes the schedulers and the
router, each instance's executor is the real engine instead of the cost model, and the records and summary are
computed by the same functions, so live and simulated tables compare column for column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ascendra.engine import Engine, EngineConfig
from ascendra.errors import UserError
from ascendra.harness.build import ExecutorFactory, build_system
from ascendra.harness.config import RunConfig
from ascendra.harness.workload import slo_of, workload_of
from ascendra.instance import Executor
from ascendra.kv_cache import BlockManager
from ascendra.live.cluster import LiveCluster, LiveRunResult
from ascendra.live.engines import (
    LiveOptions,
    check_workload,
    default_dtype,
    kv_blocks,
    load_model,
    model_config,
    resolve_device,
    warm_up,
)
from ascendra.live.executor import EngineExecutor
from ascendra.metrics import run_tables
from workloads import Workload


@dataclass(slots=True)
class LiveOutcome:
    config: RunConfig
    options: LiveOptions
    workload: Workload
    result: LiveRunResult
    records: pd.DataFrame
    summary: dict[str, float]


def engine_executors(
    config: RunConfig, options: LiveOptions, synthetic: bool = False
) -> tuple[ExecutorFactory, int, EngineConfig]:
    """One real engine per instance, in this process: the executor factory, the KV blocks of each engine's pool
    and the engine config (for checking requests against the model's limits)."""
    device = resolve_device(options.device)
    dtype = default_dtype(device, options.dtype)
    engine_config, weights = load_model(config.cluster.model, options, device, dtype)
    block_size = config.cluster.block_size
    num_blocks = kv_blocks(engine_config, options, dtype, block_size)

    def executor(name: str, blocks: BlockManager) -> EngineExecutor:
        engine = Engine(
            engine_config, weights, num_blocks, block_size, device=device, dtype=dtype, synthetic_prompts=synthetic
        )
        if options.warmup:
            warm_up(engine)
        return EngineExecutor(engine, blocks)

    return executor, num_blocks, engine_config


def run_live(
    config: RunConfig,
    workload: Workload | None = None,
    options: LiveOptions | None = None,
    data_dir: Path | None = None,
) -> LiveOutcome:
    """Serve ``config``'s workload (or ``workload``) on real engines, in real time, on ``options.device``.

    All instances live in this process, one thread each, sharing the device (and on CPU its cores): a functional
    and small-scale timing run, not a multi-GPU measurement; with ``options.distributed == "ray"`` each
    instance's engine runs in its own Ray actor instead (a GPU each on CUDA). A move carrying KV copies the pages
    between the engines and is timed by that copy (``ascendra.live.kv_moves``); the cluster's link model
    (``transfer_time``) charges only moves without KV, which it makes free."""
    options = options if options is not None else LiveOptions()
    workload = workload if workload is not None else workload_of(config, data_dir)
    synthetic = any(spec.prompt_ids is None for spec in workload.requests)
    if options.distributed == "ray":
        return _run_ray(config, workload, options, synthetic)
    executor, num_blocks, engine_config = engine_executors(config, options, synthetic)
    check_workload(workload.requests, engine_config)
    built = build_system(config, executor, num_blocks=num_blocks)
    for node in built.instances:
        node.batch_log = []
    threads = options.torch_threads or max(1, torch.get_num_threads() // len(built.instances))
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        result = LiveCluster(built.instances, built.router, config.cluster.transfer_time()).run(workload.requests)
    finally:
        torch.set_num_threads(saved)
    return _outcome(config, options, workload, result)


def _run_ray(config: RunConfig, workload: Workload, options: LiveOptions, synthetic: bool) -> LiveOutcome:
    """Like the in-process run, but each instance's engine is a Ray actor: the driver never builds weights and
    never touches the device (it may have none); the actors do, and report a bad device or checkpoint."""
    from ascendra.live.ray_executor import RayEngines

    if options.device != "cpu" and not options.device.startswith("cuda"):
        raise UserError(f"unsupported device {options.device!r}; use cpu or cuda[:index]")
    dtype = default_dtype(torch.device("cuda" if options.device != "cpu" else "cpu"), options.dtype)
    engine_config = model_config(config.cluster.model, options)
    check_workload(workload.requests, engine_config)
    c = config.cluster
    num_blocks = kv_blocks(engine_config, options, dtype, c.block_size)
    engines = RayEngines(c.model, options, num_blocks, synthetic, c.instances, c.block_size)
    names: list[str] = []

    def executor(name: str, blocks: BlockManager) -> Executor:
        names.append(name)
        return engines.executor(len(names) - 1, blocks)

    try:
        built = build_system(config, executor, num_blocks=num_blocks)
        for node in built.instances:
            node.batch_log = []
        result = LiveCluster(built.instances, built.router, config.cluster.transfer_time()).run(workload.requests)
    finally:
        engines.close()
    return _outcome(config, options, workload, result)


def _outcome(config: RunConfig, options: LiveOptions, workload: Workload, result: LiveRunResult) -> LiveOutcome:
    records, summary = run_tables(result.requests, slo_of(config), workload.num_trimmed)
    return LiveOutcome(config, options, workload, result, records, summary)
