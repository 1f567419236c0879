"""One run of a config at its rate on its backend, ending in the same records table and summary row.

Backends: ``sim`` (the calibrated simulator), ``engine`` (the project's engine, live), ``vllm`` (vLLM engines
running the system's policy, live), ``vllm-engine`` (the real vLLM engine in-process, with its own scheduler)
and ``openai`` (any OpenAI-compatible server, loaded by the harness's client). The summary row leads with the
system label and the rate; a warm-up or cool-down in the config's SLO part applies here, to every backend alike
(``ascendra.metrics.window``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ascendra.errors import UserError
from ascendra.extras import needs
from ascendra.harness.config import RunConfig
from ascendra.harness.workload import slo_of, workload_of
from ascendra.kv_cache import DEFAULT_BLOCK_SIZE
from ascendra.metrics import run_tables
from ascendra.metrics.window import summarize_window
from ascendra.sim.cluster import OnProgress


def run_point(
    config: RunConfig, data_dir: Path | None = None, on_progress: OnProgress | None = None
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Run ``config`` once; returns its per-request records and its summary row. ``on_progress(arrived, total)``
    follows a simulated run (the live backends run on the wall clock and do not report it)."""
    backend = config.backend
    extra: dict[str, object] = {}
    if backend.name == "openai":
        records, summary, extra = _openai(config, data_dir)
    elif backend.name == "vllm-engine":
        from baselines.vllm_engine import TINY_VLLM, VllmEngineOptions, run_vllm_engine

        model = TINY_VLLM.name if config.model == "tiny" else config.model  # vLLM's CPU attention: head dim >= 32
        knobs = config.knobs
        block_size = config.cluster.block_size
        options = VllmEngineOptions(
            model=model,
            max_num_batched_tokens=knobs.max_batched_tokens,  # type: ignore[union-attr]
            max_num_seqs=knobs.max_num_seqs,  # type: ignore[union-attr]
            # The configured KV block size, as --backend vllm runs it; left at ours (16, too small for vLLM's
            # CPU attention), vLLM's own default.
            block_size=None if block_size == DEFAULT_BLOCK_SIZE else block_size,
        )
        outcome = run_vllm_engine(workload_of(config, data_dir), options, slo_of(config))
        records, summary = outcome.records, outcome.summary
    elif backend.name == "vllm":
        from ascendra.harness.vllm_run import run_vllm
        from ascendra.live.engines import LiveOptions

        checkpoint = Path(backend.checkpoint) if backend.checkpoint else None
        options = LiveOptions(
            device=backend.device,
            num_blocks=backend.kv_blocks,
            distributed=backend.distributed,
            checkpoint=checkpoint,
        )
        outcome = run_vllm(config, workload_of(config, data_dir), options)
        records, summary = outcome.records, outcome.summary
    elif backend.name == "engine":
        with needs("engine", what="--backend engine"):
            from ascendra.harness.live_run import run_live
            from ascendra.live.engines import LiveOptions
        if backend.distributed == "ray":
            with needs("dist", what="--distributed ray"):
                import ray  # noqa: F401

        options = LiveOptions(device=backend.device, num_blocks=backend.kv_blocks, distributed=backend.distributed)
        outcome = run_live(config, workload_of(config, data_dir), options, data_dir)
        records, summary = outcome.records, outcome.summary
    else:
        from ascendra.harness.simulate import simulate

        outcome = simulate(config, data_dir, on_progress=on_progress)
        records, summary = outcome.records, outcome.summary
    slo = config.slo
    summary = summarize_window(records, slo_of(config), summary, slo.warmup, slo.cooldown)
    return records, {"system": config.label, "rate": config.rate, **summary, **extra}


def _openai(config: RunConfig, data_dir: Path | None) -> tuple[pd.DataFrame, dict[str, float], dict[str, object]]:
    """Load the server at the endpoint with the config's workload; failed requests count as drops (and in
    ``failed``). A point where every request failed is refused rather than stored, so a rerun retries it."""
    from ascendra.harness.loadgen import run_openai

    b = config.backend
    assert b.endpoint is not None  # BackendConfig requires it for openai
    workload = workload_of(config, data_dir)
    result = run_openai(workload, b.endpoint, b.served_model, b.max_concurrency, b.request_timeout)
    if result.requests and len(result.errors) == len(result.requests):
        first = next(iter(result.errors.values()))
        raise UserError(f"every request to {b.endpoint} failed at rate {config.rate:g}; first: {first}")
    records, summary = run_tables(result.requests, slo_of(config), workload.num_trimmed)
    return records, summary, result.client_stats()
