"""The harness as a load generator against any OpenAI-compatible server (``ascbench loadgen``).

``run_openai`` sends each workload request at its arrival time (seconds after the run starts) as a streaming
``POST /v1/completions`` with ``max_tokens`` = its output length and ``ignore_eos: true``, stamps the arrival of
every streamed token, and returns ``ascendra.request.Request`` objects, so ``records_frame`` and ``summarize``
apply as to simulated and live runs.

- Prompts are token ids, since the server's tokenizer would change the prompt's length: the workload's ids when
  it has them, else deterministic ids in [10, 250) seeded by the request id (ids below 256 exist in every
  common vocabulary; the lowest are often special tokens, so they are skipped).
- Token counting, per SSE chunk: the growth of ``usage.completion_tokens`` when the server reports usage in every
  chunk (vLLM's ``continuous_usage_stats``, requested), else the number of ``logprobs.tokens`` if present, else
  one token per chunk with non-empty text. A final usage report that counts more tokens than were seen (chunks
  coalesced) stamps the missing ones with the last chunk's time.
- TTFT is measured from the moment the client takes a request up, when its arrival timer fires: that is the
  record's ``arrival``. The timer fires about a millisecond after the scheduled arrival (the event loop's
  resolution); that lateness is the client's, not the server's, so it is left out of TTFT, as vLLM's own client
  does, and kept in ``LoadgenResult.send_lag`` to show whether the client kept up with the schedule. Time spent
  waiting for a concurrency slot (``max_concurrency``) does count: it is queueing. Payloads are serialised and
  the HTTP session (aiohttp: ~1.5 ms less per request than httpx on loopback) opened before the clock starts.
  ``first_scheduled`` stays None: a client cannot see it.
- A request fails (``dropped=True``, the reason in ``LoadgenResult.errors``) on an HTTP error, an error event, a
  disconnect, a timeout (``timeout`` seconds for the whole request), or a token count other than requested. No
  failure stops the run.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ascendra.errors import UserError
from ascendra.extras import needs
from ascendra.request import Request, RequestSpec
from workloads.spec import Workload

SYNTHETIC_IDS = (10, 250)
#: A p99 send lag above this (s) means the client could not keep up with the schedule.
BEHIND_SCHEDULE_S = 0.010
_JSON = {"Content-Type": "application/json"}


@dataclass(slots=True)
class LoadgenResult:
    """The requests (with token times on the run's clock), why each failed one failed, the run's length, and how
    late the client sent each request (a check that the load generator kept up with the schedule)."""

    requests: list[Request]
    errors: dict[int, str] = field(default_factory=dict)
    duration: float = 0.0
    send_lag: dict[int, float] = field(default_factory=dict)  # request id -> s its timer fired after its arrival

    def client_stats(self) -> dict[str, float | int]:
        """What the client adds to a run's summary: failed requests, the run's length, and the p99 send lag (s)."""
        p99 = float(np.percentile(list(self.send_lag.values()), 99)) if self.send_lag else float("nan")
        return {"failed": len(self.errors), "duration_s": self.duration, "send_lag_p99": p99}


def behind_schedule(send_lag_p99: float, rate: float) -> str | None:
    """A warning when the client sent requests late enough (p99) that the offered load was below ``rate``."""
    if not send_lag_p99 > BEHIND_SCHEDULE_S:
        return None
    return f"warning: at {rate:g} QPS the client sent requests up to {1e3 * send_lag_p99:.0f} ms late (p99)"


def prompt_ids(spec: RequestSpec) -> list[int]:
    """The ids sent for ``spec``: its own, or deterministic synthetic ones of its prompt length."""
    if spec.prompt_ids is not None:
        return list(spec.prompt_ids)
    rng = random.Random(spec.request_id)
    return [rng.randrange(*SYNTHETIC_IDS) for _ in range(spec.prompt_tokens)]


def _chunk_tokens(chunk: dict[str, Any], seen: int) -> int:
    """Tokens carried by one streamed chunk (see the module docstring), given ``seen`` so far."""
    usage = chunk.get("usage")
    choices = chunk.get("choices") or []
    if choices and isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        return max(0, usage["completion_tokens"] - seen)
    count = 0
    for choice in choices:
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict) and isinstance(logprobs.get("tokens"), list):
            count += len(logprobs["tokens"])
        elif choice.get("text") or (choice.get("delta") or {}).get("content"):
            count += 1
    return count


class _Failed(Exception):
    pass


async def _stream(session: Any, url: str, payload: bytes, request: Request, clock: Any) -> None:
    """POST one request and stamp its tokens on ``request``; raise ``_Failed`` with the reason."""
    reported: int | None = None
    async with session.post(url, data=payload, headers=_JSON) as response:
        if response.status != 200:
            body = (await response.read()).decode("utf-8", "replace")
            raise _Failed(f"HTTP {response.status}: {_message(body)}")
        async for raw in response.content:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError:
                raise _Failed(f"bad event: {data[:80]!r}") from None
            if "error" in chunk:
                raise _Failed(f"error event: {_message(json.dumps(chunk))}")
            now = clock()
            request.token_times.extend([now] * _chunk_tokens(chunk, len(request.token_times)))
            usage = chunk.get("usage")
            if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
                reported = usage["completion_tokens"]
    got = len(request.token_times)
    if reported is not None and reported > got and got > 0:
        request.token_times.extend([request.token_times[-1]] * (reported - got))
        got = reported
    if got != request.output_len:
        raise _Failed(f"stream ended after {got} of {request.output_len} tokens")


def _message(body: str) -> str:
    try:
        error = json.loads(body)["error"]
        return str(error.get("message", error)) if isinstance(error, dict) else str(error)
    except (json.JSONDecodeError, KeyError, TypeError):
        return body[:200]


def _payload(spec: RequestSpec, model: str | None) -> bytes:
    body: dict[str, Any] = {
        "prompt": prompt_ids(spec),
        "max_tokens": spec.output_tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        "temperature": 0.0,
    }
    if model is not None:
        body["model"] = model
    return json.dumps(body).encode()


async def _run(
    specs: list[RequestSpec], endpoint: str, model: str | None, max_concurrency: int | None, timeout: float
) -> LoadgenResult:
    import aiohttp

    url = endpoint.rstrip("/") + "/v1/completions"
    requests = [Request(spec) for spec in sorted(specs, key=lambda s: (s.arrival, s.request_id))]
    payloads = [_payload(request.spec, model) for request in requests]  # built before the clock starts
    result = LoadgenResult(requests)
    slots = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    loop = asyncio.get_running_loop()
    t0 = 0.0

    def clock() -> float:
        return loop.time() - t0

    async def one(request: Request, payload: bytes, session: aiohttp.ClientSession) -> None:
        await asyncio.sleep(max(0.0, request.arrival - clock()))
        woke = clock()
        result.send_lag[request.id] = max(0.0, woke - request.arrival)
        request.respec(arrival=max(woke, request.arrival))
        try:
            if slots is not None:
                await slots.acquire()
            try:
                async with asyncio.timeout(timeout):
                    await _stream(session, url, payload, request, clock)
            finally:
                if slots is not None:
                    slots.release()
            request.finish_time = request.token_times[-1]
        except _Failed as exc:
            result.errors[request.id] = str(exc)
        except TimeoutError:
            result.errors[request.id] = f"timed out after {timeout:g} s"
        except (aiohttp.ClientError, ValueError) as exc:  # ValueError: an SSE line over aiohttp's line limit
            result.errors[request.id] = f"{type(exc).__name__}: {exc}"
        if request.id in result.errors:
            request.dropped = True

    connector = aiohttp.TCPConnector(limit=max_concurrency or 0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        t0 = loop.time()  # after the session exists: setting it up must not delay the first requests
        await asyncio.gather(*(one(r, p, session) for r, p in zip(requests, payloads, strict=True)))
        result.duration = clock()
    return result


def run_openai(
    workload: Workload | list[RequestSpec],
    endpoint: str,
    model: str | None = None,
    max_concurrency: int | None = None,
    timeout: float = 300.0,
) -> LoadgenResult:
    """Replay ``workload`` against the OpenAI-compatible server at ``endpoint`` (e.g. ``http://127.0.0.1:8000``).

    ``model`` is sent as the request's model (None: the server's default); ``max_concurrency`` caps requests in
    flight (None: no cap, pure open loop); ``timeout`` bounds each request, seconds."""
    with needs("serve", what="the load generator (loadgen, --backend openai)"):
        import aiohttp  # noqa: F401
    if not endpoint.startswith(("http://", "https://")):
        raise UserError(f"--endpoint must be an http(s) URL, got {endpoint!r}")
    if max_concurrency is not None and max_concurrency < 1:
        raise UserError(f"--max-concurrency must be positive, got {max_concurrency}")
    if not timeout > 0:
        raise UserError(f"--request-timeout must be positive, got {timeout}")
    specs = workload.requests if isinstance(workload, Workload) else workload
    return asyncio.run(_run(specs, endpoint, model, max_concurrency, timeout))
