"""Synthetic length distributions, named by a small spec string.

Syntax: ``KIND:key=value,key=value``. A length is ``N`` or an inclusive range ``LO-HI``.

- ``fixed:prompt=512,output=128`` — every request has the same lengths.
- ``uniform:prompt=64-1024,output=16-512`` — integers drawn uniformly from each inclusive range.
- ``zipf:prompt=1-2048,output=1-512,theta=1.2`` — bounded Zipf: ``P(LO + r) ∝ (r + 1)^-theta`` for
  ``r = 0 .. HI-LO`` (short lengths common, a heavy tail up to HI); ``prompt=MAX`` means ``1-MAX``; theta > 0,
  default 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ascendra.errors import UserError

KINDS = {
    "fixed": "every request the same: fixed:prompt=N,output=N (e.g. fixed:prompt=512,output=128)",
    "uniform": "uniform integers in inclusive ranges: uniform:prompt=LO-HI,output=LO-HI (e.g. prompt=64-1024)",
    "zipf": (
        "bounded Zipf, P(LO+r) ∝ (r+1)^-T: zipf:prompt=[LO-]HI,output=[LO-]HI[,theta=T] (T > 0, default 1.0; "
        "HI alone means 1-HI)"
    ),
}


@dataclass(frozen=True)
class SyntheticSpec:
    """A parsed synthetic workload: inclusive (low, high) ranges for prompt and output, and Zipf's theta."""

    kind: str
    prompt: tuple[int, int]
    output: tuple[int, int]
    theta: float = 1.0


def _parse_range(kind: str, key: str, text: str) -> tuple[int, int]:
    """``N`` or ``LO-HI`` as an inclusive (low, high) range; fixed takes only N, uniform only LO-HI, and zipf's
    lone N means 1-N."""
    low_text, dash, high_text = text.partition("-")
    try:
        low = int(low_text)
        high = int(high_text) if dash else None
    except ValueError:
        raise UserError(f"{kind}: {key}={text!r} is not a whole number or a range LO-HI") from None
    if kind == "fixed" and high is not None:
        raise UserError(f"fixed: {key} takes one length N, got {text!r}")
    if kind == "uniform" and high is None:
        raise UserError(f"uniform: {key} takes a range LO-HI, got {text!r}")
    if high is None:
        low, high = (1, low) if kind == "zipf" else (low, low)
    if low < 1 or high < low:
        raise UserError(f"{kind}: {key}={text!r} must satisfy 1 <= LO <= HI")
    return low, high


def parse_synthetic(name: str) -> SyntheticSpec:
    """Parse ``KIND:key=value,...`` (see the module docstring); bad specs are a UserError naming the problem."""
    kind, _, rest = name.partition(":")
    if kind not in KINDS:
        raise UserError(f"unknown synthetic workload {kind!r}; known: {', '.join(KINDS)}")
    params: dict[str, str] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in ("prompt", "output", "theta") or (key == "theta" and kind != "zipf"):
            raise UserError(f"{kind}: unexpected parameter {item!r}; syntax: {KINDS[kind]}")
        params[key] = value.strip()
    missing = [k for k in ("prompt", "output") if k not in params]
    if missing:
        raise UserError(f"{kind}: missing {' and '.join(missing)}; syntax: {KINDS[kind]}")
    theta = 1.0
    if "theta" in params:
        try:
            theta = float(params["theta"])
        except ValueError:
            theta = float("nan")
        if not theta > 0 or theta == float("inf"):
            raise UserError(f"zipf: theta must be a positive number, got {params['theta']!r}")
    return SyntheticSpec(
        kind, _parse_range(kind, "prompt", params["prompt"]), _parse_range(kind, "output", params["output"]), theta
    )


def _zipf(low: int, high: int, theta: float, n: int, rng: np.random.Generator) -> np.ndarray:
    weights = np.arange(1, high - low + 2, dtype=float) ** -theta
    return low + rng.choice(len(weights), size=n, p=weights / weights.sum())


def sample_synthetic(spec: SyntheticSpec, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (prompt, output) length pairs drawn from ``spec``."""
    if spec.kind == "fixed":
        return np.full(n, spec.prompt[0], dtype=np.int64), np.full(n, spec.output[0], dtype=np.int64)
    if spec.kind == "uniform":
        return (
            rng.integers(spec.prompt[0], spec.prompt[1], size=n, endpoint=True),
            rng.integers(spec.output[0], spec.output[1], size=n, endpoint=True),
        )
    return _zipf(*spec.prompt, spec.theta, n, rng), _zipf(*spec.output, spec.theta, n, rng)
