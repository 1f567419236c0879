"""The serving cluster: the live runtime's instances and router, open-ended, with one token stream per request.

``LiveCluster`` serves a known workload and ends when it is done; a server does not know its requests in
advance, so this cluster starts the instance threads once, hands each request to the shared ``Coordinator`` when
it is submitted (under the control lock, as the live runtime does), and stops the instances only when the server
stops. It is the same ``WallClockControl`` as ``LiveCluster``, so the instance loop (``ascendra.live.worker``),
the schedulers, routing and moves are unchanged.

Tokens reach their stream from the executor: ``StreamingExecutor`` wraps the engine executor and, right after
a batch has run, hands every newly sampled token to its request's stream (thread-safely, into the stream's
asyncio loop), holding back what may be the start of a stop string (``ascendra.serve.stops``). A request ends
when the scheduler reports it finished (a stop ends it there: its output length becomes what it has generated,
so it finishes like any other), fails when it is dropped (admission control or the router), when an instance
thread dies or when the server stops, and is cancelled (``cancel``: its client went away) through the
coordinator, which frees its KV at once or right after the batch computing it.

Bounded memory: at most ``max_queue`` requests may wait for their first token; ``submit`` refuses more
(``Overloaded``, a 429), so an overloaded server sheds load instead of queueing without end.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections import Counter
from dataclasses import dataclass, field

from ascendra.batch import Batch
from ascendra.coordinator import TransferTime, instant
from ascendra.instance import Executor, Instance
from ascendra.live.worker import WallClockControl
from ascendra.request import Request, RequestSpec
from ascendra.router import Router
from ascendra.sampling import Sampling, TokenLogprobs
from ascendra.serve.stops import Stops

#: Requests that may wait for their first token, by default (``ascbench serve --max-queue``).
DEFAULT_MAX_QUEUE = 512


class Rejected(ValueError):
    """A request this cluster can never serve (the server answers 400), naming the field at fault."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class Unavailable(RuntimeError):
    """The cluster is stopped or broken (the server answers 503)."""


class Overloaded(RuntimeError):
    """``max_queue`` requests already wait for their first token (the server answers 429)."""


@dataclass(frozen=True, slots=True)
class Token:
    """One output token a client is shown: its id, and its log-probabilities when the request asked for them."""

    id: int
    logprobs: TokenLogprobs | None = None


@dataclass(frozen=True, slots=True)
class End:
    """The last item of a stream: ``error`` is None when the request finished, ``finish`` saying how (``length``
    or ``stop``), else why it failed; ``generated`` counts every output token, a stop's own included."""

    error: str | None = None
    finish: str = "length"
    generated: int = 0


@dataclass(slots=True)
class TokenStream:
    """Where one request's tokens go: an asyncio queue of ``Token``s ending with an ``End``."""

    request: Request
    loop: asyncio.AbstractEventLoop
    stops: Stops[Token] | None = None
    queue: asyncio.Queue[Token | End] = field(default_factory=asyncio.Queue)
    #: Output tokens of the request taken so far (shown, held back or a stop's).
    taken: int = 0
    stopped: bool = False
    closed: bool = False

    def push(self, item: Token | End) -> None:
        """Called from any thread; a loop that has closed (the server stopped) is ignored."""
        if self.closed:
            return
        if isinstance(item, End):
            self.closed = True
        with contextlib.suppress(RuntimeError):  # the loop has closed: the server stopped
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def take_new(self) -> bool:
        """Push the request's tokens sampled since the last call (those a stop does not hold back); True when a
        stop was just reached: the request must end at its last token."""
        request, stops = self.request, self.stops
        ids, sampling = request.output_ids, request.sampling
        logprobs = sampling.logprobs if sampling is not None and sampling.top_logprobs is not None else None
        while self.taken < len(ids) and not self.stopped:
            token = Token(ids[self.taken], logprobs[self.taken] if logprobs is not None else None)
            self.taken += 1
            if stops is None:
                self.push(token)
                continue
            shown, self.stopped = stops.feed(token.id, token)
            for item in shown:
                self.push(item)
            if self.stopped:
                return True
        if stops is not None and self.taken >= request.output_len:
            for item in stops.flush():
                self.push(item)
        return False

    def end(self, error: str | None) -> None:
        """Push the ``End``: how the request ended (None: finished), with every token it generated."""
        self.push(End(error, "stop" if self.stopped else "length", len(self.request.output_ids)))


@dataclass(frozen=True, slots=True)
class Limits:
    """What a request may ask for: the model's vocabulary and positions, an instance's KV pool."""

    vocab_size: int
    max_model_len: int
    num_blocks: int
    block_size: int


class StreamingExecutor:
    """An instance executor that publishes each token sampled by a batch to its request's stream."""

    def __init__(self, inner: Executor, streams: dict[int, TokenStream], lock: threading.Lock) -> None:
        self.inner = inner
        self.streams = streams
        self.lock = lock

    def __call__(self, batch: Batch) -> float:
        seconds = self.inner(batch)
        for request in batch.requests():
            stream = self.streams.get(request.id)  # a dict read; the coordinator only adds and pops entries
            if stream is not None and stream.take_new():
                # A stop: its last token is its last. Under the lock, as routers read requests' lengths.
                with self.lock:
                    request.respec(output_tokens=len(request.output_ids))
        return seconds


class ServingCluster(WallClockControl):
    """Instances with real executors plus a router, serving requests as they are submitted until ``stop``.

    ``ended`` counts how requests ended: ``finished``, ``dropped``, ``cancelled``."""

    def __init__(
        self,
        instances: list[Instance],
        router: Router,
        limits: Limits,
        transfer_time: TransferTime = instant,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        super().__init__(instances, router, transfer_time)
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self.limits = limits
        self.max_queue = max_queue
        self.error: BaseException | None = None
        self.ended: Counter[str] = Counter()
        self._streams: dict[int, TokenStream] = {}
        for node in instances:
            node.execute = StreamingExecutor(node.execute, self._streams, self.lock)
        self._next_id = 0

    # --- Control (called by instance threads, with the lock held) ----------------------------------------------

    def idle(self) -> None:
        """Nothing to do: an idle server is not a stall."""

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self._end_all(f"instance failed: {exc!r}")

    def _ended(self, request: Request, error: str | None) -> None:
        self.ended["finished" if error is None else "cancelled" if request.cancelled else "dropped"] += 1
        stream = self._streams.pop(request.id, None)
        if stream is not None:
            stream.end(error)

    # --- serving ----------------------------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self.started and not self.stopping and self.error is None

    @property
    def num_waiting(self) -> int:
        """Requests in flight that have no output token yet (the queue ``max_queue`` bounds); exact under the
        lock, a snapshot without it."""
        return sum(1 for stream in list(self._streams.values()) if not stream.request.output_ids)

    @property
    def num_in_flight(self) -> int:
        """Requests submitted that have not ended (waiting or running)."""
        return len(self._streams)

    @property
    def kv_blocks_in_use(self) -> int:
        """KV blocks held by requests over all instances."""
        return sum(node.scheduler.blocks.num_used for node in self.instances)  # type: ignore[attr-defined]

    def start(self) -> None:
        if self.started:
            raise RuntimeError("a ServingCluster starts once")
        self._start_threads()

    def check(self, prompt_ids: list[int], max_tokens: int) -> None:
        """Raise ``Rejected`` for a request no instance could ever run."""
        limits = self.limits
        if not prompt_ids:
            raise Rejected("the prompt is empty", "prompt")
        if max_tokens < 1:
            raise Rejected(f"max_tokens must be at least 1, got {max_tokens}", "max_tokens")
        if min(prompt_ids) < 0 or max(prompt_ids) >= limits.vocab_size:
            raise Rejected(f"prompt token ids must be in [0, {limits.vocab_size})", "prompt")
        total = len(prompt_ids) + max_tokens
        if total > limits.max_model_len:
            raise Rejected(
                f"prompt ({len(prompt_ids)} tokens) + max_tokens ({max_tokens}) = {total} exceeds the model's "
                f"maximum context length of {limits.max_model_len} tokens",
                "max_tokens",
                "context_length_exceeded",
            )
        if math.ceil(total / limits.block_size) > limits.num_blocks:
            raise Rejected(
                f"{total} tokens do not fit an instance's KV cache of {limits.num_blocks} blocks",
                "max_tokens",
                "context_length_exceeded",
            )

    def submit(
        self,
        prompt_ids: list[int],
        max_tokens: int,
        loop: asyncio.AbstractEventLoop,
        sampling: Sampling | None = None,
        stops: Stops[Token] | None = None,
    ) -> TokenStream:
        """Check, route and enqueue a request now; its tokens arrive on the returned stream."""
        self.check(prompt_ids, max_tokens)
        with self.lock:
            if not self.healthy:
                raise Unavailable("the server is stopping or an instance failed")
            if self.num_waiting >= self.max_queue:
                raise Overloaded(f"the server is overloaded: {self.max_queue} requests already wait; retry later")
            request_id, self._next_id = self._next_id, self._next_id + 1
            now = self.clock()
            request = Request(RequestSpec(request_id, now, len(prompt_ids), max_tokens, tuple(prompt_ids)))
            request.sampling = sampling
            stream = TokenStream(request, loop, stops)
            self._streams[request_id] = stream
            self.coordinator.arrive(request, now)
        return stream

    def cancel(self, stream: TokenStream) -> None:
        """The client of ``stream`` went away: abort its request (now, or right after the batch computing it),
        freeing its KV. Nothing happens to a request that has ended."""
        with self.lock:
            if not stream.closed and not self.stopping:
                self.coordinator.cancel(stream.request, self.clock())

    def stop(self) -> None:
        """Stop the instances; requests still in flight end with an error. Stopping twice does nothing more."""
        with self.lock:
            self.stopping = True  # before the streams end, so no request is submitted after
            self._end_all("the server is shutting down")
        self._stop_threads()

    def _end_all(self, error: str) -> None:
        for request_id in list(self._streams):
            self._streams.pop(request_id).end(error)
