"""Workloads: seeded, reproducible lists of request specs from datasets, traces and synthetic generators."""

from workloads.registry import WorkloadInfo, list_workloads, load_pool, make_workload
from workloads.spec import RequestSpec, Workload

__all__ = ["RequestSpec", "Workload", "WorkloadInfo", "list_workloads", "load_pool", "make_workload"]
