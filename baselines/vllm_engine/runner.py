"""Serve a workload with vLLM's own engine, in this process, on the wall clock; record it like our runs.

Timeline: ``time.monotonic()`` relative to the run start (after engine start-up and warm-up), which is also the
clock vLLM's engine core stamps its scheduling events with, so a request's first scheduling time comes from
vLLM itself (``RequestOutput.metrics.scheduled_ts``, recorded because stats logging is on). A token's time is
the moment the ``step()`` that produced it returned, the same convention as our live runtime.

The engine is stepped from a thread of its own (``VllmServer.stepper``), never from the process's main thread,
as our live runtime steps each instance's engine (``--backend vllm`` included) from an instance thread: on CPU a
step runs on the OpenMP team of the thread calling it, and GNU OpenMP spins the main thread's team hard (as
many threads as cores) where a later thread's team yields, so on a host shared with other processes main-thread
steps stall (measured on 2 cores under load: 10-100 ms per step against 6-10 ms from a thread, with both OpenMP
threads spinning through the stall), while on an idle host they are 25-40% quicker. Stepped alike, vLLM's own
scheduler and our policies on vLLM compare like with like.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ascendra.errors import UserError
from ascendra.metrics import SLO, run_tables
from ascendra.request import Request, RequestSpec
from ascendra.vllm_backend.host import (
    INSTALL_HINT,
    TINY_VLLM,
    check_head_dim,
    engine_spec,
    engine_threads,
    is_cpu,
    prompt_ids,
    set_environment,
    start_engine,
    step_threads,
    vllm_available,
    write_checkpoint,
)
from workloads.spec import Workload

#: vLLM's scheduling policies (``priority``: lower value first, ties by arrival).
POLICIES = ("fcfs", "priority")
DTYPES = ("float32", "bfloat16", "float16")
INSTANCE = "vllm0"


def shortest_job_first(spec: RequestSpec) -> int:
    """The default priority under ``policy="priority"``: total tokens, so short requests go first."""
    return spec.prompt_tokens + spec.output_tokens


@dataclass(frozen=True, slots=True)
class VllmEngineOptions:
    """How vLLM serves the workload: model, precision, its scheduling knobs, memory and CPU binding.

    - ``model``: shapes of the random-weight Llama built locally (``tiny-vllm`` or a name from the model
      table); ``checkpoint`` instead serves a local HF checkpoint directory (config.json + safetensors).
    - ``enable_chunked_prefill``, ``max_num_batched_tokens``, ``max_num_seqs``, ``policy``: vLLM's scheduler
      options under their vLLM names; ``priority`` maps a request to its priority under ``policy="priority"``.
    - ``max_model_len``: default the longest request of the workload (keeps vLLM's checks tight).
    - ``kv_cache_gib``: KV cache memory; ``block_size``: KV block size in tokens (default vLLM's choice; its CPU
      attention wants multiples of 32).
    - ``cpu_cores``: the engine's cores (``"0,1"``; vLLM's ``VLLM_CPU_OMP_THREADS_BIND``, which binds only in its
      multiprocess executor); default every core this process may run on. ``threads``: intra-op threads of its
      steps, default one per core: set explicitly in the thread that steps the engine, as ``--backend vllm``
      does, so both run the model on as many threads whichever thread steps them
      (``ascendra.vllm_backend.host``).
    - ``enforce_eager``: vLLM's option; None picks eager mode on CPU (nothing to capture, quicker start) and CUDA
      graphs on a GPU, where eager decode steps are launch-bound and would understate vLLM.
    - ``warmup``: serve a few throw-away requests before the clock starts (the first steps are slow).
    - ``quiet``: keep vLLM's logging (on stderr) to errors, when ``VLLM_LOGGING_LEVEL`` is not set.
    """

    model: str = TINY_VLLM.name
    checkpoint: Path | None = None
    dtype: str = "float32"
    enable_chunked_prefill: bool = True
    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 128
    policy: str = "fcfs"
    priority: Callable[[RequestSpec], int] = shortest_job_first
    max_model_len: int | None = None
    kv_cache_gib: float = 0.25
    block_size: int | None = None
    cpu_cores: str | None = None
    threads: int | None = None
    enforce_eager: bool | None = None
    seed: int = 0
    warmup: bool = True
    quiet: bool = True

    def __post_init__(self) -> None:
        engine_spec(self.model)
        if self.policy not in POLICIES:
            raise UserError(f"unknown vLLM scheduling policy {self.policy!r}; known: {', '.join(POLICIES)}")
        if self.dtype not in DTYPES:
            raise UserError(f"unknown dtype {self.dtype!r} for vLLM; known: {', '.join(DTYPES)}")
        positive = {
            "max-batched-tokens": self.max_num_batched_tokens,
            "max-num-seqs": self.max_num_seqs,
            "kv-cache-gib": self.kv_cache_gib,
        }
        for name, value in positive.items():
            if not value > 0:
                raise UserError(f"--{name} must be positive, got {value}")
        if self.block_size is not None and self.block_size <= 0:
            raise UserError(f"--block-size must be positive, got {self.block_size}")
        if self.threads is not None and self.threads <= 0:
            raise UserError(f"--threads must be positive, got {self.threads}")
        if self.max_model_len is not None and self.max_model_len <= 0:
            raise UserError(f"--max-model-len must be positive, got {self.max_model_len}")
        if self.checkpoint is not None and not (Path(self.checkpoint) / "config.json").is_file():
            raise UserError(f"checkpoint {self.checkpoint} has no config.json")


@dataclass(slots=True)
class VllmEngineOutcome:
    """One run: the requests (our Request objects), their records table and summary, and per-step timings."""

    options: VllmEngineOptions
    workload: Workload
    requests: list[Request]
    records: pd.DataFrame
    summary: dict[str, float]
    step_times: list[float] = field(default_factory=list)
    startup_s: float = 0.0
    wall_s: float = 0.0


def run_vllm_engine(
    workload: Workload, options: VllmEngineOptions | None = None, slo: SLO | None = None
) -> VllmEngineOutcome:
    """Serve ``workload`` on a fresh vLLM engine in real time; our records and their summary under ``slo``."""
    options = options if options is not None else VllmEngineOptions()
    with open_vllm_engine([workload], options) as server:
        return server.serve(workload, slo)


class VllmServer:
    """A started vLLM engine that serves workloads one after another (a rate sweep pays start-up once)."""

    def __init__(
        self, engine: Any, vocab: int, options: VllmEngineOptions, max_model_len: int, stepper: ThreadPoolExecutor
    ) -> None:
        self.engine = engine
        #: The one thread that steps the engine (warm-up and every run; see the module docstring).
        self.stepper = stepper
        self.vocab = vocab
        self.options = options
        self.max_model_len = max_model_len
        self.startup_s = 0.0
        self._runs = 0

    def serve(self, workload: Workload, slo: SLO | None = None) -> VllmEngineOutcome:
        """Serve ``workload`` from an idle engine: arrivals on the wall clock from now."""
        slo = slo if slo is not None else SLO(1.0, 0.15)
        specs = _sorted_specs(workload)
        if _check_workload(specs, self.options) > self.max_model_len:
            raise UserError(f"the workload needs a model length above the engine's {self.max_model_len}")
        for spec in specs:
            if spec.prompt_ids and (min(spec.prompt_ids) < 0 or max(spec.prompt_ids) >= self.vocab):
                raise UserError(
                    f"request {spec.request_id} has token ids outside the vocabulary of {self.vocab}; "
                    "was the workload tokenised for another model?"
                )
        self._runs += 1
        prefix = f"{self._runs}-"
        served = self.stepper.submit(_serve, self.engine, specs, self.vocab, self.options, prefix)
        requests, step_times, wall = served.result()
        records, summary = run_tables(requests, slo, workload.num_trimmed)
        return VllmEngineOutcome(self.options, workload, requests, records, summary, step_times, self.startup_s, wall)


@contextmanager
def open_vllm_engine(workloads: list[Workload], options: VllmEngineOptions) -> Iterator[VllmServer]:
    """Start vLLM sized for ``workloads`` (checked first) and warm it up on their first requests."""
    specs = [spec for workload in workloads for spec in _sorted_specs(workload)]
    max_model_len = _check_workload(specs, options)
    started = time.monotonic()
    with (
        _engine(options, max_model_len) as (engine, vocab),
        ThreadPoolExecutor(1, thread_name_prefix="vllm-engine") as stepper,
    ):
        server = VllmServer(engine, vocab, options, max_model_len, stepper)
        if options.warmup:
            stepper.submit(_warm_up, engine, _sorted_specs(workloads[0]), vocab, options).result()
        server.startup_s = time.monotonic() - started
        yield server


def _sorted_specs(workload: Workload) -> list[RequestSpec]:
    if not workload.requests:
        raise UserError(f"workload {workload.name} has no requests")
    return sorted(workload.requests, key=lambda s: (s.arrival, s.request_id))


def _check_workload(specs: list[RequestSpec], options: VllmEngineOptions) -> int:
    """Refuse requests vLLM would reject, before starting it; return the max model length to configure."""
    limit = engine_spec(options.model).max_model_len if options.checkpoint is None else None
    longest = max(s.prompt_tokens + s.output_tokens for s in specs)
    max_model_len = options.max_model_len if options.max_model_len is not None else longest
    for spec in specs:
        if spec.prompt_tokens <= 0 or spec.output_tokens <= 0:
            raise UserError(f"request {spec.request_id} needs a prompt and at least one output token")
        need = spec.prompt_tokens + spec.output_tokens
        if need > max_model_len or (limit is not None and need > limit):
            raise UserError(
                f"request {spec.request_id} needs {need} positions, more than the model length "
                f"{min(max_model_len, limit or max_model_len)}"
            )
    if not options.enable_chunked_prefill and options.max_num_batched_tokens < max_model_len:
        raise UserError(
            f"without chunked prefill vLLM needs --max-batched-tokens >= the longest request ({max_model_len})"
        )
    return max_model_len


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return vllm


def _set_environment(options: VllmEngineOptions) -> None:
    set_environment(options.cpu_cores, options.quiet)


def eager_mode(options: VllmEngineOptions) -> bool:
    """``options.enforce_eager``, or by default eager exactly when vLLM runs on a CPU."""
    if options.enforce_eager is not None:
        return options.enforce_eager
    return is_cpu()


@contextmanager
def _engine(options: VllmEngineOptions, max_model_len: int) -> Iterator[tuple[Any, int]]:
    """A started vLLM ``LLMEngine`` (in-process) and its vocabulary size; shut down on exit."""
    if not vllm_available():
        raise UserError(INSTALL_HINT)
    _set_environment(options)
    _import_vllm()
    with tempfile.TemporaryDirectory(prefix="ascendra-vllm-") as scratch:
        if options.checkpoint is None:
            spec = engine_spec(options.model)
            check_head_dim(spec)
            path = write_checkpoint(spec, options.seed, Path(scratch))
            vocab = spec.vocab
        else:
            from ascendra.engine import EngineConfig

            path = Path(options.checkpoint)
            vocab = EngineConfig.from_json_file(path).shape.vocab
        engine = start_engine(
            path,
            dtype=options.dtype,
            seed=options.seed,
            max_model_len=max_model_len,
            enable_chunked_prefill=options.enable_chunked_prefill,
            max_num_batched_tokens=options.max_num_batched_tokens,
            max_num_seqs=options.max_num_seqs,
            scheduling_policy=options.policy,
            block_size=options.block_size,
            kv_cache_memory_bytes=int(options.kv_cache_gib * 1024**3),
            enforce_eager=eager_mode(options),
        )
        try:
            yield engine, vocab
        finally:
            engine.engine_core.shutdown()


def _add(engine: Any, request_id: str, spec: RequestSpec, vocab: int, options: VllmEngineOptions) -> None:
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    params = SamplingParams(
        max_tokens=spec.output_tokens,
        min_tokens=spec.output_tokens,
        ignore_eos=True,
        temperature=0.0,
        detokenize=False,
        output_kind=RequestOutputKind.DELTA,
    )
    priority = options.priority(spec) if options.policy == "priority" else 0
    engine.add_request(request_id, {"prompt_token_ids": prompt_ids(spec, vocab)}, params, priority=priority)


def _warm_up(engine: Any, specs: list[RequestSpec], vocab: int, options: VllmEngineOptions) -> None:
    """Serve copies of the first requests in groups of 1, 2, 4, 8 (outputs capped at 16 tokens), twice: a fresh
    CPU engine is several times slower on its first batches of each shape."""
    step_threads(options.threads or engine_threads(options.cpu_cores))
    count = 0
    for _ in range(2):
        for group in (1, 2, 4, 8):
            for i, spec in enumerate(specs[: min(group, options.max_num_seqs)]):
                copy = RequestSpec(-1 - i, 0.0, spec.prompt_tokens, min(spec.output_tokens, 16), spec.prompt_ids)
                _add(engine, f"warmup-{count}", copy, vocab, options)
                count += 1
            while engine.has_unfinished_requests():
                engine.step()


def _serve(
    engine: Any, specs: list[RequestSpec], vocab: int, options: VllmEngineOptions, prefix: str
) -> tuple[list[Request], list[float], float]:
    """Release arrivals on the wall clock, step the engine, stamp tokens; returns requests, step times, wall."""
    step_threads(options.threads or engine_threads(options.cpu_cores))
    requests = {spec.request_id: Request(spec) for spec in specs}
    step_times: list[float] = []
    start = time.monotonic()
    released = 0
    while released < len(specs) or engine.has_unfinished_requests():
        now = time.monotonic() - start
        while released < len(specs) and specs[released].arrival <= now:
            spec = specs[released]
            requests[spec.request_id].instances.append(INSTANCE)
            _add(engine, f"{prefix}{spec.request_id}", spec, vocab, options)
            released += 1
        if not engine.has_unfinished_requests():
            time.sleep(max(0.0, specs[released].arrival - now))
            continue
        before = time.monotonic()
        outputs = engine.step()
        after = time.monotonic()
        step_times.append(after - before)
        for output in outputs:
            _record(requests[int(output.request_id.removeprefix(prefix))], output, after - start, start)
    wall = time.monotonic() - start
    return [requests[s.request_id] for s in specs], step_times, wall


def _record(request: Request, output: Any, now: float, start: float) -> None:
    """Stamp the tokens one step produced for one request (DELTA outputs: only the new ones)."""
    new = list(output.outputs[0].token_ids) if output.outputs else []
    request.output_ids.extend(new)
    request.token_times.extend([now] * len(new))
    request.num_computed = request.prompt_len + len(request.output_ids) - 1 if request.output_ids else 0
    metrics = output.metrics
    if metrics is not None:
        if request.first_scheduled is None and metrics.scheduled_ts > 0:
            request.first_scheduled = metrics.scheduled_ts - start
        request.preemptions = metrics.num_preemptions
    if request.first_scheduled is None and request.token_times:
        request.first_scheduled = request.token_times[0]
    if output.finished:
        request.finish_time = now
