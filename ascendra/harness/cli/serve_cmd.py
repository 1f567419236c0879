"""`ascbench serve`: an OpenAI-compatible HTTP server in front of a system running on the real engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ascendra.harness.cli.app import app, stderr
from ascendra.harness.cli.run_options import system_options
from ascendra.harness.config import RunConfig

_ENG = "Engine"


def _eng(text: str) -> typer.models.OptionInfo:
    return typer.Option(help=text, rich_help_panel=_ENG)


@app.command()
@system_options(
    defaults={
        "model": "tiny",
        "gpu": "a100-80gb",
        "instances": 3,
        "ttft_slo": 1.0,
        "tbt_slo": 0.15,
        "device": "cpu",
        "kv_blocks": None,
    },
    fixed={"backend": "engine"},
)
def serve(
    config: RunConfig,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    dtype: Annotated[str | None, _eng("fp32, bf16 or fp16.")] = None,
    checkpoint: Annotated[Path | None, _eng("Local HF checkpoint (default: dummy weights).")] = None,
    torch_threads: Annotated[int | None, _eng("Intra-op threads \\[default: cores / instances].")] = None,
) -> None:
    """Serve /v1/completions, /v1/chat/completions (streaming or not), /v1/models and /health until Ctrl-C.

    Text prompts are encoded one token per UTF-8 byte and each output token is shown as one character (the tiny
    model has no tokenizer); token-id prompts are taken as they are. Every request generates exactly max_tokens.
    The GPU names the hardware Ascendra's performance model was fitted for."""
    from ascendra.errors import UserError
    from ascendra.harness.registry import get_system
    from ascendra.live.engines import LiveOptions

    if not 0 < port < 65536:
        raise UserError(f"--port must be in 1..65535, got {port}")
    if "serve" not in get_system(config.system).targets:
        raise UserError(f"system {config.system} cannot be served on the engine")
    backend = config.backend
    options = LiveOptions(
        device=backend.device,
        dtype=dtype,
        checkpoint=checkpoint,
        num_blocks=backend.kv_blocks,
        torch_threads=torch_threads,
    )
    try:
        from ascendra.harness.serving import build_cluster
        from ascendra.serve.server import serve as run_server
    except ImportError as exc:
        raise UserError(f"ascbench serve needs the engine extra ({exc.name} is missing)") from None
    cluster = build_cluster(config, options)
    c = config.cluster
    stderr.print(
        f"serving {config.system} ({c.instances} instances of {c.model} on {backend.device}) at http://{host}:{port}"
    )
    run_server(cluster, c.model, host, port)
