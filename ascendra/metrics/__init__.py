"""Metrics: pure functions over per-request records (latencies, SLO attainment, throughput, capacity, summary)."""

from ascendra.metrics.attainment import (
    ATTAINMENT_DEFINITIONS,
    SLO,
    attained,
    attainment,
    sarathi_passes,
    tbt_met,
    ttft_met,
)
from ascendra.metrics.capacity import (
    CapacityResult,
    capacity_from_sweep,
    combined_status,
    refine_capacity,
    search_capacity,
)
from ascendra.metrics.intervals import Interval, mean_ci, paired_ratio_ci, percentile_ci, percentile_intervals
from ascendra.metrics.latency import Latencies, latencies, tbt_gaps
from ascendra.metrics.summary import ATTAINMENT_KEYS, run_tables, summarize
from ascendra.metrics.throughput import Throughput, throughput

__all__ = [
    "ATTAINMENT_DEFINITIONS",
    "ATTAINMENT_KEYS",
    "SLO",
    "CapacityResult",
    "Interval",
    "Latencies",
    "Throughput",
    "attained",
    "attainment",
    "capacity_from_sweep",
    "combined_status",
    "latencies",
    "mean_ci",
    "paired_ratio_ci",
    "percentile_ci",
    "percentile_intervals",
    "refine_capacity",
    "sarathi_passes",
    "run_tables",
    "search_capacity",
    "summarize",
    "tbt_gaps",
    "tbt_met",
    "throughput",
    "ttft_met",
]
