"""The shared typer app, its error handling, and the one way commands print numbers (table or JSON)."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
import typer
from rich.console import Console
from rich.progress import Progress
from typer.core import TyperCommand, TyperGroup, TyperOption

from ascendra.errors import UserError
from ascendra.harness.progress import new_progress

#: Width of stdout when it is not a terminal (a pipe, a file): wide enough that no table cell is ever cut.
PIPE_WIDTH = 10_000

stdout = Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)
stderr = Console(stderr=True)


class _UserErrorGroup(TyperGroup):
    """Turns a UserError raised anywhere below into one line on stderr and exit code 2."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            typer.echo(f"ascbench: error: {exc}", err=True)
            raise typer.Exit(2) from None


class _Command(TyperCommand):
    """Every command: float options must be finite (range checks stay with each option's owner), and flags show
    no ``<bool>`` type in the help."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        for param in self.params:
            value = ctx.params.get(param.name or "")
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"{param.opts[0]} must be a finite number, got {value}")
        return rest

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        for param in params:
            if isinstance(param, TyperOption) and param.is_flag:  # typer shows every option's type: not a flag's
                param.display_type_rich = _no_type  # type: ignore[method-assign]
        return params


def _no_type(ctx: click.Context) -> None:
    return None


class _App(typer.Typer):
    def command(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


def new_app(help_text: str) -> typer.Typer:
    """A typer (sub-)app with the project's conventions."""
    return _App(cls=_UserErrorGroup, help=help_text, no_args_is_help=True, add_completion=False)


app = new_app("ascbench: run and compare LLM serving policies under joint TTFT/TBT SLOs.")

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object to stdout instead of tables.")


def _clean(value: Any) -> Any:
    """JSON-safe values: NaN and infinities become null, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(obj: dict[str, Any]) -> None:
    """Print exactly one JSON object on stdout."""
    typer.echo(json.dumps(_clean(obj)))


class RunProgress:
    """Progress of a run over points: the points done, and the requests of the simulated point running."""

    def __init__(self, progress: Progress, label: str, points: int | None) -> None:
        self._progress = progress
        self._points = progress.add_task(label, total=points)
        self._requests = progress.add_task("requests", total=None, visible=False)

    def point(self, _rate: float) -> None:
        self._progress.advance(self._points)
        self._progress.reset(self._requests, total=None, visible=False)  # the next point's clock starts afresh

    def requests(self, done: int, total: int) -> None:
        self._progress.update(self._requests, completed=done, total=total, visible=done < total)


@contextmanager
def run_progress(label: str, points: int | None, quiet: bool) -> Iterator[RunProgress]:
    """A progress bar on stderr for a run of ``points`` points (None: not known up front); none when ``quiet``
    or stderr is not a terminal."""
    with new_progress(stderr, quiet) as progress:
        yield RunProgress(progress, label, points)
