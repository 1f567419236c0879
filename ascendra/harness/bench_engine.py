"""Engine micro-benchmark: prefill throughput and decode step time versus batch size on one device.

Runs the real engine on dummy weights and synthetic prompts (performance does not depend on token values),
through the same ``Batch`` objects the schedulers build. Times are end to end per ``execute`` call: batch
preparation, the forward pass, sampling and the device sync that returning token ids implies.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from ascendra.batch import Batch
from ascendra.engine.config import EngineConfig
from ascendra.engine.engine import Engine
from ascendra.engine.weights import dummy_weights, parse_dtype
from ascendra.errors import UserError
from ascendra.kv_cache import DEFAULT_BLOCK_SIZE
from ascendra.models import ModelSpec, get_model
from ascendra.request import Request, RequestSpec

# Llama-shaped models outside the serving table, sized for CPU benchmarking.
BENCH_MODELS: dict[str, ModelSpec] = {
    # ~100M parameters: 12 layers, hidden 768, GQA 12/4 heads, SwiGLU 2048, 16k vocabulary, untied head.
    "llama-100m": ModelSpec("llama-100m", "ascendra/llama-100m", 12, 768, 2048, 12, 4, 64, 16000, 4096),
}


def resolve_bench_model(model: ModelSpec | EngineConfig | str) -> EngineConfig:
    """A config from a table name (serving models or ``BENCH_MODELS``), a ModelSpec or a config."""
    if isinstance(model, EngineConfig):
        return model
    if isinstance(model, ModelSpec):
        return EngineConfig.from_model_spec(model)
    if model in BENCH_MODELS:
        return EngineConfig.from_model_spec(BENCH_MODELS[model])
    try:
        return EngineConfig.from_model_spec(get_model(model))
    except UserError:
        raise UserError(
            f"unknown model {model!r} for the engine benchmark; also known here: {', '.join(BENCH_MODELS)}"
        ) from None


def run_engine_bench(
    model: ModelSpec | EngineConfig | str,
    device: str = "cpu",
    batch_sizes: tuple[int, ...] = (1, 8, 32),
    context: int = 512,
    decode_steps: int = 8,
    dtype: str | torch.dtype | None = None,
    max_batch_tokens: int = 8192,
    block_size: int = DEFAULT_BLOCK_SIZE,
    seed: int = 0,
    repeats: int = 3,
    num_threads: int | None = None,
    attention_backend: str = "auto",
    cuda_graphs: bool | None = None,
) -> list[dict[str, Any]]:
    """One row per batch size: B prompts of ``context`` tokens prefilled (whole prompts, at most
    ``max_batch_tokens`` per batch), then ``decode_steps`` decode steps of all B requests.

    ``dtype`` defaults to fp32 on CPU and bf16 elsewhere. Rows carry prefill tokens/s, the median and mean
    decode step time in ms and decode tokens/s. Each batch size is measured ``repeats`` times and the medians
    are reported, so a stray stall on a shared machine does not decide the result. ``num_threads`` sets torch's
    CPU thread count for the run (on a busy machine fewer threads than cores avoids oversubscription).
    ``attention_backend`` and ``cuda_graphs`` go to the ``Engine`` (auto: Triton and graphs on CUDA).
    """
    cfg = resolve_bench_model(model)
    sizes = tuple(batch_sizes)
    if not sizes or any(b <= 0 for b in sizes):
        raise UserError(f"batch sizes must be positive integers, got {list(sizes)}")
    if context <= 0 or decode_steps <= 0 or max_batch_tokens <= 0 or repeats <= 0:
        raise UserError("context, decode_steps, max_batch_tokens and repeats must be positive")
    if context > max_batch_tokens:
        raise UserError(f"context {context} does not fit max_batch_tokens {max_batch_tokens}")
    if context + decode_steps > cfg.shape.max_model_len:
        raise UserError(
            f"context + decode_steps = {context + decode_steps} exceeds the model's {cfg.shape.max_model_len} positions"
        )
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise UserError(f"invalid device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' requested but CUDA is not available")
    torch_dtype = parse_dtype(dtype if dtype is not None else ("fp32" if dev.type == "cpu" else "bf16"))
    if num_threads is not None and num_threads <= 0:
        raise UserError(f"num_threads must be positive, got {num_threads}")
    saved_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        engine_opts = {"attention_backend": attention_backend, "cuda_graphs": cuda_graphs}
        return _run(
            cfg,
            dev,
            torch_dtype,
            sizes,
            context,
            decode_steps,
            max_batch_tokens,
            block_size,
            seed,
            repeats,
            engine_opts,
        )
    finally:
        torch.set_num_threads(saved_threads)


def _run(
    cfg: EngineConfig,
    dev: torch.device,
    torch_dtype: torch.dtype,
    sizes: tuple[int, ...],
    context: int,
    decode_steps: int,
    max_batch_tokens: int,
    block_size: int,
    seed: int,
    repeats: int,
    engine_opts: dict[str, Any],
) -> list[dict[str, Any]]:

    blocks_per_seq = -(-(context + decode_steps) // block_size)
    num_blocks = max(sizes) * blocks_per_seq
    weights = dummy_weights(cfg, seed=seed, dtype=torch_dtype, device=dev)
    engine = Engine(cfg, weights, num_blocks, block_size, dev, torch_dtype, synthetic_prompts=True, **engine_opts)
    del weights
    tables = {i: list(range(i * blocks_per_seq, (i + 1) * blocks_per_seq)) for i in range(max(sizes))}

    # Warm-up: first calls pay allocator, kernel selection and lazy-initialisation costs.
    _measure(engine, tables, 1, min(context, 16), 2)
    rows = []
    for b in sizes:
        prefills: list[float] = []
        step_s: list[float] = []
        for _ in range(repeats):
            p, steps = _measure(engine, tables, b, context, decode_steps, max_batch_tokens)
            prefills.append(p)
            step_s.extend(steps)
        prefill_s = statistics.median(prefills)
        rows.append(
            {
                "model": cfg.shape.name,
                "device": str(dev),
                "dtype": str(torch_dtype).removeprefix("torch."),
                "num_threads": torch.get_num_threads() if dev.type == "cpu" else None,
                "num_params": cfg.num_params,
                "attention_backend": engine.attention_backend,
                "cuda_graphs": engine.graphs is not None,
                "batch_size": b,
                "context": context,
                "prefill_tokens": b * context,
                "prefill_s": prefill_s,
                "prefill_tok_s": b * context / prefill_s,
                "decode_steps": decode_steps,
                "decode_step_ms": 1e3 * statistics.median(step_s),
                "decode_step_ms_mean": 1e3 * statistics.fmean(step_s),
                "decode_tok_s": b / statistics.fmean(step_s),
            }
        )
    return rows


def _measure(
    engine: Engine,
    tables: dict[int, list[int]],
    batch_size: int,
    context: int,
    decode_steps: int,
    max_batch_tokens: int = 8192,
) -> tuple[float, list[float]]:
    """Prefill ``batch_size`` requests, then decode them; return total prefill seconds and each step's seconds."""
    requests = [Request(RequestSpec(i, 0.0, context, decode_steps + 1)) for i in range(batch_size)]
    per_batch = max(1, max_batch_tokens // context)
    prefill_s = 0.0
    for first in range(0, batch_size, per_batch):
        batch = Batch()
        for r in requests[first : first + per_batch]:
            batch.add(r, context, True)
        prefill_s += _timed_step(engine, batch, tables)
    steps = []
    for _ in range(decode_steps):
        batch = Batch()
        for r in requests:
            batch.add(r, 1, False)
        steps.append(_timed_step(engine, batch, tables))
    return prefill_s, steps


def _timed_step(engine: Engine, batch: Batch, tables: dict[int, list[int]]) -> float:
    """Execute one batch and advance its requests as the runtime would; return its wall time."""
    if engine.device.type == "cuda":
        torch.cuda.synchronize(engine.device)
    start = time.perf_counter()
    out = engine.execute(batch, tables)  # returning Python ints synchronises with the device
    elapsed = time.perf_counter() - start
    for item in batch.items:
        token = out[item.request.id]
        if token is not None:
            item.request.output_ids.append(token)
        item.request.advance(item.num_tokens, 0.0)
    return elapsed
