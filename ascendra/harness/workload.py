"""A run config's workload and SLO, as the serving side takes them."""

from __future__ import annotations

from pathlib import Path

from ascendra.harness.config import RunConfig
from ascendra.metrics import SLO
from workloads import Workload, make_workload


def workload_of(config: RunConfig, data_dir: Path | None = None) -> Workload:
    w = config.workload
    return make_workload(
        w.name,
        model=config.cluster.model,
        num_requests=w.num_requests,
        rate=w.rate,
        arrival=w.arrival,
        cv=w.cv,
        seed=w.seed,
        data_dir=data_dir,
    )


def slo_of(config: RunConfig) -> SLO:
    return SLO(config.slo.ttft, config.slo.tbt)
