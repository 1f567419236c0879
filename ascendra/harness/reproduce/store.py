"""The point cache of ``reproduce``: one finished run per config hash, shared by every experiment.

Layout (under ``<out>/.points/``, kept out of git)::

    <key>.parquet   the run's compact per-request table (``compact_records``), written first
    <key>.json      the run's config and summary row, written last: its presence marks the point complete

Both files are written to a temporary name and renamed (``ascendra.sweep``'s helpers), so an interrupted run
never leaves a file that a later run trusts; a point is computed again unless its JSON exists.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ascendra.config import RunConfig
from ascendra.metrics import SLO, latencies
from ascendra.metrics.attainment import tbt_met, ttft_met
from ascendra.sweep import _write_atomic, _write_text, run_point

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


class PointStore:
    """Finished points by config hash in one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _json(self, config: RunConfig) -> Path:
        return self.root / f"{config.key()}.json"

    def has(self, config: RunConfig) -> bool:
        return self._json(config).exists()

    def row(self, config: RunConfig) -> dict[str, object]:
        return json.loads(self._json(config).read_text())["summary"]

    def compact(self, config: RunConfig) -> pd.DataFrame:
        return pd.read_parquet(self.root / f"{config.key()}.parquet")

    def save(self, config: RunConfig, compact: pd.DataFrame, row: dict[str, object]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        key = config.key()
        _write_atomic(self.root / f"{key}.parquet", lambda p: compact.to_parquet(p, index=False))
        _write_text(self._json(config), json.dumps({"config": config.to_dict(), "summary": row}, indent=1))


def compute_point(config: RunConfig, root: Path, data_dir: Path | None = None) -> str:
    """Run ``config`` on its backend (the simulator, a live engine, vLLM) and store it (run in a worker process);
    returns the config's key."""
    slo = SLO(config.ttft_slo, config.tbt_slo)
    records, summary = run_point(config, data_dir)
    compact = compact_records(records, slo)
    row = {**summary, **offload_stats(compact)}
    PointStore(root).save(config, compact, row)
    return config.key()
