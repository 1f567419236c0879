"""Sweeps: one simulated run per request rate, stored by config hash so reruns resume and never mix results.

Layout of an output directory::

    DIR/sweep.json              the sweep's base config (everything but the rate) and the rates run so far
    DIR/summary.csv             one row per rate (every point in DIR), sorted by rate; ``records`` names the
                                point's records file (relative to DIR)
    DIR/points/<key>.json       one point's full config and summary row (written last: marks it complete)
    DIR/points/<key>.parquet    that point's per-request records

A directory holds exactly one base config: asking it to hold another is refused, so results are never mixed or
overwritten. Every file is written to a temporary name and renamed, so an interrupted run leaves no half-written
file that a later run would trust.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ascendra.errors import UserError, notice
from ascendra.harness.config import SCHEMA, RunConfig
from ascendra.harness.runs import run_point
from ascendra.harness.store import PointStore, check_writable, write_atomic, write_text
from ascendra.sim.cluster import OnProgress

#: More points than any sweep needs; a range beyond it is a typo (``1:1e9:1``), refused before it fills memory.
MAX_RATES = 1000


def parse_rates(text: str) -> list[float]:
    """``18,20,22`` or ``start:stop:step`` (stop included) -> sorted distinct positive finite rates. A repeated
    rate runs once (with a notice on stderr)."""
    try:
        numbers = [float(x) for x in text.replace(":", ",").split(",") if x.strip()]
        if not all(math.isfinite(x) for x in numbers):
            raise UserError(f"bad --rates {text!r}: rates must be finite numbers")
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = int(np.floor((stop - start) / step + 1e-9)) + 1
            if count > MAX_RATES:
                raise UserError(f"bad --rates {text!r}: {count} rates, more than {MAX_RATES}; use a larger step")
            rates = [round(start + i * step, 10) for i in range(count)]
        else:
            rates = numbers
    except ValueError:
        raise UserError(f"bad --rates {text!r}: use a list like 18,20,22 or a range start:stop:step") from None
    if not rates or min(rates) <= 0:
        raise UserError(f"bad --rates {text!r}: rates must be positive")
    distinct = sorted(set(rates))
    if len(distinct) < len(rates):
        repeated = sorted({r for r in rates if rates.count(r) > 1})
        notice(f"--rates repeats {', '.join(f'{r:g}' for r in repeated)}; each rate runs once")
    return distinct


def _base_of(config: RunConfig) -> dict[str, object]:
    """The stored form of everything but the rate."""
    data = config.to_dict()
    workload = {k: v for k, v in data.pop("workload", {}).items() if k != "rate"}
    return data | {"workload": workload} if workload else data


class SweepDir:
    """An output directory bound to one base config; its points live in a ``PointStore`` at ``points/``."""

    def __init__(self, root: Path, base: RunConfig) -> None:
        check_writable(root)  # an --out that cannot be written fails here, before any point runs
        self.root = root
        self.base = _base_of(base)
        self.store = PointStore(root / "points")
        manifest = root / "sweep.json"
        if manifest.exists():
            try:
                held = json.loads(manifest.read_text())["base"]
            except (ValueError, KeyError):
                raise UserError(f"{manifest} is not a sweep manifest; choose another --out") from None
            if held.get("schema") != SCHEMA:
                raise UserError(f"{root} holds a sweep of another ascbench config schema; choose another --out")
            if held != self.base:
                diff = sorted(k for k in set(held) | set(self.base) if held.get(k) != self.base.get(k))
                raise UserError(f"{root} holds a different sweep (differs in: {', '.join(diff)}); choose another --out")
        elif root.exists() and any(root.iterdir()):
            raise UserError(f"{root} exists and is not a sweep directory; choose another --out")

    def load_row(self, config: RunConfig) -> dict[str, object] | None:
        return self.store.row(config)

    def save_point(self, config: RunConfig, records: pd.DataFrame, row: dict[str, object]) -> None:
        self.store.save(config, records, row)

    def all_rows(self) -> list[dict[str, object]]:
        """Every stored point of this sweep, by rate, each with ``records``: its records file under the folder."""
        rows = []
        for stored, row in self.store.points():
            config = RunConfig.from_dict(stored)
            if _base_of(config) == self.base:
                rows.append({**row, "records": f"points/{config.key()}.parquet"})
        return sorted(rows, key=lambda r: float(r["rate"]))  # type: ignore[arg-type]

    def write_summary(self) -> pd.DataFrame:
        rows = self.all_rows()
        table = pd.DataFrame(rows)
        write_text(self.root / "sweep.json", json.dumps({"base": self.base, "rates": [r["rate"] for r in rows]}))
        write_atomic(self.root / "summary.csv", lambda p: table.to_csv(p, index=False))
        return table


def run_sweep(
    base: RunConfig,
    rates: Iterable[float],
    out: Path | None = None,
    data_dir: Path | None = None,
    on_point: Callable[[float], None] | None = None,
    on_progress: OnProgress | None = None,
) -> pd.DataFrame:
    """Run every rate (skipping points already stored in ``out``) and return the summary table; ``on_point(rate)``
    follows the points, ``on_progress(arrived, total)`` the requests of the point running."""
    store = SweepDir(out, base) if out is not None else None
    rows = []
    for rate in rates:
        config = base.with_rate(rate)
        row = store.load_row(config) if store else None
        if row is None:
            records, row = run_point(config, data_dir, on_progress)
            if store:
                store.save_point(config, records, row)
        rows.append(row)
        if on_point:
            on_point(rate)
    if store:
        return store.write_summary()
    return pd.DataFrame(rows)
