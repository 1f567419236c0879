"""The options that choose where a command's points run: ``--executor``, ``--ray-address`` and ``--jobs``
(shared by ``sweep``, ``capacity`` and ``reproduce``)."""

from __future__ import annotations

from typing import Annotated

import typer

from ascendra.errors import UserError
from ascendra.harness.config import RunConfig
from ascendra.harness.executors import EXECUTORS, ExecutorOptions

_PANEL = "Execution"

ExecutorKind = Annotated[
    str,
    typer.Option(
        "--executor",
        help=f"Where the points run: {' or '.join(EXECUTORS)} (local processes; Ray tasks of one CPU each). "
        "Tables and the point store do not depend on it.",
        rich_help_panel=_PANEL,
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        help="Ray cluster to join with --executor ray (head:6379, or auto for the running one). "
        "\\[default: $RAY_ADDRESS, else a local Ray started for the command]",
        show_default=False,
        rich_help_panel=_PANEL,
    ),
]


def jobs_option(default_text: str) -> typer.models.OptionInfo:
    """`--jobs`, with what its default means for the command."""
    return typer.Option(
        help=f"Points run at once, at least 1. \\[default: {default_text}]", show_default=False, rich_help_panel=_PANEL
    )


def executor_options(
    kind: str, jobs: int | None, ray_address: str | None, config: RunConfig | None = None
) -> ExecutorOptions:
    """The validated choice; points of a live backend (measured on the wall clock) never run side by side."""
    options = ExecutorOptions(kind, jobs, ray_address)
    if config is not None and options.parallel and config.backend.name != "sim":
        raise UserError(
            f"--backend {config.backend.name} runs one point at a time (a live run is timed on the wall clock): "
            "drop --executor ray and --jobs"
        )
    return options
