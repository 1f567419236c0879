"""The options that describe a simulated run, declared once and shared by sweep, capacity and later commands.

``run_options`` adds them to a command's signature and hands the command a validated RunConfig (rate excluded:
commands take rates their own way) plus the data directory.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from ascendra.config import SYSTEMS, RunConfig

_RUN = "Run"
_POLICY = "Scheduling policy"
_ASC = "Ascendra"
_BACK = "Backend"

_SHARED: dict[str, tuple[type, Any, typer.models.OptionInfo]] = {
    "system": (str, "ascendra", typer.Option(help=f"Serving system: {', '.join(SYSTEMS)}.", rich_help_panel=_RUN)),
    "workload": (str, "sharegpt", typer.Option(help="Workload name or trace path (see `workloads list`).")),
    "model": (str, "llama-3.1-8b", typer.Option(help="Model (llama-3.1-8b, mistral-7b, qwen-14b, tiny).")),
    "gpu": (str, "a100-80gb", typer.Option(help="Simulated GPU (a100-80gb, h100-80gb).")),
    "tp": (int | None, None, typer.Option(help="Tensor parallelism per instance \\[default: the model's].")),
    "instances": (int, 3, typer.Option(help="Number of instances (GPUs, or TP groups).")),
    "num_requests": (int, 2000, typer.Option(help="Requests per run.")),
    "arrival": (str, "poisson", typer.Option(help="Arrival process: poisson, poisson-truncated, gamma, fixed.")),
    "cv": (float, 1.0, typer.Option(help="Burstiness (coefficient of variation) of gamma arrivals.")),
    "seed": (int, 1, typer.Option(help="Seed of the workload sampling and arrivals.")),
    "ttft_slo": (float, 1.0, typer.Option(help="TTFT SLO in seconds.")),
    "tbt_slo": (float, 0.15, typer.Option(help="TBT SLO in seconds.")),
    "max_num_seqs": (int, 128, typer.Option(help="Max running sequences per instance.", rich_help_panel=_POLICY)),
    "max_batched_tokens": (
        int,
        8192,
        typer.Option(help="Token budget per iteration (vllm, ascendra).", rich_help_panel=_POLICY),
    ),
    "chunk_size": (
        int,
        512,
        typer.Option(help="Sarathi-Serve chunk size (its token budget).", rich_help_panel=_POLICY),
    ),
    "gpu_memory_utilization": (
        float,
        0.9,
        typer.Option(help="Share of GPU memory for weights + KV cache.", rich_help_panel=_POLICY),
    ),
    "partition": (str, "2L1H", typer.Option(help="Ascendra: xLyH low/high-priority instances.", rich_help_panel=_ASC)),
    "margin": (
        float | None,
        None,
        typer.Option(
            help="Ascendra: offload margin, s \\[default: 0.7 for llama-3.1-8b, else 1.0].", rich_help_panel=_ASC
        ),
    ),
    "value_fn": (
        str,
        "edf",
        typer.Option(help="Ascendra: urgency value function: edf, basic, sjf.", rich_help_panel=_ASC),
    ),
    "compute_cap": (
        float,
        1.0,
        typer.Option(help="Ascendra: LP compute cap, in seconds of the GPU's peak FLOPs.", rich_help_panel=_ASC),
    ),
    "admission_control": (
        bool,
        False,
        typer.Option(help="Ascendra: drop requests predicted to miss their TTFT.", rich_help_panel=_ASC),
    ),
    "perf_model": (
        str,
        "paper",
        typer.Option(help="Ascendra: perf model features: paper (4 roofline) or per-seq.", rich_help_panel=_ASC),
    ),
    "backend": (str, "sim", typer.Option(help="sim (calibrated simulator) or engine (live).", rich_help_panel=_BACK)),
    "device": (str, "cpu", typer.Option(help="Engine backend: cpu or cuda[:i].", rich_help_panel=_BACK)),
    "kv_blocks": (
        int | None,
        None,
        typer.Option(help="Engine backend: KV blocks per instance \\[default: 0.25 GiB].", rich_help_panel=_BACK),
    ),
    "distributed": (
        str,
        "none",
        typer.Option(help="Engine backend: none (one process) or ray (an actor per instance).", rich_help_panel=_BACK),
    ),
    "endpoint": (
        str | None,
        None,
        typer.Option(help="System openai: base URL of the OpenAI-compatible server to load.", rich_help_panel=_RUN),
    ),
    "served_model": (
        str | None,
        None,
        typer.Option(help="System openai: model name in requests \\[default: the server's].", rich_help_panel=_RUN),
    ),
    "max_concurrency": (
        int | None,
        None,
        typer.Option(help="System openai: cap on requests in flight \\[default: none].", rich_help_panel=_RUN),
    ),
    "request_timeout": (
        float,
        300.0,
        typer.Option(help="System openai: per-request timeout, s.", rich_help_panel=_RUN),
    ),
}
_DATA_DIR = (
    Path | None,
    None,
    typer.Option(help="Folder with trace files (default: $ASCENDRA_DATA_DIR or ../shared/data)."),
)


def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a command taking ``config: RunConfig`` and ``data_dir: Path | None`` with the shared options."""
    own = [p for p in inspect.signature(command).parameters.values() if p.name not in ("config", "data_dir")]
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, info])
        for name, (kind, default, info) in {**_SHARED, "data_dir": _DATA_DIR}.items()
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        data_dir = kwargs.pop("data_dir")
        config_args = {name: kwargs.pop(name) for name in _SHARED}
        config = RunConfig(**config_args)
        return command(config=config, data_dir=data_dir, **kwargs)

    wrapper.__signature__ = inspect.Signature(own + shared)  # type: ignore[attr-defined]
    return wrapper
