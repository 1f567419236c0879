"""One simulated run: workload -> the system on the calibrated cost model -> per-request records and summary."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ascendra.errors import UserError
from ascendra.harness.build import build_system, one_executor
from ascendra.harness.config import POLICY_BACKENDS, RunConfig
from ascendra.harness.workload import slo_of, workload_of
from ascendra.kv_cache import BlockCounter
from ascendra.metrics import run_tables
from ascendra.metrics.moves import move_stats
from ascendra.models import get_model
from ascendra.sim.cluster import Cluster, OnProgress, RunResult, paused_gc
from workloads import Workload


@dataclass(slots=True)
class SimOutcome:
    config: RunConfig
    workload: Workload
    result: RunResult
    records: pd.DataFrame
    summary: dict[str, float]
    #: CPU seconds of the simulation proper (building the system and running it) and of the records and summary
    #: computed from its requests (``ascbench bench sim`` reports both; CPU time, unlike wall time, is not
    #: inflated by other work on a shared host).
    sim_seconds: float = 0.0
    metrics_seconds: float = 0.0


def simulate(
    config: RunConfig,
    data_dir: Path | None = None,
    workload: Workload | None = None,
    on_progress: OnProgress | None = None,
    bulk: bool = True,
) -> SimOutcome:
    """Run ``config`` on the simulator. The result depends only on the config (and the workload's data);
    ``on_progress(arrived, total)`` follows the run (a progress bar). ``bulk=False`` simulates every iteration
    one by one, request by request (the same result, slower: the reference for the simulator's fast path, decode
    cohorts and the bulk advance of decode runs)."""
    if config.backend.name not in POLICY_BACKENDS:
        raise UserError(
            f"--backend {config.backend.name} runs its own scheduler (vLLM's own engine, or the server's), "
            "not a simulated one: use it with sweep or capacity"
        )
    workload = workload if workload is not None else workload_of(config, data_dir)
    with paused_gc():  # the run and its records alike (``paused_gc``)
        start = time.process_time()
        c = config.cluster
        cost = config.cost_model()
        built = build_system(config, one_executor(cost.batch_time), pool=BlockCounter)
        decode_times = cost.decode_run_times if bulk else None
        cluster = Cluster(built.instances, built.router, c.transfer_time(), decode_times)
        result = cluster.run(workload.requests, on_progress)
        simulated = time.process_time()
        records, summary = run_tables(result.requests, slo_of(config), workload.num_trimmed)
        summary.update(move_stats(result.moves, get_model(c.model).kv_bytes_per_token(c.tensor_parallel)))
        end = time.process_time()
    return SimOutcome(config, workload, result, records, summary, simulated - start, end - simulated)
