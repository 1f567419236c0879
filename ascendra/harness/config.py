"""The typed, serialisable description of one simulated run; its hash names the run's outputs."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, fields, replace

from ascendra.errors import UserError
from ascendra.gpus import get_gpu
from ascendra.models import get_model

SYSTEMS = ("vllm", "sarathi", "ascendra", "vllm-engine", "openai")
BACKENDS = ("sim", "engine")
#: Fields added after results were first stored: written (and hashed) only when they differ from these
#: defaults, so the outputs of earlier simulated runs keep their names.
_STORED_IF_SET: dict[str, object] = {
    "backend": "sim",
    "device": "cpu",
    "kv_blocks": None,
    "distributed": "none",
    "endpoint": None,
    "served_model": None,
    "max_concurrency": None,
    "request_timeout": 300.0,
}
_CLIENT_FIELDS = ("endpoint", "served_model", "max_concurrency", "request_timeout")
VALUE_FUNCTIONS = ("edf", "basic", "sjf")
PERF_MODELS = ("paper", "per-seq")


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Everything that determines a run's result: with the same config the tables are byte-identical.

    Defaults are the paper's ShareGPT setup: Llama-3.1-8B on three A100-80GB instances, 2,000 Poisson requests,
    TTFT/TBT SLOs of 1.0/0.15 s, at most 128 sequences and 8,192 batched tokens per iteration.
    """

    system: str = "ascendra"
    workload: str = "sharegpt"
    model: str = "llama-3.1-8b"
    gpu: str = "a100-80gb"
    tp: int | None = None
    instances: int = 3
    rate: float = 20.0
    num_requests: int = 2000
    arrival: str = "poisson"
    cv: float = 1.0
    seed: int = 1
    ttft_slo: float = 1.0
    tbt_slo: float = 0.15
    max_num_seqs: int = 128
    max_batched_tokens: int = 8192
    chunk_size: int = 512
    gpu_memory_utilization: float = 0.9
    # Ascendra only (ignored by the baselines).
    partition: str = "2L1H"
    margin: float | None = None
    value_fn: str = "edf"
    compute_cap: float = 1.0
    admission_control: bool = False  # all systems: the baselines drop requests waiting past the TTFT SLO
    perf_model: str = "paper"
    # Where batches execute: the calibrated simulator, or the real engine live on ``device`` (``kv_blocks`` per
    # instance; default: the engine's memory budget).
    backend: str = "sim"
    device: str = "cpu"
    kv_blocks: int | None = None
    distributed: str = "none"
    # System ``openai``: the OpenAI-compatible server the harness loads (its base URL), and the model name sent in
    # requests (default: the server's default), the cap on requests in flight (None: open loop) and the limit on
    # each request's time, s. ``model`` still sets the workload's token counts.
    endpoint: str | None = None
    served_model: str | None = None
    max_concurrency: int | None = None
    request_timeout: float = 300.0

    def __post_init__(self) -> None:
        if self.system not in SYSTEMS:
            raise UserError(f"unknown system {self.system!r}; known systems: {', '.join(SYSTEMS)}")
        get_model(self.model)
        get_gpu(self.gpu)
        positive = {
            "rate": self.rate,
            "ttft-slo": self.ttft_slo,
            "tbt-slo": self.tbt_slo,
            "instances": self.instances,
            "num-requests": self.num_requests,
            "max-num-seqs": self.max_num_seqs,
            "max-batched-tokens": self.max_batched_tokens,
            "chunk-size": self.chunk_size,
            "cv": self.cv,
        }
        for name, value in positive.items():
            if not value > 0:
                raise UserError(f"--{name} must be positive, got {value}")
        if self.tp is not None and self.tp < 1:
            raise UserError(f"--tp must be at least 1, got {self.tp}")
        if self.system == "ascendra":
            low, high = self.lp_hp
            if low + high != self.instances:
                raise UserError(
                    f"--partition {self.partition} has {low + high} instances; pass --instances {low + high}"
                )
        if self.system == "vllm-engine" and self.instances != 1:
            raise UserError("--system vllm-engine serves one in-process vLLM engine: pass --instances 1")
        if self.system == "openai":
            if self.endpoint is None:
                raise UserError("--system openai loads an OpenAI-compatible server: pass --endpoint URL")
            if not self.endpoint.startswith(("http://", "https://")):
                raise UserError(f"--endpoint must be an http(s) URL, got {self.endpoint!r}")
            if self.instances != 1:
                raise UserError("--system openai loads one endpoint: pass --instances 1")
            if self.max_concurrency is not None and self.max_concurrency < 1:
                raise UserError(f"--max-concurrency must be positive, got {self.max_concurrency}")
            if not self.request_timeout > 0:
                raise UserError(f"--request-timeout must be positive, got {self.request_timeout}")
        elif any(getattr(self, name) != _STORED_IF_SET[name] for name in _CLIENT_FIELDS):
            raise UserError(
                "--endpoint, --served-model, --max-concurrency and --request-timeout apply only to --system openai"
            )
        if self.backend not in BACKENDS:
            raise UserError(f"unknown --backend {self.backend!r}; known: {', '.join(BACKENDS)}")
        if self.distributed not in ("none", "ray"):
            raise UserError(f"--distributed must be none or ray, got {self.distributed!r}")
        if self.kv_blocks is not None and self.kv_blocks < 1:
            raise UserError(f"--kv-blocks must be positive, got {self.kv_blocks}")
        if self.value_fn not in VALUE_FUNCTIONS:
            raise UserError(f"unknown --value-fn {self.value_fn!r}; known: {', '.join(VALUE_FUNCTIONS)}")
        if self.perf_model not in PERF_MODELS:
            raise UserError(f"unknown --perf-model {self.perf_model!r}; known: {', '.join(PERF_MODELS)}")
        if self.margin is not None and self.margin < 0:
            raise UserError(f"--margin must be >= 0, got {self.margin}")
        if not self.compute_cap > 0:
            raise UserError(f"--compute-cap must be positive, got {self.compute_cap}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise UserError(f"--gpu-memory-utilization must be in (0, 1], got {self.gpu_memory_utilization}")

    @property
    def lp_hp(self) -> tuple[int, int]:
        """(low-priority, high-priority) instance counts of the ``xLyH`` partition."""
        match = re.fullmatch(r"(\d+)L(\d+)H", self.partition)
        if not match or int(match[1]) < 1 or int(match[2]) < 1:
            raise UserError(f"bad --partition {self.partition!r}: use xLyH with x, y >= 1, e.g. 2L1H")
        return int(match[1]), int(match[2])

    @property
    def offload_margin(self) -> float:
        """The offload margin: as configured, else the published per-model constant (0.7 s for Llama-3.1-8B,
        1.0 s otherwise)."""
        if self.margin is not None:
            return self.margin
        return 0.7 if self.model == "llama-3.1-8b" else 1.0

    @property
    def tensor_parallel(self) -> int:
        return self.tp if self.tp is not None else get_model(self.model).default_tp

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        for name, default in _STORED_IF_SET.items():
            if data[name] == default:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**data)  # type: ignore[arg-type]

    def with_rate(self, rate: float) -> RunConfig:
        return replace(self, rate=rate)

    def key(self) -> str:
        """A short stable hash of the config: the name of this run's outputs."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]
