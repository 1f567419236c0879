"""The fast metrics path changes no number: the per-request P99/max gaps are pandas' grouped quantile and max bit for
bit, pooled percentiles numpy's, token times as numpy arrays give what lists give, the records table built column
by column is the row-by-row one (values and dtypes), and whole summaries of simulated runs (with drops, preemptions
and SLO classes) equal those of the row-by-row, pandas-grouped pipeline exactly."""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ascendra.costmodel import CostModel
from ascendra.harness.registry import systems
from ascendra.kv_cache import BlockManager
from ascendra.metrics import SLO, latencies, summarize
from ascendra.metrics import latency as latency_module
from ascendra.metrics.attainment import sarathi_passes
from ascendra.metrics.latency import percentiles
from ascendra.records import RECORD_COLUMNS, records_frame
from ascendra.request import Request, RequestSpec
from ascendra.sim.cluster import Cluster
from ascendra.system import BuildContext, ClusterSpec


def _pandas_tail(gaps: np.ndarray, owner: np.ndarray, n: int, q: float = 0.99) -> tuple[np.ndarray, np.ndarray]:
    """The reference: pandas' grouped quantile (linear) and max per owner."""
    quantile, largest = np.full(n, np.nan), np.full(n, np.nan)
    if gaps.size:
        grouped = pd.Series(gaps).groupby(owner, sort=True)
        tail = grouped.quantile(q)
        rows = tail.index.to_numpy()
        quantile[rows] = tail.to_numpy()
        largest[rows] = grouped.max().to_numpy()
    return quantile, largest


def _row(request: Request) -> dict[str, object]:
    """The reference: one request's record as a dict (the table used to be built from these rows)."""
    return {
        "request_id": request.id,
        "arrival": request.arrival,
        "prompt_tokens": request.prompt_len,
        "output_tokens": request.output_len,
        "first_scheduled": request.first_scheduled,
        "token_times": np.array(request.token_times),
        "finish_time": request.finish_time,
        "dropped": request.dropped,
        "cancelled": request.cancelled,
        "offloaded": request.offload_time is not None,
        "offload_time": request.offload_time,
        "instances": ",".join(request.instances),
        "preemptions": request.preemptions,
        "slo_class": request.spec.slo_class,
        "ttft_slo": request.ttft_slo,
        "tbt_slo": request.tbt_slo,
    }


def _row_table(requests: list[Request]) -> pd.DataFrame:
    frame = pd.DataFrame([_row(r) for r in requests], columns=list(RECORD_COLUMNS))
    return frame.sort_values("request_id", ignore_index=True)


def _tail_reference(gaps: np.ndarray, counts: np.ndarray, q: float = 0.99, threshold: float = math.nan) -> object:
    """``_per_request_tail``'s signature over the pandas reference (the threshold changes no value)."""
    return _pandas_tail(gaps, np.repeat(np.arange(counts.size), counts), counts.size, q)


def _tail_case(counts: list[int], scales: list[float], tied: bool, seed: int) -> np.ndarray:
    """Gaps of requests with ``counts`` gaps each, scaled per request (a request of small gaps has none near the
    pooled P90: it takes the full path); ``tied``: a few distinct values, as simulated gaps have."""
    rng = np.random.default_rng(seed)
    owner = np.repeat(np.arange(len(counts)), counts)
    gaps = rng.integers(0, 4, owner.size) * 0.01 if tied else rng.exponential(0.05, owner.size)
    return gaps * np.asarray(scales)[owner]


@settings(max_examples=300, deadline=None)
@given(
    counts=st.lists(st.integers(0, 320), min_size=1, max_size=12),
    scales=st.lists(st.sampled_from([1.0, 1.0, 0.25, 4.0]), min_size=12, max_size=12),
    q=st.sampled_from([0.99, 0.99, 0.9, 0.5, 0.0, 1.0]),
    tied=st.booleans(),
    threshold=st.sampled_from(["p90", "p50", "gap", "nan", "zero", "huge"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_per_request_tail_is_pandas_grouped_quantile(
    counts: list[int], scales: list[float], q: float, tied: bool, threshold: str, seed: int
) -> None:
    """Whatever the threshold (pooled percentiles, a gap value itself: ties at it, none at all), the candidates'
    order statistics are the request's own."""
    gaps = _tail_case(counts, scales[: len(counts)], tied, seed)
    values = {
        "p90": float(np.percentile(gaps, 90)) if gaps.size else math.nan,
        "p50": float(np.percentile(gaps, 50)) if gaps.size else math.nan,
        "gap": float(gaps[seed % gaps.size]) if gaps.size else math.nan,
        "nan": math.nan,
        "zero": 0.0,
        "huge": 1e9,
    }
    owned = np.asarray(counts)
    fast = latency_module._per_request_tail(gaps, owned, q, values[threshold])
    for got, want in zip(fast, _tail_reference(gaps, owned, q), strict=True):
        assert np.array_equal(got, want, equal_nan=True)


def test_p99_from_candidates_and_from_all_gaps() -> None:
    """Requests whose top ``k`` gaps (``m - floor(0.99 (m - 1))`` of ``m``) reach the threshold, by ties at it or
    above it, and requests one gap short of that: both paths, the same P99 as pandas."""
    threshold = 0.05
    rows = []
    for m in (2, 101, 102, 150, 201, 202, 500):
        k = m - int(0.99 * (m - 1))
        for reaching in (k - 1, k, min(k + 3, m)):
            reach = np.r_[np.full(max(reaching - 2, 0), threshold), [0.07, 0.09][: min(reaching, 2)]]
            below = np.linspace(0.001, 0.049, m - reach.size)
            rows.append(np.r_[below, reach][np.random.default_rng(m).permutation(m)])
    gaps = np.concatenate(rows)
    counts = np.array([row.size for row in rows])
    want = _tail_reference(gaps, counts)
    assert np.isfinite(want[0]).all()
    for threshold_used in (threshold, 0.0, math.nan):
        fast = latency_module._per_request_tail(gaps, counts, threshold=threshold_used)
        for got, expected in zip(fast, want, strict=True):
            assert np.array_equal(got, expected)


def test_nan_gaps_keep_their_p99() -> None:
    """A NaN token time (never in simulated runs) makes its gaps NaN: the request's max is NaN, and its P99 what it
    has always been: NaN up to 101 gaps (taken from its two largest), the partition's (NaN sorted last) beyond.
    No table of such requests fails."""
    rng = np.random.default_rng(3)
    short, long = rng.exponential(0.05, 101), rng.exponential(0.05, 150)
    short[7] = long[7] = math.nan
    gaps = np.r_[short, long]
    quantile, largest = latency_module._per_request_tail(gaps, np.array([101, 150]), threshold=0.01)
    ordered = np.sort(long)  # NaN last
    lo, frac = divmod(0.99 * 149, 1)
    assert math.isnan(quantile[0]) and np.isnan(largest).all()
    assert quantile[1] == ordered[int(lo)] + (ordered[int(lo) + 1] - ordered[int(lo)]) * frac
    records = records_frame([_request(i, [0.1 * i, math.nan, 0.1 * i + 0.5]) for i in range(3)])
    assert latencies(records).requests["p99_tbt"].isna().all()


@settings(max_examples=60, deadline=None)
@given(
    size=st.sampled_from([1, 2, 7, 1000, 19_999, 20_000, 45_000, 120_000]),
    kind=st.sampled_from(["exponential", "tied", "sorted", "periodic", "constant", "mostly-one-value", "non-finite"]),
    qs=st.sampled_from([(50.0, 90.0, 99.0), (99.0,), (50.0, 99.0), (0.0, 100.0), (1.0, 25.0, 75.0), (99.9, 99.99)]),
    seed=st.integers(0, 2**32 - 1),
)
def test_percentiles_are_numpys(size: int, kind: str, qs: tuple[float, ...], seed: int) -> None:
    """``percentiles`` selects only the order statistics it needs (from sampled brackets on large arrays): the
    values are ``np.percentile``'s of the finite values, bit for bit, also where a bracket misses (a period of the
    sampling step), holds one value (constant gaps) or a massive tie."""
    rng = np.random.default_rng(seed)
    values = {
        "exponential": lambda: rng.exponential(0.05, size),
        "tied": lambda: rng.integers(0, 40, size) * 0.001,
        "sorted": lambda: np.sort(rng.exponential(0.05, size)),
        "periodic": lambda: np.resize(rng.exponential(0.05, latency_module._SAMPLE_STEP), size),
        "constant": lambda: np.full(size, 0.025),
        "mostly-one-value": lambda: np.where(rng.random(size) < 0.8, 0.025, rng.exponential(0.05, size)),
        "non-finite": lambda: np.where(rng.random(size) < 0.01, np.inf, rng.exponential(0.05, size)),
    }[kind]()
    if kind == "non-finite":
        values[seed % size] = math.nan
    finite = values[np.isfinite(values)]
    want = [float(v) for v in np.percentile(finite, qs)] if finite.size else [math.nan] * len(qs)
    assert np.array_equal(percentiles(values, qs), want, equal_nan=True)


def test_percentiles_interpolate_like_numpy() -> None:
    """Between two order statistics numpy interpolates from the nearer one (``b - d (1 - t)`` from ``t = 0.5`` on,
    else ``a + d t``), which rounds differently: P50 of even sizes sits exactly at ``t = 0.5``."""
    rng = np.random.default_rng(11)
    qs = (50.0, 37.5, 62.5, 99.0)
    for size in (2, 4, 6, 40):
        for values in rng.exponential(0.05, (300, size)):
            assert percentiles(values, qs) == np.percentile(values, qs).tolist()


def _request(i: int, tokens: list[float], **state: object) -> Request:
    spec_fields = {k: state.pop(k) for k in ("slo_class", "ttft_slo", "tbt_slo") if k in state}
    request = Request(RequestSpec(i, 0.1 * i, 10 + i, max(1, len(tokens)), **spec_fields))  # type: ignore[arg-type]
    request.token_times = tokens
    for name, value in state.items():
        setattr(request, name, value)
    return request


@pytest.mark.parametrize("classes", [False, True])
def test_records_frame_is_the_row_by_row_table(classes: bool) -> None:
    """Same values and dtypes, whatever is missing where (ids out of order, drops, offloads, SLO classes)."""
    cls = {"slo_class": "chat", "ttft_slo": 0.5, "tbt_slo": 0.1} if classes else {}
    requests = [
        _request(3, [1.0, 1.1], first_scheduled=0.4, finish_time=1.1, instances=["lp0"], **cls),
        _request(1, [], dropped=True),
        _request(2, [0.5], first_scheduled=0.3, offload_time=0.25, preemptions=2, instances=["lp1", "hp0"]),
        _request(0, [0.2, 0.3, 0.45], first_scheduled=0.1, finish_time=0.45, cancelled=True),
    ]
    for chosen in (requests, requests[:1], requests[1:2], []):
        pd.testing.assert_frame_equal(records_frame(chosen), _row_table(chosen), check_exact=True)


COST = CostModel.load("llama-3.1-8b", "a100-80gb", 1)
CLUSTER = ClusterSpec("llama-3.1-8b", "a100-80gb", 1, 3, ttft_slo=0.3, tbt_slo=0.05)


def _simulated(name: str, seed: int, num_blocks: int) -> list[Request]:
    """A run with preemptions (a small pool) and, on odd seeds, two SLO classes."""
    rng = random.Random(seed)
    t, specs = 0.0, []
    for i in range(150):
        t += rng.expovariate(9.0)
        cls: dict[str, object] = {}
        if seed % 2 and i % 3:
            cls = {"slo_class": "chat", "ttft_slo": 0.2, "tbt_slo": 0.04} if i % 3 == 1 else {"slo_class": "batch"}
        specs.append(RequestSpec(i, t, rng.randint(1, 1200), rng.randint(1, 300), **cls))  # type: ignore[arg-type]
    system = systems()[name]
    ctx = BuildContext(CLUSTER, lambda: BlockManager(num_blocks), lambda _name, _blocks: COST.batch_time)
    built = system.build(system.config(), ctx)
    return Cluster(built.instances, built.router, decode_times=COST.decode_run_times).run(specs).requests


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) for k in a
    )


@pytest.mark.parametrize("name", ["vllm", "sarathi", "ascendra", "slos-serve"])
@pytest.mark.parametrize("seed", [1, 2])
def test_summaries_equal_the_row_by_row_pandas_pipeline(name: str, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exactly equal summaries, every key (per class included): no summation order changed."""
    requests = _simulated(name, seed, num_blocks=400)
    assert any(r.preemptions for r in requests) or name == "slos-serve"
    slo = SLO(0.3, 0.05)
    fast = summarize(latencies(records_frame(requests)), slo)
    with monkeypatch.context() as patched:
        patched.setattr(latency_module, "_per_request_tail", _tail_reference)
        reference = summarize(latencies(_row_table(requests)), slo)
    assert _same(fast, reference)
    assert any("[" in key for key in fast) == bool(seed % 2)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.floats(0.0, 1.0) | st.sampled_from([0.0, 0.01, 0.02]), min_size=1, max_size=400))
def test_one_gap_percentile_call_serves_all(values: list[float]) -> None:
    """``Latencies.gap_percentiles`` computes P50/P90/P99 in one call and Sarathi-Serve's criterion reads its P99:
    bit for bit numpy's P99 alone."""
    gaps = np.array(values)
    assert np.percentile(gaps, (50.0, 90.0, 99.0))[2] == np.percentile(gaps, 99.0)


def test_sarathi_criterion_sits_exactly_at_the_p99_gap() -> None:
    """The shared P99 is the run's own: a TBT SLO equal to it passes, the next float below fails."""
    lat = latencies(records_frame(_simulated("sarathi", 2, num_blocks=6000)))
    p99 = float(np.percentile(lat.gaps, 99.0))
    assert lat.gap_percentiles() == percentiles(lat.gaps)
    assert sarathi_passes(lat, SLO(0.3, p99))
    assert not sarathi_passes(lat, SLO(0.3, float(np.nextafter(p99, 0.0))))


def test_flags_stored_as_floats_read_without_warnings() -> None:
    """A flag column read back as floats with NaN (a concatenated or re-read table) is False where missing."""
    records = records_frame([_request(i, [0.1 * i + 0.5]) for i in range(3)])
    records["cancelled"] = [1.0, float("nan"), 0.0]
    records["offloaded"] = pd.array([True, None, False], dtype="boolean")
    records["dropped"] = np.array([None, True, False], dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = latencies(records).requests
    assert table["cancelled"].tolist() == [True, False, False]
    assert table["offloaded"].tolist() == [True, False, False]
    assert table["dropped"].tolist() == [False, True, False]


def _as_arrays(records: pd.DataFrame, mixed: bool = False) -> pd.DataFrame:
    """``records`` with token times as numpy arrays, views into one flat array as simulated runs hold them
    (``mixed``: every other row keeps its list)."""
    lists = records["token_times"].tolist()
    flat = np.array([t for times in lists if times is not None for t in times], dtype=float)
    bounds = np.cumsum([0] + [0 if times is None else len(times) for times in lists])
    arrays = [None if t is None else flat[a:b] for t, a, b in zip(lists, bounds[:-1], bounds[1:], strict=True)]
    out = records.copy()
    out["token_times"] = [t if mixed and i % 2 else a for i, (t, a) in enumerate(zip(lists, arrays, strict=True))]
    return out


@pytest.mark.parametrize("mixed", [False, True])
def test_array_token_times_give_the_lists_latencies(mixed: bool) -> None:
    """Token times as numpy arrays (simulated runs, tables read from Parquet) or lists (hand-built records), None
    and empty included: the same latencies, bit for bit."""
    requests = _simulated("vllm", 2, num_blocks=400)
    requests += [_request(150, []), _request(151, [9.0]), _request(152, [9.5, 9.75]), _request(153, [], dropped=True)]
    records = records_frame(requests)
    times = [[float(t) for t in times] for times in records["token_times"]]
    records["token_times"] = times[:-1] + [None]  # lists of floats, whatever the records hold
    want = latencies(records)
    got = latencies(_as_arrays(records, mixed))
    assert isinstance(_as_arrays(records)["token_times"].iloc[0], np.ndarray)
    pd.testing.assert_frame_equal(got.requests, want.requests, check_exact=True)
    assert np.array_equal(got.gaps, want.gaps) and np.array_equal(got.gap_owner, want.gap_owner)
    assert got.gap_owner.dtype == want.gap_owner.dtype == np.int64


def test_where_keeps_each_kept_requests_gaps() -> None:
    """One SLO class's latencies: its requests' rows, and their gaps, owned by their new row numbers."""
    lat = latencies(records_frame(_simulated("sarathi", 1, num_blocks=400)))
    mask = np.arange(len(lat.requests)) % 3 == 1
    part = lat.where(mask)
    kept = np.flatnonzero(mask)
    pd.testing.assert_frame_equal(part.requests, lat.requests.iloc[kept].reset_index(drop=True))
    assert np.array_equal(part.gaps, np.concatenate([lat.gaps_of(row) for row in kept]))
    assert np.array_equal(part.gap_owner, np.repeat(np.arange(kept.size), [lat.gaps_of(row).size for row in kept]))
    assert part.column("ttft") is part.column("ttft")
