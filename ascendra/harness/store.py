"""The one point store: finished runs by config key in a folder, written atomically (``ascendra.files``).

Layout of a store folder::

    <key>.parquet   the run's per-request table (full records for a sweep, compact ones for reproduce), first
    <key>.json      the run's stored config and summary row, written last: its presence marks the point complete

Every file is written to a temporary name and renamed, so an interrupted run never leaves a file that a later
run trusts; a point is computed again unless its JSON exists. Sweeps (``sweep.SweepDir``) and the reproduction's
shared cache (``reproduce``) both keep their points here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ascendra.files import check_writable, make_dir, write_atomic, write_text
from ascendra.harness.config import RunConfig

__all__ = ["PointStore", "check_writable", "make_dir", "write_atomic", "write_text"]


class PointStore:
    """Finished points by config key in one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _json(self, config: RunConfig) -> Path:
        return self.root / f"{config.key()}.json"

    def has(self, config: RunConfig) -> bool:
        return self._json(config).exists()

    def row(self, config: RunConfig) -> dict[str, object] | None:
        """The stored summary row of ``config``, or None when the point is not complete."""
        path = self._json(config)
        return json.loads(path.read_text())["summary"] if path.exists() else None

    def table(self, config: RunConfig) -> pd.DataFrame:
        return pd.read_parquet(self.root / f"{config.key()}.parquet")

    def save(self, config: RunConfig, table: pd.DataFrame, row: dict[str, object]) -> None:
        key = config.key()
        write_atomic(self.root / f"{key}.parquet", lambda p: table.to_parquet(p, index=False))
        write_text(self._json(config), json.dumps({"config": config.to_dict(), "summary": row}, indent=1))

    def points(self) -> list[tuple[dict[str, object], dict[str, object]]]:
        """Every complete point as (stored config, summary row), in key order."""
        return [
            (point["config"], point["summary"])
            for point in (json.loads(path.read_text()) for path in sorted(self.root.glob("*.json")))
        ]
