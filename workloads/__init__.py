"""Workloads: seeded, reproducible lists of request specs from datasets, traces and synthetic generators."""

from workloads.spec import RequestSpec, Workload

__all__ = ["RequestSpec", "Workload"]
