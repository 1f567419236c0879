"""Sweeps: one simulated run per request rate, stored by config hash so reruns resume and never mix results.

Layout of an output directory::

    DIR/sweep.json              the sweep's base config (everything but the rate) and the rates run so far
    DIR/summary.csv             one row per rate (every point in DIR), sorted by rate
    DIR/points/<key>.json       one point's full config and summary row (written last: marks it complete)
    DIR/points/<key>.parquet    that point's per-request records

A directory holds exactly one base config: asking it to hold another is refused, so results are never mixed or
overwritten. Every file is written to a temporary name and renamed, so an interrupted run leaves no half-written
file that a later run would trust.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ascendra.config import RunConfig
from ascendra.errors import UserError
from ascendra.records import write_records
from ascendra.sim.simulate import simulate, workload_of


def parse_rates(text: str) -> list[float]:
    """``18,20,22`` or ``start:stop:step`` (stop included) -> sorted distinct positive rates."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = int(np.floor((stop - start) / step + 1e-9)) + 1
            rates = [round(start + i * step, 10) for i in range(count)]
        else:
            rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"bad --rates {text!r}: use a list like 18,20,22 or a range start:stop:step") from None
    if not rates or min(rates) <= 0:
        raise UserError(f"bad --rates {text!r}: rates must be positive")
    return sorted(set(rates))


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def _write_text(path: Path, text: str) -> None:
    _write_atomic(path, lambda p: p.write_text(text))


def _base_of(config: RunConfig) -> dict[str, object]:
    base = config.to_dict()
    base.pop("rate")
    return base


class SweepDir:
    """An output directory bound to one base config."""

    def __init__(self, root: Path, base: RunConfig) -> None:
        self.root = root
        self.base = _base_of(base)
        self.points = root / "points"
        manifest = root / "sweep.json"
        if manifest.exists():
            try:
                held = json.loads(manifest.read_text())["base"]
            except (ValueError, KeyError):
                raise UserError(f"{manifest} is not a sweep manifest; choose another --out") from None
            if held != self.base:
                diff = sorted(k for k in set(held) | set(self.base) if held.get(k) != self.base.get(k))
                raise UserError(f"{root} holds a different sweep (differs in: {', '.join(diff)}); choose another --out")
        elif root.exists() and any(root.iterdir()):
            raise UserError(f"{root} exists and is not a sweep directory; choose another --out")

    def load_row(self, config: RunConfig) -> dict[str, object] | None:
        path = self.points / f"{config.key()}.json"
        return json.loads(path.read_text())["summary"] if path.exists() else None

    def save_point(self, config: RunConfig, records: pd.DataFrame, row: dict[str, object]) -> None:
        self.points.mkdir(parents=True, exist_ok=True)
        key = config.key()
        _write_atomic(self.points / f"{key}.parquet", lambda p: write_records(records, p))
        _write_text(self.points / f"{key}.json", json.dumps({"config": config.to_dict(), "summary": row}, indent=1))

    def all_rows(self) -> list[dict[str, object]]:
        rows = []
        for path in sorted(self.points.glob("*.json")):
            point = json.loads(path.read_text())
            if _base_of(RunConfig.from_dict(point["config"])) == self.base:
                rows.append(point["summary"])
        return sorted(rows, key=lambda r: float(r["rate"]))  # type: ignore[arg-type]

    def write_summary(self) -> pd.DataFrame:
        rows = self.all_rows()
        table = pd.DataFrame(rows)
        _write_text(self.root / "sweep.json", json.dumps({"base": self.base, "rates": [r["rate"] for r in rows]}))
        _write_atomic(self.root / "summary.csv", lambda p: table.to_csv(p, index=False))
        return table


def run_point(config: RunConfig, data_dir: Path | None = None) -> tuple[pd.DataFrame, dict[str, object]]:
    """Run one rate on the config's backend; the summary row leads with the system and rate."""
    if config.system == "openai":
        return _run_openai_point(config, data_dir)
    if config.system == "vllm-engine":
        from ascendra.metrics import SLO
        from baselines.vllm_engine import TINY_VLLM, VllmEngineOptions, run_vllm_engine

        model = TINY_VLLM.name if config.model == "tiny" else config.model  # vLLM's CPU attention: head dim >= 32
        options = VllmEngineOptions(
            model=model, max_num_batched_tokens=config.max_batched_tokens, max_num_seqs=config.max_num_seqs
        )
        outcome = run_vllm_engine(workload_of(config, data_dir), options, SLO(config.ttft_slo, config.tbt_slo))
    elif config.backend == "engine":
        from ascendra.live.engines import LiveOptions
        from ascendra.live.run import run_live

        options = LiveOptions(device=config.device, num_blocks=config.kv_blocks, distributed=config.distributed)
        outcome = run_live(config, workload_of(config, data_dir), options, data_dir)
    else:
        outcome = simulate(config, data_dir, workload_of(config, data_dir))
    row: dict[str, object] = {"system": config.system, "rate": config.rate, **outcome.summary}
    return outcome.records, row


def _run_openai_point(config: RunConfig, data_dir: Path | None) -> tuple[pd.DataFrame, dict[str, object]]:
    """Load the server at ``config.endpoint`` with the config's workload; failed requests count as drops (and in
    ``failed``). A point where every request failed is refused rather than stored, so a rerun retries it."""
    from ascendra.loadgen import run_openai
    from ascendra.metrics import SLO, summarize
    from ascendra.records import records_frame

    assert config.endpoint is not None  # RunConfig requires it for system openai
    workload = workload_of(config, data_dir)
    result = run_openai(workload, config.endpoint, config.served_model, config.max_concurrency, config.request_timeout)
    if result.requests and len(result.errors) == len(result.requests):
        first = next(iter(result.errors.values()))
        raise UserError(f"every request to {config.endpoint} failed at rate {config.rate:g}; first: {first}")
    records = records_frame(result.requests)
    summary = summarize(records, SLO(config.ttft_slo, config.tbt_slo))
    row: dict[str, object] = {"system": config.system, "rate": config.rate, **summary, **result.client_stats()}
    return records, row


def run_sweep(
    base: RunConfig,
    rates: Iterable[float],
    out: Path | None = None,
    data_dir: Path | None = None,
    on_point: Callable[[float], None] | None = None,
) -> pd.DataFrame:
    """Run every rate (skipping points already stored in ``out``) and return the summary table."""
    store = SweepDir(out, base) if out is not None else None
    rows = []
    for rate in rates:
        config = replace(base, rate=rate)
        row = store.load_row(config) if store else None
        if row is None:
            records, row = run_point(config, data_dir)
            if store:
                store.save_point(config, records, row)
        rows.append(row)
        if on_point:
            on_point(rate)
    if store:
        store.root.mkdir(parents=True, exist_ok=True)
        return store.write_summary()
    return pd.DataFrame(rows)
