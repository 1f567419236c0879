"""Runs the missing points of a spec in parallel across processes, with a progress bar on stderr.

Workers write each finished point themselves (atomically), so whatever finished before a Ctrl-C or a kill is
kept and skipped on the next run; the parent only schedules and reports.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from rich.console import Console

from ascendra.harness.config import RunConfig
from ascendra.harness.progress import new_progress
from ascendra.harness.reproduce.store import compute_point
from ascendra.harness.store import PointStore


def default_jobs() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


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
    jobs: int,
    console: Console,
    description: str,
    data_dir: Path | None = None,
    quiet: bool = False,
) -> int:
    """Compute every config the store lacks; returns how many were computed."""
    todo = missing(configs, store)
    if not todo:
        return 0
    with new_progress(console, quiet) as progress:
        task = progress.add_task(description, total=len(todo))
        if jobs <= 1:
            for config in todo:
                compute_point(config, store.root, data_dir)
                progress.advance(task)
            return len(todo)
        # Longest runs first (more requests, then higher rates) so the pool's tail is short.
        todo.sort(key=lambda c: (c.workload.num_requests, c.rate), reverse=True)
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            pending = {pool.submit(compute_point, c, store.root, data_dir) for c in todo}
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()
                        progress.advance(task)
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
    return len(todo)
