"""`ascbench serve` as a separate process on a free loopback port, as a user runs it: the clients under test then
share no interpreter (and no GIL) with the server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def ascbench_serve(*args: str, startup_s: float = 90.0) -> Iterator[str]:
    """Run ``ascbench serve ARGS --port P``; yield its base URL once ``/health`` answers, then stop it."""
    with serve_process(*args, startup_s=startup_s) as (_, url):
        yield url


@contextmanager
def serve_process(*args: str, startup_s: float = 90.0) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``ascbench_serve``, yielding the process too (to signal it)."""
    port = free_port()
    command = [sys.executable, "-m", "ascendra.harness.cli.main", "serve", *args, "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)
        yield server, url
    finally:
        if server.poll() is None:
            server.terminate()
        server.wait(timeout=30)
