"""The shared typer app, its error handling, and the one way commands print numbers (table or JSON)."""

from __future__ import annotations

import json
import math
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from ascendra.errors import UserError

stdout = Console()
stderr = Console(stderr=True)


class _UserErrorGroup(TyperGroup):
    """Turns a UserError raised anywhere below into one line on stderr and exit code 2."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            typer.echo(f"ascbench: error: {exc}", err=True)
            raise typer.Exit(2) from None


def new_app(help_text: str) -> typer.Typer:
    """A typer (sub-)app with the project's conventions."""
    return typer.Typer(cls=_UserErrorGroup, help=help_text, no_args_is_help=True, add_completion=False)


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
