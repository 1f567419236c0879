"""Per-request records: the single source of truth every metric is computed from.

A records table has one row per *arrived* request (finished, dropped, cancelled or unfinished), with the
columns in ``RECORD_COLUMNS``. ``token_times`` holds the absolute time of every output token (the first is the first
token). Tables are written as Parquet so the token time lists round-trip exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

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
)


def record_of(request: Request) -> dict[str, object]:
    """The record of one request, as a plain dict."""
    return {
        "request_id": request.id,
        "arrival": request.arrival,
        "prompt_tokens": request.prompt_len,
        "output_tokens": request.output_len,
        "first_scheduled": request.first_scheduled,
        "token_times": list(request.token_times),
        "finish_time": request.finish_time,
        "dropped": request.dropped,
        "cancelled": request.cancelled,
        "offloaded": request.offload_time is not None,
        "offload_time": request.offload_time,
        "instances": ",".join(request.instances),
        "preemptions": request.preemptions,
    }


def records_frame(requests: Iterable[Request]) -> pd.DataFrame:
    """A records table from live requests, sorted by request id."""
    rows = [record_of(r) for r in requests]
    frame = pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
    return frame.sort_values("request_id", ignore_index=True)


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
    missing = [c for c in RECORD_COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"records {path} lack columns: {', '.join(missing)}")
    frame["token_times"] = frame["token_times"].map(lambda v: [float(x) for x in v] if v is not None else [])
    return frame
