"""The system registry: every serving system ascbench can run, found in one place.

In-tree systems are modules with a ``SYSTEM`` attribute: Ascendra's (``ascendra.ascendra_system``) and every
module of the ``baselines`` package, so a new baseline is one file there. Systems outside the project register
through the ``ascbench.systems`` entry-point group (each entry point names a ``System`` object), so a researcher's
own package is compared without editing the project. Names are unique; an unknown name is a ``UserError``
listing the known ones.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import fields
from functools import cache
from importlib.metadata import entry_points

from ascendra.errors import UserError
from ascendra.system import System

ENTRY_POINT_GROUP = "ascbench.systems"
_IN_TREE = ("ascendra.ascendra_system",)


def _in_tree() -> list[System]:
    import baselines

    names = list(_IN_TREE)
    names += [f"baselines.{m.name}" for m in pkgutil.iter_modules(baselines.__path__) if not m.ispkg]
    found = []
    for name in names:
        system = getattr(importlib.import_module(name), "SYSTEM", None)
        if isinstance(system, System):
            found.append(system)
    return found


def _plugins() -> list[System]:
    found = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            system = point.load()
        except Exception as exc:  # a broken plugin must not take the whole CLI down
            raise UserError(f"system plugin {point.name!r} ({point.value}) failed to load: {exc}") from None
        if not isinstance(system, System):
            raise UserError(f"system plugin {point.name!r} ({point.value}) is not an ascendra.system.System")
        found.append(system)
    return found


@cache
def systems() -> dict[str, System]:
    """Every registered system by name: in-tree first (Ascendra, then the baselines), then plugins."""
    out: dict[str, System] = {}
    for system in _in_tree() + _plugins():
        if system.name in out:
            raise UserError(f"two systems are named {system.name!r}")
        out[system.name] = system
    _check_knobs(out.values())
    return out


def get_system(name: str) -> System:
    try:
        return systems()[name]
    except KeyError:
        raise UserError(f"unknown system {name!r}; known systems: {', '.join(systems())}") from None


def knob_types(registered: dict[str, System] | None = None) -> dict[str, type]:
    """Each knob name across all systems and its type (the CLI has one option per name)."""
    out: dict[str, type] = {}
    for system in (registered or systems()).values():
        for f in fields(system.config):
            out.setdefault(f.name, f.type)  # type: ignore[arg-type]
    return out


def _check_knobs(registered: object) -> None:
    """Two systems may share a knob name (``max_num_seqs``) only with the same type: it is one CLI option."""
    seen: dict[str, tuple[str, object]] = {}
    for system in registered:  # type: ignore[attr-defined]
        for f in fields(system.config):
            if f.name in seen and seen[f.name][1] != f.type:
                other = seen[f.name][0]
                raise UserError(
                    f"knob {f.name!r} has type {f.type} in system {system.name} but {seen[f.name][1]} in {other}"
                )
            seen.setdefault(f.name, (system.name, f.type))
