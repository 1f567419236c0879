"""`ascbench serve`: an OpenAI-compatible HTTP server in front of a system running on real engines: the project's
engine (``--backend engine``) or vLLM engines driven by the system's policy (``--backend vllm``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ascendra.harness.cli.app import app, stderr
from ascendra.harness.cli.run_options import system_options
from ascendra.harness.config import RunConfig
from ascendra.kv_cache import DEFAULT_BLOCK_SIZE
from ascendra.serve.cluster import DEFAULT_MAX_QUEUE

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
        "backend": "engine",
        "device": "cpu",
        "kv_blocks": None,
        "distributed": "none",
        "block_size": DEFAULT_BLOCK_SIZE,
    },
    fixed={},
)
def serve(
    config: RunConfig,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    max_queue: Annotated[
        int, typer.Option(help="Requests that may wait for their first token; more are refused with a 429.")
    ] = DEFAULT_MAX_QUEUE,
    dtype: Annotated[str | None, _eng("fp32, bf16 or fp16.")] = None,
    checkpoint: Annotated[Path | None, _eng("Local HF checkpoint (default: dummy weights).")] = None,
    torch_threads: Annotated[
        int | None, _eng("Intra-op threads \\[default: cores / instances; vllm in-process: every core].")
    ] = None,
) -> None:
    """Serve /v1/completions, /v1/chat/completions (streaming or not), /v1/models and /health until Ctrl-C.

    Text prompts are encoded one token per UTF-8 byte and each output token is shown as one character (the tiny
    model has no tokenizer); token-id prompts are taken as they are. A request generates max_tokens unless a stop
    string or stop token id comes first. SIGTERM ends every request in flight and exits 0. The GPU names the
    hardware Ascendra's performance model was fitted for. --backend vllm serves the system's policy on vLLM
    engines (the vllm extra; on CPU with --block-size 32), one per instance, in this process or, with
    --distributed ray, one Ray actor each."""
    from ascendra.errors import UserError
    from ascendra.extras import needs
    from ascendra.harness.registry import get_system

    if not 0 < port < 65536:
        raise UserError(f"--port must be in 1..65535, got {port}")
    if max_queue < 1:
        raise UserError(f"--max-queue must be at least 1, got {max_queue}")
    if "serve" not in get_system(config.system).targets:
        raise UserError(f"system {config.system} cannot be served on the engine")
    with needs("engine", "serve", what="ascbench serve"):
        import fastapi  # noqa: F401  (the server's own import comes later: fail before building engines)
        import uvicorn  # noqa: F401

        from ascendra.harness.serving import SERVE_BACKENDS, open_cluster
        from ascendra.live.engines import LiveOptions
        from ascendra.serve.server import listen
        from ascendra.serve.server import serve as run_server
    backend = config.backend
    if backend.name not in SERVE_BACKENDS:
        raise UserError(f"ascbench serve runs on --backend {' or '.join(SERVE_BACKENDS)}, not {backend.name}")
    sock = listen(host, port)  # before the engines are built: a port in use fails at once, in one line
    options = LiveOptions(
        device=backend.device,
        dtype=dtype,
        checkpoint=checkpoint,
        num_blocks=backend.kv_blocks,
        torch_threads=torch_threads,
        distributed=backend.distributed,
    )
    c = config.cluster
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    where = f"{c.instances} instances of {c.model} on {backend.device}, backend {backend.name}"
    try:
        with open_cluster(config, options, max_queue) as cluster:
            announce = f"serving {config.system} ({where}) at {url}"
            run_server(cluster, c.model, sock, lambda: stderr.print(announce, soft_wrap=True))  # one line, any width
    finally:
        sock.close()
