"""Building a serving cluster on real engines and running the HTTP server in front of it.

The engines are built exactly as ``ascendra.live.run.run_live`` builds them (same ``build_system``, weights,
KV sizing and warm-up), so a served system is the system a live run measures. ``serve`` runs in the foreground
(``ascbench serve``); ``running_server`` runs it on a thread for tests and scripts, on a free port of its host.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ascendra.config import RunConfig
from ascendra.engine import Engine
from ascendra.errors import UserError
from ascendra.live.engines import BLOCK_SIZE, LiveOptions, default_dtype, kv_blocks, load_model, resolve_device, warm_up
from ascendra.live.executor import EngineExecutor
from ascendra.serve.cluster import Limits, ServingCluster
from ascendra.systems import build_system


def _unused_executor(batch: object) -> float:
    raise AssertionError("replaced by each instance's engine before serving")


def build_cluster(config: RunConfig, options: LiveOptions) -> ServingCluster:
    """``config``'s system with one real engine per instance, not started yet. Sets torch's intra-op threads to
    the cores split between the instances (process-wide, as a server owns its process)."""
    device = resolve_device(options.device)
    dtype = default_dtype(device, options.dtype)
    engine_config, weights = load_model(config.model, options, device, dtype)
    num_blocks = kv_blocks(engine_config, options, dtype)
    instances, router = build_system(config, _unused_executor, num_blocks=num_blocks)
    for node in instances:
        engine = Engine(engine_config, weights, num_blocks, device=device, dtype=dtype)
        if options.warmup:
            warm_up(engine)
        node.batch_time = EngineExecutor(engine, node.scheduler.blocks)
    torch.set_num_threads(options.torch_threads or max(1, torch.get_num_threads() // len(instances)))
    limits = Limits(engine_config.vocab_size, engine_config.max_position_embeddings, num_blocks, BLOCK_SIZE)
    return ServingCluster(instances, router, limits)


def _uvicorn_server(cluster: ServingCluster, model: str):  # -> uvicorn.Server
    try:
        import uvicorn

        from ascendra.serve.api import create_app
    except ImportError as exc:
        raise UserError(
            f"ascbench serve needs fastapi and uvicorn ({exc.name} is missing): "
            "pip install -c constraints.txt -e '.[engine,serve]'"
        ) from None
    app = create_app(cluster, model)
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def serve(config: RunConfig, options: LiveOptions, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``config`` on ``host:port`` until interrupted (Ctrl-C / SIGTERM)."""
    sock = _bind(host, port)
    cluster = build_cluster(config, options)
    server = _uvicorn_server(cluster, config.model)
    cluster.start()
    try:
        server.run(sockets=[sock])
    finally:
        cluster.stop()
        sock.close()


@contextmanager
def running_server(config: RunConfig, options: LiveOptions, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``config`` on a free port of ``host`` on a background thread; yields the base URL, then stops."""
    sock = _bind(host, 0)
    port = sock.getsockname()[1]
    saved_threads = torch.get_num_threads()
    cluster = build_cluster(config, options)
    server = _uvicorn_server(cluster, config.model)
    cluster.start()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="serve-http", daemon=True)
    thread.start()
    try:
        while not server.started and thread.is_alive():
            threading.Event().wait(0.01)
        if not server.started:
            raise RuntimeError("the HTTP server did not start")
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        cluster.stop()
        sock.close()
        torch.set_num_threads(saved_threads)
