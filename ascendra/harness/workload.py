"""A run config's workload and SLO, as the serving side takes them."""

from __future__ import annotations

from pathlib import Path

from ascendra.harness.config import RunConfig
from ascendra.memory import check_fits
from ascendra.metrics import SLO
from workloads import Workload, make_workload
from workloads.slo_classes import assign_slo_classes, parse_slo_classes

#: Peak bytes per request of a run (spec, scheduler state, token times, records): ~19 KB measured on ShareGPT.
RUN_BYTES_PER_REQUEST = 24_000


def check_run_fits(num_requests: int) -> None:
    """Refuse, in one line, a run whose requests cannot fit in the memory available now."""
    check_fits(num_requests, RUN_BYTES_PER_REQUEST, "--num-requests", "a run's requests and records")


def workload_of(config: RunConfig, data_dir: Path | None = None) -> Workload:
    """The config's workload, refused up front when its run would not fit in memory; with SLO classes
    (``--slo-classes``) every request carries its class and SLOs (``workloads.slo_classes``)."""
    w = config.workload
    check_run_fits(w.num_requests)
    workload = make_workload(
        w.name,
        model=config.cluster.model,
        num_requests=w.num_requests,
        rate=w.rate,
        arrival=w.arrival,
        cv=w.cv,
        seed=w.seed,
        data_dir=data_dir,
    )
    classes = parse_slo_classes(config.slo.classes)
    if classes:
        slo = config.slo
        workload.requests = assign_slo_classes(workload.requests, classes, w.seed, slo.ttft, slo.tbt)
        workload.meta["slo_classes"] = slo.classes
    return workload


def slo_of(config: RunConfig) -> SLO:
    """The run's SLO: every request's without classes, else the one a request whose class sets none keeps."""
    return SLO(config.slo.ttft, config.slo.tbt)
