"""Per-request latencies (TTFT, TBT gaps, E2E, scheduling delay) computed from a records table in one vectorised pass.

Sweeps summarise 2,000-request tables many times, so nothing here loops over tokens in Python: every request's
token times are flattened into one array once, and per-request statistics are grouped reductions on it.

Conventions (every value is in seconds):

- ``ttft``: first token time - arrival; NaN when no token was emitted (dropped, or never prefilled).
- TBT gaps: differences of consecutive token times of one request (``n - 1`` gaps for ``n`` tokens).
- ``mean_tbt``: ``(last - first) / (n - 1)``, the paper's per-request TBT; NaN for fewer than 2 tokens.
- ``p99_tbt`` / ``max_tbt``: the request's P99 (numpy's linear interpolation) and largest gap; NaN without gaps.
- ``tpot``: DistServe's time per output token, ``(e2e - ttft) / (output_tokens - 1)``; NaN unless finished with
  at least 2 output tokens. It equals ``mean_tbt`` whenever the finish time is the last token's time.
- ``e2e``: finish time - arrival, and ``normalized_latency`` = ``e2e / output_tokens``; NaN unless finished.
- ``scheduling_delay``: first time any prefill chunk was scheduled - arrival; NaN if never scheduled.

A request is *finished* when it has a finish time and is not dropped; *cancelled* when its client went away
first (served requests; an optional column, False when absent); *unfinished* when none of these.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ascendra.errors import UserError

#: Columns of the records table the metrics read.
REQUIRED_COLUMNS = (
    "arrival",
    "output_tokens",
    "first_scheduled",
    "token_times",
    "finish_time",
    "dropped",
    "offloaded",
    "preemptions",
)

#: Columns of ``Latencies.requests``, one row per arrived request in records order (flags and counts included so
#: a summary needs nothing else).
LATENCY_COLUMNS = (
    "arrival",
    "output_tokens",
    "num_tokens",
    "finished",
    "dropped",
    "cancelled",
    "offloaded",
    "preemptions",
    "ttft",
    "mean_tbt",
    "p99_tbt",
    "max_tbt",
    "tpot",
    "e2e",
    "normalized_latency",
    "scheduling_delay",
    "first_token",
    "last_token",
)


@dataclass(frozen=True, slots=True)
class Latencies:
    """Everything latency-related about one run: a per-request table and every TBT gap pooled.

    Computed once per records table and shared by the attainment definitions, throughput and the summary.
    """

    requests: pd.DataFrame
    gaps: np.ndarray
    gap_owner: np.ndarray

    def gaps_of(self, row: int) -> np.ndarray:
        """The TBT gaps of the request in row ``row`` (positional), in token order."""
        return self.gaps[self.gap_owner == row]


def tbt_gaps(token_times: Sequence[float]) -> np.ndarray:
    """The gaps between consecutive tokens of one request (empty for fewer than two tokens)."""
    return np.diff(np.asarray(token_times, dtype=float))


def check_columns(records: pd.DataFrame) -> None:
    """Raise UserError when the table lacks a column the metrics need."""
    missing = [c for c in REQUIRED_COLUMNS if c not in records.columns]
    if missing:
        raise UserError(f"records lack columns: {', '.join(missing)}")


def float_column(records: pd.DataFrame, name: str) -> np.ndarray:
    """A column as float64 with None/NaN/NA as NaN (optional timestamps arrive as object columns)."""
    return pd.to_numeric(records[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _flag(records: pd.DataFrame, name: str) -> np.ndarray:
    """An optional boolean column, False where missing or absent."""
    if name not in records.columns:
        return np.zeros(len(records), dtype=bool)
    return records[name].fillna(False).to_numpy(dtype=bool)


def _per_request_tail(gaps: np.ndarray, owner: np.ndarray, n: int, q: float = 0.99) -> tuple[np.ndarray, np.ndarray]:
    """Per-request quantile ``q`` (linear interpolation, as ``np.percentile``) and maximum of the gaps, by the
    row index in ``owner``; NaN for rows without gaps. One grouped pass, no per-request Python loop."""
    quantile = np.full(n, np.nan)
    largest = np.full(n, np.nan)
    if gaps.size:
        grouped = pd.Series(gaps).groupby(owner, sort=True)
        tail = grouped.quantile(q)
        rows = tail.index.to_numpy()
        quantile[rows] = tail.to_numpy()
        largest[rows] = grouped.max().to_numpy()
    return quantile, largest


def latencies(records: pd.DataFrame) -> Latencies:
    """Per-request latencies and the pooled TBT gaps of a records table (see the module docstring)."""
    check_columns(records)
    n = len(records)
    token_lists = records["token_times"].to_numpy(dtype=object)
    counts = np.fromiter((0 if t is None else len(t) for t in token_lists), dtype=np.int64, count=n)
    flat = np.fromiter(
        itertools.chain.from_iterable(t for t in token_lists if t is not None), dtype=float, count=int(counts.sum())
    )
    owner = np.repeat(np.arange(n), counts)

    has_token = counts > 0
    first_index = np.cumsum(counts) - counts
    first = np.full(n, np.nan)
    last = np.full(n, np.nan)
    first[has_token] = flat[first_index[has_token]]
    last[has_token] = flat[first_index[has_token] + counts[has_token] - 1]

    same_request = owner[1:] == owner[:-1]
    gaps = np.diff(flat)[same_request]
    gap_owner = owner[1:][same_request]
    p99_tbt, max_tbt = _per_request_tail(gaps, gap_owner, n)

    arrival = float_column(records, "arrival")
    output_tokens = float_column(records, "output_tokens")
    dropped = records["dropped"].fillna(False).to_numpy(dtype=bool)
    finish = float_column(records, "finish_time")
    finished = ~np.isnan(finish) & ~dropped
    finish = np.where(finished, finish, np.nan)

    with np.errstate(divide="ignore", invalid="ignore"):
        mean_tbt = np.where(counts >= 2, (last - first) / (counts - 1), np.nan)
        ttft = first - arrival
        e2e = finish - arrival
        tpot = np.where(finished & (output_tokens >= 2), (finish - first) / (output_tokens - 1), np.nan)
        normalized = np.where(output_tokens > 0, e2e / output_tokens, np.nan)

    table = pd.DataFrame(
        {
            "arrival": arrival,
            "output_tokens": output_tokens,
            "num_tokens": counts,
            "finished": finished,
            "dropped": dropped,
            "cancelled": _flag(records, "cancelled"),
            "offloaded": records["offloaded"].fillna(False).to_numpy(dtype=bool),
            "preemptions": pd.to_numeric(records["preemptions"], errors="coerce").fillna(0).to_numpy(dtype=np.int64),
            "ttft": ttft,
            "mean_tbt": mean_tbt,
            "p99_tbt": p99_tbt,
            "max_tbt": max_tbt,
            "tpot": tpot,
            "e2e": e2e,
            "normalized_latency": normalized,
            "scheduling_delay": float_column(records, "first_scheduled") - arrival,
            "first_token": first,
            "last_token": last,
        },
        columns=list(LATENCY_COLUMNS),
    )
    return Latencies(requests=table, gaps=gaps, gap_owner=gap_owner)


def percentiles(values: np.ndarray, qs: Sequence[float] = (50.0, 90.0, 99.0)) -> list[float]:
    """Percentiles of the finite values (NaN for each when there are none), without numpy's empty warnings."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [float("nan")] * len(qs)
    return [float(v) for v in np.percentile(finite, qs)]


def mean(values: np.ndarray) -> float:
    """Mean of the finite values; NaN when there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")
