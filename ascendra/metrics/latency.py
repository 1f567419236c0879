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
- ``slo_class``, ``ttft_slo``, ``tbt_slo``: the request's own SLO class and SLOs, copied from the records (None,
  NaN: the run's SLOs; ``ascendra.metrics.attainment`` resolves them).

A request is *finished* when it has a finish time and is not dropped; *cancelled* when its client went away
first (served requests; an optional column, False when absent); *unfinished* when none of these.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ascendra.errors import UserError
from ascendra.records import TokenTimes

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
    "slo_class",
    "ttft_slo",
    "tbt_slo",
)


@dataclass(frozen=True, slots=True)
class Latencies:
    """Everything latency-related about one run: a per-request table and every TBT gap pooled.

    Computed once per records table and shared by the attainment definitions, throughput and the summary.
    """

    requests: pd.DataFrame
    #: Every request's gaps, request by request in row order (``num_tokens - 1`` each, none below 2 tokens).
    gaps: np.ndarray
    #: ``gap_percentiles``, once computed (``latencies`` computes them first, for ``_per_request_tail``; the
    #: summary and Sarathi-Serve's criterion read them too).
    _gap_percentiles: list[float] = field(default_factory=list, repr=False, compare=False)
    #: ``column``'s arrays, and ``gap_owner``, once built.
    _columns: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def gap_percentiles(self) -> list[float]:
        """P50, P90 and P99 of the finite gaps (``percentiles``), computed once."""
        if not self._gap_percentiles:
            self._gap_percentiles.extend(percentiles(self.gaps))
        return list(self._gap_percentiles)

    def column(self, name: str) -> np.ndarray:
        """Column ``name`` of ``requests`` as an array, read once: the attainment definitions and the summary read
        the same few columns over and over, and each DataFrame lookup costs more than the arithmetic on it."""
        if name not in self._columns:
            self._columns[name] = self.requests[name].to_numpy()
        return self._columns[name]

    @property
    def gap_owner(self) -> np.ndarray:
        """The row (positional) of each gap's request; built when first asked (only SLO classes need it)."""
        if "gap_owner" not in self._columns:
            counts = np.maximum(self.column("num_tokens") - 1, 0)
            self._columns["gap_owner"] = np.repeat(np.arange(counts.size), counts)
        return self._columns["gap_owner"]

    def gaps_of(self, row: int) -> np.ndarray:
        """The TBT gaps of the request in row ``row`` (positional), in token order."""
        return self.gaps[self.gap_owner == row]

    def where(self, mask: np.ndarray) -> Latencies:
        """The latencies of the requests where ``mask`` is True (positional), with their gaps: one SLO class."""
        rows = np.flatnonzero(mask)
        requests = self.requests.iloc[rows].reset_index(drop=True)
        return Latencies(requests=requests, gaps=self.gaps[mask[self.gap_owner]])


def tbt_gaps(token_times: Sequence[float]) -> np.ndarray:
    """The gaps between consecutive tokens of one request (empty for fewer than two tokens)."""
    return np.diff(np.asarray(token_times, dtype=float))


def check_columns(records: pd.DataFrame) -> None:
    """Raise UserError when the table lacks a column the metrics need."""
    missing = [c for c in REQUIRED_COLUMNS if c not in records.columns]
    if missing:
        raise UserError(f"records lack columns: {', '.join(missing)}")


def float_column(records: pd.DataFrame, name: str) -> np.ndarray:
    """A column as float64 with None/NaN/NA as NaN (optional timestamps arrive as object columns, which alone
    need ``pd.to_numeric``)."""
    column = records[name]
    if not pd.api.types.is_numeric_dtype(column.dtype):
        column = pd.to_numeric(column, errors="coerce")
    return column.to_numpy(dtype=float, na_value=np.nan)


def _flag(records: pd.DataFrame, name: str) -> np.ndarray:
    """An optional boolean column, False where missing or absent (whatever its dtype: a table read back or
    concatenated may hold a flag as floats with NaN, which ``fillna(False)`` would refuse)."""
    if name not in records.columns:
        return np.zeros(len(records), dtype=bool)
    return records[name].to_numpy(dtype=bool, na_value=False)


def _optional_float(records: pd.DataFrame, name: str) -> np.ndarray:
    """An optional float column (a request's own SLO), NaN where missing or absent."""
    if name not in records.columns:
        return np.full(len(records), np.nan)
    return float_column(records, name)


def _flatten(token_lists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every request's token times in one float array, and how many each request has (None: none).

    Simulated runs and tables read from Parquet hold numpy arrays, joined without touching a value (their types
    and lengths read in C, by ``map``); anything else (lists in hand-built records, None) is read one float at a
    time."""
    if token_lists.size and set(map(type, token_lists)) == {np.ndarray}:
        counts = np.fromiter(map(len, token_lists), dtype=np.int64, count=token_lists.size)
        return np.concatenate(list(token_lists), dtype=float), counts
    counts = np.fromiter((0 if t is None else len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
    present = (t for t in token_lists if t is not None)
    return np.fromiter(itertools.chain.from_iterable(present), dtype=float, count=int(counts.sum())), counts


def _per_request_tail(
    gaps: np.ndarray, counts: np.ndarray, q: float = 0.99, threshold: float = math.nan
) -> tuple[np.ndarray, np.ndarray]:
    """Per-request quantile ``q`` and maximum of the gaps, request ``i`` owning the next ``counts[i]`` gaps; NaN for
    requests without gaps.

    The quantile is the linear interpolation ``v[lo] + (v[lo + 1] - v[lo]) * frac`` of the request's sorted gaps
    ``v`` at ``lo + frac = q * (m - 1)`` (pandas' grouped quantile, bit for bit). Only the ``m - lo`` largest gaps
    of each request matter (~1% + 2 for a P99), so nothing is sorted: where a request has that many gaps at or
    above ``threshold`` (a value ~10% of all gaps reach, the pooled P90), its order statistics are those of these
    candidates alone, and only the candidates get partitioned; the other requests partition all their gaps."""
    quantile = np.full(counts.size, np.nan)
    largest = np.full(counts.size, np.nan)
    rows = np.flatnonzero(counts)
    if not rows.size:
        return quantile, largest
    m = counts[rows]
    starts = np.cumsum(m) - m
    top = np.maximum.reduceat(gaps, starts)
    largest[rows] = top
    position = q * (m - 1).astype(float)
    lo = position.astype(np.int64)
    frac = position % 1
    above = gaps >= threshold  # ties included: every gap equal to the threshold is a candidate
    num_above = np.add.reduceat(above, starts)
    # Candidates leave NaN out: a request with a NaN gap takes the full path, whose partition sorts NaN last.
    from_candidates = (num_above >= m - lo) & ~np.isnan(top)
    low = np.empty(rows.size)
    high = np.empty(rows.size)
    chosen = np.flatnonzero(from_candidates)
    if chosen.size:
        candidates = gaps[above]
        candidate_starts = np.cumsum(num_above) - num_above
        rank = num_above - (m - lo)
        low[chosen], high[chosen] = _near_top(candidates, candidate_starts[chosen], num_above[chosen], rank[chosen])
    rest = np.flatnonzero(~from_candidates)
    if rest.size:
        low[rest], high[rest] = _near_top(gaps, starts[rest], m[rest], lo[rest])
        # Requests of up to ~100 gaps have always taken their P99 from their two largest gaps, NaN with a NaN gap.
        low[rest[np.isnan(top[rest]) & (lo[rest] >= m[rest] - 2)]] = np.nan
    quantile[rows] = low
    between = np.flatnonzero(frac != 0.0)
    quantile[rows[between]] = low[between] + (high[between] - low[between]) * frac[between]
    return quantile, largest


def _near_top(values: np.ndarray, starts: np.ndarray, counts: np.ndarray, ranks: np.ndarray) -> tuple[np.ndarray, ...]:
    """Order statistics ``ranks`` and ``ranks + 1`` (ascending; the last value where ``ranks`` is the top) of the
    segments ``values[starts : starts + counts]``, for ranks near the top: segments of similar length are padded
    into one 2-D block whose rows are partitioned at once, so only each row's largest ``counts - ranks`` values
    get sorted."""
    low = np.empty(starts.size)
    high = np.empty(starts.size)
    from_top = counts - ranks  # the values of ranks ``ranks .. counts - 1``, counted from the largest
    size_class = np.log2(counts).astype(np.int64)  # lengths within a factor 2: few blocks, little padding
    for size in np.unique(size_class).tolist():
        rows = np.flatnonzero(size_class == size)
        columns = np.arange(int(counts[rows].max()))
        width = columns.size
        index = np.minimum(starts[rows, None] + columns, values.size - 1)
        # Padded with -inf: once partitioned, the ``k`` largest values of a row are its last ``k`` columns.
        block = np.where(columns < counts[rows, None], values[index], -np.inf)
        k = int(from_top[rows].max())
        tail = np.sort(np.partition(block, width - k, axis=1)[:, width - k :], axis=1)
        position = k - from_top[rows]  # rank ``ranks`` in the sorted last ``k`` columns
        at = np.arange(rows.size)
        low[rows] = tail[at, position]
        high[rows] = tail[at, np.minimum(position + 1, k - 1)]
    return low, high


def latencies(records: pd.DataFrame, times: TokenTimes | None = None) -> Latencies:
    """Per-request latencies and the pooled TBT gaps of a records table (see the module docstring); ``times``:
    its token times already in one array (``ascendra.records.records_and_times``), else joined from the table."""
    check_columns(records)
    n = len(records)
    flat, counts = times if times is not None else _flatten(records["token_times"].to_numpy(dtype=object))
    has_token = counts > 0
    first_index = np.cumsum(counts) - counts
    first = np.full(n, np.nan)
    last = np.full(n, np.nan)
    first[has_token] = flat[first_index[has_token]]
    last[has_token] = flat[first_index[has_token] + counts[has_token] - 1]

    # Consecutive differences, less those between one request's last token and the next one's first (a mask:
    # ``np.delete`` takes ten times as long).
    gaps = np.diff(flat)
    within = np.ones(gaps.size, dtype=bool)
    within[first_index[has_token][1:] - 1] = False
    gaps = gaps[within]
    gap_counts = np.maximum(counts - 1, 0)
    gap_percentiles = percentiles(gaps)
    p99_tbt, max_tbt = _per_request_tail(gaps, gap_counts, threshold=gap_percentiles[1])

    arrival = float_column(records, "arrival")
    output_tokens = float_column(records, "output_tokens")
    dropped = _flag(records, "dropped")
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
            "offloaded": _flag(records, "offloaded"),
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
            "slo_class": records["slo_class"].to_numpy(dtype=object) if "slo_class" in records else None,
            "ttft_slo": _optional_float(records, "ttft_slo"),
            "tbt_slo": _optional_float(records, "tbt_slo"),
        },
        columns=list(LATENCY_COLUMNS),
    )
    return Latencies(requests=table, gaps=gaps, _gap_percentiles=gap_percentiles)


def percentiles(values: np.ndarray, qs: Sequence[float] = (50.0, 90.0, 99.0)) -> list[float]:
    """Percentiles of the finite values (NaN for each when there are none): ``np.percentile``'s linear method bit
    for bit, from only the order statistics it needs (``_order_statistics``)."""
    finite = _finite(values)
    n = finite.size
    if n == 0:
        return [float("nan")] * len(qs)
    # numpy's virtual index ``(n - 1) * q`` and the order statistics either side of it (the last one twice at q = 1).
    virtual = [(n - 1) * (q / 100) for q in qs]
    below = [min(math.floor(v), n - 1) for v in virtual]
    ranks = sorted({r for b in below for r in (b, min(b + 1, n - 1))})
    order = dict(zip(ranks, _order_statistics(finite, ranks), strict=True))
    return [_lerp(order[b], order[min(b + 1, n - 1)], v - b) for v, b in zip(virtual, below, strict=True)]


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's interpolation between neighbouring order statistics (``numpy.lib._function_base_impl._lerp``): from
    the nearer end, so that the result is monotonic in ``t``."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


#: Selection by sampling pays off from this many values on; below, one partition is as cheap.
_SAMPLED_SELECTION_MIN = 20_000
#: Every this many values go into the sample that brackets each rank.
_SAMPLE_STEP = 32


def _order_statistics(values: np.ndarray, ranks: list[int]) -> list[float]:
    """The values of ascending ranks ``ranks`` (sorted) of ``values`` (finite), exactly what ``np.partition`` puts
    there, at a fraction of its cost on a run's ~400k gaps.

    A strided sample brackets each group of neighbouring ranks by two of its values ``lo`` and ``hi``, a few
    standard deviations of the sample quantile either side; counting passes over ``values`` check that the ranks lie
    among the values in ``[lo, hi]`` (ties at either end included), and only those get partitioned (none when
    ``lo == hi``: constant gaps). A bracket that misses the ranks (unlucky data) or holds many values (massive ties)
    falls back to partitioning everything."""
    n = values.size
    if n < _SAMPLED_SELECTION_MIN:
        return np.partition(values, ranks)[ranks].tolist()
    groups: list[list[int]] = []
    for rank in ranks:
        if groups and rank - groups[-1][-1] <= 1:
            groups[-1].append(rank)
        else:
            groups.append([rank])
    sample = values[::_SAMPLE_STEP]
    last = sample.size - 1
    brackets = []
    for group in groups:
        share = group[0] / n
        spread = 4 * math.sqrt(sample.size * share * (1 - share)) + 2  # standard deviations of a sample rank
        low_at, high_at = group[0] * last / (n - 1) - spread, group[-1] * last / (n - 1) + spread
        brackets.append((max(int(low_at), 0), min(int(high_at) + 1, last)))
    sample = np.partition(sample, sorted({at for bracket in brackets for at in bracket}))
    out: list[float] = []
    for group, (lo_at, hi_at) in zip(groups, brackets, strict=True):
        lo, hi = sample[lo_at], sample[hi_at]
        at_least_lo = values >= lo
        inside = at_least_lo & (values <= hi)
        size = int(np.count_nonzero(inside))
        kth = [rank - (n - int(np.count_nonzero(at_least_lo))) for rank in group]
        if kth[0] < 0 or kth[-1] >= size or size > n // 4:
            return np.partition(values, ranks)[ranks].tolist()
        out.extend([float(lo)] * len(kth) if lo == hi else np.partition(values[inside], kth)[kth].tolist())
    return out


def mean(values: np.ndarray) -> float:
    """Mean of the finite values; NaN when there are none."""
    finite = _finite(values)
    return float(finite.mean()) if finite.size else float("nan")


def _finite(values: np.ndarray) -> np.ndarray:
    """The finite values, in order: ``values`` itself when all are (no copy of a run's ~400k gaps)."""
    ok = np.isfinite(values)
    return values if ok.all() else values[ok]
