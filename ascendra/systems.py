"""Builds a serving system (its instances, schedulers and router) from a run config."""

from __future__ import annotations

from ascendra.config import RunConfig
from ascendra.costmodel import CostModel
from ascendra.gpus import get_gpu
from ascendra.kv_cache import BlockManager, num_kv_blocks
from ascendra.models import get_model
from ascendra.sim.instance import SimInstance
from ascendra.sim.router import RoundRobinRouter, Router
from baselines.sarathi import SarathiScheduler
from baselines.vllm import VllmScheduler


def _blocks(config: RunConfig) -> BlockManager:
    model, gpu = get_model(config.model), get_gpu(config.gpu)
    return BlockManager(num_kv_blocks(model, gpu, config.tensor_parallel, config.gpu_memory_utilization))


def _baseline_scheduler(config: RunConfig) -> VllmScheduler | SarathiScheduler:
    if config.system == "vllm":
        return VllmScheduler(
            _blocks(config), max_num_seqs=config.max_num_seqs, max_num_batched_tokens=config.max_batched_tokens
        )
    return SarathiScheduler(_blocks(config), chunk_size=config.chunk_size, max_num_seqs=config.max_num_seqs)


def build_system(config: RunConfig) -> tuple[list[SimInstance], Router]:
    """The instances and router of ``config.system`` on the simulated GPUs."""
    cost = CostModel.load(config.model, config.gpu, config.tensor_parallel)
    instances = [SimInstance(f"gpu{i}", _baseline_scheduler(config), cost.batch_time) for i in range(config.instances)]
    return instances, RoundRobinRouter(instances)
