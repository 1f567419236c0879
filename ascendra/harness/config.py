"""The typed, serialisable description of one run, composed of parts; its hash names the run's outputs.

A ``RunConfig`` is a system (a registered name and that system's own knobs) plus four parts: the workload, the
SLOs, the cluster (model, GPU, instances) and the backend (where batches execute). Commands and experiment
specs address every field by one flat name (``rate``, ``ttft_slo``, ``chunk_size``...), routed to its part by
``FLAT``; the parts' fields carry their help text, from which the CLI options are generated.

The stored form (``to_dict``) holds a schema version and, per part, only what differs from the defaults; the
key hashes it. So adding a knob with a default changes no stored config and no key, while a deliberate change
of meaning bumps ``SCHEMA``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ascendra.coordinator import TransferTime
from ascendra.costmodel.model import DEFAULT_INTERCONNECT, INTERCONNECTS, CostModel
from ascendra.errors import UserError
from ascendra.gpus import get_gpu
from ascendra.harness.registry import get_system
from ascendra.kv_cache import DEFAULT_BLOCK_SIZE
from ascendra.link import LINKS, get_link, kv_move_time
from ascendra.metrics.window import parse_span
from ascendra.models import MODELS, get_model, is_config_path
from ascendra.system import ClusterSpec, SystemConfig, check_choices, check_positive, knob
from workloads.arrivals import ARRIVALS
from workloads.slo_classes import parse_slo_classes

#: Version of the stored form; stored configs of another version are refused, not misread.
SCHEMA = 2
#: Where batches execute: the calibrated simulator, the project's engine live, real vLLM engines running the
#: system's policy (one per instance), the real vLLM engine in-process (its own scheduler), or any
#: OpenAI-compatible server (the harness is only its client).
BACKENDS = ("sim", "engine", "vllm", "vllm-engine", "openai")
#: Backends that run a registered system's policy (the others run their own).
POLICY_BACKENDS = ("sim", "engine", "vllm")
#: Old system names that are backends now: the system and backend they stand for.
SYSTEM_ALIASES = {"vllm-engine": ("vllm", "vllm-engine"), "openai": ("ascendra", "openai")}


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    name: str = knob("sharegpt", "Workload name or trace path (see `workloads list`).")
    num_requests: int = knob(2000, "Requests per run.")
    rate: float = knob(20.0, "Request rate, QPS.")
    arrival: str = knob("poisson", f"Arrival process: {', '.join(ARRIVALS)} (a timestamped trace's own times).")
    cv: float = knob(1.0, "Burstiness (coefficient of variation) of gamma arrivals.")
    seed: int = knob(1, "Seed of the workload sampling and arrivals.")

    def __post_init__(self) -> None:
        check_positive(self, ("rate", "num_requests", "cv"))


@dataclass(frozen=True, slots=True)
class SLOConfig:
    ttft: float = knob(1.0, "TTFT SLO in seconds.")
    tbt: float = knob(0.15, "TBT SLO in seconds.")
    warmup: str = knob(
        "0",
        "Warm-up left out of attainment and latency statistics (the requests still run): seconds after the first "
        "arrival (30 or 30s) or a share of the first requests (10%).",
    )
    cooldown: str = knob("0", "Cool-down, likewise: seconds before the last arrival, or a share of the last requests.")
    classes: str = knob(
        "",
        "Per-request SLO classes, NAME:SHARE[:ttft=S,tbt=S];... (e.g. interactive:0.3:ttft=0.5,tbt=0.05;"
        "batch:0.7:ttft=5,tbt=0.5); shares sum to 1, a missing SLO is --ttft-slo/--tbt-slo \\[default: none].",
    )

    def __post_init__(self) -> None:
        check_positive(self, ("ttft", "tbt"), {"ttft": "ttft-slo", "tbt": "tbt-slo"})
        parse_span(self.warmup, "--warmup")
        parse_span(self.cooldown, "--cooldown")
        parse_slo_classes(self.classes)


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    model: str = knob("llama-3.1-8b", f"Model ({', '.join(MODELS)}) or the path of a HF config.json.")
    gpu: str = knob("a100-80gb", "Simulated GPU (a100-80gb, h100-80gb).")
    tp: int | None = knob(None, "Tensor parallelism per instance \\[default: the model's].")
    instances: int = knob(3, "Number of instances (GPUs, or TP groups).")
    gpu_memory_utilization: float = knob(0.9, "Share of GPU memory for weights + KV cache.")
    block_size: int = knob(DEFAULT_BLOCK_SIZE, "KV cache block size, tokens.")
    link: str = knob("nvlink", f"Link that moves KV between instances: {', '.join(LINKS)} or a bandwidth in GB/s.")
    interconnect: str = knob(
        DEFAULT_INTERCONNECT,
        "How an instance's TP GPUs are linked (the simulated all-reduce): nvswitch (DGX/HGX servers) or "
        "pairwise-nvlink (only GPU pairs share NVLink).",
        INTERCONNECTS,
    )

    def __post_init__(self) -> None:
        get_model(self.model)
        get_gpu(self.gpu)
        get_link(self.link)
        check_choices(self)
        check_positive(self, ("instances", "block_size"))
        if self.tp is not None and self.tp < 1:
            raise UserError(f"--tp must be at least 1, got {self.tp}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise UserError(f"--gpu-memory-utilization must be in (0, 1], got {self.gpu_memory_utilization}")

    @property
    def tensor_parallel(self) -> int:
        return self.tp if self.tp is not None else get_model(self.model).default_tp

    def transfer_time(self) -> TransferTime:
        """What a move costs on this cluster: its KV over ``link`` (free when it carries none)."""
        move_time = kv_move_time(get_link(self.link), get_model(self.model), self.tensor_parallel)
        return lambda move, source: move_time(move.sent_tokens)


@dataclass(frozen=True, slots=True)
class BackendConfig:
    name: str = knob("sim", f"Where batches run: {', '.join(BACKENDS)}.", BACKENDS)
    device: str = knob("cpu", "Engine and vllm backends: cpu or cuda[:i].")
    kv_blocks: int | None = knob(
        None, "Engine and vllm backends: KV blocks per instance \\[default: 0.25 GiB; vllm on a GPU: as vLLM sizes it]."
    )
    distributed: str = knob(
        "none", "Engine and vllm backends: none (one process) or ray (an actor per instance).", ("none", "ray")
    )
    checkpoint: str | None = knob(None, "Backend vllm: local HF checkpoint of --model \\[default: random weights].")
    endpoint: str | None = knob(None, "Backend openai: base URL of the OpenAI-compatible server to load.")
    served_model: str | None = knob(None, "Backend openai: model name in requests \\[default: the server's].")
    max_concurrency: int | None = knob(None, "Backend openai: cap on requests in flight \\[default: none].")
    request_timeout: float = knob(300.0, "Backend openai: per-request timeout, s.")
    chunked_prefill_cost: bool = knob(
        True, "Backend sim: charge the chunked-prefill overhead in iteration times (off: the cost model before it)."
    )

    def __post_init__(self) -> None:
        check_choices(self, {"name": "backend"})
        check_positive(self, ("kv_blocks", "max_concurrency", "request_timeout"))
        client = ("endpoint", "served_model", "max_concurrency", "request_timeout")
        if self.name == "openai":
            if self.endpoint is None:
                raise UserError("--backend openai loads an OpenAI-compatible server: pass --endpoint URL")
            if not self.endpoint.startswith(("http://", "https://")):
                raise UserError(f"--endpoint must be an http(s) URL, got {self.endpoint!r}")
        elif any(getattr(self, n) != _DEFAULTS[BackendConfig][n] for n in client):
            raise UserError(
                "--endpoint, --served-model, --max-concurrency and --request-timeout apply only to --backend openai"
            )
        if self.checkpoint is not None and self.name != "vllm":
            raise UserError("--checkpoint loads real weights into vLLM engines: it applies to --backend vllm")
        if not self.chunked_prefill_cost and self.name != "sim":
            raise UserError("--no-chunked-prefill-cost changes the simulator's cost model: it applies to --backend sim")


def _options(names: Iterable[str]) -> str:
    """Names as the CLI spells them: ``--max-num-seqs, --partition``."""
    return ", ".join(sorted("--" + n.replace("_", "-") for n in names)) or "none"


PARTS: dict[str, type] = {
    "workload": WorkloadConfig,
    "slo": SLOConfig,
    "cluster": ClusterConfig,
    "backend": BackendConfig,
}
_DEFAULTS: dict[type, dict[str, Any]] = {cls: {f.name: f.default for f in fields(cls)} for cls in PARTS.values()}
#: Flat option name -> (part, field). Every other flat name is a knob of the run's system.
FLAT: dict[str, tuple[str, str]] = {
    **{("workload" if f.name == "name" else f.name): ("workload", f.name) for f in fields(WorkloadConfig)},
    "ttft_slo": ("slo", "ttft"),
    "tbt_slo": ("slo", "tbt"),
    "warmup": ("slo", "warmup"),
    "cooldown": ("slo", "cooldown"),
    "slo_classes": ("slo", "classes"),
    **{f.name: ("cluster", f.name) for f in fields(ClusterConfig)},
    **{("backend" if f.name == "name" else f.name): ("backend", f.name) for f in fields(BackendConfig)},
}


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Everything that determines a run's result: with the same config the tables are byte-identical.

    Defaults are the paper's ShareGPT setup: Ascendra, Llama-3.1-8B on three A100-80GB instances, 2,000 Poisson
    requests at 20 QPS, TTFT/TBT SLOs of 1.0/0.15 s. ``knobs`` defaults to the system's own defaults.
    """

    system: str = "ascendra"
    knobs: SystemConfig | None = None
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    slo: SLOConfig = field(default_factory=SLOConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)

    def __post_init__(self) -> None:
        system = get_system(self.system)
        if self.knobs is None:
            object.__setattr__(self, "knobs", system.config())
        elif type(self.knobs) is not system.config:
            raise UserError(f"system {self.system} takes {system.config.__name__}, not {type(self.knobs).__name__}")
        backend = self.backend.name
        if backend != "openai":  # a remote server runs its own system: the knobs are not built on the cluster
            self.knobs.check(self.cluster_spec)  # type: ignore[union-attr]
        target = "engine" if backend == "vllm" else backend  # vLLM runs what runs live on an engine
        if backend in POLICY_BACKENDS and target not in system.targets:
            raise UserError(f"system {self.system} does not run on --backend {backend}")
        if backend == "vllm-engine":
            if self.system != "vllm":
                raise UserError("--backend vllm-engine runs vLLM's own scheduler: pass --system vllm")
            if self.cluster.instances != 1:
                raise UserError("--backend vllm-engine serves one in-process vLLM engine: pass --instances 1")
        if backend == "openai" and self.cluster.instances != 1:
            raise UserError("--backend openai loads one endpoint: pass --instances 1")

    # --- views ------------------------------------------------------------------------------------------------

    @property
    def cluster_spec(self) -> ClusterSpec:
        """What the system is built on."""
        c = self.cluster
        return ClusterSpec(c.model, c.gpu, c.tensor_parallel, c.instances, self.slo.ttft, self.slo.tbt, c.link)

    def cost_model(self) -> CostModel:
        """The simulator's cost model of this run: the cluster's model, GPU, TP and interconnect, and the sim
        backend's chunked-prefill switch."""
        c = self.cluster
        return CostModel.load(
            c.model, c.gpu, c.tensor_parallel, interconnect=c.interconnect,
            chunked_prefill=self.backend.chunked_prefill_cost,
        )  # fmt: skip

    @property
    def label(self) -> str:
        """The system column of result tables: the system, or the backend when it runs its own scheduler."""
        return self.system if self.backend.name in POLICY_BACKENDS else self.backend.name

    @property
    def rate(self) -> float:
        return self.workload.rate

    @property
    def model(self) -> str:
        return self.cluster.model

    # --- flat names (CLI options, experiment specs) -----------------------------------------------------------

    @classmethod
    def from_flat(cls, values: dict[str, Any], notices: bool = True) -> RunConfig:
        """A config from flat option names; an unknown name is a ``UserError``."""
        values = dict(values)
        system = values.pop("system", "ascendra")
        if system in SYSTEM_ALIASES:
            alias = system
            system, backend = SYSTEM_ALIASES[alias]
            if values.get("backend", "sim") not in ("sim", backend):
                raise UserError(f"--system {alias} and --backend {values['backend']} contradict each other")
            values["backend"] = backend
            if notices:
                instead = f"--backend {backend}" + (" --system vllm" if alias == "vllm-engine" else "")
                print(
                    f"ascbench: notice: --system {alias} is now {instead}; the alias goes in the next release",
                    file=sys.stderr,
                )
        spec = get_system(system)
        knob_names = {f.name for f in fields(spec.config)}
        parts: dict[str, dict[str, Any]] = {name: {} for name in PARTS}
        knobs: dict[str, Any] = {}
        unknown = []
        for name, value in values.items():
            if name in FLAT:
                part, attr = FLAT[name]
                parts[part][attr] = value
            elif name in knob_names:
                knobs[name] = value
            else:
                unknown.append(name)
        if unknown:
            raise UserError(
                f"{_options(unknown)}: not an option of system {system} (its knobs: {_options(knob_names)})"
            )
        built = {name: PARTS[name](**args) for name, args in parts.items()}
        return cls(system, spec.config(**knobs), **built)

    @classmethod
    def of(cls, **values: Any) -> RunConfig:
        """``from_flat`` by keywords: ``RunConfig.of(system="vllm", rate=20, max_num_seqs=64)``."""
        return cls.from_flat(values)

    def flat(self) -> dict[str, Any]:
        """Every field by its flat name (the inverse of ``from_flat``)."""
        out: dict[str, Any] = {"system": self.system}
        for name, (part, attr) in FLAT.items():
            out[name] = getattr(getattr(self, part), attr)
        out.update(asdict(self.knobs))  # type: ignore[arg-type]
        return out

    def replace(self, **values: Any) -> RunConfig:
        """This config with some fields changed, by flat name (``config.replace(rate=20, chunk_size=256)``)."""
        if "system" in values and values["system"] != self.system:
            keep = {k: v for k, v in self.flat().items() if k in FLAT}
            return RunConfig.from_flat({**keep, **values})
        values = {k: v for k, v in values.items() if k != "system"}  # the same system: not a knob
        parts: dict[str, dict[str, Any]] = {}
        knobs: dict[str, Any] = {}
        for name, value in values.items():
            if name in FLAT:
                part, attr = FLAT[name]
                parts.setdefault(part, {})[attr] = value
            else:
                knobs[name] = value
        if knobs:
            own = {f.name for f in fields(self.knobs)}  # type: ignore[arg-type]
            unknown = sorted(set(knobs) - own)
            if unknown:
                raise UserError(f"{_options(unknown)}: not an option of system {self.system}")
        changed = {name: replace(getattr(self, name), **args) for name, args in parts.items()}
        return replace(self, knobs=replace(self.knobs, **knobs), **changed)  # type: ignore[arg-type]

    def with_rate(self, rate: float) -> RunConfig:
        return replace(self, workload=replace(self.workload, rate=rate))

    # --- stored form and key ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The stored form: the schema, the system, and per part only the fields that differ from defaults."""
        data: dict[str, Any] = {"schema": SCHEMA, "system": self.system}
        knob_defaults = asdict(type(self.knobs)())  # type: ignore[arg-type]
        own = {k: v for k, v in asdict(self.knobs).items() if knob_defaults[k] != v}  # type: ignore[arg-type]
        if own:
            data["knobs"] = own
        for name, cls in PARTS.items():
            values = asdict(getattr(self, name))
            changed = {k: v for k, v in values.items() if _DEFAULTS[cls][k] != v}
            if changed:
                data[name] = changed
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Read a stored form (``to_dict``); a dict without ``schema`` is read by flat names."""
        if "schema" not in data:
            return cls.from_flat(data, notices=False)
        if data["schema"] != SCHEMA:
            raise UserError(f"config schema {data['schema']} is not this version's ({SCHEMA}): rerun the point")
        unknown = sorted(set(data) - {"schema", "system", "knobs", *PARTS})
        if unknown:
            raise UserError(f"unknown config keys: {', '.join(unknown)}")
        system = get_system(str(data["system"]))
        try:
            knobs = system.config(**data.get("knobs", {}))
            parts = {name: PARTS[name](**data.get(name, {})) for name in PARTS}
        except TypeError as exc:
            raise UserError(f"bad stored config: {exc}") from None
        return cls(system.name, knobs, **parts)

    def key(self) -> str:
        """A short stable hash of the stored form: the name of this run's outputs (for a model given as a
        config.json, its shape too, so editing the file names new runs)."""
        stored = self.to_dict()
        if is_config_path(self.cluster.model):
            stored["model_shape"] = asdict(get_model(self.cluster.model))
        text = json.dumps(stored, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]
