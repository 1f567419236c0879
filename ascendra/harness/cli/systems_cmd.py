"""`ascbench systems`: the registered serving systems, where they run, and their knobs."""

from __future__ import annotations

import dataclasses
import typing

from ascendra.harness.cli.app import JSON_OPTION, app, print_json, stdout
from ascendra.harness.registry import systems as registered


def _describe() -> list[dict[str, object]]:
    out = []
    for system in registered().values():
        hints = typing.get_type_hints(system.config)
        knobs = [
            {
                "name": f.name,
                "option": "--" + f.name.replace("_", "-"),
                "type": str(hints[f.name]).replace("<class '", "").replace("'>", ""),
                "default": f.default,
                "choices": list(f.metadata.get("choices") or []) or None,
                "help": f.metadata["help"].replace("\\[", "["),
            }
            for f in dataclasses.fields(system.config)
        ]
        module = system.build.__module__
        out.append(
            {"name": system.name, "summary": system.summary, "targets": list(system.targets), "module": module}
            | {"knobs": knobs}
        )
    return out


@app.command("systems")
def systems(json_output: bool = JSON_OPTION) -> None:
    """List the registered systems (in-tree and plugins), where each runs, and its knobs with their defaults."""
    described = _describe()
    if json_output:
        print_json({"systems": described})
        return
    from rich.table import Table

    for system in described:
        view = Table(title=f"{system['name']}: {system['summary']}", title_justify="left")
        view.add_column("option")
        view.add_column("default", justify="right")
        view.add_column("help")
        for knob in system["knobs"]:  # type: ignore[union-attr]
            view.add_row(knob["option"], repr(knob["default"]), knob["help"].replace("[", "\\["))
        stdout.print(view)
        stdout.print(f"  runs on: {', '.join(system['targets'])}; declared in {system['module']}\n")  # type: ignore[arg-type]
