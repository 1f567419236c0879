"""Running the HTTP server in front of a serving cluster.

``serve`` runs in the foreground (``ascbench serve``); ``running_server`` runs it on a thread for tests and
scripts, on a free port of its host. The cluster comes built (``ascendra.harness.serving.build_cluster`` builds
one from a run config, with the engines a live run uses), so the server knows nothing of configs or systems.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ascendra.errors import UserError
from ascendra.serve.cluster import ServingCluster


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


def serve(cluster: ServingCluster, model: str, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``cluster`` (as ``model``) on ``host:port`` until interrupted (Ctrl-C / SIGTERM)."""
    sock = _bind(host, port)
    server = _uvicorn_server(cluster, model)
    cluster.start()
    try:
        server.run(sockets=[sock])
    finally:
        cluster.stop()
        sock.close()


@contextmanager
def running_server(cluster: ServingCluster, model: str, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``cluster`` on a free port of ``host`` on a background thread; yields the base URL, then stops it."""
    sock = _bind(host, 0)
    port = sock.getsockname()[1]
    server = _uvicorn_server(cluster, model)
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
