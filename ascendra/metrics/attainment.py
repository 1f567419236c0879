"""SLO attainment under named definitions: the share of *all* arrived requests that meet both latency objectives.

Results must say which definition they used, because the published numbers differ in how TBT is judged:

| name         | a request attains when it finished and ...                                     |
|--------------|--------------------------------------------------------------------------------|
| `paper`      | TTFT <= ttft SLO and mean TBT ``(last - first) / (n - 1)`` <= tbt SLO         |
| `strict`     | TTFT <= ttft SLO and every TBT gap <= tbt SLO                                  |
| `strict-p99` | TTFT <= ttft SLO and the request's own P99 gap <= tbt SLO                      |
| `distserve`  | TTFT <= ttft SLO and TPOT ``(e2e - ttft) / (output_tokens - 1)`` <= tbt SLO    |
| `sarathi`    | run-level, no TTFT bound: P99 of all gaps pooled <= tbt SLO and median         |
|              | scheduling delay <= 2 s; the whole run scores 1.0 or 0.0                       |

Each request is judged against its own SLOs when it carries them (an SLO class: the records' ``ttft_slo`` /
``tbt_slo``), else against the run's ``SLO``. `sarathi` then pools every gap as a share of its request's TBT SLO
(P99 of ``gap / tbt SLO`` <= 1), which is the same test when every request has the run's SLO.

Dropped and unfinished requests are misses under every per-request definition. Single-token outputs have no
gaps, so they pass every TBT test. For `sarathi`, requests never scheduled count as an infinite scheduling delay
(a run that leaves most requests waiting fails), and a run without any gap passes the TBT half vacuously. Where
the records do not say when requests were scheduled (a request emitted tokens but has no scheduling time: an
external server or vLLM's own engine), the delay is unknown and `sarathi` attainment is NaN, never a false 0.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from ascendra.errors import UserError
from ascendra.metrics.latency import Latencies, latencies, percentiles

#: Sarathi-Serve's capacity criterion bounds the median scheduling delay (arrival to first scheduling) by 2 s.
SARATHI_MAX_MEDIAN_SCHEDULING_DELAY = 2.0

#: Definitions that need each request's scheduling time (which only the project's own scheduler records).
NEEDS_SCHEDULING = ("sarathi",)

#: The per-request TBT statistic each per-request definition compares with the TBT SLO.
PER_REQUEST_TBT: dict[str, str] = {
    "paper": "mean_tbt",
    "strict": "max_tbt",
    "strict-p99": "p99_tbt",
    "distserve": "tpot",
}


@dataclass(frozen=True, slots=True)
class SLO:
    """The two latency objectives, in seconds."""

    ttft: float
    tbt: float

    def __post_init__(self) -> None:
        for name, value in (("TTFT", self.ttft), ("TBT", self.tbt)):
            is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
            if not (is_number and math.isfinite(value) and value > 0):
                raise UserError(f"{name} SLO must be a positive number of seconds, got {value!r}")


def _as_latencies(data: pd.DataFrame | Latencies) -> Latencies:
    return data if isinstance(data, Latencies) else latencies(data)


def own_slo(lat: Latencies, name: str, default: float) -> np.ndarray | float:
    """Per request, its own SLO ``name`` (``ttft_slo`` or ``tbt_slo``), the run's ``default`` where it has none;
    the scalar ``default`` when no request has its own (a run without SLO classes)."""
    own = lat.column(name).astype(float, copy=False) if name in lat.requests else np.full(len(lat.requests), np.nan)
    missing = np.isnan(own)
    if missing.all():
        return default
    return np.where(missing, default, own)


def ttft_met(lat: Latencies, slo: SLO) -> np.ndarray:
    """Per request: a first token came within its TTFT SLO (False when none came)."""
    return lat.column("ttft") <= own_slo(lat, "ttft_slo", slo.ttft)


def tbt_met(lat: Latencies, slo: SLO, definition: str = "paper") -> np.ndarray:
    """Per request: finished and its TBT statistic (per ``definition``) is within its TBT SLO; single-token
    outputs pass. Unfinished and dropped requests fail."""
    column = _tbt_column(definition)
    stat = lat.column(column)
    return lat.column("finished") & (np.isnan(stat) | (stat <= own_slo(lat, "tbt_slo", slo.tbt)))


def attained(lat: Latencies, slo: SLO, definition: str = "paper") -> np.ndarray:
    """Per request: it attains both SLOs under a per-request definition (see the module table)."""
    return ttft_met(lat, slo) & tbt_met(lat, slo, definition)


def _tbt_column(definition: str) -> str:
    if definition in PER_REQUEST_TBT:
        return PER_REQUEST_TBT[definition]
    if definition in ATTAINMENT_DEFINITIONS:
        raise UserError(f"attainment definition {definition!r} is run-level; it has no per-request verdict")
    raise _unknown(definition)


def _per_request_attainment(lat: Latencies, slo: SLO, definition: str) -> float:
    """Share of all arrived requests that attain; NaN when no request arrived."""
    n = len(lat.requests)
    return float(attained(lat, slo, definition).sum() / n) if n else float("nan")


def median_scheduling_delay(lat: Latencies) -> float:
    """Median over all arrived requests of arrival -> first scheduling, never-scheduled ones counting as
    infinite; NaN when no request arrived or when scheduling times were not recorded (a request emitted a token
    without one)."""
    delay = lat.column("scheduling_delay")
    if delay.size == 0 or (np.isnan(delay) & ~np.isnan(lat.column("first_token"))).any():
        return float("nan")
    return float(np.median(np.where(np.isnan(delay), np.inf, delay)))


def sarathi_passes(lat: Latencies, slo: SLO) -> bool:
    """Sarathi-Serve's run-level criterion: P99 of all TBT gaps <= tbt SLO (of each gap's request, with SLO
    classes) and median scheduling delay <= 2 s (False when the delay is unknown: ``_sarathi_attainment`` says NaN
    then)."""
    tbt = own_slo(lat, "tbt_slo", slo.tbt)
    if isinstance(tbt, np.ndarray):  # SLO classes: each gap as a share of its own request's TBT SLO
        tail_ok = lat.gaps.size == 0 or _p99(lat.gaps / tbt[lat.gap_owner]) <= 1.0
    else:
        tail_ok = lat.gaps.size == 0 or lat.gap_percentiles()[2] <= tbt
    return tail_ok and median_scheduling_delay(lat) <= SARATHI_MAX_MEDIAN_SCHEDULING_DELAY


def _p99(values: np.ndarray) -> float:
    """``np.percentile(values, 99)``: by ``percentiles``' selection where every value is finite (all but hand-made
    records), else numpy's own (a NaN makes it NaN; infinities count)."""
    if np.isfinite(values).all():
        return percentiles(values, (99.0,))[0]
    return float(np.percentile(values, 99.0))


def _sarathi_attainment(lat: Latencies, slo: SLO) -> float:
    """1.0 when the run passes Sarathi-Serve's criterion, 0.0 when not, NaN when no request arrived or the
    scheduling delay is unknown."""
    if math.isnan(median_scheduling_delay(lat)):
        return float("nan")
    return 1.0 if sarathi_passes(lat, slo) else 0.0


#: Name -> attainment function over a run's latencies. Every function scores the whole run in [0, 1].
ATTAINMENT_DEFINITIONS: dict[str, Callable[[Latencies, SLO], float]] = {
    **{name: partial(_per_request_attainment, definition=name) for name in PER_REQUEST_TBT},
    "sarathi": _sarathi_attainment,
}


def _unknown(definition: str) -> UserError:
    known = ", ".join(ATTAINMENT_DEFINITIONS)
    return UserError(f"unknown attainment definition {definition!r} (known: {known})")


def attainment(data: pd.DataFrame | Latencies, slo: SLO, definition: str = "paper") -> float:
    """Attainment of a run (records table or precomputed latencies) under a named definition."""
    if definition not in ATTAINMENT_DEFINITIONS:
        raise _unknown(definition)
    return ATTAINMENT_DEFINITIONS[definition](_as_latencies(data), slo)


def class_masks(data: pd.DataFrame | Latencies) -> dict[str, np.ndarray]:
    """Each SLO class of a run (by name, sorted) with the mask of its requests; empty for a run without classes."""
    lat = _as_latencies(data)
    if "slo_class" not in lat.requests:
        return {}
    labels = lat.column("slo_class")
    names = sorted(label for label in set(labels.tolist()) if isinstance(label, str))
    return {name: labels == name for name in names}


def class_attainment(data: pd.DataFrame | Latencies, slo: SLO, definition: str = "paper") -> dict[str, float]:
    """Attainment of each SLO class's requests, each judged against its own SLOs (``slo`` where a request has
    none); a run-level definition (`sarathi`) is applied to the class's requests alone."""
    lat = _as_latencies(data)
    return {name: attainment(lat.where(mask), slo, definition) for name, mask in class_masks(lat).items()}
