"""One vLLM engine (v1 ``LLMEngine``, engine core in this process) driven step by step: ``VllmHost``.

The host is what runs where the engine lives: in the driver's process (CPU tests, one engine per instance, their
steps serialised by a process-wide lock because vLLM keeps its forward context in module globals), or inside a
Ray actor (one GPU each on CUDA). It starts the engine with ``scheduler_cls=PlanScheduler`` (or vLLM's own,
timed, for the cross-check), adds requests, and runs one ``Plan`` per ``execute`` call, returning the token each
request emitted (and its log-probabilities when the request asked for them) and the step's timings.

CPU threads: in-process, vLLM binds no OpenMP threads (only its multiprocess executor does) and a CPU step
runs on the OpenMP team of the thread that calls ``step()``; every step first sets that thread's intra-op
threads to ``HostConfig.threads`` (``torch._C.set_num_threads``: vLLM's CPU worker makes
``torch.set_num_threads`` a no-op), one per core of the engine's share by default. The live runtime calls it
from an instance thread, as the reference run steps vLLM's own engine from a thread of its own
(``baselines.vllm_engine.runner``: why it matters).

KV pool: vLLM reserves block 0 as its null block, so the engine is started with ``num_blocks + 1`` blocks and
then has exactly the policy's ``num_blocks`` usable; prefix caching is off, so a freed block holds nothing
reusable and the two pools count alike.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ascendra.errors import UserError
from ascendra.models import ModelSpec, get_model
from ascendra.request import RequestSpec
from ascendra.sampling import Sampling, TokenLogprobs
from ascendra.vllm_backend.plan import MirrorError, NewRequest, Plan, PlanItem

INSTALL_HINT = (
    "vLLM is not installed: pip install -c constraints.txt -e '.[engine,vllm]' "
    "(then pip uninstall -y torchvision torchaudio torchcodec); on a GPU host: pip install -e '.[engine]' vllm"
)
#: Our ``tiny`` model with head_dim 32 instead of 16 (vLLM's CPU attention supports head dims >= 32); same
#: vocabulary and maximum length, so workloads built for ``tiny`` run on it unchanged.
TINY_VLLM = ModelSpec("tiny-vllm", "ascendra/tiny-llama-h32", 2, 128, 256, 4, 2, 32, 512, 2048)
#: Where the adapter and vLLM's own (timed) scheduler live, as vLLM resolves ``scheduler_cls``.
PLAN_SCHEDULER = "ascendra.vllm_backend.scheduler.PlanScheduler"
NATIVE_SCHEDULER = "ascendra.vllm_backend.scheduler.TimedScheduler"
#: In-process engines run one step at a time (vLLM's forward context is process-global).
_STEP_LOCK = threading.Lock()


def vllm_available() -> bool:
    """Whether the optional ``vllm`` dependency is importable (without importing it)."""
    return importlib.util.find_spec("vllm") is not None


def engine_spec(name: str) -> ModelSpec:
    """The model shapes a vLLM engine runs for model ``name``: ``tiny`` (and ``tiny-vllm``) run ``TINY_VLLM``."""
    if name in (TINY_VLLM.name, "tiny"):
        return TINY_VLLM
    try:
        return get_model(name)
    except UserError:
        raise UserError(f"unknown engine model {name!r}; use {TINY_VLLM.name} or a model of the table") from None


def set_environment(cpu_cores: str | None, quiet: bool) -> None:
    """In-process engine core (so ``step()`` runs the model here); the cores are those vLLM's multiprocess
    executor would bind its OpenMP threads to (in-process it binds none: see ``step_threads``)."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    cores = cpu_cores or ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = cores
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # stdout carries our tables and JSON
    if quiet:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")


def engine_threads(cpu_cores: str | None) -> int:
    """Intra-op threads for an engine on ``cpu_cores`` (``"0,1"``): one per core, else per core of this process."""
    if cpu_cores:
        return len(cpu_cores.split(","))
    return len(os.sched_getaffinity(0))


def step_threads(threads: int) -> None:
    """Run the calling thread's CPU work (vLLM's model runner included) on ``threads`` OpenMP threads."""
    import torch

    if torch.get_num_threads() != threads:
        torch._C.set_num_threads(threads)  # vLLM's CPU worker turns torch.set_num_threads into a no-op


def is_cpu() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def check_head_dim(spec: ModelSpec) -> None:
    """vLLM's CPU attention kernels exist for some head dims only; say so before it fails mid-step."""
    if not is_cpu():
        return
    try:
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        supported = CPUAttentionBackend.get_supported_head_sizes()
    except (ImportError, AttributeError):
        return
    if spec.head_dim not in supported:
        raise UserError(
            f"vLLM's CPU attention does not support head_dim {spec.head_dim} of model {spec.name!r} "
            f"(supported: {', '.join(map(str, supported))}); use --engine-model {TINY_VLLM.name}"
        )


def write_checkpoint(spec: ModelSpec, seed: int, directory: Path) -> Path:
    """A local HF checkpoint of ``spec``'s shapes with seeded random weights (no hub)."""
    from ascendra.engine import EngineConfig, dummy_weights, save_checkpoint

    config = EngineConfig.from_model_spec(spec)
    return save_checkpoint(config, dummy_weights(config, seed=seed), directory)


def start_engine(path: Path, **args: Any) -> Any:
    """A vLLM ``LLMEngine`` on the checkpoint at ``path``, fed token ids (no tokenizer, no prefix caching, stats on
    for its step timings) with ``args`` as further ``EngineArgs``; a configuration vLLM refuses is one line."""
    from vllm import EngineArgs
    from vllm.v1.engine.llm_engine import LLMEngine

    engine_args = EngineArgs(
        model=str(path), skip_tokenizer_init=True, enable_prefix_caching=False, disable_log_stats=False, **args
    )
    try:
        return LLMEngine.from_engine_args(engine_args)
    except (ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"vLLM refused the configuration: {first}") from None


def prompt_ids(spec: RequestSpec, vocab: int) -> list[int]:
    """The workload's ids, else the same seeded synthetic ids our engine uses for length-only workloads."""
    if spec.prompt_ids:
        return list(spec.prompt_ids)
    import torch

    gen = torch.Generator().manual_seed(spec.request_id)
    return torch.randint(vocab, (spec.prompt_tokens,), generator=gen).tolist()


def sampling_params(output_tokens: int, sampling: Sampling | None) -> Any:
    """Exactly ``output_tokens`` tokens (EOS ignored), greedy unless the request carries its own sampling; the
    log-probabilities it asks for are vLLM's default ``raw_logprobs`` (the model's, before temperature and top-p,
    as ``Sampling`` defines them)."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    extra: dict[str, Any] = {}
    if sampling is not None and sampling.temperature > 0:
        extra = {"temperature": sampling.temperature, "top_p": sampling.top_p, "seed": sampling.seed}
    if sampling is not None and sampling.top_logprobs is not None:
        extra["logprobs"] = sampling.top_logprobs
    return SamplingParams(
        max_tokens=output_tokens,
        min_tokens=output_tokens,
        ignore_eos=True,
        temperature=extra.pop("temperature", 0.0),
        detokenize=False,
        output_kind=RequestOutputKind.DELTA,
        **extra,
    )


@dataclass(frozen=True, slots=True)
class HostConfig:
    """One engine: model shapes (or a local checkpoint of them), its KV pool in the policy's blocks, limits.

    ``max_num_seqs`` and ``max_num_batched_tokens`` only size vLLM's buffers (the policy decides batches; a batch
    beyond them is refused); ``native`` starts vLLM's own scheduler instead of the adapter, with
    ``enable_chunked_prefill`` and these two as its budgets. ``cpu_cores``: the engine's cores (``"0,1"``);
    ``threads``: intra-op threads of its steps (default one per core of ``cpu_cores``, else of this process)."""

    model: ModelSpec
    num_blocks: int
    block_size: int
    max_model_len: int
    checkpoint: Path | None = None
    dtype: str = "float32"
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    seed: int = 0
    native: bool = False
    enable_chunked_prefill: bool = True
    cpu_cores: str | None = None
    threads: int | None = None
    enforce_eager: bool | None = None
    quiet: bool = True
    warmup: bool = True


@dataclass(frozen=True, slots=True)
class StepResult:
    """One engine step: the token each request emitted (None: a prefill chunk that does not end its prompt),
    the step's seconds, and the seconds its scheduler took inside it."""

    tokens: dict[int, int | None]
    seconds: float
    schedule_seconds: float
    #: Tokens per request the engine's scheduler handed to its model runner.
    scheduled: dict[int, int] = field(default_factory=dict)
    #: The emitted token's log-probabilities, for the requests that asked for them.
    logprobs: dict[int, TokenLogprobs] = field(default_factory=dict)


class VllmHost:
    """A started vLLM engine whose steps execute plans (or, ``native``, vLLM's own decisions)."""

    def __init__(self, config: HostConfig) -> None:
        if not vllm_available():
            raise UserError(INSTALL_HINT)
        set_environment(config.cpu_cores, config.quiet)
        self.config = config
        self.threads = config.threads or engine_threads(config.cpu_cores)
        self._scratch = tempfile.mkdtemp(prefix="ascendra-vllm-")
        if config.checkpoint is None:
            check_head_dim(config.model)
            path = write_checkpoint(config.model, config.seed, Path(self._scratch))
        else:
            path = Path(config.checkpoint)
        self.vocab = config.model.vocab
        eager = config.enforce_eager if config.enforce_eager is not None else is_cpu()
        if is_cpu() and config.block_size % 32:
            raise UserError(
                f"vLLM's CPU attention needs a block size that is a multiple of 32: --block-size 32, "
                f"not {config.block_size}"
            )
        try:
            self.engine = start_engine(
                path,
                dtype=config.dtype,
                seed=config.seed,
                max_model_len=config.max_model_len,
                enable_chunked_prefill=config.enable_chunked_prefill,
                max_num_batched_tokens=config.max_num_batched_tokens,
                max_num_seqs=config.max_num_seqs,
                block_size=config.block_size,
                num_gpu_blocks_override=config.num_blocks + 1,
                kv_cache_memory_bytes=_pool_bytes(config),
                enforce_eager=eager,
                scheduler_cls=NATIVE_SCHEDULER if config.native else PLAN_SCHEDULER,
            )
        except UserError:
            shutil.rmtree(self._scratch, ignore_errors=True)
            raise
        self.scheduler = self.engine.engine_core.engine_core.scheduler
        self._ids: dict[int, str] = {}  # our request id -> vLLM's internal id
        self._top: dict[int, int] = {}  # request id -> log-probability alternatives it asked for
        self._lock = _STEP_LOCK
        free = self.scheduler.kv_cache_manager.block_pool.get_num_free_blocks()
        if free != config.num_blocks:
            raise MirrorError(f"vLLM's pool has {free} usable blocks, the policy's {config.num_blocks}")
        if config.warmup and not config.native:
            self._warm_up()

    def pool(self) -> tuple[int, int]:
        """(usable blocks, block size) of the engine's KV pool: the policy's pool must equal it."""
        return self.scheduler.kv_cache_manager.block_pool.get_num_free_blocks(), self.config.block_size

    def num_free(self) -> int:
        """Free blocks of the engine's pool now (vLLM's own count)."""
        return int(self.scheduler.kv_cache_manager.block_pool.get_num_free_blocks())

    def add(self, new: NewRequest) -> None:
        """Add a request: its prompt (plus any tokens it generated elsewhere) and the tokens it still owes."""
        spec = new.spec
        rid = spec.request_id
        ids = prompt_ids(spec, self.vocab) + list(new.output_ids)
        params = sampling_params(spec.output_tokens - len(new.output_ids), new.sampling)
        if new.sampling is not None and new.sampling.top_logprobs is not None:
            self._top[rid] = new.sampling.top_logprobs
        self._ids[rid] = self.engine.add_request(str(rid), {"prompt_token_ids": ids}, params)

    def execute(self, plan: Plan) -> StepResult:
        """Run one plan: add, abort, preempt, then the batch; the tokens come back by our request ids."""
        with self._lock:
            step_threads(self.threads)
            start = time.perf_counter()
            for new in plan.added:
                self.add(new)
            # A request vLLM finished on its own (its last token) is forgotten already; one the policy ended
            # earlier (a stop string, a cancelled client) is still held and aborted here.
            held = [str(rid) for rid in plan.aborted if self._forget(rid)]
            if held:
                self.engine.abort_request(held)
            ids = self._ids
            self.scheduler.step = _step(plan, ids)
            outputs = self.engine.step()
            tokens = _tokens(outputs, plan.items)
            logprobs = _logprobs(outputs, self._top)
            back = {ids[item.request_id]: item.request_id for item in plan.items}
            scheduled = {back[i]: n for i, n in self.scheduler.scheduled.items()}
            for item in plan.items:
                if tokens[item.request_id] is not None and self.scheduler.requests.get(ids[item.request_id]) is None:
                    self._forget(item.request_id)  # finished: vLLM has freed it
            seconds = time.perf_counter() - start
            return StepResult(tokens, seconds, self.scheduler.schedule_seconds, scheduled, logprobs)

    def step_native(self) -> StepResult:
        """One step of vLLM's own scheduler (``native``): what it scheduled and the tokens it produced."""
        with self._lock:
            step_threads(self.threads)
            start = time.perf_counter()
            outputs = self.engine.step()
            seconds = time.perf_counter() - start
        back = {internal: rid for rid, internal in self._ids.items()}
        scheduled = {back[i]: n for i, n in self.scheduler.scheduled.items()}
        tokens: dict[int, int | None] = dict.fromkeys(scheduled)
        for output in outputs:
            new = list(output.outputs[0].token_ids) if output.outputs else []
            if new:
                tokens[int(output.request_id)] = new[-1]
        return StepResult(tokens, seconds, self.scheduler.schedule_seconds, scheduled)

    def _forget(self, rid: int) -> bool:
        """Drop our bookkeeping of ``rid``; whether vLLM still held it."""
        self._top.pop(rid, None)
        return self._ids.pop(rid, None) is not None

    def has_unfinished(self) -> bool:
        return bool(self.engine.has_unfinished_requests())

    def close(self) -> None:
        """Shut the engine down; in-process, this tears down vLLM's process-wide distributed state too, so the
        engines of a process close together, when none steps any more."""
        self.engine.engine_core.shutdown()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _warm_up(self) -> None:
        """A scratch request through a prefill and a decode (the first steps of a fresh engine are slow)."""
        spec = RequestSpec(-1, 0.0, 8, 2, tuple(range(8)))
        n = self.config.num_blocks
        self.execute(Plan((PlanItem(-1, 8, 0, 1, True),), n - 1, added=(NewRequest(spec),)))
        self.execute(Plan((PlanItem(-1, 1, 8, 1, True),), n - 1))


def _pool_bytes(config: HostConfig) -> int:
    """Memory for the pool (its block count is fixed by ``num_gpu_blocks_override``), at 4 bytes per value."""
    m = config.model
    return (config.num_blocks + 1) * config.block_size * m.num_layers * 2 * m.num_kv_heads * m.head_dim * 4


def _step(plan: Plan, ids: dict[int, str]) -> Any:
    from ascendra.vllm_backend.scheduler import Step

    items = [(ids[i.request_id], i.num_tokens, i.context, i.num_blocks) for i in plan.items]
    return Step(items, [ids[rid] for rid in plan.preempted], plan.num_free)


def _logprobs(outputs: list[Any], top: dict[int, int]) -> dict[int, TokenLogprobs]:
    """For the requests that asked for ``top[id]`` alternatives: the emitted token's log-probability and the
    alternatives, best first (vLLM lists the sampled token, with its rank, beside the top ones)."""
    found: dict[int, TokenLogprobs] = {}
    for output in outputs:
        rid = int(output.request_id)
        steps = output.outputs[0].logprobs if output.outputs and rid in top else None
        if not steps:
            continue
        token = output.outputs[0].token_ids[-1]
        scored = steps[-1]
        ranked = sorted((entry.rank, tid, float(entry.logprob)) for tid, entry in scored.items())
        alternatives = tuple((tid, lp) for rank, tid, lp in ranked if rank <= top[rid])
        found[rid] = (float(scored[token].logprob), alternatives)
    return found


def _tokens(outputs: list[Any], items: tuple[PlanItem, ...]) -> dict[int, int | None]:
    """The token each item emitted; a token where the policy expects none (or none where it expects one) means
    vLLM did not execute the plan as the policy accounts for it."""
    tokens: dict[int, int | None] = {item.request_id: None for item in items}
    for output in outputs:
        new = list(output.outputs[0].token_ids) if output.outputs else []
        if len(new) > 1:
            raise MirrorError(f"request {output.request_id} emitted {len(new)} tokens in one step")
        if new:
            tokens[int(output.request_id)] = new[0]
    for item in items:
        if (tokens[item.request_id] is not None) != item.emits:
            raise MirrorError(
                f"request {item.request_id}: vLLM {'emitted' if tokens[item.request_id] is not None else 'held'} "
                f"a token the policy {'did not expect' if not item.emits else 'expected'}"
            )
    return tokens
