"""The OpenAI-compatible HTTP surface: ``/v1/completions``, ``/v1/chat/completions``, ``/v1/models``, ``/health``.

What a request may carry:

- ``prompt`` (completions): a string, a list of token ids, or a one-element list of either. Strings are
  encoded by ``ascendra.serve.prompts`` (one token per UTF-8 byte). ``messages`` (chat): ``{role, content}``
  objects, rendered as ``"role: content\\n"`` lines and then encoded the same way.
- ``max_tokens`` (chat also ``max_completion_tokens``; default 16): the exact number of tokens generated. The
  engine has no end-of-sequence stop, so every request behaves as with ``ignore_eos: true`` (accepted) and
  finishes with ``finish_reason: "length"``. Sampling is the engine's (greedy); sampling parameters are ignored.
- ``stream``: server-sent events, one chunk per token; ``stream_options.include_usage`` adds a final usage
  chunk and ``stream_options.continuous_usage_stats`` (vLLM's extension) adds usage to every chunk.
- ``model``: optional; anything but the served model's name is a 404.

Malformed requests (bad JSON, wrong types, ``n`` > 1, several prompts, prompts too long for the model or the KV
cache) get a 400 in OpenAI's error shape; an unknown model 404; a stopped or broken cluster 503. A request
dropped by the system's admission control ends with an error (an error event when streaming, 503 otherwise).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ascendra.serve.cluster import End, Rejected, ServingCluster, TokenStream, Unavailable
from ascendra.serve.prompts import encode_text, token_text


class ApiError(Exception):
    """An error answered in OpenAI's shape with an HTTP status."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def _error_body(status: int, message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


@dataclass(frozen=True, slots=True)
class Generation:
    """A parsed generation request."""

    prompt_ids: list[int]
    max_tokens: int
    stream: bool
    include_usage: bool
    continuous_usage: bool
    chat: bool


def _is_ids(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def _prompt_ids(prompt: Any, vocab_size: int) -> list[int]:
    if isinstance(prompt, list) and len(prompt) == 1 and (isinstance(prompt[0], str) or _is_ids(prompt[0])):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return encode_text(prompt, vocab_size)
    if _is_ids(prompt):
        return list(prompt)
    raise ApiError(400, "prompt must be a string or a list of token ids (one prompt per request)")


def _chat_text(messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list")
    lines = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(400, "each message needs a string role")
        content = message.get("content")
        if isinstance(content, list):  # content parts: only text parts are supported
            if not all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in content):
                raise ApiError(400, "only text content parts are supported")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise ApiError(400, "message content must be a string or a list of text parts")
        lines.append(f"{message['role']}: {content}\n")
    return "".join(lines)


def _int_field(body: dict[str, Any], *names: str, default: int) -> int:
    for name in names:
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ApiError(400, f"{name} must be an integer")
            return value
    return default


def parse_generation(body: Any, model: str, vocab_size: int, chat: bool) -> Generation:
    """Validate a completions or chat body; raise ``ApiError`` with the status to answer."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    if body.get("model") not in (None, model):
        message = f"the model {body.get('model')!r} does not exist; this server serves {model!r}"
        raise ApiError(404, message, "NotFoundError")
    if _int_field(body, "n", default=1) != 1:
        raise ApiError(400, "only n=1 is supported")
    if body.get("echo"):
        raise ApiError(400, "echo is not supported")
    try:
        if chat:
            ids = encode_text(_chat_text(body.get("messages")), vocab_size)
        else:
            ids = _prompt_ids(body.get("prompt"), vocab_size)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    max_tokens = _int_field(body, "max_tokens", "max_completion_tokens", default=16)
    stream = body.get("stream", False)
    options = body.get("stream_options") or {}
    if not isinstance(stream, bool) or not isinstance(options, dict):
        raise ApiError(400, "stream must be a boolean and stream_options an object")
    return Generation(
        ids, max_tokens, stream, bool(options.get("include_usage")), bool(options.get("continuous_usage_stats")), chat
    )


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

    def chunk(self, text: str | None, finish: str | None, generated: int, role: bool = False) -> dict[str, Any]:
        if self.gen.chat:
            delta: dict[str, str] = {"role": "assistant"} if role else {}
            if text is not None:
                delta["content"] = text
            choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        body = {**self._envelope(True), "choices": [choice]}
        if self.gen.continuous_usage:
            body["usage"] = self.usage(generated)
        return body

    def usage_chunk(self, generated: int) -> dict[str, Any]:
        return {**self._envelope(True), "choices": [], "usage": self.usage(generated)}

    def full(self, text: str) -> dict[str, Any]:
        if self.gen.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "length",
            }
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
        return {**self._envelope(False), "choices": [choice], "usage": self.usage(len(text))}


def _sse(obj: dict[str, Any] | str) -> str:
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj)}\n\n"


async def _events(stream: TokenStream, reply: _Reply) -> AsyncIterator[str]:
    generated = 0
    if reply.gen.chat:
        yield _sse(reply.chunk(None, None, 0, role=True))
    while True:
        item = await stream.queue.get()
        if isinstance(item, End):
            break
        generated += 1
        last = generated == reply.gen.max_tokens
        yield _sse(reply.chunk(token_text(item), "length" if last else None, generated))
    if item.error is not None:
        yield _sse(_error_body(503, item.error, "ServiceUnavailableError"))
    elif reply.gen.include_usage:
        yield _sse(reply.usage_chunk(generated))
    yield _sse("[DONE]")


def create_app(cluster: ServingCluster, model: str) -> FastAPI:
    """The FastAPI app serving ``cluster`` under the model name ``model``."""
    app = FastAPI(title="Ascendra (ascbench serve)", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_error_body(exc.status, str(exc), exc.kind), status_code=exc.status)

    @app.get("/health")
    async def health() -> JSONResponse:
        if not cluster.healthy:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": model, "object": "model", "created": 0, "owned_by": "ascendra"}
        return {"object": "list", "data": [{**card, "max_model_len": cluster.limits.max_model_len}]}

    async def generate(request: Request, chat: bool) -> Any:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "the request body is not valid JSON") from None
        gen = parse_generation(body, model, cluster.limits.vocab_size, chat)
        try:
            stream = cluster.submit(gen.prompt_ids, gen.max_tokens, asyncio.get_running_loop())
        except Rejected as exc:
            raise ApiError(400, str(exc)) from None
        except Unavailable as exc:
            raise ApiError(503, str(exc), "ServiceUnavailableError") from None
        reply = _Reply(gen, model)
        if gen.stream:
            return StreamingResponse(_events(stream, reply), media_type="text/event-stream")
        text = []
        while not isinstance(item := await stream.queue.get(), End):
            text.append(token_text(item))
        if item.error is not None:
            raise ApiError(503, item.error, "ServiceUnavailableError")
        return reply.full("".join(text))

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await generate(request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        return await generate(request, chat=True)

    return app
