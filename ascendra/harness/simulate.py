"""One simulated run: workload -> cluster -> per-request records and their summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ascendra.config import RunConfig
from ascendra.costmodel import CostModel
from ascendra.metrics import SLO, summarize
from ascendra.records import records_frame
from ascendra.sim.cluster import Cluster, RunResult
from ascendra.systems import build_system
from workloads import Workload, make_workload


@dataclass(slots=True)
class SimOutcome:
    config: RunConfig
    workload: Workload
    result: RunResult
    records: pd.DataFrame
    summary: dict[str, float]


def workload_of(config: RunConfig, data_dir: Path | None = None) -> Workload:
    return make_workload(
        config.workload,
        model=config.model,
        num_requests=config.num_requests,
        rate=config.rate,
        arrival=config.arrival,
        cv=config.cv,
        seed=config.seed,
        data_dir=data_dir,
    )


def simulate(config: RunConfig, data_dir: Path | None = None, workload: Workload | None = None) -> SimOutcome:
    """Run ``config`` on the simulator. The result depends only on the config (and the workload's data)."""
    workload = workload if workload is not None else workload_of(config, data_dir)
    cost = CostModel.load(config.model, config.gpu, config.tensor_parallel)
    instances, router = build_system(config, cost.batch_time)
    result = Cluster(instances, router).run(workload.requests)
    records = records_frame(result.requests)
    summary = summarize(records, SLO(config.ttft_slo, config.tbt_slo))
    summary["num_trimmed"] = workload.num_trimmed
    return SimOutcome(config, workload, result, records, summary)
