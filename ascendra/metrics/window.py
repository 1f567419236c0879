"""Warm-up and cool-down: requests at the ends of a run, excluded from attainment and latency statistics.

A run starts empty and ends draining, so its first and last requests see a lighter load than the steady state a
capacity is meant to describe. A span is seconds of arrivals (``30``, ``30s``: requests arriving within 30 s of
the first arrival, or of the last one for the cool-down) or a share of the requests by arrival order (``10%``:
the first, or last, ``floor(0.1 * n)`` requests). The requests still run (they load the system); only the
statistics leave them out. ``0`` (the default) excludes nothing, so the paper's numbers count every request.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ascendra.errors import UserError
from ascendra.metrics.attainment import SLO
from ascendra.metrics.summary import summarize

NONE = "0"


def parse_span(text: str, option: str = "--warmup") -> tuple[float, bool]:
    """``30``/``30s`` -> (30.0, False) seconds; ``10%`` -> (0.1, True) a share of requests."""
    raw = str(text).strip()
    fraction = raw.endswith("%")
    try:
        value = float(raw[:-1] if fraction or raw.endswith("s") else raw)
    except ValueError:
        value = math.nan
    if fraction:
        value /= 100
    if not (math.isfinite(value) and value >= 0 and (not fraction or value < 1)):
        raise UserError(f"bad {option} {text!r}: use seconds (30 or 30s) or a share of requests below 100% (10%)")
    return value, fraction


def steady_mask(arrival: np.ndarray, warmup: str = NONE, cooldown: str = NONE) -> np.ndarray:
    """True for the requests inside the window (by their arrival times, in any order)."""
    n = len(arrival)
    keep = np.ones(n, dtype=bool)
    if n == 0:
        return keep
    order = np.argsort(arrival, kind="stable")
    for text, option, head in ((warmup, "--warmup", True), (cooldown, "--cooldown", False)):
        value, fraction = parse_span(text, option)
        if fraction:
            count = math.floor(round(value * n, 9))
            chosen = order[:count] if head else order[n - count :]
            keep[chosen] = False
        elif value > 0:
            keep &= arrival >= arrival.min() + value if head else arrival <= arrival.max() - value
    return keep


#: Summary keys of the run as a whole (what happened), not statistics over its requests' latencies.
WHOLE_RUN = (
    "ttft_slo",
    "tbt_slo",
    "arrived",
    "finished",
    "dropped",
    "cancelled",
    "unfinished",
    "offloaded",
    "preempted",
    "preemptions",
    "span_s",
    "throughput_rps",
    "throughput_tps",
)


def summarize_window(
    records: pd.DataFrame, slo: SLO, summary: dict[str, float], warmup: str, cooldown: str
) -> dict[str, float]:
    """``summary`` (of the whole run) with its attainment and latency statistics taken over the window only, and
    the requests each end excluded stated (``warmup_excluded``, ``cooldown_excluded``; a request in both ends
    counts in both). Without a warm-up or cool-down, ``summary`` unchanged."""
    if parse_span(warmup, "--warmup")[0] == 0 and parse_span(cooldown, "--cooldown")[0] == 0:
        return summary
    arrival = records["arrival"].to_numpy(dtype=float)
    head, tail = steady_mask(arrival, warmup, NONE), steady_mask(arrival, NONE, cooldown)
    inside = summarize(records[head & tail].reset_index(drop=True), slo)
    # A per-class key (``attainment[interactive]``) follows its overall key; a class with no request in the
    # window has no statistics there.
    stats = {k: v for k, v in inside.items() if k.split("[")[0] not in WHOLE_RUN}
    stats.update({k: math.nan for k in summary if "[" in k and k not in inside and k.split("[")[0] not in WHOLE_RUN})
    return {**summary, **stats, "warmup_excluded": int((~head).sum()), "cooldown_excluded": int((~tail).sum())}
