"""The serving cluster: the live runtime's instances and router, open-ended, with one token stream per request.

``LiveCluster`` serves a known workload and ends when it is done; a server does not know its requests in
advance, so this cluster starts the instance threads once, hands each request to the shared ``Coordinator`` when
it is submitted (under the control lock, as the live runtime does), and stops the instances only when the server
stops. It is the same ``WallClockControl`` as ``LiveCluster``, so the instance loop (``ascendra.live.worker``),
the schedulers, routing and moves are unchanged.

Tokens reach their stream from the executor: ``StreamingExecutor`` wraps the engine executor and, right after
a batch has run, hands every newly sampled token to its request's stream (thread-safely, into the stream's
asyncio loop). A request ends when the scheduler reports it finished, or fails when it is dropped (admission
control or the router), when an instance thread dies, or when the server stops.

Requests cannot be cancelled (the schedulers have no abort): one whose client went away runs to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass, field

from ascendra.batch import Batch
from ascendra.coordinator import TransferTime, instant
from ascendra.instance import Executor, Instance
from ascendra.live.worker import WallClockControl
from ascendra.request import Request, RequestSpec
from ascendra.router import Router


class Rejected(ValueError):
    """A request this cluster can never serve (the server answers 400)."""


class Unavailable(RuntimeError):
    """The cluster is stopped or broken (the server answers 503)."""


@dataclass(frozen=True, slots=True)
class End:
    """The last item of a stream: ``error`` is None when the request finished, else why it failed."""

    error: str | None = None


@dataclass(slots=True)
class TokenStream:
    """Where one request's tokens go: an asyncio queue of token ids (ints) ending with an ``End``."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[int | End] = field(default_factory=asyncio.Queue)
    sent: int = 0
    closed: bool = False

    def push(self, item: int | End) -> None:
        """Called from any thread; a loop that has closed (the server stopped) is ignored."""
        if self.closed:
            return
        if isinstance(item, End):
            self.closed = True
        with contextlib.suppress(RuntimeError):  # the loop has closed: the server stopped
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


@dataclass(frozen=True, slots=True)
class Limits:
    """What a request may ask for: the model's vocabulary and positions, an instance's KV pool."""

    vocab_size: int
    max_model_len: int
    num_blocks: int
    block_size: int


class StreamingExecutor:
    """An instance executor that publishes each token sampled by a batch to its request's stream."""

    def __init__(self, inner: Executor, streams: dict[int, TokenStream]) -> None:
        self.inner = inner
        self.streams = streams

    def __call__(self, batch: Batch) -> float:
        seconds = self.inner(batch)
        for item in batch.items:
            request = item.request
            stream = self.streams.get(request.id)  # a dict read; the coordinator only adds and pops entries
            if stream is None:
                continue
            while stream.sent < len(request.output_ids):
                stream.push(request.output_ids[stream.sent])
                stream.sent += 1
        return seconds


class ServingCluster(WallClockControl):
    """Instances with real executors plus a router, serving requests as they are submitted until ``stop``."""

    def __init__(
        self, instances: list[Instance], router: Router, limits: Limits, transfer_time: TransferTime = instant
    ) -> None:
        super().__init__(instances, router, transfer_time)
        self.limits = limits
        self.error: BaseException | None = None
        self._streams: dict[int, TokenStream] = {}
        for node in instances:
            node.execute = StreamingExecutor(node.execute, self._streams)
        self._next_id = 0

    # --- Control (called by instance threads, with the lock held) ----------------------------------------------

    def idle(self) -> None:
        """Nothing to do: an idle server is not a stall."""

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self._end_all(f"instance failed: {exc!r}")

    def _ended(self, request: Request, error: str | None) -> None:
        stream = self._streams.pop(request.id, None)
        if stream is not None:
            stream.push(End(error))

    # --- serving ----------------------------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self.started and not self.stopping and self.error is None

    def start(self) -> None:
        if self.started:
            raise RuntimeError("a ServingCluster starts once")
        self._start_threads()

    def check(self, prompt_ids: list[int], max_tokens: int) -> None:
        """Raise ``Rejected`` for a request no instance could ever run."""
        limits = self.limits
        if not prompt_ids:
            raise Rejected("the prompt is empty")
        if max_tokens < 1:
            raise Rejected(f"max_tokens must be at least 1, got {max_tokens}")
        if min(prompt_ids) < 0 or max(prompt_ids) >= limits.vocab_size:
            raise Rejected(f"prompt token ids must be in [0, {limits.vocab_size})")
        total = len(prompt_ids) + max_tokens
        if total > limits.max_model_len:
            raise Rejected(
                f"prompt ({len(prompt_ids)} tokens) + max_tokens ({max_tokens}) = {total} exceeds the model's "
                f"maximum context length of {limits.max_model_len} tokens"
            )
        if math.ceil(total / limits.block_size) > limits.num_blocks:
            raise Rejected(f"{total} tokens do not fit an instance's KV cache of {limits.num_blocks} blocks")

    def submit(self, prompt_ids: list[int], max_tokens: int, loop: asyncio.AbstractEventLoop) -> TokenStream:
        """Check, route and enqueue a request now; its tokens arrive on the returned stream."""
        self.check(prompt_ids, max_tokens)
        stream = TokenStream(loop)
        with self.lock:
            if not self.healthy:
                raise Unavailable("the server is stopping or an instance failed")
            request_id, self._next_id = self._next_id, self._next_id + 1
            now = self.clock()
            request = Request(RequestSpec(request_id, now, len(prompt_ids), max_tokens, tuple(prompt_ids)))
            self._streams[request_id] = stream
            self.coordinator.arrive(request, now)
        return stream

    def stop(self) -> None:
        """Stop the instances; requests still in flight end with an error."""
        with self.lock:
            self.stopping = True  # before the streams end, so no request is submitted after
            self._end_all("the server is shutting down")
        self._stop_threads()

    def _end_all(self, error: str) -> None:
        for request_id in list(self._streams):
            self._streams.pop(request_id).push(End(error))
