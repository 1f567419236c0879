"""The contract of a serving system: its knobs, how it builds its instances and router, and where it runs.

A system is declared once, as a ``System`` value in one module: a name, a frozen dataclass of its own knobs
(subclass of ``SystemConfig``; each field declared with ``knob`` carries its default and help text, and
``check`` validates it against the cluster), and a ``build`` function. The harness finds in-tree systems in
``baselines/`` and Ascendra's in ``ascendra.ascendra_system``, and outside ones through the ``ascbench.systems``
entry-point group; it generates the CLI options from the knobs and runs every system through the same
contract tests.

``build`` gets a ``BuildContext``: the cluster it runs on (model, GPU, TP, instance count, SLOs) and a way to
make an instance (a fresh KV pool, the policy over it, and the runtime's executor for it). The executor is the
runtime's business (the cost model in the simulator, an engine live), so a system never knows which it runs on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ascendra.admission import Admission, ttft_admission
from ascendra.errors import UserError
from ascendra.instance import Executor, Instance
from ascendra.kv_cache import KVPool
from ascendra.link import get_link, kv_move_time
from ascendra.models import get_model
from ascendra.router import RoundRobinRouter, Router
from ascendra.scheduler import Scheduler

_NO_RENAME: Mapping[str, str] = {}
#: The help of every system's ``admission_control`` knob (one rule for all: ``ascendra.admission``).
ADMISSION_HELP = "Drop a waiting request once its wait plus predicted prefill exceeds the TTFT SLO."
#: Where a system can run: the simulator, live on the project's engine, served over HTTP on that engine.
TARGETS = ("sim", "engine", "serve")


def knob(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A system knob: a dataclass field with its default, its help text and (for strings) its allowed values."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


def _option(name: str, rename: Mapping[str, str]) -> str:
    """The CLI option of a field: ``max_num_seqs`` -> ``--max-num-seqs``, unless ``rename`` says otherwise."""
    return "--" + rename.get(name, name.replace("_", "-"))


def check_choices(obj: Any, rename: Mapping[str, str] = _NO_RENAME) -> None:
    """Raise ``UserError`` when a ``knob`` field declared with choices holds another value."""
    for f in dataclasses.fields(obj):
        choices = f.metadata.get("choices")
        value = getattr(obj, f.name)
        if choices and value not in choices:
            raise UserError(f"unknown {_option(f.name, rename)} {value!r}; known: {', '.join(choices)}")


def check_positive(obj: Any, names: Iterable[str], rename: Mapping[str, str] = _NO_RENAME) -> None:
    """Raise ``UserError`` unless each named field is positive (or None)."""
    for name in names:
        value = getattr(obj, name)
        if value is not None and not value > 0:
            raise UserError(f"{_option(name, rename)} must be positive, got {value}")


@dataclass(frozen=True, slots=True)
class SystemConfig:
    """Base of a system's knobs (a frozen dataclass of ``knob`` fields). Choices are checked on creation;
    override ``check`` for anything that depends on the cluster."""

    def __post_init__(self) -> None:
        check_choices(self)

    def check(self, cluster: ClusterSpec) -> None:
        """Raise ``UserError`` when these knobs cannot run on ``cluster``."""

    def positive(self, *names: str) -> None:
        """Raise ``UserError`` unless each named knob is positive (a helper for ``__post_init__``)."""
        check_positive(self, names)


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """What a system is built on: the model (by name), the GPU and TP degree of each instance, how many
    instances, the SLOs (policies that know deadlines use them) and the link that moves KV between instances
    (a name or GB/s, as ``ascendra.link.get_link`` reads it)."""

    model: str
    gpu: str
    tp: int
    instances: int
    ttft_slo: float
    tbt_slo: float
    link: str = "nvlink"

    def ttft_admission(self) -> Admission:
        """Admission control on this cluster: its TTFT SLO and the shipped performance model's predictions."""
        return ttft_admission(self.model, self.gpu, self.tp, self.ttft_slo)

    def kv_move_time(self) -> Callable[[int], float]:
        """Seconds to copy a number of tokens of KV between two instances over the link (what the simulator
        charges a move; a router that plans copies, as a live migration's pre-copy, uses it too)."""
        return kv_move_time(get_link(self.link), get_model(self.model), self.tp)


@dataclass(slots=True)
class BuildContext:
    """Hands a builder the cluster and a way to make instances; the runtime decides pools and executors."""

    cluster: ClusterSpec
    #: A fresh, empty KV pool for one instance (sized by the runtime: the simulated GPU or the real engine).
    new_blocks: Callable[[], KVPool]
    #: The executor of one instance, given its name and its KV pool (an engine addresses KV through the block
    #: tables of a ``BlockManager``).
    executor: Callable[[str, KVPool], Executor]

    def instance(self, name: str, policy: Callable[[KVPool], Scheduler]) -> Instance:
        """An instance named ``name`` whose scheduler is ``policy(pool)`` over a fresh KV pool."""
        blocks = self.new_blocks()
        return Instance(name, policy(blocks), self.executor(name, blocks))


@dataclass(slots=True)
class Built:
    """A built system: its instances (in a stable order) and the router that places and moves requests."""

    instances: list[Instance]
    router: Router


def round_robin(ctx: BuildContext, policy: Callable[[KVPool], Scheduler]) -> Built:
    """The usual shape of a system: the same policy on every instance (``gpu0``, ``gpu1``...) behind a
    round-robin router that never moves a request."""
    instances = [ctx.instance(f"gpu{i}", policy) for i in range(ctx.cluster.instances)]
    return Built(instances, RoundRobinRouter(instances))


@dataclass(frozen=True, slots=True)
class System:
    """One serving system, as the registry holds it."""

    name: str
    #: One line for ``ascbench systems`` and the CLI help.
    summary: str
    config: type[SystemConfig]
    build: Callable[[Any, BuildContext], Built]
    #: Where it can run (a subset of ``TARGETS``).
    targets: tuple[str, ...] = TARGETS

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ValueError(f"system name {self.name!r}: use letters, digits, '-' and '_'")
        unknown = set(self.targets) - set(TARGETS)
        if unknown:
            raise ValueError(f"system {self.name}: unknown targets {sorted(unknown)}; known: {TARGETS}")
        if not (dataclasses.is_dataclass(self.config) and issubclass(self.config, SystemConfig)):
            raise ValueError(f"system {self.name}: config must be a SystemConfig dataclass")
        for f in dataclasses.fields(self.config):
            if f.default is dataclasses.MISSING or "help" not in f.metadata:
                raise ValueError(f"system {self.name}: knob {f.name} needs a default and help (use knob())")
