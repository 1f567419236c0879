"""Runs the missing points of a spec on an executor (``ascendra.harness.executors``: in process, a local process
pool or a Ray cluster), with a progress bar on stderr.

Workers return each point's compact records and summary row; this process writes it into the shared point
store (atomically) as soon as it arrives, so whatever finished before a Ctrl-C or a kill is kept and skipped on
the next run, whichever executor ran it.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from functools import partial
from pathlib import Path

import pandas as pd
from rich.console import Console

from ascendra.harness.config import RunConfig
from ascendra.harness.executors import run_each
from ascendra.harness.progress import new_progress
from ascendra.harness.reproduce.store import point_result
from ascendra.harness.store import PointStore


def missing(configs: Sequence[RunConfig], store: PointStore) -> list[RunConfig]:
    """Distinct configs not yet in the store, in first-seen order."""
    seen: dict[str, RunConfig] = {}
    for config in configs:
        if config.key() not in seen and not store.has(config):
            seen[config.key()] = config
    return list(seen.values())


def run_points(
    configs: Sequence[RunConfig],
    store: PointStore,
    executor: Executor,
    console: Console,
    description: str,
    data_dir: Path | None = None,
    quiet: bool = False,
) -> int:
    """Compute every config the store lacks on ``executor``; returns how many were computed."""
    todo = missing(configs, store)
    if not todo:
        return 0
    if getattr(executor, "width", 1) > 1:
        # Longest runs first (more requests, then higher rates) so the pool's tail is short.
        todo.sort(key=lambda c: (c.workload.num_requests, c.rate), reverse=True)
    with new_progress(console, quiet) as progress:
        task = progress.add_task(description, total=len(todo))

        def save(config: RunConfig, result: tuple[pd.DataFrame, dict[str, object]]) -> None:
            store.save(config, *result)
            progress.advance(task)

        run_each(executor, partial(point_result, data_dir=data_dir), ((c, c) for c in todo), save)
    return len(todo)
