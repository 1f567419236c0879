"""Sweeps: one simulated run per request rate, stored by config hash so reruns resume and never mix results.

Layout of an output directory::

    DIR/sweep.json              the sweep's base config (everything but the rate) and the rates run so far
    DIR/summary.csv             one row per rate (every point in DIR), sorted by rate; ``records`` names the
                                point's records file (relative to DIR)
    DIR/points/<key>.json       one point's full config and summary row (written last: marks it complete)
    DIR/points/<key>.parquet    that point's per-request records

With several seeds (``--seeds 1-5``) each seed is one such folder, ``DIR/seed-<n>/``, and ``DIR/summary.csv``
holds one row per (rate, seed) with a ``seed`` column; ``aggregate_seeds`` gives the per-rate mean and interval.

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


#: Seeds one command accepts; more is a typo (``1-100000``).
MAX_SEEDS = 100


def parse_seeds(text: str) -> list[int]:
    """``1-5``, ``1,3,5`` or both (``1-3,7``) -> sorted distinct non-negative seeds."""
    seeds: set[int] = set()
    try:
        for part in (p.strip() for p in text.split(",")):
            first, dash, last = part.partition("-")
            low, high = int(first), int(last if dash else first)
            if low < 0 or high < low or high - low >= MAX_SEEDS:
                raise ValueError
            seeds.update(range(low, high + 1))
    except ValueError:
        raise UserError(f"bad --seeds {text!r}: use a range 1-5 or a list 1,2,3 of non-negative integers") from None
    if len(seeds) > MAX_SEEDS:
        raise UserError(f"bad --seeds {text!r}: {len(seeds)} seeds, more than {MAX_SEEDS}")
    return sorted(seeds)


def seed_folder(out: Path | None, seed: int, several: bool) -> Path | None:
    """Where one seed's sweep lives: ``out`` itself for one seed (today's layout), ``out/seed-<n>`` for several."""
    if out is None or not several:
        return out
    if (out / "sweep.json").exists():
        raise UserError(f"{out} holds a single-seed sweep; choose another --out for several seeds")
    return out / f"seed-{seed}"


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


#: Consecutive rates below the floor after which a sweep stops raising the rate.
SATURATED_AFTER = 2


def run_sweep(
    base: RunConfig,
    rates: Iterable[float],
    out: Path | None = None,
    data_dir: Path | None = None,
    on_point: Callable[[float], None] | None = None,
    on_progress: OnProgress | None = None,
    saturation_floor: float | None = None,
) -> pd.DataFrame:
    """Run every rate (skipping points already stored in ``out``) and return the summary table; ``on_point(rate)``
    follows the points, ``on_progress(arrived, total)`` the requests of the point running.

    With ``saturation_floor``, rates are run in ascending order and once two consecutive rates attain less than
    the floor, the higher rates are not run: they are rows with ``status`` ``skipped`` (and a ``status`` column
    of ``ok`` on the others), so a wide sweep does not spend minutes on hopeless rates."""
    if saturation_floor is not None and not 0 <= saturation_floor <= 1:
        raise UserError(f"--saturation-floor must be in [0, 1] (0: never stop), got {saturation_floor}")
    store = SweepDir(out, base) if out is not None else None
    rows = []
    skipped: list[float] = []
    below = 0
    for rate in sorted(rates) if saturation_floor is not None else rates:
        if below >= SATURATED_AFTER:
            skipped.append(rate)
            if on_point:
                on_point(rate)
            continue
        config = base.with_rate(rate)
        row = store.load_row(config) if store else None
        if row is None:
            records, row = run_point(config, data_dir, on_progress)
            if store:
                store.save_point(config, records, row)
        rows.append(row)
        if saturation_floor is not None:
            below = below + 1 if float(row["attainment"]) < saturation_floor else 0  # type: ignore[arg-type]
        if on_point:
            on_point(rate)
    table = store.write_summary() if store else pd.DataFrame(rows)
    if saturation_floor is None or not skipped:
        return table
    table = table[~table["rate"].isin(skipped)]  # a stored point of a skipped rate is not this sweep's
    gaps = pd.DataFrame({"system": base.label, "rate": skipped, "status": "skipped"})
    return pd.concat([table.assign(status="ok"), gaps], ignore_index=True).sort_values("rate", ignore_index=True)


def measured(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of points that ran (not skipped past saturation)."""
    return table[table["status"] != "skipped"] if "status" in table else table


def run_seeds(
    base: RunConfig,
    seeds: list[int],
    rates: list[float],
    out: Path | None = None,
    data_dir: Path | None = None,
    on_point: Callable[[float], None] | None = None,
    on_progress: OnProgress | None = None,
    saturation_floor: float | None = None,
) -> pd.DataFrame:
    """``run_sweep`` of ``rates`` once per seed: one seed gives today's table; several give one row per (rate,
    seed) with a ``seed`` column (and ``out/summary.csv`` of them)."""
    several = len(seeds) > 1
    tables = []
    for seed in seeds:
        folder = seed_folder(out, seed, several)
        table = run_sweep(base.replace(seed=seed), rates, folder, data_dir, on_point, on_progress, saturation_floor)
        table = table[table["rate"].isin(rates)].copy()
        if not several:
            return table
        table.insert(1, "seed", seed)
        tables.append(table)
    joined = pd.concat(tables, ignore_index=True).sort_values(["rate", "seed"], kind="stable", ignore_index=True)
    if out is not None:
        write_atomic(out / "summary.csv", lambda p: joined.to_csv(p, index=False))
    return joined


def aggregate_seeds(table: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """Per rate over seeds: the number of seeds, the mean of each of ``columns`` present, and the attainment's
    Student-t interval (``attainment_ci_low``, ``attainment_ci_high``)."""
    from ascendra.metrics import mean_ci

    present = [c for c in columns if c in table.columns and c not in ("rate", "seed", "status")]
    rows = []
    for rate, part in table.groupby("rate", sort=True):
        row: dict[str, object] = {"rate": float(rate), "seeds": len(part)}  # type: ignore[arg-type]
        row.update({c: float(pd.to_numeric(part[c], errors="coerce").mean()) for c in present})
        values = part["attainment"].dropna().tolist() if "attainment" in part else []
        if values:  # seeds skipped past saturation at this rate do not count
            ci = mean_ci(values)
            row.update(seeds=len(values), attainment_ci_low=ci.low, attainment_ci_high=ci.high)
        rows.append(row)
    return pd.DataFrame(rows)
