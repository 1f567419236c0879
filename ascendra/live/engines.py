"""Building the live instances' engines: which weights, on which device, with how many KV blocks.

The run config names the model (its shapes drive the workload's token counts and the performance model); the
engine runs either that model's shapes with seeded dummy weights (performance runs) or a local HF checkpoint,
which must have the same shapes. Everything that can be wrong here is the user's input, so it is a UserError
raised before the run starts, never a failure inside an instance thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ascendra.batch import Batch
from ascendra.engine import Engine, EngineConfig, PagedKVCache, Weights, dummy_weights, load_weights, parse_dtype
from ascendra.errors import UserError
from ascendra.kv_cache import DEFAULT_BLOCK_SIZE
from ascendra.models import ModelSpec, get_model
from ascendra.request import Request, RequestSpec

GiB = 1024**3
DISTRIBUTED = ("none", "ray")


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """How a live run executes (not what it serves: that is the RunConfig).

    - ``device``: ``cpu`` or ``cuda[:i]``; every instance of an in-process run shares it.
    - ``dtype``: fp32, bf16 or fp16 (default fp32 on CPU, fp16 on CUDA as in the paper).
    - ``checkpoint``: a local HF checkpoint directory; None runs the model's shapes with seeded dummy weights.
    - ``num_blocks`` / ``kv_cache_gib``: each instance's KV pool, in blocks, or as a memory budget divided by
      the engine's real bytes per block (the simulator's GPU-memory sizing does not apply to a CPU).
    - ``torch_threads``: intra-op threads; default: the CPU cores split evenly between the instances, because
      each instance thread that enters an op gets its own team of that many threads.
    - ``warmup``: run one tiny batch per engine before the clock starts, so lazy initialisation is not counted
      in the first request's TTFT.
    - ``distributed``: ``none`` (every engine in this process) or ``ray`` (each instance's engine in its own Ray
      actor, a GPU each on CUDA; schedulers and router stay in this process).
    """

    device: str = "cpu"
    dtype: str | None = None
    checkpoint: Path | None = None
    num_blocks: int | None = None
    kv_cache_gib: float = 0.25
    torch_threads: int | None = None
    seed: int = 0
    warmup: bool = True
    distributed: str = "none"

    def __post_init__(self) -> None:
        if self.distributed not in DISTRIBUTED:
            raise UserError(f"--distributed must be one of {', '.join(DISTRIBUTED)}, got {self.distributed!r}")
        if self.num_blocks is not None and self.num_blocks <= 0:
            raise UserError(f"--kv-blocks must be positive, got {self.num_blocks}")
        if not self.kv_cache_gib > 0:
            raise UserError(f"--kv-cache-gib must be positive, got {self.kv_cache_gib}")
        if self.torch_threads is not None and self.torch_threads <= 0:
            raise UserError(f"--torch-threads must be positive, got {self.torch_threads}")


def resolve_device(name: str) -> torch.device:
    """A usable torch device, or a UserError saying why not."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu or cuda[:index]") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} requested but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"device {name!r}: only {torch.cuda.device_count()} CUDA devices")
    elif device.type != "cpu":
        raise UserError(f"unsupported device {name!r}; use cpu or cuda[:index]")
    return device


def default_dtype(device: torch.device, dtype: str | None) -> torch.dtype:
    if dtype is not None:
        return parse_dtype(dtype)
    return torch.float32 if device.type == "cpu" else torch.float16


def model_config(model: str, options: LiveOptions) -> EngineConfig:
    """The engine config for ``model``: its shapes, or the checkpoint's, checked to be those shapes (a mismatch
    would make every count in the run describe another model)."""
    spec = get_model(model)
    if options.checkpoint is None:
        return EngineConfig.from_model_spec(spec)
    config = EngineConfig.from_json_file(options.checkpoint)
    _check_matches(config, spec, options.checkpoint)
    return config


def load_model(
    model: str, options: LiveOptions, device: torch.device, dtype: torch.dtype
) -> tuple[EngineConfig, Weights]:
    """The engine config and weights for ``model``: seeded dummy weights of its shapes, or the checkpoint's."""
    config = model_config(model, options)
    if device.type == "cpu":
        _check_fits_in_memory(config, dtype)
    if options.checkpoint is None:
        return config, dummy_weights(config, seed=options.seed, dtype=dtype, device=device)
    return config, load_weights(options.checkpoint, config, dtype, device)


def _check_fits_in_memory(config: EngineConfig, dtype: torch.dtype) -> None:
    """Refuse weights that would not fit the machine's free memory (an 8B model in fp32 needs 32 GB), rather than
    let the operating system kill the process half-way."""
    need = config.num_params * torch.tensor([], dtype=dtype).element_size()
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if need > free:
        raise UserError(
            f"{config.shape.name} needs {need / GiB:.1f} GiB of weights in {dtype}, but only {free / GiB:.1f} GiB "
            "of memory is free: choose a smaller --model (e.g. tiny) or a GPU --device"
        )


def _check_matches(config: EngineConfig, spec: ModelSpec, checkpoint: Path) -> None:
    """The checkpoint must have the table model's architecture (its context length may differ)."""
    ours, theirs = spec.architecture(), config.shape.architecture()
    if ours != theirs:
        diff = ", ".join(f"{n} {theirs[n]} vs {ours[n]}" for n in ours if theirs[n] != ours[n])
        raise UserError(f"checkpoint {checkpoint} does not have the shapes of model {spec.name!r}: {diff}")


def kv_blocks(
    config: EngineConfig, options: LiveOptions, dtype: torch.dtype, block_size: int = DEFAULT_BLOCK_SIZE
) -> int:
    """Blocks per instance: as given, or the KV memory budget over the engine's real bytes per block of
    ``block_size`` tokens (the block size the instances' block managers and engines use)."""
    if options.num_blocks is not None:
        return options.num_blocks
    blocks = int(options.kv_cache_gib * GiB // PagedKVCache.block_bytes(config, block_size, dtype))
    if blocks <= 0:
        raise UserError(f"--kv-cache-gib {options.kv_cache_gib} holds no KV block of {config.shape.name}")
    return blocks


def check_workload(specs: list[RequestSpec], config: EngineConfig) -> None:
    """Reject requests the engine could never run, before any thread starts: ids outside the vocabulary (a
    workload tokenised for another model) and sequences longer than the model's positions."""
    for spec in specs:
        ids = spec.prompt_ids
        if ids and (min(ids) < 0 or max(ids) >= config.shape.vocab):
            raise UserError(
                f"request {spec.request_id} has token ids outside the vocabulary of {config.shape.vocab}; "
                "was the workload tokenised for another model?"
            )
        if spec.prompt_tokens + spec.output_tokens > config.shape.max_model_len:
            raise UserError(
                f"request {spec.request_id} needs {spec.prompt_tokens + spec.output_tokens} positions, the model "
                f"has {config.shape.max_model_len}"
            )


def warm_up(engine: Engine) -> None:
    """One prefill and one decode on a scratch request in blocks 0.., overwritten by the run's first requests."""
    prompt = min(8, engine.block_size)
    request = Request(RequestSpec(-1, 0.0, prompt, 2, tuple(range(prompt))))
    table = {request.id: [0]}
    batch = Batch()
    batch.add(request, prompt, True)
    token = engine.execute(batch, table)[request.id]
    assert token is not None, "a completed prefill emits a token"
    request.output_ids.append(token)
    request.num_computed = prompt
    batch = Batch()
    batch.add(request, 1, False)
    engine.execute(batch, table)
