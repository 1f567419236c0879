"""The OpenAI-compatible HTTP surface: ``/v1/completions``, ``/v1/chat/completions``, ``/v1/models``, ``/health``.

What a request may carry:

- ``prompt`` (completions): a string, a list of token ids, or a one-element list of either. Strings are
  encoded by ``ascendra.serve.prompts`` (one token per UTF-8 byte). ``messages`` (chat): ``{role, content}``
  objects, rendered as ``"role: content\\n"`` lines and then encoded the same way.
- ``max_tokens`` (chat also ``max_completion_tokens``; default 16): the number of tokens generated unless a stop
  comes first. The engine has no end-of-sequence token, so ``ignore_eos`` is accepted and changes nothing.
- ``stop`` (a string or a list of them) and ``stop_token_ids`` (vLLM's): the request ends at the first; the stop
  is not in the output and ``finish_reason`` is ``"stop"`` (``"length"`` otherwise).
- ``temperature`` (0 to 2; default 0, greedy, not OpenAI's 1: runs are reproducible unless asked otherwise),
  ``top_p`` (in (0, 1]) and ``seed`` (default: a random one): sampled per token from seeds derived from ``seed``,
  so one seed gives the same output every time (``ascendra.sampling``).
- ``logprobs``: completions an integer (0 to 20 alternatives), chat ``logprobs: true`` with ``top_logprobs``;
  they are the model's, before temperature and top-p.
- ``stream``: server-sent events, one chunk per token; ``stream_options.include_usage`` adds a final usage
  chunk and ``stream_options.continuous_usage_stats`` (vLLM's extension) adds usage to every chunk.
- ``model``: optional; anything but the served model's name is a 404.

Parameters the server cannot honour (``_UNSUPPORTED``: tools, response formats other than text, penalties,
``n`` > 1, ...) are refused with a 400 naming them rather than ignored. Errors have OpenAI's shape, with a
string ``code``: malformed requests get a 400, an unknown model or path a 404, a full queue a 429 (see
``ServingCluster.max_queue``), a stopped or broken cluster or a request dropped by the system's admission control a
503 (an error event when streaming). A client that goes away (a closed stream, a disconnected non-streaming
request) has its request cancelled, which frees its KV at once.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from ascendra.sampling import Sampling
from ascendra.serve.cluster import End, Overloaded, Rejected, ServingCluster, Token, TokenStream, Unavailable
from ascendra.serve.prompts import encode_text, token_text
from ascendra.serve.stops import Stops

#: Parameters this server cannot honour, each with the values that ask for nothing (accepted, as is null).
_UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "best_of": (1,),
    "echo": (False,),
    "suffix": ("",),
    "tools": ([],),
    "tool_choice": ("none",),
    "functions": ([],),
    "function_call": ("none",),
    "response_format": ({"type": "text"},),
    "logit_bias": ({},),
    "presence_penalty": (0,),
    "frequency_penalty": (0,),
    "repetition_penalty": (1,),
    "top_k": (-1, 0),
    "min_p": (0,),
    "min_tokens": (0,),
}
#: The most log-probability alternatives a request may ask for per token (vLLM's default limit).
MAX_LOGPROBS = 20
#: OpenAI's error type for each status this server answers.
_ERROR_TYPES = {400: "invalid_request_error", 404: "invalid_request_error", 429: "rate_limit_error"}


class ApiError(Exception):
    """An error answered in OpenAI's shape: HTTP status, message, string code and the parameter at fault."""

    def __init__(self, status: int, message: str, code: str = "invalid_value", param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param


def _error_body(status: int, message: str, code: str, param: str | None = None) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _error_response(exc: ApiError) -> JSONResponse:
    headers = {"Retry-After": "1"} if exc.status == 429 else None
    return JSONResponse(_error_body(exc.status, str(exc), exc.code, exc.param), exc.status, headers=headers)


@dataclass(frozen=True, slots=True)
class Generation:
    """A parsed generation request."""

    prompt_ids: list[int]
    max_tokens: int
    stream: bool
    include_usage: bool
    continuous_usage: bool
    chat: bool
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    top_logprobs: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()

    def sampling(self) -> Sampling | None:
        """The request's own sampling; None for the engine's default (greedy, no logprobs)."""
        if self.temperature == 0.0 and self.top_logprobs is None:
            return None
        return Sampling(self.temperature, self.top_p, self.seed, self.top_logprobs)

    def stops(self) -> Stops[Token] | None:
        return Stops(self.stop, self.stop_token_ids) if self.stop or self.stop_token_ids else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_ids(value: Any) -> bool:
    return isinstance(value, list) and all(_is_int(v) for v in value)


def _prompt_ids(prompt: Any, vocab_size: int) -> list[int]:
    if isinstance(prompt, list) and len(prompt) == 1 and (isinstance(prompt[0], str) or _is_ids(prompt[0])):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return encode_text(prompt, vocab_size)
    if _is_ids(prompt):
        return list(prompt)
    raise ApiError(400, "prompt must be a string or a list of token ids (one prompt per request)", param="prompt")


def _chat_text(messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", param="messages")
    lines = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(400, "each message needs a string role", param="messages")
        content = message.get("content")
        if isinstance(content, list):  # content parts: only text parts are supported
            if not all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in content):
                raise ApiError(400, "only text content parts are supported", param="messages")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise ApiError(400, "message content must be a string or a list of text parts", param="messages")
        lines.append(f"{message['role']}: {content}\n")
    return "".join(lines)


def _int_field(body: dict[str, Any], *names: str, default: int) -> int:
    for name in names:
        value = body.get(name)
        if value is not None:
            if not _is_int(value):
                raise ApiError(400, f"{name} must be an integer", param=name)
            return value
    return default


def _number(body: dict[str, Any], name: str, low: float, high: float, default: float, open_low: bool = False) -> float:
    """A finite number in [low, high] (or (low, high] with ``open_low``), or ``default`` when absent."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ApiError(400, f"{name} must be a number", param=name)
    if not (low < value if open_low else low <= value) or value > high:
        raise ApiError(400, f"{name} must be in {'(' if open_low else '['}{low:g}, {high:g}], got {value}", param=name)
    return float(value)


def _check_supported(body: dict[str, Any]) -> None:
    for name, harmless in _UNSUPPORTED.items():
        value = body.get(name)
        if value is not None and value not in harmless:
            allowed = " or ".join(json.dumps(v) for v in harmless)
            message = f"{name} is not supported by this server (only {allowed} or null): {json.dumps(value)[:80]}"
            raise ApiError(400, message, "unsupported_parameter", name)


def _stops(body: dict[str, Any], vocab_size: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
    stop = body.get("stop")
    strings = [stop] if isinstance(stop, str) else stop if stop is not None else []
    if not isinstance(strings, list) or not all(isinstance(s, str) and s for s in strings):
        raise ApiError(400, "stop must be a non-empty string or a list of them", param="stop")
    ids = body.get("stop_token_ids") or []
    if not _is_ids(ids) or not all(0 <= i < vocab_size for i in ids):
        raise ApiError(400, f"stop_token_ids must be a list of token ids in [0, {vocab_size})", param="stop_token_ids")
    return tuple(strings), tuple(ids)


def _top_logprobs(body: dict[str, Any], chat: bool) -> int | None:
    """How many alternatives per token the request asks for; None when it asks for no logprobs."""
    if chat:
        wanted = body.get("logprobs")
        if wanted not in (None, True, False):
            raise ApiError(400, "logprobs must be a boolean", param="logprobs")
        name = "top_logprobs"
        if body.get(name) is not None and not wanted:
            raise ApiError(400, "top_logprobs needs logprobs: true", param=name)
        if not wanted:
            return None
        count = _int_field(body, name, default=0)
    else:
        name = "logprobs"
        if body.get(name) is None:
            return None
        count = _int_field(body, name, default=0)
    if not 0 <= count <= MAX_LOGPROBS:
        raise ApiError(400, f"{name} must be in [0, {MAX_LOGPROBS}], got {count}", param=name)
    return count


def parse_generation(body: Any, model: str, vocab_size: int, chat: bool) -> Generation:
    """Validate a completions or chat body; raise ``ApiError`` with the status to answer."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    if body.get("model") not in (None, model):
        message = f"the model {body.get('model')!r} does not exist; this server serves {model!r}"
        raise ApiError(404, message, "model_not_found", "model")
    _check_supported(body)
    try:
        if chat:
            ids = encode_text(_chat_text(body.get("messages")), vocab_size)
        else:
            ids = _prompt_ids(body.get("prompt"), vocab_size)
    except ValueError as exc:
        raise ApiError(400, str(exc), param="messages" if chat else "prompt") from None
    max_tokens = _int_field(body, "max_tokens", "max_completion_tokens", default=16)
    stream = body.get("stream", False)
    options = body.get("stream_options") or {}
    if not isinstance(stream, bool) or not isinstance(options, dict):
        raise ApiError(400, "stream must be a boolean and stream_options an object", param="stream")
    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        raise ApiError(400, "seed must be an integer", param="seed")
    stop, stop_token_ids = _stops(body, vocab_size)
    return Generation(
        ids,
        max_tokens,
        stream,
        bool(options.get("include_usage")),
        bool(options.get("continuous_usage_stats")),
        chat,
        temperature=_number(body, "temperature", 0.0, 2.0, 0.0),
        top_p=_number(body, "top_p", 0.0, 1.0, 1.0, open_low=True),
        seed=secrets.randbits(63) if seed is None else seed,
        top_logprobs=_top_logprobs(body, chat),
        stop=stop,
        stop_token_ids=stop_token_ids,
    )


def _logprob_entry(token_id: int, logprob: float) -> dict[str, Any]:
    text = token_text(token_id)
    return {"token": text, "logprob": logprob, "bytes": list(text.encode())}


class _Reply:
    """Builds completion / chat chunks and final bodies for one request."""

    def __init__(self, gen: Generation, model: str) -> None:
        self.gen = gen
        self.model = model
        self.id = f"{'chatcmpl' if gen.chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def usage(self, generated: int) -> dict[str, int]:
        prompt = len(self.gen.prompt_ids)
        return {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}

    def _envelope(self, chunk: bool) -> dict[str, Any]:
        kind = "chat.completion" if self.gen.chat else "text_completion"
        kind += ".chunk" if chunk and self.gen.chat else ""
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def _logprobs(self, tokens: list[Token], offset: int) -> dict[str, Any] | None:
        """The choice's ``logprobs`` for ``tokens`` (the first at character ``offset`` of the output)."""
        if self.gen.top_logprobs is None:
            return None
        scored = [(t.id, t.logprobs) for t in tokens if t.logprobs is not None]
        if self.gen.chat:
            return {
                "content": [
                    {**_logprob_entry(i, lp), "top_logprobs": [_logprob_entry(a, alp) for a, alp in alternatives]}
                    for i, (lp, alternatives) in scored
                ]
            }
        tops = []
        for _, (_, alternatives) in scored:
            top: dict[str, float] = {}
            for a, alp in alternatives:  # best first: two ids shown as one character keep the likelier
                top.setdefault(token_text(a), alp)
            tops.append(top)
        return {
            "tokens": [token_text(i) for i, _ in scored],
            "token_logprobs": [lp for _, (lp, _) in scored],
            "top_logprobs": tops,
            "text_offset": list(range(offset, offset + len(scored))),  # one character per token
        }

    def _choice(self, tokens: list[Token], finish: str | None, offset: int, delta: bool) -> dict[str, Any]:
        text = "".join(token_text(t.id) for t in tokens)
        choice: dict[str, Any] = {"index": 0}
        if not self.gen.chat:
            choice["text"] = text
        elif delta:
            choice["delta"] = {"content": text} if tokens else {}
        else:
            choice["message"] = {"role": "assistant", "content": text}
        return {**choice, "logprobs": self._logprobs(tokens, offset), "finish_reason": finish}

    def role_chunk(self) -> dict[str, Any]:
        choice = {"index": 0, "delta": {"role": "assistant"}, "logprobs": None, "finish_reason": None}
        return self._chunk_body(choice, 0)

    def chunk(self, tokens: list[Token], finish: str | None, shown: int, generated: int) -> dict[str, Any]:
        """A chunk of ``tokens`` after ``shown`` characters of output, ``generated`` tokens so far."""
        return self._chunk_body(self._choice(tokens, finish, shown, delta=True), generated)

    def _chunk_body(self, choice: dict[str, Any], generated: int) -> dict[str, Any]:
        body = {**self._envelope(True), "choices": [choice]}
        if self.gen.continuous_usage:
            body["usage"] = self.usage(generated)
        return body

    def usage_chunk(self, generated: int) -> dict[str, Any]:
        return {**self._envelope(True), "choices": [], "usage": self.usage(generated)}

    def full(self, tokens: list[Token], end: End) -> dict[str, Any]:
        choice = self._choice(tokens, end.finish, 0, delta=False)
        return {**self._envelope(False), "choices": [choice], "usage": self.usage(end.generated)}


def _sse(obj: dict[str, Any] | str) -> str:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n"


async def _events(stream: TokenStream, reply: _Reply, cluster: ServingCluster) -> AsyncIterator[str]:
    try:
        if reply.gen.chat:
            yield _sse(reply.role_chunk())
        shown = 0
        while not isinstance(item := await stream.queue.get(), End):
            shown += 1
            last = shown == reply.gen.max_tokens
            yield _sse(reply.chunk([item], "length" if last else None, shown - 1, shown))
        if item.error is not None:
            yield _sse(_error_body(503, item.error, "service_unavailable"))
        else:
            if item.finish == "stop":
                yield _sse(reply.chunk([], "stop", shown, item.generated))
            if reply.gen.include_usage:
                yield _sse(reply.usage_chunk(item.generated))
        yield _sse("[DONE]")
    finally:  # the client closed the stream (or it ended): its request stops here (nothing if it has ended)
        cluster.cancel(stream)


async def _cancel_on_disconnect(request: Request, stream: TokenStream, cluster: ServingCluster) -> None:
    """Cancel ``stream``'s request when its (non-streaming) client disconnects before the reply."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    cluster.cancel(stream)


def create_app(cluster: ServingCluster, model: str) -> FastAPI:
    """The FastAPI app serving ``cluster`` under the model name ``model``."""
    app = FastAPI(title="Ascendra (ascbench serve)", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else "method_not_allowed" if exc.status_code == 405 else "error"
        return _error_response(ApiError(exc.status_code, str(exc.detail), code))

    @app.get("/health")
    async def health() -> JSONResponse:
        """Up or not, and the load: requests waiting for a first token (at most ``max_queue``) and in flight."""
        load = {"waiting": cluster.num_waiting, "max_queue": cluster.max_queue, "in_flight": cluster.num_in_flight}
        if not cluster.healthy:
            return JSONResponse({"status": "unavailable", **load}, status_code=503)
        return JSONResponse({"status": "ok", **load})

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": model, "object": "model", "created": 0, "owned_by": "ascendra"}
        return {"object": "list", "data": [{**card, "max_model_len": cluster.limits.max_model_len}]}

    async def generate(request: Request, chat: bool) -> Any:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "the request body is not valid JSON", "invalid_json") from None
        gen = parse_generation(body, model, cluster.limits.vocab_size, chat)
        try:
            stream = cluster.submit(
                gen.prompt_ids, gen.max_tokens, asyncio.get_running_loop(), gen.sampling(), gen.stops()
            )
        except Rejected as exc:
            raise ApiError(400, str(exc), exc.code, exc.param) from None
        except Overloaded as exc:
            raise ApiError(429, str(exc), "queue_full") from None
        except Unavailable as exc:
            raise ApiError(503, str(exc), "service_unavailable") from None
        reply = _Reply(gen, model)
        if gen.stream:
            return StreamingResponse(_events(stream, reply, cluster), media_type="text/event-stream")
        watcher = asyncio.create_task(_cancel_on_disconnect(request, stream, cluster))
        try:
            tokens = []
            while not isinstance(item := await stream.queue.get(), End):
                tokens.append(item)
        finally:
            watcher.cancel()
            cluster.cancel(stream)  # this handler was cancelled (nothing if the request has ended)
        if item.error is not None:
            raise ApiError(503, item.error, "service_unavailable")
        return reply.full(tokens, item)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await generate(request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        return await generate(request, chat=True)

    return app
