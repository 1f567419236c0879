"""Per-request SLO classes: a workload mixes classes (``interactive`` with tight SLOs, ``batch`` with loose ones),
each with a share of the requests, and every request carries its class's TTFT/TBT SLOs.

Syntax: ``NAME:SHARE[:ttft=S][,tbt=S];NAME:SHARE...``, e.g.
``interactive:0.3:ttft=0.5,tbt=0.05;batch:0.7:ttft=5,tbt=0.5``. Shares are fractions that sum to 1; an SLO a
class leaves out is the run's (``--ttft-slo`` / ``--tbt-slo``). An empty spec means no classes: every request
keeps the run's SLOs and nothing about the run changes.

The draw is reproducible from the workload seed and independent of the length and arrival draws (its own random
stream), so adding classes changes no arrival and no length. Each class gets exactly its share of the requests
(largest remainder rounding of ``share * n``), and which requests get which class is a seeded permutation over
request ids, so a class's requests are spread uniformly over the run.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ascendra.errors import UserError
from ascendra.request import RequestSpec

#: The random stream of the class draw (``workloads.registry`` uses 1 for lengths and 2 for arrivals).
_CLASS_STREAM = 3
_NAME = re.compile(r"[A-Za-z0-9_-]+")
SYNTAX = "NAME:SHARE[:ttft=S,tbt=S];... (e.g. interactive:0.3:ttft=0.5,tbt=0.05;batch:0.7:ttft=5,tbt=0.5)"


@dataclass(frozen=True, slots=True)
class SLOClass:
    """One class: its name, its share of the requests and its SLOs in seconds (None: the run's)."""

    name: str
    share: float
    ttft: float | None = None
    tbt: float | None = None


def _number(text: str, what: str, positive_max: float = math.inf) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= positive_max):
        bound = " at most 1" if positive_max == 1 else ""
        raise UserError(f"--slo-classes: {what} must be a positive number{bound}, got {text!r}; syntax: {SYNTAX}")
    return value


def parse_slo_classes(text: str) -> tuple[SLOClass, ...]:
    """The classes of a spec (see the module docstring); empty for an empty spec. Bad specs are one ``UserError``."""
    classes: list[SLOClass] = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        name, _, rest = item.partition(":")
        name = name.strip()
        if not _NAME.fullmatch(name):
            raise UserError(f"--slo-classes: bad class name {name!r} (letters, digits, '-', '_'); syntax: {SYNTAX}")
        share_text, _, slo_text = rest.partition(":")
        share = _number(share_text.strip(), f"the share of {name}", 1.0)
        slos: dict[str, float] = {}
        for pair in filter(None, (p.strip() for p in slo_text.split(","))):
            key, sep, value = pair.partition("=")
            key = key.strip()
            if not sep or key not in ("ttft", "tbt") or key in slos:
                raise UserError(f"--slo-classes: unexpected {pair!r} in class {name}; syntax: {SYNTAX}")
            slos[key] = _number(value.strip(), f"the {key.upper()} SLO of {name}")
        classes.append(SLOClass(name, share, slos.get("ttft"), slos.get("tbt")))
    names = [c.name for c in classes]
    if len(set(names)) != len(names):
        raise UserError(f"--slo-classes: a class is named twice in {text!r}")
    total = math.fsum(c.share for c in classes)
    if classes and abs(total - 1.0) > 1e-9:
        raise UserError(f"--slo-classes: shares must sum to 1, got {total:g} in {text!r}")
    return tuple(classes)


def class_counts(shares: Sequence[float], n: int) -> list[int]:
    """Requests per class: ``share * n`` rounded by largest remainder, so the counts sum to ``n`` exactly (ties go
    to the earlier class)."""
    exact = [s * n for s in shares]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: -(exact[i] - counts[i]))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def assign_slo_classes(
    requests: Sequence[RequestSpec], classes: Sequence[SLOClass], seed: int, ttft: float, tbt: float
) -> list[RequestSpec]:
    """``requests`` (in their order) with each one's class and SLOs set; a class's missing SLO is the run's
    (``ttft``, ``tbt``). Without classes, the requests unchanged."""
    if not classes:
        return list(requests)
    counts = class_counts([c.share for c in classes], len(requests))
    labels = np.repeat(np.arange(len(classes)), counts)
    rng = np.random.default_rng([seed, _CLASS_STREAM])
    drawn = rng.permutation(labels)
    by_id = np.argsort([r.request_id for r in requests], kind="stable")
    of_request = np.empty(len(requests), dtype=np.int64)
    of_request[by_id] = drawn
    out = []
    for spec, index in zip(requests, of_request.tolist(), strict=True):
        cls = classes[index]
        out.append(
            dataclasses.replace(
                spec,
                slo_class=cls.name,
                ttft_slo=cls.ttft if cls.ttft is not None else ttft,
                tbt_slo=cls.tbt if cls.tbt is not None else tbt,
            )
        )
    return out
