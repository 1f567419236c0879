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
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ascendra.errors import UserError, notice
from ascendra.harness.config import SCHEMA, RunConfig
from ascendra.harness.executors import InlineExecutor, run_each
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


def seeds_text(seeds: list[int]) -> str:
    """Seeds as the user would type them: ``1-5`` when consecutive, else ``1,3,5``."""
    consecutive = seeds == list(range(seeds[0], seeds[-1] + 1))
    return f"{seeds[0]}-{seeds[-1]}" if consecutive and len(seeds) > 2 else ",".join(map(str, seeds))


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


class _Lane:
    """One seed's sweep while its points run: rows are committed in rate order, so the floor stops it at the same
    rate whichever executor ran the points, and a point computed past the stop (in flight when it was found) is
    dropped, never stored."""

    def __init__(self, base: RunConfig, rates: Iterable[float], out: Path | None, floor: float | None) -> None:
        self.base = base
        self.store = SweepDir(out, base) if out is not None else None
        self.floor = floor
        self.rates = sorted(set(rates)) if floor is not None else list(dict.fromkeys(rates))
        self.rows: list[dict[str, object]] = []
        self.skipped: list[float] = []
        self.held: dict[float, tuple[pd.DataFrame | None, dict[str, object]]] = {}
        self.below = 0
        for rate in self.rates:  # stored points count as arrived; records None: nothing to write
            row = self.store.load_row(base.with_rate(rate)) if self.store else None
            if row is not None:
                self.held[rate] = (None, row)

    @property
    def done(self) -> bool:
        return len(self.rows) + len(self.skipped) == len(self.rates)

    def todo(self) -> list[float]:
        """Rates still to run, ascending, until the lane stops."""
        return [r for r in self.rates[len(self.rows) :] if r not in self.held] if not self.done else []

    def arrive(self, rate: float, records: pd.DataFrame, row: dict[str, object]) -> None:
        if self.done:
            return  # past the stop: not this sweep's
        if self.floor is None and self.store:  # every point is kept: store it now, so an interrupt keeps it
            self.store.save_point(self.base.with_rate(rate), records, row)
            self.held[rate] = (None, row)
        else:
            self.held[rate] = (records, row)

    def commit(self, on_point: Callable[[float], None] | None) -> None:
        """Take the arrived rows in rate order up to the first missing one; stop past saturation."""
        while not self.done and self.rates[len(self.rows)] in self.held:
            rate = self.rates[len(self.rows)]
            records, row = self.held.pop(rate)
            if records is not None and self.store:
                self.store.save_point(self.base.with_rate(rate), records, row)
            self.rows.append(row)
            if on_point:
                on_point(rate)
            if self.floor is not None:
                below = float(row["attainment"]) < self.floor  # type: ignore[arg-type]
                self.below = self.below + 1 if below else 0
            if self.below >= SATURATED_AFTER:
                self.skipped = self.rates[len(self.rows) :]
                self.held.clear()
                for skipped in self.skipped:
                    if on_point:
                        on_point(skipped)

    def table(self) -> pd.DataFrame:
        table = self.store.write_summary() if self.store else pd.DataFrame(self.rows)
        if self.floor is None or not self.skipped:
            return table
        table = table[~table["rate"].isin(self.skipped)]  # a stored point of a skipped rate is not this sweep's
        gaps = pd.DataFrame({"system": self.base.label, "rate": self.skipped, "status": "skipped"})
        return pd.concat([table.assign(status="ok"), gaps], ignore_index=True).sort_values("rate", ignore_index=True)


def _check_floor(floor: float | None) -> None:
    if floor is not None and not 0 <= floor <= 1:
        raise UserError(f"--saturation-floor must be in [0, 1] (0: never stop), got {floor}")


def _run_lanes(
    lanes: list[_Lane],
    data_dir: Path | None,
    on_point: Callable[[float], None] | None,
    on_progress: OnProgress | None,
    executor: Executor | None,
) -> None:
    """Run the lanes' missing points on ``executor`` (None: in this process, one at a time), rates ascending
    and the seeds interleaved, handing out a lane's next rate only while the lane has not stopped."""
    executor = executor or InlineExecutor()
    inline = getattr(executor, "in_process", False)
    # run_point is looked up now (tests replace it); per-request progress only reaches us from this process.
    point = partial(run_point, data_dir=data_dir, on_progress=on_progress if inline else None)

    def configs() -> Iterator[tuple[tuple[_Lane, float], RunConfig]]:
        for lane in lanes:
            lane.commit(on_point)  # stored points first
        for step in range(max((len(lane.rates) for lane in lanes), default=0)):
            for lane in lanes:
                if step < len(lane.rates) and lane.rates[step] in lane.todo():
                    yield (lane, lane.rates[step]), lane.base.with_rate(lane.rates[step])

    def done(key: tuple[_Lane, float], result: tuple[pd.DataFrame, dict[str, object]]) -> None:
        lane, rate = key
        lane.arrive(rate, *result)
        lane.commit(on_point)

    run_each(executor, point, configs(), done)


def run_sweep(
    base: RunConfig,
    rates: Iterable[float],
    out: Path | None = None,
    data_dir: Path | None = None,
    on_point: Callable[[float], None] | None = None,
    on_progress: OnProgress | None = None,
    saturation_floor: float | None = None,
    executor: Executor | None = None,
) -> pd.DataFrame:
    """Run every rate (skipping points already stored in ``out``) and return the summary table; ``on_point(rate)``
    follows the points, ``on_progress(arrived, total)`` the requests of the point running (in this process only).

    With ``saturation_floor``, rates are taken in ascending order and once two consecutive rates attain less than
    the floor, the higher rates are not run: they are rows with ``status`` ``skipped`` (and a ``status`` column
    of ``ok`` on the others), so a wide sweep does not spend minutes on hopeless rates. ``executor`` runs the
    points (``ascendra.harness.executors``; default: here, one by one); the table does not depend on it."""
    _check_floor(saturation_floor)
    lane = _Lane(base, rates, out, saturation_floor)
    _run_lanes([lane], data_dir, on_point, on_progress, executor)
    return lane.table()


def measured(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of points that ran (not skipped past saturation)."""
    return table[table["status"] != "skipped"] if "status" in table else table


def seed_tables(
    base: RunConfig,
    seeds: list[int],
    rates: list[float],
    out: Path | None = None,
    data_dir: Path | None = None,
    on_point: Callable[[float], None] | None = None,
    on_progress: OnProgress | None = None,
    saturation_floor: float | None = None,
    executor: Executor | None = None,
) -> list[pd.DataFrame]:
    """Each seed's ``run_sweep`` table of ``rates`` (in ``seed_folder(out, seed)``), every seed's points on one
    ``executor``."""
    _check_floor(saturation_floor)
    several = len(seeds) > 1
    lanes = [_Lane(base.replace(seed=s), rates, seed_folder(out, s, several), saturation_floor) for s in seeds]
    _run_lanes(lanes, data_dir, on_point, on_progress, executor)
    return [table[table["rate"].isin(rates)].copy() for table in (lane.table() for lane in lanes)]


def run_seeds(
    base: RunConfig,
    seeds: list[int],
    rates: list[float],
    out: Path | None = None,
    data_dir: Path | None = None,
    on_point: Callable[[float], None] | None = None,
    on_progress: OnProgress | None = None,
    saturation_floor: float | None = None,
    executor: Executor | None = None,
) -> pd.DataFrame:
    """``run_sweep`` of ``rates`` once per seed, every seed's points on one ``executor``: one seed gives today's
    table; several give one row per (rate, seed) with a ``seed`` column (and ``out/summary.csv`` of them)."""
    tables = seed_tables(base, seeds, rates, out, data_dir, on_point, on_progress, saturation_floor, executor)
    if len(seeds) == 1:
        return tables[0]
    for seed, table in zip(seeds, tables, strict=True):
        table.insert(1, "seed", seed)
    joined = pd.concat(tables, ignore_index=True).sort_values(["rate", "seed"], kind="stable", ignore_index=True)
    if out is not None:
        write_atomic(out / "summary.csv", lambda p: joined.to_csv(p, index=False))
    return joined


def aggregate_seeds(
    table: pd.DataFrame, columns: Iterable[str], by: Sequence[str] = ("rate",), sort: bool = True
) -> pd.DataFrame:
    """Per group of ``by`` (default: per rate) over seeds: the number of seeds, the mean of each of ``columns``
    present, and the attainment's Student-t interval (``attainment_ci_low``, ``attainment_ci_high``)."""
    from ascendra.metrics import mean_ci

    keys = list(by)
    present = [c for c in columns if c in table.columns and c not in (*keys, "seed", "status")]
    rows = []
    for group, part in table.groupby(keys, sort=sort):
        row: dict[str, object] = dict(zip(keys, group, strict=True))
        if "rate" in row:
            row["rate"] = float(row["rate"])  # type: ignore[arg-type]
        row["seeds"] = len(part)
        row.update({c: float(pd.to_numeric(part[c], errors="coerce").mean()) for c in present})
        values = part["attainment"].dropna().tolist() if "attainment" in part else []
        if values:  # seeds skipped past saturation at this rate do not count
            ci = mean_ci(values)
            row.update(seeds=len(values), attainment_ci_low=ci.low, attainment_ci_high=ci.high)
        rows.append(row)
    return pd.DataFrame(rows)
