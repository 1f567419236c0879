"""A run config's system as a serving cluster on real engines, for ``ascbench serve`` and tests.

The engines are built exactly as a live run builds them (``live_run.engine_executors`` for ``--backend engine``,
``vllm_run.vllm_engines`` for ``--backend vllm``), so a served system is the system a live run measures.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ascendra.errors import UserError
from ascendra.harness.build import build_system
from ascendra.harness.config import RunConfig
from ascendra.harness.live_run import engine_executors
from ascendra.live.engines import LiveOptions
from ascendra.serve.cluster import DEFAULT_MAX_QUEUE, Limits, ServingCluster
from ascendra.serve.server import running_server

#: Backends a served system may run on.
SERVE_BACKENDS = ("engine", "vllm")


def build_cluster(config: RunConfig, options: LiveOptions, max_queue: int = DEFAULT_MAX_QUEUE) -> ServingCluster:
    """``config``'s system with one real engine per instance, not started yet, letting ``max_queue`` requests wait
    for their first token. Sets torch's intra-op threads to the cores split between the instances (process-wide,
    as a server owns its process)."""
    executor, num_blocks, engine_config = engine_executors(config, options)
    built = build_system(config, executor, num_blocks=num_blocks)
    torch.set_num_threads(options.torch_threads or max(1, torch.get_num_threads() // len(built.instances)))
    block_size = config.cluster.block_size
    limits = Limits(engine_config.shape.vocab, engine_config.shape.max_model_len, num_blocks, block_size)
    return ServingCluster(built.instances, built.router, limits, max_queue=max_queue)


@contextmanager
def open_cluster(
    config: RunConfig, options: LiveOptions, max_queue: int = DEFAULT_MAX_QUEUE
) -> Iterator[ServingCluster]:
    """``config``'s system on its backend's engines as a serving cluster, not started yet; engines that live
    outside the cluster (vLLM's, Ray actors) shut down on exit."""
    backend = config.backend.name
    if backend not in SERVE_BACKENDS:
        raise UserError(f"ascbench serve runs on --backend {' or '.join(SERVE_BACKENDS)}, not {backend}")
    if backend == "vllm":
        from ascendra.harness.vllm_run import vllm_serving_cluster

        with vllm_serving_cluster(config, options, max_queue) as cluster:
            yield cluster
        return
    if config.backend.distributed != "none":
        raise UserError("ascbench serve --backend engine runs its engines in this process: drop --distributed")
    yield build_cluster(config, options, max_queue)


@contextmanager
def serving(config: RunConfig, options: LiveOptions, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``config`` on a free port of ``host`` on a background thread; yields the base URL, then stops."""
    with serving_cluster(config, options, host) as (url, _):
        yield url


@contextmanager
def serving_cluster(
    config: RunConfig, options: LiveOptions, host: str = "127.0.0.1", max_queue: int = DEFAULT_MAX_QUEUE
) -> Iterator[tuple[str, ServingCluster]]:
    """``serving``, yielding the cluster too (its queue, KV pool and counts), with ``max_queue``."""
    saved_threads = torch.get_num_threads()
    try:
        with (
            open_cluster(config, options, max_queue) as cluster,
            running_server(cluster, config.cluster.model, host) as url,
        ):
            yield url, cluster
    finally:
        torch.set_num_threads(saved_threads)
