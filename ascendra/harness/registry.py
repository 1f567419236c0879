"""Builds a serving system (its instances, schedulers and router) from a run config.

The executor is a parameter: the simulator passes the calibrated cost model's batch time, the live runtime
passes the real engine. Everything else (policies, KV sizing, controller) is shared.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from ascendra.batch import Batch
from ascendra.config import RunConfig
from ascendra.controller import AscendraController
from ascendra.errors import UserError
from ascendra.gpus import get_gpu
from ascendra.hp_scheduler import HighPriorityScheduler
from ascendra.kv_cache import BlockManager, num_kv_blocks
from ascendra.lp_scheduler import LowPriorityScheduler
from ascendra.models import get_model
from ascendra.perfmodel import PerfModel
from ascendra.sim.instance import SimInstance
from ascendra.sim.router import RoundRobinRouter, Router
from ascendra.urgency import Predictor
from baselines.sarathi import SarathiScheduler
from baselines.vllm import VllmScheduler

BatchTime = Callable[[Batch], float]


def _blocks(config: RunConfig) -> BlockManager:
    model, gpu = get_model(config.model), get_gpu(config.gpu)
    return BlockManager(num_kv_blocks(model, gpu, config.tensor_parallel, config.gpu_memory_utilization))


def _baseline(
    config: RunConfig, batch_time: BatchTime, blocks: Callable[[], BlockManager]
) -> tuple[list[SimInstance], Router]:
    def scheduler() -> VllmScheduler | SarathiScheduler:
        policy: VllmScheduler | SarathiScheduler
        if config.system == "vllm":
            policy = VllmScheduler(blocks(), config.max_num_seqs, config.max_batched_tokens)
        else:
            policy = SarathiScheduler(blocks(), chunk_size=config.chunk_size, max_num_seqs=config.max_num_seqs)
        # Admission control for the baselines: drop requests that have waited past the TTFT SLO unscheduled.
        policy.drop_after = config.ttft_slo if config.admission_control else None
        return policy

    instances = [SimInstance(f"gpu{i}", scheduler(), batch_time) for i in range(config.instances)]
    return instances, RoundRobinRouter(instances)


def _ascendra(
    config: RunConfig, batch_time: BatchTime, blocks: Callable[[], BlockManager]
) -> tuple[list[SimInstance], Router]:
    perf = PerfModel.load(config.model, config.gpu, config.tensor_parallel, per_seq=config.perf_model == "per-seq")
    predictor = Predictor(perf)
    compute_cap_flops = config.compute_cap * get_gpu(config.gpu).peak_flops
    shared = {
        "predictor": predictor,
        "ttft_slo": config.ttft_slo,
        "value_fn": config.value_fn,
        "max_num_seqs": config.max_num_seqs,
        "max_batched_tokens": config.max_batched_tokens,
        "admission_control": config.admission_control,
    }
    num_low, num_high = config.lp_hp
    low = [
        SimInstance(
            f"lp{i}",
            LowPriorityScheduler(blocks(), margin=config.offload_margin, compute_cap_flops=compute_cap_flops, **shared),
            batch_time,
        )
        for i in range(num_low)
    ]
    high = [SimInstance(f"hp{i}", HighPriorityScheduler(blocks(), **shared), batch_time) for i in range(num_high)]
    return low + high, AscendraController(low, high, predictor)


def build_system(
    config: RunConfig, batch_time: BatchTime, num_blocks: int | None = None
) -> tuple[list[SimInstance], Router]:
    """The instances and router of ``config.system``, each instance executing batches with ``batch_time``.

    ``num_blocks`` sets every instance's KV pool (default: sized from the simulated GPU's memory); the live
    runtime passes the pool its engine really allocated."""
    blocks = partial(BlockManager, num_blocks) if num_blocks is not None else partial(_blocks, config)
    if config.system == "vllm-engine":
        raise UserError("vllm-engine runs vLLM's own engine and scheduler: use it with sweep or capacity")
    if config.system == "ascendra":
        return _ascendra(config, batch_time, blocks)
    return _baseline(config, batch_time, blocks)
