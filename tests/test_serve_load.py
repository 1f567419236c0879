"""`ascbench serve` under abandonment, overload and shutdown, on loopback with the tiny model: a client that goes
away has its request cancelled (its KV freed, later requests not slowed), the queue of requests waiting for a first
token is bounded (429 past it), SIGTERM under load ends every request and exits 0 within seconds, and the address
is announced only once bound (a port in use is one line, exit 2)."""

from __future__ import annotations

import asyncio
import signal
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from serve_process import free_port, serve_process  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from ascendra.harness.cli.main import app  # noqa: E402
from ascendra.harness.config import RunConfig  # noqa: E402
from ascendra.harness.serving import serving_cluster  # noqa: E402
from ascendra.live.engines import LiveOptions  # noqa: E402
from ascendra.serve.cluster import ServingCluster  # noqa: E402

ABANDONED = 50
LONG = {"prompt": [7] * 16, "max_tokens": 2000}
SHORT = {"prompt": [5] * 16, "max_tokens": 16}


def _config() -> RunConfig:
    return RunConfig.of(
        system="vllm", model="tiny", instances=1, workload="fixed:prompt=16,output=16", backend="engine"
    )


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, ServingCluster]]:
    """One instance, so that every abandoned request would share the short requests' batches."""
    with serving_cluster(_config(), LiveOptions(num_blocks=4096)) as pair:
        yield pair


def _short_latency(url: str, repeats: int = 5) -> float:
    """Median seconds of a 16-token request, alone on the server."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        reply = httpx.post(url + "/v1/completions", json=SHORT, timeout=60)
        assert reply.status_code == 200, reply.text
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _wait_until(condition, seconds: float) -> float:
    """Poll ``condition`` until true; the seconds it took (fails past ``seconds``)."""
    start = time.perf_counter()
    while not condition():
        assert time.perf_counter() - start < seconds, "timed out"
        time.sleep(0.002)
    return time.perf_counter() - start


def test_abandoned_streams_are_cancelled_their_kv_freed_and_later_requests_not_slowed(served) -> None:
    url, cluster = served
    ended = cluster.ended.copy()
    before = _short_latency(url)

    async def abandon() -> None:
        async with httpx.AsyncClient(timeout=30) as client:

            async def one() -> None:
                async with client.stream("POST", url + "/v1/completions", json={**LONG, "stream": True}) as response:
                    assert response.status_code == 200
                    await asyncio.sleep(0.05)  # then the client closes the stream

            await asyncio.gather(*(one() for _ in range(ABANDONED)))

    asyncio.run(abandon())
    freed_s = _wait_until(lambda: cluster.kv_blocks_in_use == 0, 5.0)
    after = _short_latency(url)
    print(f"\n{ABANDONED} abandoned streams: KV blocks in use 0 after {freed_s * 1e3:.0f} ms; 16-token request "
          f"{before * 1e3:.0f} ms before, {after * 1e3:.0f} ms after")  # fmt: skip
    assert cluster.ended - ended == Counter(cancelled=ABANDONED, finished=10)
    assert cluster.coordinator.outstanding == 0 and cluster.num_in_flight == 0
    assert cluster.kv_blocks_in_use == 0
    assert not any(node.scheduler.blocks.moved for node in cluster.instances)  # no block table kept for a move
    # Left running, the 50 streams would decode for ~20 s, slowing this request ~3x (measured: 101 -> 354 ms).
    assert after < 2 * before + 0.05


def test_a_disconnected_non_streaming_request_is_cancelled(served) -> None:
    url, cluster = served
    cancelled = cluster.ended["cancelled"]
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/v1/completions", json=LONG, timeout=httpx.Timeout(30, read=0.3))
    _wait_until(lambda: cluster.ended["cancelled"] == cancelled + 1, 5.0)
    _wait_until(lambda: cluster.kv_blocks_in_use == 0, 1.0)
    assert httpx.get(url + "/health").json()["in_flight"] == 0


def test_a_full_queue_answers_429_and_stays_bounded() -> None:
    """40 simultaneous requests against a queue of 4: each is answered 200 (all its tokens) or 429, nothing else,
    and the requests waiting for a first token (sampled every 2 ms) never exceed the cap."""
    with serving_cluster(_config(), LiveOptions(num_blocks=256), max_queue=4) as (url, cluster):
        peak = {"waiting": 0, "in_flight": 0}
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                with cluster.lock:
                    peak["waiting"] = max(peak["waiting"], cluster.num_waiting)
                    peak["in_flight"] = max(peak["in_flight"], cluster.num_in_flight)
                time.sleep(0.002)

        async def load() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100)) as client:
                body = {"prompt": [9] * 32, "max_tokens": 24}
                return await asyncio.gather(*(client.post(url + "/v1/completions", json=body) for _ in range(40)))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            replies = asyncio.run(load())
        finally:
            done.set()
            watcher.join()
        statuses = Counter(r.status_code for r in replies)
        print(f"\nqueue cap 4, 40 at once: {dict(statuses)}, peak {peak}")
        assert set(statuses) == {200, 429}
        assert all(r.json()["usage"]["completion_tokens"] == 24 for r in replies if r.status_code == 200)
        full = next(r for r in replies if r.status_code == 429)
        assert full.json()["error"]["code"] == "queue_full" and full.headers["retry-after"] == "1"
        assert peak["waiting"] <= 4
        assert httpx.post(url + "/v1/completions", json=SHORT).status_code == 200  # still serving


def test_sigterm_under_load_ends_every_request_and_exits_0_within_seconds() -> None:
    args = ("--system", "vllm", "--instances", "1", "--kv-blocks", "2048", "--max-queue", "16")
    with serve_process(*args) as (server, url):

        async def client(http: httpx.AsyncClient, stream: bool, answered: list[int]) -> str:
            body = {**LONG, "stream": stream}
            if not stream:
                status = (await http.post(url + "/v1/completions", json=body)).status_code
                answered.append(status)
                return f"HTTP {status}"
            async with http.stream("POST", url + "/v1/completions", json=body) as response:
                if response.status_code != 200:
                    answered.append(response.status_code)
                    return f"HTTP {response.status_code}"
                lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
                assert lines[-1] == "data: [DONE]"  # ended properly, not cut
                return "error event" if '"error"' in lines[-2] else "finished"

        async def load() -> tuple[list[str | BaseException], float]:
            answered: list[int] = []  # statuses of the requests answered so far (refused at once)
            async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as http:
                tasks = [asyncio.create_task(client(http, i % 3 > 0, answered)) for i in range(24)]
                deadline = time.monotonic() + 30
                while (await http.get(url + "/health")).json()["in_flight"] + len(answered) < 24:
                    assert time.monotonic() < deadline, "the requests did not reach the server"
                    await asyncio.sleep(0.02)  # until every request is in the server or was refused
                await asyncio.sleep(0.3)
                server.send_signal(signal.SIGTERM)
                start = time.perf_counter()
                outcomes = await asyncio.gather(*tasks, return_exceptions=True)
                return outcomes, time.perf_counter() - start

        outcomes, clients_s = asyncio.run(load())
        start = time.perf_counter()
        code = server.wait(timeout=10)
        exit_s = clients_s + time.perf_counter() - start
        stderr = server.stderr.read().decode() if server.stderr else ""
    print(f"\nSIGTERM under load: {dict(Counter(map(str, outcomes)))}; clients answered in {clients_s:.2f} s, "
          f"exit {code} after {exit_s:.2f} s")  # fmt: skip
    assert code == 0 and exit_s < 5.0
    assert set(outcomes) <= {"error event", "finished", "HTTP 503", "HTTP 429"}, outcomes
    assert "Traceback" not in stderr


def test_serve_announces_its_address_only_once_it_accepts_connections() -> None:
    with serve_process("--system", "vllm", "--instances", "1", "--kv-blocks", "64") as (server, url):
        assert server.stderr is not None
        line = server.stderr.readline().decode()
        assert line.startswith("serving vllm") and line.strip().endswith(f"at {url}")
        assert httpx.get(url + "/health", timeout=1).status_code == 200  # announced: it answers at once


@pytest.mark.parametrize("host", ["127.0.0.1", "192.0.2.1"])  # a port in use; an address that is not ours
def test_a_bind_failure_is_one_line_and_exit_2(host: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1] if host == "127.0.0.1" else free_port()
        args = ["serve", "--system", "vllm", "--instances", "1", "--host", host, "--port", str(port)]
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"ascbench: error: cannot listen on {host}:{port}: ") and "serving" not in result.output
