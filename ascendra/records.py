"""Per-request records: the single source of truth every metric is computed from.

A records table has one row per *arrived* request (finished, dropped, cancelled or unfinished), with the
columns in ``RECORD_COLUMNS``. ``token_times`` holds the absolute time of every output token (the first is the
first token), as a float64 array (a list in tables built by hand: the metrics take either); ``slo_class``,
``ttft_slo`` and ``tbt_slo`` are the request's own SLO class and SLOs (None or NaN: the run's SLOs, as for every
request of a run without classes). Tables are written as Parquet so the token times round-trip exactly.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ascendra.errors import UserError
from ascendra.files import write_atomic
from ascendra.request import Request

RECORD_COLUMNS = (
    "request_id",
    "arrival",
    "prompt_tokens",
    "output_tokens",
    "first_scheduled",
    "token_times",
    "finish_time",
    "dropped",
    "cancelled",
    "offloaded",
    "offload_time",
    "instances",
    "preemptions",
    "slo_class",
    "ttft_slo",
    "tbt_slo",
)
#: Columns a table written before requests carried SLO classes lacks: the run's SLOs apply to every request.
_SLO_COLUMNS = ("slo_class", "ttft_slo", "tbt_slo")


class TokenTimes(NamedTuple):
    """Every request's token times in one float64 array (``values``), request by request, with how many each
    has (``counts``): what the metrics compute from, had by ``records_and_times`` without reading the table."""

    values: np.ndarray
    counts: np.ndarray


def records_frame(requests: Iterable[Request]) -> pd.DataFrame:
    """A records table from live requests, sorted by request id."""
    return records_and_times(requests)[0]


def records_and_times(requests: Iterable[Request]) -> tuple[pd.DataFrame, TokenTimes]:
    """A records table from live requests, sorted by request id, and its token times in one array (whose slices
    the table's ``token_times`` are). Built column by column, without a dict per request: every simulated run
    ends here."""
    rows = sorted(requests, key=lambda r: r.id)
    times = _token_times(rows)
    if not rows:  # columns of no values are object columns, as pandas types an empty table
        return pd.DataFrame([], columns=list(RECORD_COLUMNS)), times
    specs = [r.spec for r in rows]
    n = len(rows)
    ends = np.cumsum(times.counts).tolist()
    values = times.values
    columns: dict[str, object] = {
        "request_id": np.fromiter((r.id for r in rows), dtype=np.int64, count=n),
        "arrival": np.fromiter((s.arrival for s in specs), dtype=float, count=n),
        "prompt_tokens": np.fromiter((s.prompt_tokens for s in specs), dtype=np.int64, count=n),
        "output_tokens": np.fromiter((s.output_tokens for s in specs), dtype=np.int64, count=n),
        "first_scheduled": [r.first_scheduled for r in rows],
        "token_times": [values[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)],
        "finish_time": [r.finish_time for r in rows],
        "dropped": np.fromiter((r.dropped for r in rows), dtype=bool, count=n),
        "cancelled": np.fromiter((r.cancelled for r in rows), dtype=bool, count=n),
        "offloaded": np.fromiter((r.offload_time is not None for r in rows), dtype=bool, count=n),
        "offload_time": [r.offload_time for r in rows],
        "instances": [",".join(r.instances) for r in rows],
        "preemptions": np.fromiter((r.preemptions for r in rows), dtype=np.int64, count=n),
        "slo_class": [s.slo_class for s in specs],
        "ttft_slo": [r.ttft_slo for r in rows],
        "tbt_slo": [r.tbt_slo for r in rows],
    }
    return pd.DataFrame(columns, columns=list(RECORD_COLUMNS)), times


def _token_times(rows: Sequence[Request]) -> TokenTimes:
    """The requests' token times copied from their C doubles into one array (no per-token Python float on the
    way)."""
    flat: array[float] = array("d")
    counts = []
    for request in rows:
        times = request.token_times
        flat.extend(times)
        counts.append(len(times))
    values = np.frombuffer(flat, dtype=float) if flat else np.empty(0)
    return TokenTimes(values, np.array(counts, dtype=np.int64))


def write_records(frame: pd.DataFrame, path: Path) -> None:
    """Write a records table as Parquet, atomically (a failed write is a one-line ``UserError``)."""
    write_atomic(path, lambda p: frame.to_parquet(p, index=False))


def read_records(path: Path) -> pd.DataFrame:
    """Load a records table written by ``write_records`` (Parquet) and check its columns."""
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read records {path}: {exc}") from None
    if "cancelled" not in frame.columns:  # tables written before requests could be cancelled
        frame.insert(list(RECORD_COLUMNS).index("cancelled"), "cancelled", False)
    for name in _SLO_COLUMNS:
        if name not in frame.columns:
            frame[name] = None if name == "slo_class" else float("nan")
    missing = [c for c in RECORD_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"records {path} lack columns: {', '.join(missing)}")
    frame["token_times"] = [np.empty(0) if v is None else np.asarray(v, dtype=float) for v in frame["token_times"]]
    return frame
