"""Profiling: run a workload on one instance under single-instance policies and log every batch it executes.

The log (:mod:`ascendra.perfmodel.log` schema) is what the performance model is fitted on (the paper's setup:
batches logged at QPS 2-10 on one instance). Two policies give the fit all three batch kinds: vLLM yields
prefill-only and decode-only batches, Sarathi-Serve decode-only and mixed (chunked prefill + decodes).

A *backend* supplies the executor: a function from a :class:`~ascendra.batch.Batch` to the seconds it takes.
``sim`` is the simulator's calibrated cost model; a real-engine backend only has to provide another function
(it would run the batch and return the measured time), the rest of the profiler is the same. The batches are
captured through ``Instance.batch_log`` without touching the runtime; a batch's composition is read from
``BatchItem.num_tokens`` / ``BatchItem.context``, which are fixed at scheduling time (the ``Request`` objects
the items point to keep changing afterwards).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.extras import needs
from ascendra.harness.build import build_system, one_executor
from ascendra.harness.config import RunConfig
from ascendra.harness.workload import workload_of
from ascendra.instance import Instance
from ascendra.kv_cache import BlockCounter
from ascendra.perfmodel.features import KINDS
from ascendra.perfmodel.log import log_row
from ascendra.router import RoundRobinRouter
from ascendra.sim.cluster import Cluster

BatchLog = list[tuple[float, Batch, float]]

#: The policies profiled by default: between them they yield all three batch kinds. Any system that runs on one
#: instance can be profiled (Ascendra needs LP and HP instances, so it cannot).
PROFILE_SYSTEMS: tuple[str, ...] = ("vllm", "sarathi")
DEFAULT_RATES: tuple[float, ...] = (2.0, 4.0, 6.0, 8.0, 10.0)
DEFAULT_NUM_REQUESTS = 250
#: Columns added to the schema's: which run a batch came from and when it started (ignored by the fit).
EXTRA_COLUMNS: tuple[str, ...] = ("backend", "system", "workload", "rate", "seed", "start_s")


def _sim_log(config: RunConfig, data_dir: Path | None) -> BatchLog:
    """Batches of a simulated run: the executor is the calibrated cost model."""
    timer = config.cost_model().batch_time
    instance: Instance = build_system(config, one_executor(timer), pool=BlockCounter).instances[0]
    instance.batch_log = []
    Cluster([instance], RoundRobinRouter([instance])).run(workload_of(config, data_dir).requests)
    return instance.batch_log


def _engine_log(config: RunConfig, data_dir: Path | None) -> BatchLog:
    """Batches of a live run on the real engine (device and KV pool from the config): measured seconds."""
    with needs("engine", what="profile --backend engine"):
        from ascendra.harness.live_run import run_live
        from ascendra.live.engines import LiveOptions

    options = LiveOptions(device=config.backend.device, num_blocks=config.backend.kv_blocks)
    outcome = run_live(config, options=options, data_dir=data_dir)
    return outcome.result.instances[0].batch_log or []


#: Backend name -> the batch log of one run of a config on that backend.
BACKENDS: dict[str, Callable[[RunConfig, Path | None], BatchLog]] = {"sim": _sim_log, "engine": _engine_log}


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    """What to profile: one (model, GPU, TP) instance, a workload, the policies and the request rates."""

    model: str = "llama-3.1-8b"
    gpu: str = "a100-80gb"
    tp: int | None = None
    workload: str = "sharegpt"
    rates: tuple[float, ...] = DEFAULT_RATES
    num_requests: int = DEFAULT_NUM_REQUESTS
    systems: tuple[str, ...] = PROFILE_SYSTEMS
    seed: int = 1
    backend: str = "sim"
    device: str = "cpu"
    kv_blocks: int | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UserError(f"unknown backend {self.backend!r}; known backends: {', '.join(BACKENDS)}")
        if not self.systems:
            raise UserError("no systems to profile")
        if len(set(self.systems)) != len(self.systems):
            raise UserError(f"systems listed twice: {', '.join(self.systems)}")
        if not self.rates or min(self.rates) <= 0:
            raise UserError(f"rates must be positive, got {list(self.rates)}")
        for system in self.systems:  # validates the systems, model, GPU, TP and the request count
            try:
                self.config(system, self.rates[0])
            except UserError as exc:
                raise UserError(f"cannot profile system {system!r} on one instance: {exc}") from None

    def config(self, system: str, rate: float) -> RunConfig:
        """The one-instance run config of ``system`` at ``rate``."""
        return RunConfig.from_flat(
            {
                "system": system,
                "workload": self.workload,
                "model": self.model,
                "gpu": self.gpu,
                "tp": self.tp,
                "instances": 1,
                "rate": rate,
                "num_requests": self.num_requests,
                "seed": self.seed,
                "backend": self.backend,
                "device": self.device,
                "kv_blocks": self.kv_blocks,
            }
        )


def batch_rows(
    config: RunConfig, batch_log: Sequence[tuple[float, Batch, float]], backend: str
) -> list[dict[str, Any]]:
    """Schema rows (plus :data:`EXTRA_COLUMNS`) for one run's ``Instance.batch_log``."""
    c = config.cluster
    tp = c.tensor_parallel
    rows = []
    for start, batch, seconds in batch_log:
        prefills, decodes = batch.composition()
        row = log_row(c.model, c.gpu, tp, prefills, decodes, seconds)
        row.update(
            backend=backend,
            system=config.system,
            workload=config.workload.name,
            rate=config.rate,
            seed=config.workload.seed,
            start_s=start,
        )
        rows.append(row)
    return rows


def profile_run(config: RunConfig, backend: str, data_dir: Path | None = None) -> pd.DataFrame:
    """Run ``config`` (one instance) on ``backend`` and return its batch log."""
    if config.cluster.instances != 1:
        raise UserError(f"profiling runs one instance, got {config.cluster.instances}")
    return pd.DataFrame(batch_rows(config, BACKENDS[backend](config, data_dir), backend))


def profile(
    spec: ProfileSpec,
    data_dir: Path | None = None,
    on_run: Callable[[RunConfig, pd.DataFrame], None] | None = None,
) -> pd.DataFrame:
    """Every batch of every (system, rate) run of ``spec``, in run order; ``on_run`` is called after each run."""
    parts = []
    for system in spec.systems:
        for rate in spec.rates:
            config = spec.config(system, rate)
            part = profile_run(config, spec.backend, data_dir)
            if on_run is not None:
                on_run(config, part)
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def kind_counts(log: pd.DataFrame) -> dict[str, int]:
    """Rows per batch kind, every kind listed (0 when absent)."""
    counts = log["kind"].value_counts()
    return {kind: int(counts.get(kind, 0)) for kind in KINDS}


def run_summary(log: pd.DataFrame) -> list[dict[str, Any]]:
    """Per (system, rate): batch counts per kind and the busy time logged."""
    out = []
    for (system, rate), part in log.groupby(["system", "rate"], sort=False):
        out.append(
            {"system": system, "rate": float(rate), "batches": len(part), **kind_counts(part)}
            | {"busy_s": float(part["seconds"].sum())}
        )
    return out
