"""Fitting the performance model on a batch log, and the accuracy report that goes with it.

Procedure, per batch kind, on one (model, GPU, TP) configuration:

1. Work counts and features for every logged batch (:mod:`~ascendra.perfmodel.work`,
   :mod:`~ascendra.perfmodel.features`).
2. A seeded random split into train / validation / test (70 / 15 / 15 %), stratified by kind.
3. Non-negative least squares (``scipy.optimize.nnls``) of seconds on the four features plus an intercept (and,
   with ``per_seq``, the number of sequences), so every coefficient and hence every prediction stays physical
   (more work never predicts less time). Residuals are absolute seconds, not relative: predictions feed
   deadline arithmetic in seconds, so a millisecond matters the same on a small batch as on a large one.
4. Outlier filter: training rows whose relative residual ``(measured - predicted) / measured`` of that first fit
   lies more than ``outlier_k`` robust standard deviations (1.4826 x the median absolute deviation) from the
   median are dropped -- logged stalls such as a garbage-collection pause or a first-iteration warm-up -- and
   the model is refitted once. Residuals are relative because timing noise grows with the batch time: in
   absolute terms the normal jitter of a 500 ms batch would look like an outlier next to 10 ms batches.
5. R^2, RMSE and MAPE on the validation and test splits, computed on *all* their rows (no filtering there, so
   the reported accuracy is not flattered by the filter).
6. The error bound policies budget for (``residual_ms`` in the model's ``meta.fit``): per kind, the
   ``RESIDUAL_QUANTILE`` (0.99) quantile of the signed residual ``measured - predicted`` (positive: the batch took
   longer than predicted) over the held-out validation and test rows, in milliseconds (``Predictor.error_bound``
   reads it): Ascendra's TBT-bounded chunking keeps it off the decode slack, its migration off the decode
   budget, and its model-derived offload margin adds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from ascendra.errors import UserError
from ascendra.gpus import get_gpu
from ascendra.models import get_model
from ascendra.perfmodel.features import KINDS, feature_matrix
from ascendra.perfmodel.log import parse_compositions, validate_log
from ascendra.perfmodel.model import KindCoefficients, PerfModel
from ascendra.perfmodel.work import WorkCounter, batch_stats

MIN_ROWS_PER_KIND = 10
SPLIT = (0.70, 0.15, 0.15)
MAD_TO_SIGMA = 1.4826
#: The quantile of held-out under-prediction stored as the model's error bound (``residual_ms``).
RESIDUAL_QUANTILE = 0.99


@dataclass(frozen=True, slots=True)
class Metrics:
    """Accuracy of predicted against measured seconds."""

    n: int
    r2: float
    rmse_s: float
    mape_pct: float

    @classmethod
    def of(cls, actual: np.ndarray, predicted: np.ndarray) -> Metrics:
        actual = np.asarray(actual, dtype=float)
        predicted = np.asarray(predicted, dtype=float)
        if actual.size == 0:
            return cls(0, float("nan"), float("nan"), float("nan"))
        resid = predicted - actual
        ss_tot = float(np.sum((actual - actual.mean()) ** 2))
        r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")
        return cls(
            n=int(actual.size),
            r2=r2,
            rmse_s=float(np.sqrt(np.mean(resid**2))),
            mape_pct=float(np.mean(np.abs(resid) / actual) * 100.0),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "r2": self.r2, "rmse_ms": self.rmse_s * 1e3, "mape_pct": self.mape_pct}


@dataclass(slots=True)
class KindReport:
    """What the fit of one batch kind did and how accurate it is."""

    kind: str
    n_train: int
    n_outliers: int
    coefficients: KindCoefficients
    validation: Metrics
    test: Metrics

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_train": self.n_train,
            "n_outliers": self.n_outliers,
            "validation": self.validation.to_dict(),
            "test": self.test.to_dict(),
            "coefficients": self.coefficients.to_dict(per_seq=True),
        }


@dataclass(slots=True)
class FitReport:
    """Per-kind results plus every row's split and prediction (the data of the predicted-vs-actual plot)."""

    model: str
    gpu: str
    tp: int
    seed: int
    outlier_k: float
    per_seq: bool
    kinds: dict[str, KindReport]
    skipped: dict[str, int]  # kinds with too few rows -> their row count
    predictions: pd.DataFrame = field(repr=False)  # columns: kind, split, actual_s, predicted_s, outlier

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "gpu": self.gpu,
            "tp": self.tp,
            "seed": self.seed,
            "outlier_k": self.outlier_k,
            "per_seq": self.per_seq,
            "kinds": {k: r.to_dict() for k, r in self.kinds.items()},
            "skipped": self.skipped,
        }


def work_arrays(log: pd.DataFrame, counter: WorkCounter) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FLOPs, bytes and sequence counts of every row of a validated log."""
    prefills, decodes = parse_compositions(log)
    rows = []
    for p, d in zip(prefills, decodes, strict=True):
        stats = batch_stats(p, d)
        rows.append((*counter.flops_bytes(stats), stats.seqs))
    arr = np.asarray(rows, dtype=float).reshape(-1, 3)
    return arr[:, 0], arr[:, 1], arr[:, 2]


def _split(n: int, rng: np.random.Generator) -> np.ndarray:
    """Split labels for ``n`` rows: at least one validation and one test row, the rest mostly training."""
    n_val = max(1, round(SPLIT[1] * n))
    n_test = max(1, round(SPLIT[2] * n))
    labels = np.array(["train"] * (n - n_val - n_test) + ["validation"] * n_val + ["test"] * n_test)
    return labels[rng.permutation(n)]


def _nnls(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Non-negative least squares with an intercept column; returns (intercept, weights)."""
    design = np.column_stack([np.ones(len(y)), x])
    # Scale columns to unit norm so the solver's tolerance treats them alike; scaling by positive numbers keeps
    # the non-negativity constraint unchanged.
    scale = np.linalg.norm(design, axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls(design / scale, y, maxiter=50 * design.shape[1])
    coef = coef / scale
    return float(coef[0]), coef[1:]


def _outliers(resid: np.ndarray, k: float) -> np.ndarray:
    """Rows whose residual is more than ``k`` robust standard deviations from the median residual."""
    centre = np.median(resid)
    sigma = MAD_TO_SIGMA * np.median(np.abs(resid - centre))
    if not np.isfinite(k) or sigma == 0:
        return np.zeros(resid.shape, dtype=bool)
    return np.abs(resid - centre) > k * sigma


def residual_quantile(actual: np.ndarray, predicted: np.ndarray, q: float = RESIDUAL_QUANTILE) -> float:
    """The ``q`` quantile (numpy's linear interpolation) of ``actual - predicted``, seconds; 0 without rows."""
    resid = np.asarray(actual, dtype=float) - np.asarray(predicted, dtype=float)
    return float(np.quantile(resid, q)) if resid.size else 0.0


def fit(log: pd.DataFrame, seed: int = 0, outlier_k: float = 5.0, per_seq: bool = False) -> tuple[PerfModel, FitReport]:
    """Fit one regression per batch kind on a batch log of a single (model, GPU, TP) configuration.

    ``per_seq`` adds the optional per-sequence term to the paper's four features."""
    log = validate_log(log)
    configs = log[["model", "gpu", "tp"]].drop_duplicates()
    if len(configs) != 1:
        listed = ", ".join(f"{m}/{g}/tp{t}" for m, g, t in configs.itertuples(index=False))
        raise UserError(f"batch log mixes {len(configs)} configurations ({listed}); fit one at a time")
    if outlier_k <= 0:
        raise UserError(f"outlier threshold must be positive, got {outlier_k}")
    model_name, gpu_name, tp = (str(configs.iloc[0, 0]), str(configs.iloc[0, 1]), int(configs.iloc[0, 2]))
    gpu = get_gpu(gpu_name)
    counter = WorkCounter(get_model(model_name), tp)
    log = log.reset_index(drop=True)
    flops, nbytes, seqs = work_arrays(log, counter)
    x_all = feature_matrix(flops, nbytes, gpu.peak_flops, gpu.mem_bandwidth)
    if per_seq:
        x_all = np.column_stack([x_all, seqs])
    y_all = log["seconds"].to_numpy(dtype=float)

    rng = np.random.default_rng(seed)
    split = np.empty(len(log), dtype=object)
    predicted = np.full(len(log), np.nan)
    outlier = np.zeros(len(log), dtype=bool)
    coefficients: dict[str, KindCoefficients] = {}
    reports: dict[str, KindReport] = {}
    skipped: dict[str, int] = {}
    residual_ms: dict[str, float] = {}
    for kind in KINDS:
        idx = np.flatnonzero(log["kind"].to_numpy() == kind)
        if len(idx) == 0:
            continue
        if len(idx) < MIN_ROWS_PER_KIND:
            skipped[kind] = int(len(idx))
            split[idx] = "skipped"
            continue
        labels = _split(len(idx), rng)
        split[idx] = labels
        train = idx[labels == "train"]
        intercept, weights = _nnls(x_all[train], y_all[train])
        first = intercept + x_all[train] @ weights
        drop = _outliers((y_all[train] - first) / y_all[train], outlier_k)
        if drop.any():
            intercept, weights = _nnls(x_all[train[~drop]], y_all[train[~drop]])
        outlier[train[drop]] = True
        predicted[idx] = intercept + x_all[idx] @ weights
        coef = KindCoefficients.from_vector(intercept, weights)
        coefficients[kind] = coef
        val, test = idx[labels == "validation"], idx[labels == "test"]
        held_out = idx[labels != "train"]
        residual_ms[kind] = residual_quantile(y_all[held_out], predicted[held_out]) * 1e3
        reports[kind] = KindReport(
            kind=kind,
            n_train=int(len(train) - drop.sum()),
            n_outliers=int(drop.sum()),
            coefficients=coef,
            validation=Metrics.of(y_all[val], predicted[val]),
            test=Metrics.of(y_all[test], predicted[test]),
        )
    if not coefficients:
        raise UserError(
            f"batch log has too few rows to fit any kind (need >= {MIN_ROWS_PER_KIND} per kind; "
            f"have {', '.join(f'{k}: {n}' for k, n in skipped.items())})"
        )
    meta = {
        "fit": {
            "seed": seed,
            "outlier_k": outlier_k,
            "per_seq": per_seq,
            "rows": int(len(log)),
            "test": {k: r.test.to_dict() for k, r in reports.items()},
            "residual_quantile": RESIDUAL_QUANTILE,
            "residual_ms": {k: residual_ms[k] for k in reports},
        }
    }
    perf = PerfModel(model_name, gpu_name, tp, gpu.peak_flops, gpu.mem_bandwidth, coefficients, meta, per_seq)
    predictions = pd.DataFrame(
        {
            "kind": log["kind"].to_numpy(),
            "split": split,
            "actual_s": y_all,
            "predicted_s": predicted,
            "outlier": outlier,
        }
    )
    report = FitReport(model_name, gpu_name, tp, seed, outlier_k, per_seq, reports, skipped, predictions)
    return perf, report
