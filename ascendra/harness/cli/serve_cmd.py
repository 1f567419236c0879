"""`ascbench serve`: an OpenAI-compatible HTTP server in front of a system running on the real engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ascendra.cli.app import app, stderr
from ascendra.config import RunConfig

#: The policies `serve` runs on its own engine (vllm-engine and openai are clients of other servers).
SERVED_SYSTEMS = ("ascendra", "vllm", "sarathi")

_SYS = "System"
_ENG = "Engine"


def _sys(text: str) -> typer.models.OptionInfo:
    return typer.Option(help=text, rich_help_panel=_SYS)


def _eng(text: str) -> typer.models.OptionInfo:
    return typer.Option(help=text, rich_help_panel=_ENG)


@app.command()
def serve(
    system: Annotated[str, _sys(f"Serving system: {', '.join(SERVED_SYSTEMS)}.")] = "ascendra",
    model: Annotated[str, typer.Option(help="Model shapes to serve (tiny on CPU).")] = "tiny",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    instances: Annotated[int, _sys("Instances (one engine thread each).")] = 3,
    partition: Annotated[str, _sys("Ascendra: xLyH low/high-priority instances.")] = "2L1H",
    gpu: Annotated[str, _sys("GPU the Ascendra performance model is fitted for.")] = "a100-80gb",
    ttft_slo: Annotated[float, _sys("TTFT SLO, s (Ascendra's urgency).")] = 1.0,
    tbt_slo: Annotated[float, _sys("TBT SLO, s.")] = 0.15,
    max_num_seqs: Annotated[int, _sys("Max running sequences per instance.")] = 128,
    max_batched_tokens: Annotated[int, _sys("Token budget per iteration.")] = 8192,
    chunk_size: Annotated[int, _sys("Sarathi-Serve chunk size.")] = 512,
    margin: Annotated[float | None, _sys("Ascendra offload margin, s.")] = None,
    admission_control: Annotated[bool, _sys("Drop requests past the TTFT SLO.")] = False,
    device: Annotated[str, _eng("cpu or cuda[:i].")] = "cpu",
    dtype: Annotated[str | None, _eng("fp32, bf16 or fp16.")] = None,
    checkpoint: Annotated[Path | None, _eng("Local HF checkpoint (default: dummy weights).")] = None,
    kv_blocks: Annotated[int | None, _eng("KV blocks per instance \\[default: 0.25 GiB].")] = None,
    torch_threads: Annotated[int | None, _eng("Intra-op threads \\[default: cores / instances].")] = None,
) -> None:
    """Serve /v1/completions, /v1/chat/completions (streaming or not), /v1/models and /health until Ctrl-C.

    Text prompts are encoded one token per UTF-8 byte and each output token is shown as one character (the tiny
    model has no tokenizer); token-id prompts are taken as they are. Every request generates exactly max_tokens."""
    from ascendra.errors import UserError
    from ascendra.live.engines import LiveOptions

    if not 0 < port < 65536:
        raise UserError(f"--port must be in 1..65535, got {port}")
    if system not in SERVED_SYSTEMS:
        raise UserError(f"serve runs {', '.join(SERVED_SYSTEMS)} on its engine, not {system!r}")
    config = RunConfig(
        system=system,
        model=model,
        gpu=gpu,
        instances=instances,
        partition=partition,
        ttft_slo=ttft_slo,
        tbt_slo=tbt_slo,
        max_num_seqs=max_num_seqs,
        max_batched_tokens=max_batched_tokens,
        chunk_size=chunk_size,
        margin=margin,
        admission_control=admission_control,
        backend="engine",
        device=device,
        kv_blocks=kv_blocks,
    )
    options = LiveOptions(
        device=device, dtype=dtype, checkpoint=checkpoint, num_blocks=kv_blocks, torch_threads=torch_threads
    )
    try:
        from ascendra.serve.server import serve as run_server
    except ImportError as exc:
        raise UserError(f"ascbench serve needs the engine extra ({exc.name} is missing)") from None
    stderr.print(f"serving {system} ({instances} instances of {model} on {device}) at http://{host}:{port}")
    run_server(config, options, host, port)
