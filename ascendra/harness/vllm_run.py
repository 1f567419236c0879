"""``--backend vllm``: a run config's system on real vLLM engines, one per instance, driven by its own policy.

The counterpart of ``live_run.run_live``: the same ``build_system`` makes the schedulers and the router, the same
``LiveCluster`` serves the workload on the wall clock, and each instance's executor is a ``VllmExecutor`` whose
engine runs exactly the batches the instance's policy chose (``ascendra.vllm_backend``). Engines live in this
process (CPU tests; their steps are serialised, each on every core) or, with ``--distributed ray``, each in its
own Ray actor with one GPU on CUDA; the schedulers, router and controller stay in the driver. On CPU the actors
request no Ray CPUs (``num_cpus=0``: Ray would reserve a whole CPU per actor and, with more instances than
cores, never start the rest); instead each engine runs its steps on its share of this host's cores (a thread per
core of the share; all of them when there are fewer cores than instances), the actors' processes running in
parallel.

KV pool: ``--kv-blocks``, else 0.25 GiB of fp32 KV on CPU, else on a GPU the blocks the simulated GPU's memory
holds (``num_kv_blocks``: vLLM's own sizing rule with the configured ``--gpu-memory-utilization``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ascendra.errors import UserError
from ascendra.gpus import get_gpu
from ascendra.harness.build import ExecutorFactory, build_system
from ascendra.harness.config import RunConfig
from ascendra.harness.live_run import LiveOutcome, _outcome
from ascendra.kv_cache import BlockManager, num_kv_blocks
from ascendra.live.cluster import LiveCluster
from ascendra.live.engines import GiB, LiveOptions
from ascendra.models import ModelSpec, get_model
from ascendra.request import RequestSpec
from ascendra.serve.cluster import DEFAULT_MAX_QUEUE, Limits, ServingCluster
from ascendra.vllm_backend.executor import RemoteHost, VllmExecutor, check_pool
from ascendra.vllm_backend.host import INSTALL_HINT, HostConfig, VllmHost, engine_spec, vllm_available
from workloads import Workload


def kv_move_reason(config: RunConfig) -> str | None:
    """Why ``config``'s system moves requests with their KV (which vLLM engines here cannot follow), or None."""
    knobs = config.knobs
    if config.system == "distserve":
        return "hands every request's KV from its prefill instance to its decode instance"
    if config.system in ("llumnix", "ascendra") and getattr(knobs, "migration", False):
        return "migrates running requests with their KV (--migration)"
    return None


def check_vllm_config(config: RunConfig) -> None:
    """Refuse, in one line, what ``--backend vllm`` cannot run (before any engine starts)."""
    if not vllm_available():
        raise UserError(INSTALL_HINT)
    reason = kv_move_reason(config)
    if reason is not None:
        raise UserError(
            f"system {config.system} {reason}; --backend vllm cannot move KV between vLLM engines: "
            "use --backend sim or engine"
        )


def checkpoint_path(text: str) -> Path:
    """A ``--checkpoint`` value as a folder: ``~`` and ``$VARS`` expanded (an experiment spec names the checkpoint
    by a variable its user sets); it must hold a HF ``config.json``."""
    path = Path(os.path.expandvars(text)).expanduser()
    if "$" in str(path):
        raise UserError(f"--checkpoint {text}: set the environment variable it names to the checkpoint's folder")
    if not (path / "config.json").is_file():
        raise UserError(f"--checkpoint {path} is not a HF checkpoint folder (it has no config.json)")
    return path


def num_blocks_of(config: RunConfig, options: LiveOptions, spec: ModelSpec) -> int:
    """Each engine's KV pool in blocks (see the module docstring)."""
    c = config.cluster
    if options.num_blocks is not None:
        return options.num_blocks
    if options.device == "cpu":
        per_block = c.block_size * spec.num_layers * 2 * spec.num_kv_heads * spec.head_dim * 4
        blocks = int(options.kv_cache_gib * GiB // per_block)
        if blocks <= 0:
            raise UserError(f"--kv-cache-gib {options.kv_cache_gib} holds no KV block of {spec.name}")
        return blocks
    model = get_model(c.model)
    return num_kv_blocks(model, get_gpu(c.gpu), c.tensor_parallel, c.gpu_memory_utilization, block_size=c.block_size)


def check_requests(specs: list[RequestSpec], spec: ModelSpec) -> None:
    """Ids inside the vocabulary and sequences within the model's positions, before any engine starts."""
    for r in specs:
        if r.prompt_ids and (min(r.prompt_ids) < 0 or max(r.prompt_ids) >= spec.vocab):
            raise UserError(
                f"request {r.request_id} has token ids outside the vocabulary of {spec.vocab}; "
                "was the workload tokenised for another model?"
            )
        if r.prompt_tokens + r.output_tokens > spec.max_model_len:
            raise UserError(
                f"request {r.request_id} needs {r.prompt_tokens + r.output_tokens} positions, the model has "
                f"{spec.max_model_len}"
            )


#: Knobs that cap the tokens of a policy's batch (a budget or chunk size).
BATCH_TOKEN_KNOBS = ("max_batched_tokens", "chunk_size", "max_iteration_tokens", "max_batch_tokens")
#: vLLM's per-step request buffers, unless the policy may run more sequences.
MIN_SEQS = 256


def batch_bounds(config: RunConfig, num_blocks: int, block_size: int, max_model_len: int) -> tuple[int, int]:
    """(tokens, sequences) one of the policy's batches may hold: they size vLLM's per-step buffers, which a
    larger batch overflows. Tokens: the policy's budget knob plus a whole prompt beyond it (a policy may run a
    long prompt alone) and a decode per sequence; without a budget (Orca), all the KV pool holds. Sequences: the
    policy's cap, at most one per KV block (a request in a batch holds one at least)."""
    knobs = config.knobs
    limits = {
        k: v
        for k in ("max_num_seqs", "hp_max_num_seqs", *BATCH_TOKEN_KNOBS)
        if type(v := getattr(knobs, k, None)) is int
    }
    seqs = min(num_blocks, max(MIN_SEQS, limits.get("max_num_seqs", 0), limits.get("hp_max_num_seqs", 0)))
    budgets = [limits[k] for k in BATCH_TOKEN_KNOBS if k in limits]
    tokens = max(budgets) + max_model_len + seqs if budgets else seqs * max_model_len
    return min(tokens, num_blocks * block_size), seqs


def host_config(config: RunConfig, options: LiveOptions, native: bool = False) -> HostConfig:
    """The engine every instance runs: the model's shapes (``tiny`` as ``tiny-vllm``) or the checkpoint."""
    spec = engine_spec(config.cluster.model) if options.device == "cpu" else get_model(config.cluster.model)
    dtype = options.dtype or ("float32" if options.device == "cpu" else "float16")
    dtype = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}.get(dtype, dtype)
    num_blocks = num_blocks_of(config, options, spec)
    block_size = config.cluster.block_size
    # vLLM wants room for one sequence of max_model_len; a longer request is the policy's to reject.
    max_model_len = min(spec.max_model_len, num_blocks * block_size)
    max_tokens, max_seqs = batch_bounds(config, num_blocks, block_size, max_model_len)
    return HostConfig(
        model=spec,
        num_blocks=num_blocks,
        block_size=block_size,
        max_model_len=max_model_len,
        max_num_seqs=max_seqs,
        max_num_batched_tokens=max_tokens,
        checkpoint=None if options.checkpoint is None else checkpoint_path(str(options.checkpoint)),
        dtype=dtype,
        seed=options.seed,
        native=native,
        threads=options.torch_threads,
        warmup=options.warmup,
    )


@dataclass(slots=True)
class VllmEngines:
    """The engines of one run (hosts in process, or Ray actors) and the executors made over them."""

    host: HostConfig
    distributed: str = "none"
    count: int = 1
    gpu: bool = False
    hosts: list[Any] = field(default_factory=list)
    executors: list[VllmExecutor] = field(default_factory=list)
    _started_ray: bool = False

    def start(self) -> None:
        if self.distributed == "ray":
            self._start_ray()
        else:
            if self.gpu:
                import torch

                if not torch.cuda.is_available():
                    raise UserError("--device cuda needs a CUDA GPU and CUDA vLLM; this host has none")
            self.hosts = [VllmHost(self.host) for _ in range(self.count)]

    def factory(self) -> ExecutorFactory:
        def executor(name: str, blocks: BlockManager) -> VllmExecutor:
            index = len(self.executors)
            if self.distributed == "ray":
                import ray

                actor = self.hosts[index]
                check_pool(ray.get(actor.pool.remote()), blocks)
                made = VllmExecutor(name, blocks, RemoteHost(actor))
            else:
                check_pool(self.hosts[index].pool(), blocks)
                made = VllmExecutor(name, blocks, self.hosts[index])
            self.executors.append(made)
            return made

        return executor

    def close(self) -> None:
        if self.distributed == "ray":
            import ray

            for actor in self.hosts:
                ray.kill(actor)
            if self._started_ray:
                ray.shutdown()
        else:
            for host in self.hosts:
                host.close()

    def _start_ray(self) -> None:
        from ascendra.live.ray_executor import start_ray

        self._started_ray = start_ray()
        import ray

        gpus = int(ray.cluster_resources().get("GPU", 0))
        if self.gpu and gpus < self.count:
            self.close()
            raise UserError(f"--device cuda --distributed ray needs a GPU per instance: {self.count}, Ray sees {gpus}")
        actor_class = ray.remote(num_gpus=1, num_cpus=1)(VllmHost) if self.gpu else ray.remote(num_cpus=0)(VllmHost)
        cores = [None] * self.count if self.gpu else _core_shares(self.count)
        self.hosts = [actor_class.remote(replace(self.host, cpu_cores=c)) for c in cores]
        try:
            ray.get([actor.pool.remote() for actor in self.hosts])
        except ray.exceptions.RayError as exc:
            self.close()
            raise UserError(f"a Ray vLLM actor failed to start: {str(exc).strip().splitlines()[-1]}") from None


def _core_shares(count: int) -> list[str | None]:
    """This process's cores split between ``count`` CPU actors, each stepping its engine on one thread per core
    of its share; with fewer cores than actors, each on every core (None)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < count:
        return [None] * count
    size = len(cores) // count
    return [",".join(map(str, cores[i * size : (i + 1) * size])) for i in range(count)]


@contextmanager
def vllm_engines(
    config: RunConfig, options: LiveOptions, specs: list[RequestSpec] | None = None, native: bool = False
) -> Iterator[VllmEngines]:
    """Started engines for ``config``'s instances (``specs`` checked against the model first); shut down on
    exit. ``native``: vLLM's own scheduler instead of the adapter (the cross-check)."""
    check_vllm_config(config)
    if options.device != "cpu" and not options.device.startswith("cuda"):
        raise UserError(f"unsupported device {options.device!r}; use cpu or cuda[:index]")
    host = host_config(config, options, native)
    gpu = options.device.startswith("cuda")
    if specs is not None:
        check_requests(specs, host.model)
    engines = VllmEngines(host, options.distributed, config.cluster.instances, gpu)
    engines.start()
    try:
        yield engines
    finally:
        engines.close()


@contextmanager
def vllm_serving_cluster(
    config: RunConfig, options: LiveOptions, max_queue: int = DEFAULT_MAX_QUEUE
) -> Iterator[ServingCluster]:
    """``config``'s system over started vLLM engines as a serving cluster (not started yet); the engines shut
    down on exit, after the cluster has stopped."""
    with vllm_engines(config, options) as engines:
        built = build_system(config, engines.factory(), num_blocks=engines.host.num_blocks)
        host = engines.host
        limits = Limits(host.model.vocab, host.max_model_len, host.num_blocks, host.block_size)
        cluster = ServingCluster(built.instances, built.router, limits, max_queue=max_queue)
        try:
            yield cluster
        finally:
            cluster.stop()


def run_vllm(config: RunConfig, workload: Workload, options: LiveOptions) -> LiveOutcome:
    """Serve ``workload`` with ``config``'s system on vLLM engines in real time; records as every backend's.
    Each instance's ``VllmExecutor`` (its ``timings``) is in the outcome's instances' ``execute``."""
    check_vllm_config(config)
    with vllm_engines(config, options, workload.requests) as engines:
        built = build_system(config, engines.factory(), num_blocks=engines.host.num_blocks)
        for node in built.instances:
            node.batch_log = []
        result = LiveCluster(built.instances, built.router, config.cluster.transfer_time()).run(workload.requests)
    return _outcome(config, options, workload, result)
