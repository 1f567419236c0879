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
- TTFT is measured from the workload arrival, so time spent waiting for a concurrency slot (``max_concurrency``)
  counts as queueing. ``first_scheduled`` stays None: a client cannot see it.
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

from ascendra.errors import UserError
from ascendra.request import Request
from workloads.spec import RequestSpec, Workload

SYNTHETIC_IDS = (10, 250)


@dataclass(slots=True)
class LoadgenResult:
    """The requests (with token times on the run's clock), why each failed one failed, and the run's length."""

    requests: list[Request]
    errors: dict[int, str] = field(default_factory=dict)
    duration: float = 0.0


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


async def _stream(client: Any, url: str, payload: dict[str, Any], request: Request, clock: Any) -> None:
    """POST one request and stamp its tokens on ``request``; raise ``_Failed`` with the reason."""
    reported: int | None = None
    async with client.stream("POST", url, json=payload) as response:
        if response.status_code != 200:
            body = (await response.aread()).decode("utf-8", "replace")
            raise _Failed(f"HTTP {response.status_code}: {_message(body)}")
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
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


async def _run(
    specs: list[RequestSpec], endpoint: str, model: str | None, max_concurrency: int | None, timeout: float
) -> LoadgenResult:
    import httpx

    url = endpoint.rstrip("/") + "/v1/completions"
    requests = [Request(spec) for spec in sorted(specs, key=lambda s: (s.arrival, s.request_id))]
    errors: dict[int, str] = {}
    slots = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    def clock() -> float:
        return loop.time() - t0

    async def one(request: Request, client: httpx.AsyncClient) -> None:
        await asyncio.sleep(max(0.0, request.arrival - clock()))
        payload: dict[str, Any] = {
            "prompt": prompt_ids(request.spec),
            "max_tokens": request.output_len,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            "temperature": 0.0,
        }
        if model is not None:
            payload["model"] = model
        try:
            if slots is not None:
                await slots.acquire()
            try:
                async with asyncio.timeout(timeout):
                    await _stream(client, url, payload, request, clock)
            finally:
                if slots is not None:
                    slots.release()
            request.finish_time = request.token_times[-1]
        except _Failed as exc:
            errors[request.id] = str(exc)
        except TimeoutError:
            errors[request.id] = f"timed out after {timeout:g} s"
        except httpx.HTTPError as exc:
            errors[request.id] = f"{type(exc).__name__}: {exc}"
        if request.id in errors:
            request.dropped = True

    limits = httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout), limits=limits) as client:
        await asyncio.gather(*(one(request, client) for request in requests))
        duration = clock()
    return LoadgenResult(requests, errors, duration)


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
    try:
        import httpx  # noqa: F401
    except ImportError:
        raise UserError("the load generator needs httpx (pip install httpx)") from None
    if not endpoint.startswith(("http://", "https://")):
        raise UserError(f"--endpoint must be an http(s) URL, got {endpoint!r}")
    if max_concurrency is not None and max_concurrency < 1:
        raise UserError(f"--max-concurrency must be positive, got {max_concurrency}")
    if not timeout > 0:
        raise UserError(f"--timeout must be positive, got {timeout}")
    specs = workload.requests if isinstance(workload, Workload) else workload
    return asyncio.run(_run(specs, endpoint, model, max_concurrency, timeout))
