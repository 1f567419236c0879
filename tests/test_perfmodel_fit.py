"""Fitting: known coefficients are recovered from noisy synthetic logs with outliers; the report is honest."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ascendra.errors import UserError
from ascendra.gpus import get_gpu
from ascendra.models import get_model
from ascendra.perfmodel import WorkCounter, batch_stats, features
from ascendra.perfmodel.fit import fit
from ascendra.perfmodel.log import log_row
from ascendra.perfmodel.synthetic_log import synthetic_log

MODEL, GPU = "llama-3.1-8b", "a100-80gb"
# Known per-kind truth: (intercept, max, sum, compute, memory, seconds per sequence).
TRUTH = {
    "prefill": (0.004, 0.6, 0.0, 0.8, 0.3, 0.0),
    "decode": (0.006, 0.0, 0.0, 2.0, 1.3, 0.0),
    "mixed": (0.008, 0.5, 0.4, 0.0, 0.2, 0.0),
}


def known_time(per_seq: float = 0.0):
    """A time function that is exactly linear in the features (plus an optional per-sequence term)."""
    counter = WorkCounter(get_model(MODEL), 1)
    gpu = get_gpu(GPU)

    def time_of(prefills, decodes) -> float:
        stats = batch_stats(prefills, decodes)
        c = TRUTH[stats.kind]
        x = features(*counter.flops_bytes(stats), gpu.peak_flops, gpu.mem_bandwidth)
        return c[0] + sum(w * v for w, v in zip(c[1:5], x, strict=True)) + per_seq * stats.seqs

    return time_of


def noisy_log(seed: int, per_kind: int = 300, outlier_share: float = 0.05, per_seq: float = 0.0):
    """Synthetic log with 1% multiplicative noise and a share of rows slowed 3x (stalls); also the clean truth."""
    truth_fn = known_time(per_seq)
    log = synthetic_log(MODEL, GPU, truth_fn, per_kind=per_kind, seed=seed)
    rng = np.random.default_rng(seed + 1)
    clean = log["seconds"].to_numpy().copy()
    noisy = clean * rng.normal(1.0, 0.01, size=len(clean))
    stalls = rng.random(len(clean)) < outlier_share
    noisy[stalls] *= 3.0
    log["seconds"] = noisy
    return log, clean, stalls


def test_fit_recovers_known_model_despite_noise_and_outliers() -> None:
    log, clean, stalls = noisy_log(seed=3)
    perf, report = fit(log, seed=0)
    pred = report.predictions["predicted_s"].to_numpy()
    rel = np.abs(pred - clean) / clean
    assert np.median(rel) < 0.01
    assert rel.max() < 0.05
    # The coefficients the data identify come back. `sum` is compute + memory; decodes are always memory-bound
    # (max = memory); in prefills the memory time is nearly constant (the weights), so it merges with the
    # intercept and only the compute-bound slope is identified.
    pre, dec, mix = (perf.coefficients[k] for k in ("prefill", "decode", "mixed"))
    t_pre, t_dec, t_mix = (TRUTH[k] for k in ("prefill", "decode", "mixed"))
    assert pre.max + pre.sum + pre.compute == pytest.approx(sum(t_pre[1:4]), rel=0.05)
    assert dec.sum + dec.compute == pytest.approx(t_dec[2] + t_dec[3], rel=0.05)
    assert dec.max + dec.sum + dec.memory == pytest.approx(t_dec[1] + t_dec[2] + t_dec[4], rel=0.05)
    assert dec.intercept == pytest.approx(t_dec[0], rel=0.05)
    assert mix.intercept == pytest.approx(t_mix[0], rel=0.05)
    assert mix.max == pytest.approx(t_mix[1], rel=0.1)
    assert mix.sum + mix.compute == pytest.approx(t_mix[2] + t_mix[3], rel=0.1)
    assert mix.sum + mix.memory == pytest.approx(t_mix[2] + t_mix[4], rel=0.1)
    # Most injected stalls in the training split are flagged, and few clean rows are.
    train = (report.predictions["split"] == "train").to_numpy()
    flagged = report.predictions["outlier"].to_numpy()
    assert flagged[train & stalls].mean() > 0.9
    assert flagged[train & ~stalls].mean() < 0.02
    # Test metrics are computed on all test rows, stalls included, and say so through a lower R^2.
    for kind, kr in report.kinds.items():
        assert kr.test.n == round(0.15 * 300)
        assert kr.n_train + kr.n_outliers == 300 - 2 * round(0.15 * 300)
        assert 0.0 < kr.test.r2 < 1.0, kind
    assert all(min(coef.to_dict().values()) >= 0 for coef in perf.coefficients.values())


def test_outlier_filter_improves_the_fit() -> None:
    log, clean, _ = noisy_log(seed=4)
    _, filtered = fit(log, seed=0)
    _, unfiltered = fit(log, seed=0, outlier_k=math.inf)
    err = {}
    for name, rep in (("filtered", filtered), ("unfiltered", unfiltered)):
        err[name] = np.mean(np.abs(rep.predictions["predicted_s"].to_numpy() - clean) / clean)
    assert err["filtered"] < 0.5 * err["unfiltered"]


def test_per_sequence_term_is_recovered() -> None:
    log, clean, _ = noisy_log(seed=5, outlier_share=0.0, per_seq=3e-4)
    plain, plain_report = fit(log, seed=0)
    perf, report = fit(log, seed=0, per_seq=True)
    for kind in ("prefill", "mixed"):
        assert perf.coefficients[kind].seqs == pytest.approx(3e-4, rel=0.15)
        assert report.kinds[kind].test.mape_pct < plain_report.kinds[kind].test.mape_pct
    assert perf.per_seq and not plain.per_seq


def test_split_is_seeded() -> None:
    log, _, _ = noisy_log(seed=6, per_kind=60)
    a = fit(log, seed=1)[1].predictions["split"]
    b = fit(log, seed=1)[1].predictions["split"]
    c = fit(log, seed=2)[1].predictions["split"]
    assert a.equals(b)
    assert not a.equals(c)


def test_small_kinds_are_skipped_and_empty_fits_refused() -> None:
    rows = [log_row("tiny", GPU, 1, [(10 + i, 0)], [], 1e-3 * (1 + i)) for i in range(20)]
    rows += [log_row("tiny", GPU, 1, [], [5, 6], 2e-3)] * 3
    perf, report = fit(pd.DataFrame(rows), seed=0)
    assert set(perf.coefficients) == {"prefill"}
    assert report.skipped == {"decode": 3}
    with pytest.raises(UserError, match="has no 'decode' regression"):
        perf.predict([], [10])
    with pytest.raises(UserError, match="too few rows"):
        fit(pd.DataFrame(rows[-5:]), seed=0)


def test_mixed_configurations_are_refused() -> None:
    rows = [log_row("tiny", GPU, 1, [(10, 0)], [], 1e-3), log_row("tiny", "h100-80gb", 1, [(10, 0)], [], 1e-3)]
    with pytest.raises(UserError, match="mixes 2 configurations"):
        fit(pd.DataFrame(rows * 10))
