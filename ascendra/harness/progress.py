"""The one progress bar of long runs (sweep and capacity points, a simulated run's requests, reproduce, profile):
on stderr, cleared when done, and absent when stderr is not a terminal (logs and pipes get no bar characters)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def new_progress(console: Console, quiet: bool = False) -> Progress:
    """A transient progress display on ``console``; disabled when ``quiet`` or the console is not a terminal."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=console, disable=quiet or not console.is_terminal, transient=True)
