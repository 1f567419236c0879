"""Running the HTTP server in front of a serving cluster.

``serve`` runs in the foreground (``ascbench serve``) on a socket ``listen`` bound first, so that a port in use or
a bad host fails in one line before any engine is built, and the address is announced only once the server
accepts connections. ``running_server`` runs it on a thread for tests and scripts, on a free port of its host.
The cluster comes built (``ascendra.harness.serving.build_cluster`` builds one from a run config, with the
engines a live run uses), so the server knows nothing of configs or systems.

Shutdown (SIGTERM, Ctrl-C): the listener closes and every request in flight ends at once with an error (503, or
an error event when streaming), rather than uvicorn waiting for streams of thousands of tokens to run out; the
process then exits with status 0.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ascendra.errors import UserError
from ascendra.serve.cluster import ServingCluster

#: Seconds uvicorn waits for connections to close at shutdown before it cancels them (every stream has ended
#: by then; this bounds a client that does not read its response).
SHUTDOWN_TIMEOUT_S = 3.0


def _uvicorn_server(cluster: ServingCluster, model: str, announce: Callable[[], None] | None = None) -> Any:
    try:
        import uvicorn

        from ascendra.serve.api import create_app
    except ImportError as exc:
        raise UserError(
            f"ascbench serve needs fastapi and uvicorn ({exc.name} is missing): "
            "pip install -c constraints.txt -e '.[engine,serve]'"
        ) from None

    class Server(uvicorn.Server):
        """uvicorn's server, announcing itself once it listens and ending every request at shutdown."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and announce is not None:
                announce()

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await asyncio.to_thread(cluster.stop)
            await super().shutdown(sockets)

    app = create_app(cluster, model)
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_S
    )
    return Server(config)


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``; a UserError (one line) when it cannot be (port in use, unknown host)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _exit_quietly(signum: int, frame: object) -> None:
    """uvicorn re-raises the signal it shut down on once it is done: exit 0 then, not by the signal."""
    raise SystemExit(0)


def serve(cluster: ServingCluster, model: str, sock: socket.socket, announce: Callable[[], None]) -> None:
    """Serve ``cluster`` (as ``model``) on the bound ``sock`` until interrupted (Ctrl-C / SIGTERM); ``announce``
    is called once it accepts connections."""
    server = _uvicorn_server(cluster, model, announce)
    cluster.start()
    previous = signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        cluster.stop()
        sock.close()


@contextmanager
def running_server(cluster: ServingCluster, model: str, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``cluster`` on a free port of ``host`` on a background thread; yields the base URL, then stops it."""
    sock = listen(host, 0)
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
