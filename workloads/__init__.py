"""Workloads: seeded, reproducible lists of request specs from datasets, traces and synthetic generators."""

from ascendra.request import RequestSpec
from workloads.registry import WorkloadInfo, list_workloads, load_pool, make_workload
from workloads.spec import Workload

__all__ = ["RequestSpec", "Workload", "WorkloadInfo", "list_workloads", "load_pool", "make_workload"]
