"""Builds a run config's system: sizes each instance's KV pool and hands the system its runtime's executors."""

from __future__ import annotations

from collections.abc import Callable

from ascendra.gpus import get_gpu
from ascendra.harness.config import RunConfig
from ascendra.harness.registry import get_system
from ascendra.instance import Executor
from ascendra.kv_cache import BlockManager, KVPool, num_kv_blocks
from ascendra.models import get_model
from ascendra.system import BuildContext, Built

#: Makes one instance's executor from its name and KV pool (the runtime's choice: cost model or engine).
ExecutorFactory = Callable[[str, KVPool], Executor]


def one_executor(execute: Executor) -> ExecutorFactory:
    """The same executor for every instance (the simulator's cost model is stateless)."""
    return lambda name, blocks: execute


def build_system(
    config: RunConfig, executor: ExecutorFactory, num_blocks: int | None = None, pool: type[KVPool] = BlockManager
) -> Built:
    """``config``'s system with every instance's executor from ``executor``.

    ``num_blocks`` sets every instance's KV pool (default: sized from the simulated GPU's memory, as vLLM sizes
    its pool); a live runtime passes the pool its engine really allocated. ``pool``: a ``BlockManager`` (block
    ids, which an engine needs) or, for the simulator, a ``BlockCounter`` (the same accounting, cheaper)."""
    c = config.cluster
    if num_blocks is None:
        model, gpu = get_model(c.model), get_gpu(c.gpu)
        num_blocks = num_kv_blocks(model, gpu, c.tensor_parallel, c.gpu_memory_utilization, block_size=c.block_size)
    blocks = num_blocks
    ctx = BuildContext(config.cluster_spec, lambda: pool(blocks, c.block_size), executor)
    return get_system(config.system).build(config.knobs, ctx)
