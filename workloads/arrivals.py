"""Arrival processes: when each request reaches the cluster, in seconds from the start of the run.

All generated processes put the first request at t = 0 and the others after ``n - 1`` gaps, so the realised mean
rate of ``n`` arrivals is ``(n - 1) / t_last`` (see ``mean_rate``). A rate of None means "all at once" (every
request arrives at 0, like vLLM's benchmark with an infinite request rate), which is what a length-only
description of a workload uses.

- ``poisson``: exponential gaps with mean ``1 / rate`` (exact Poisson process).
- ``poisson-truncated``: exponential gaps capped at ``3 / rate``, as Sarathi-Serve's and Vidur's request
  generators do. Kept for parity with their numbers; the cap shortens the mean gap to ``(1 - e^-3) / rate``, so the
  realised rate is ``rate / (1 - e^-3)``, about 5.2% above nominal.
- ``gamma``: Gamma-distributed gaps with mean ``1 / rate`` and coefficient of variation ``cv`` (shape
  ``1 / cv^2``): cv > 1 is burstier than Poisson, cv < 1 more regular, cv = 1 is Poisson.
- ``fixed``: one request every ``1 / rate`` seconds.
- ``trace``: a trace's own timestamps (see ``replay_times``).
"""

from __future__ import annotations

import math

import numpy as np

from ascendra.errors import UserError

ARRIVALS: dict[str, str] = {
    "poisson": "Poisson process: exponential gaps, mean 1/rate",
    "poisson-truncated": "Sarathi-Serve/Vidur variant: exponential gaps capped at 3/rate (realised rate ~5% higher)",
    "gamma": "Gamma gaps, mean 1/rate, coefficient of variation --cv (1 = Poisson, >1 bursty)",
    "fixed": "a request every 1/rate seconds",
    "trace": "replay the trace's timestamps (shifted to 0; --time-scale stretches, a rate rescales)",
}

TRUNCATION_GAPS = 3.0
TRUNCATED_POISSON_RATE_FACTOR = 1.0 / (1.0 - math.exp(-TRUNCATION_GAPS))


def _times_from_gaps(gaps: np.ndarray) -> np.ndarray:
    """Arrival times: 0 for the first request, then the running sum of the gaps."""
    return np.concatenate(([0.0], np.cumsum(gaps[:-1]))) if len(gaps) else np.zeros(0)


def arrival_times(kind: str, n: int, rate: float | None, rng: np.random.Generator, *, cv: float = 1.0) -> np.ndarray:
    """``n`` sorted arrival times (seconds) of a generated process; ``kind`` is any key of ARRIVALS but "trace"."""
    if kind not in ARRIVALS or kind == "trace":
        known = ", ".join(k for k in ARRIVALS if k != "trace")
        raise UserError(f"unknown arrival process {kind!r}; known: {known} (and trace, for timestamped traces)")
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise UserError(f"the request rate must be a positive number of requests per second, got {rate}")
    if not (math.isfinite(cv) and cv > 0):
        raise UserError(f"the arrival cv must be a positive number, got {cv}")
    if rate is None:
        return np.zeros(n)
    mean_gap = 1.0 / rate
    if kind == "poisson":
        gaps = rng.exponential(mean_gap, size=n)
    elif kind == "poisson-truncated":
        gaps = np.minimum(rng.exponential(mean_gap, size=n), TRUNCATION_GAPS * mean_gap)
    elif kind == "gamma":
        shape = 1.0 / cv**2
        gaps = rng.gamma(shape, mean_gap / shape, size=n)
    else:
        gaps = np.full(n, mean_gap)
    return _times_from_gaps(gaps)


def mean_rate(times: np.ndarray) -> float:
    """Realised mean arrival rate: gaps per second between the first and the last arrival (inf if they coincide,
    nan with fewer than two arrivals)."""
    if len(times) < 2:
        return math.nan
    span = float(times[-1] - times[0])
    return math.inf if span <= 0 else (len(times) - 1) / span


def replay_times(timestamps: np.ndarray, *, time_scale: float = 1.0, rate: float | None = None) -> np.ndarray:
    """A trace's arrivals shifted to start at 0. ``time_scale`` multiplies every gap (2 = twice as slow, 0.5 =
    twice as fast); a ``rate`` instead rescales the trace so its realised mean rate is exactly ``rate``. Giving
    both is ambiguous and refused."""
    if not (math.isfinite(time_scale) and time_scale > 0):
        raise UserError(f"the time scale must be a positive number, got {time_scale}")
    if rate is not None:
        if not (math.isfinite(rate) and rate > 0):
            raise UserError(f"the request rate must be a positive number of requests per second, got {rate}")
        if time_scale != 1.0:
            raise UserError("give either a rate or a time scale for trace replay, not both")
    times = np.asarray(timestamps, dtype=float)
    if len(times) == 0:
        return times
    times = times - times[0]
    if rate is not None:
        native = mean_rate(times)
        if not math.isfinite(native):
            raise UserError("cannot rescale the trace to a rate: all its requests arrive at the same instant")
        return times * (native / rate)
    return times * time_scale
