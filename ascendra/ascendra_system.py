"""Ascendra as a registered system: its knobs and how its LP/HP instances and controller are built.

The policies live in ``lp_scheduler`` (low priority: decodes never stall, whole prefills by urgency),
``hp_scheduler`` (high priority: urgent requests first) and ``controller`` (ticket routing and offload); this
module only declares the system.

Beyond the paper (every knob off by default, so ``ascendra`` stays the paper's system):

- ``--decode-aware-hp``: the HP decodes every iteration and chunks prefills to the TBT (``hp_scheduler``);
- ``--chunked-lp``: the LP does the same instead of whole prefills (``lp_scheduler``);
- ``--auto-margin``: the offload margin from the performance model's error and the HP's drain (``controller``);
- ``--migration``: running decodes move with their KV by live migration (``rebalance``, ``migration``);
- ``--adaptive-partition``: instances change role between LP and HP with load (``partition``).

``--plus`` names the combination (Ascendra+): decode-aware HP and chunked LP, the mechanisms that raised capacity
under both TBT metrics on the tuning seeds (11-15); the margin, migration and partition mechanisms each lowered it
there, so they stay separate knobs. A knob rather than a registered ``ascendra-plus`` system: it is the same
system with more mechanisms, every other knob still applies, and results keep one system name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ascendra.controller import AscendraController
from ascendra.errors import UserError
from ascendra.gpus import get_gpu
from ascendra.hp_scheduler import HighPriorityScheduler, MigratingHighPriorityScheduler
from ascendra.kv_cache import KVPool
from ascendra.lp_scheduler import LowPriorityScheduler, MigratingLowPriorityScheduler
from ascendra.migration import Migrator
from ascendra.partition import AdaptivePartition
from ascendra.perfmodel import PerfModel
from ascendra.rebalance import Rebalancer
from ascendra.system import BuildContext, Built, ClusterSpec, System, SystemConfig, knob
from ascendra.urgency import VALUE_FUNCTIONS, Predictor

#: Performance-model feature sets: the paper's four roofline features, or per-sequence ones.
PERF_MODELS = ("paper", "per-seq")


@dataclass(frozen=True, slots=True)
class AscendraConfig(SystemConfig):
    partition: str = knob("2L1H", "xLyH: low- and high-priority instances.")
    margin: float | None = knob(None, "Offload margin, s \\[default: 0.7 for llama-3.1-8b, else 1.0].")
    value_fn: str = knob("edf", "Urgency value function.", VALUE_FUNCTIONS)
    compute_cap: float = knob(1.0, "LP compute cap, in seconds of the GPU's peak FLOPs.")
    perf_model: str = knob("paper", "Performance-model features: paper (4 roofline) or per-seq.", PERF_MODELS)
    max_num_seqs: int = knob(128, "Max running sequences per instance.")
    max_batched_tokens: int = knob(8192, "Token budget per iteration (whole prefills must fit it).")
    admission_control: bool = knob(False, "Drop requests predicted to miss their TTFT.")
    hp_max_num_seqs: int | None = knob(None, "HP instances' sequence cap \\[default: --max-num-seqs].")
    hp_hard_cap: bool = knob(False, "Make the HP cap hard (default: soft, admits past it while 5% of KV is free).")
    tbt_admission: bool = knob(False, "LP admits a prefill only if the predicted iteration stays within the TBT SLO.")
    auto_margin: bool = knob(False, "Offload margin from the perf model's error bound plus the HP queue's drain time.")
    migration: bool = knob(False, "Live-migrate running decodes off an overloaded HP or an instance with TBT at risk.")
    decode_aware_hp: bool = knob(False, "HP decodes every iteration, chunking prefills to keep decodes within TBT.")
    chunked_lp: bool = knob(False, "LP decodes every iteration and chunks prefills to keep decodes within TBT.")
    adaptive_partition: bool = knob(False, "Instances switch between LP and HP with load (hysteresis, drain rule).")
    plus: bool = knob(False, "Ascendra+: --decode-aware-hp and --chunked-lp together.")

    def __post_init__(self) -> None:
        SystemConfig.__post_init__(self)
        self.positive("compute_cap", "max_num_seqs", "max_batched_tokens", "hp_max_num_seqs")
        if self.margin is not None and self.margin < 0:
            raise UserError(f"--margin must be >= 0, got {self.margin}")
        self.lp_hp  # noqa: B018  (validates the partition)

    @property
    def lp_hp(self) -> tuple[int, int]:
        """(low-priority, high-priority) instance counts of the ``xLyH`` partition."""
        match = re.fullmatch(r"(\d+)L(\d+)H", self.partition)
        if not match or int(match[1]) < 1 or int(match[2]) < 1:
            raise UserError(f"bad --partition {self.partition!r}: use xLyH with x, y >= 1, e.g. 2L1H")
        return int(match[1]), int(match[2])

    def check(self, cluster: ClusterSpec) -> None:
        low, high = self.lp_hp
        if low + high != cluster.instances:
            raise UserError(f"--partition {self.partition} has {low + high} instances; pass --instances {low + high}")

    def offload_margin(self, model: str) -> float:
        """As configured, else the published per-model constant (0.7 s for Llama-3.1-8B, 1.0 s otherwise)."""
        if self.margin is not None:
            return self.margin
        return 0.7 if model == "llama-3.1-8b" else 1.0


def build(config: AscendraConfig, ctx: BuildContext) -> Built:
    """``xLyH``: x low-priority instances (``lp0``...) then y high-priority ones (``hp0``...), and the controller."""
    cluster = ctx.cluster
    perf = PerfModel.load(cluster.model, cluster.gpu, cluster.tp, per_seq=config.perf_model == "per-seq")
    predictor = Predictor(perf)
    shared = {
        "predictor": predictor,
        "ttft_slo": cluster.ttft_slo,
        "value_fn": config.value_fn,
        "max_num_seqs": config.max_num_seqs,
        "max_batched_tokens": config.max_batched_tokens,
        "admission_control": config.admission_control,
    }
    margin = config.offload_margin(cluster.model)
    cap_flops = config.compute_cap * get_gpu(cluster.gpu).peak_flops
    num_low, num_high = config.lp_hp
    tbt_budget = cluster.tbt_slo if config.tbt_admission else None
    decode_tbt = cluster.tbt_slo if config.decode_aware_hp or config.plus else None
    chunk_tbt = cluster.tbt_slo if config.chunked_lp or config.plus else None
    migration = config.migration
    low_class = MigratingLowPriorityScheduler if migration else LowPriorityScheduler
    high_class = MigratingHighPriorityScheduler if migration else HighPriorityScheduler

    def low_policy(blocks: KVPool) -> LowPriorityScheduler:
        lp = {"compute_cap_flops": cap_flops, "tbt_budget": tbt_budget, "chunk_tbt": chunk_tbt}
        return low_class(blocks, margin=margin, **lp, **shared)

    def high_policy(blocks: KVPool) -> HighPriorityScheduler:
        hp = {**shared, "max_num_seqs": config.hp_max_num_seqs or config.max_num_seqs}
        return high_class(blocks, hard_cap=config.hp_hard_cap, decode_tbt=decode_tbt, **hp)

    low = [ctx.instance(f"lp{i}", low_policy) for i in range(num_low)]
    high = [ctx.instance(f"hp{i}", high_policy) for i in range(num_high)]
    rebalancer = Rebalancer(Migrator(cluster.kv_move_time()), predictor, cluster.tbt_slo) if migration else None
    controller = AscendraController(low, high, predictor, auto_margin=config.auto_margin, rebalancer=rebalancer)
    if config.adaptive_partition:
        controller.partition = AdaptivePartition(
            controller.low,
            controller.high,
            low_policy,
            high_policy,
            controller.drain_time,
            cluster.ttft_slo,
            low_budget=None if chunk_tbt is not None else config.max_batched_tokens,
        )
    return Built(low + high, controller)


SYSTEM = System(
    "ascendra",
    "Ascendra: LP instances for throughput, HP for urgent requests, offload by a performance model.",
    AscendraConfig,
    build,
)
