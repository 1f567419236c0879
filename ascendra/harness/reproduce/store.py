"""What ``reproduce`` keeps of a run: its compact per-request table and summary row, in the shared point cache.

The cache is a ``PointStore`` under ``<out>/.points/`` (kept out of git), one point per config key, shared by
every experiment; each point holds the compact records (``compact_records``) instead of the full ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ascendra.harness.config import RunConfig
from ascendra.harness.runs import run_point
from ascendra.harness.workload import slo_of
from ascendra.metrics import SLO, latencies
from ascendra.metrics.attainment import tbt_met, ttft_met

#: Per-request columns kept for the analyses (fairness, offload, trace timelines); token times are dropped.
COMPACT_COLUMNS = (
    "arrival",
    "prompt_tokens",
    "output_tokens",
    "ttft",
    "mean_tbt",
    "ttft_ok",
    "tbt_ok",
    "attained",
    "offloaded",
    "dropped",
    "finished",
)


def compact_records(records: pd.DataFrame, slo: SLO) -> pd.DataFrame:
    """Per request: lengths, latencies and the paper's per-request SLO verdicts."""
    lat = latencies(records)
    table = lat.requests
    ttft_ok = ttft_met(lat, slo)
    tbt_ok = tbt_met(lat, slo)
    return pd.DataFrame(
        {
            "arrival": records["arrival"].to_numpy(dtype=float),
            "prompt_tokens": records["prompt_tokens"].to_numpy(dtype=np.int64),
            "output_tokens": records["output_tokens"].to_numpy(dtype=np.int64),
            "ttft": table["ttft"].to_numpy(dtype=float),
            "mean_tbt": table["mean_tbt"].to_numpy(dtype=float),
            "ttft_ok": ttft_ok,
            "tbt_ok": tbt_ok,
            "attained": ttft_ok & tbt_ok,
            "offloaded": records["offloaded"].to_numpy(dtype=bool),
            "dropped": records["dropped"].to_numpy(dtype=bool),
            "finished": table["finished"].to_numpy(dtype=bool),
        }
    )


def offload_stats(compact: pd.DataFrame) -> dict[str, float]:
    """How many requests were offloaded and the share of them that still attained both SLOs."""
    offloaded = compact[compact["offloaded"]]
    share = float(offloaded["attained"].mean()) if len(offloaded) else float("nan")
    return {"offloaded": len(offloaded), "offloaded_attainment": share}


def point_result(config: RunConfig, data_dir: Path | None = None) -> tuple[pd.DataFrame, dict[str, object]]:
    """Run ``config`` on its backend (the simulator, a live engine, vLLM), wherever the executor puts it; returns
    what the point store keeps of it: the compact records and the summary row with the offload statistics."""
    records, summary = run_point(config, data_dir)
    compact = compact_records(records, slo_of(config))
    return compact, {**summary, **offload_stats(compact)}
