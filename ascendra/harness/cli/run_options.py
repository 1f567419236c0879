"""CLI options generated from the run config's parts and from every registered system's knobs.

A knob is declared once, in its system's config dataclass (default, help, choices); ``run_options`` turns each
field into an option, so a new system's knobs appear in ``sweep``, ``capacity`` and ``serve`` without an edit
here. A knob shared by several systems (``--max-num-seqs``) is one option. Knob options default to "not given":
the chosen system's own default applies, and a knob the chosen system lacks is one clear error.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

import typer

from ascendra.harness.config import FLAT, PARTS, RunConfig
from ascendra.harness.registry import knob_types, systems

_PANELS = {"workload": "Workload and SLO", "slo": "Workload and SLO", "cluster": "Cluster", "backend": "Backend"}
_DATA_DIR = (
    Path | None,
    None,
    typer.Option(help="Folder with trace files (default: $ASCENDRA_DATA_DIR or ../shared/data)."),
)


def _escape(value: object) -> str:
    return str(value).replace("[", "\\[")


def _part_options(skip: Iterable[str], defaults: dict[str, Any]) -> dict[str, tuple[Any, Any, Any]]:
    """(type, default, typer option) of every flat part field, by flat name (``defaults`` overrides some)."""
    out = {}
    for flat, (part, attr) in FLAT.items():
        if flat in skip:
            continue
        f = next(f for f in dataclasses.fields(PARTS[part]) if f.name == attr)
        kind = typing.get_type_hints(PARTS[part])[attr]
        option = typer.Option(help=f.metadata["help"], rich_help_panel=_PANELS[part])
        out[flat] = (kind, defaults.get(flat, f.default), option)
    return out


def _knob_options() -> dict[str, tuple[Any, Any, Any]]:
    """One option per knob name across the registered systems, defaulting to None (the system's default)."""
    owners: dict[str, list[tuple[str, dataclasses.Field[Any]]]] = {}
    kinds: dict[str, Any] = {}
    for system in systems().values():
        hints = typing.get_type_hints(system.config)
        for f in dataclasses.fields(system.config):
            owners.setdefault(f.name, []).append((system.name, f))
            kinds.setdefault(f.name, hints[f.name])
    out = {}
    for name, fields in owners.items():
        names = [s for s, _ in fields]
        defaults = {s: f.default for s, f in fields}
        help_text = fields[0][1].metadata["help"]
        if "[default:" not in help_text.replace("\\", ""):
            if len(set(map(repr, defaults.values()))) == 1:
                help_text += f" \\[default: {_escape(fields[0][1].default)}]"
            else:
                help_text += " \\[default: " + ", ".join(f"{_escape(v)} ({s})" for s, v in defaults.items()) + "]"
        choices = fields[0][1].metadata.get("choices")
        if choices:
            help_text += f" One of: {', '.join(choices)}."
        panel = f"System: {names[0]}" if len(names) == 1 else "Systems: " + ", ".join(names)
        kind = kinds[name]
        optional = kind if type(None) in typing.get_args(kind) else kind | None
        out[name] = (optional, None, typer.Option(help=help_text, rich_help_panel=panel, show_default=False))
    return out


def _system_option() -> tuple[Any, Any, Any]:
    known = ", ".join(systems())
    return (str, "ascendra", typer.Option(help=f"Serving system: {known}.", rich_help_panel="System"))


def _decorate(
    command: Callable[..., Any], options: dict[str, tuple[Any, Any, Any]], build: Callable[[dict[str, Any]], Any]
) -> Callable[..., Any]:
    # eval_str: the command's own annotations are strings (postponed evaluation); left so, typer would read them
    # from the wrapper's globals and drop their Annotated help.
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name not in ("config", "data_dir")]
    wants_data_dir = "data_dir" in signature.parameters
    extra = {"data_dir": _DATA_DIR} if wants_data_dir else {}
    params = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, info])
        for name, (kind, default, info) in {**options, **extra}.items()
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in options}
        if wants_data_dir:
            kwargs["data_dir"] = kwargs.pop("data_dir")
        return command(config=build(given), **kwargs)

    wrapper.__signature__ = inspect.Signature(own + params)  # type: ignore[attr-defined]
    return wrapper


def _config(given: dict[str, Any], fixed: dict[str, Any]) -> RunConfig:
    """A RunConfig from the options given (knobs left at None take the system's defaults)."""
    knobs = knob_types()
    values = {k: v for k, v in given.items() if not (k in knobs and v is None)}
    return RunConfig.from_flat({**values, **fixed})


def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a command taking ``config: RunConfig`` and ``data_dir: Path | None`` with every run option (the
    rate excluded: commands take rates their own way)."""
    options = {"system": _system_option(), **_part_options(("rate",), {}), **_knob_options()}
    return _decorate(command, options, lambda given: _config(given, {}))


def system_options(
    defaults: dict[str, Any], fixed: dict[str, Any]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Like ``run_options`` with only the system, its knobs and the flat options named in ``defaults`` (with
    those defaults); ``fixed`` sets other flat options without offering them."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        skip = [k for k in FLAT if k not in defaults]
        options = {"system": _system_option(), **_part_options(skip, defaults), **_knob_options()}
        return _decorate(command, options, lambda given: _config(given, fixed))

    return decorate
