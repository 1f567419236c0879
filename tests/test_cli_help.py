"""Every command's --help renders, and help texts keep their bracketed notes: rich markup would otherwise
swallow a "[default: ...]" written in a help string and leave "Cap on requests in flight ." behind."""

from __future__ import annotations

import re
from typing import Any

import typer
from typer.testing import CliRunner

from ascendra.harness.cli.main import app


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, command) for every command below ``group`` (typer's click command objects)."""
    found = []
    for name, command in group.commands.items():
        found.append(((*prefix, name), command))
        if hasattr(command, "commands"):
            found += _commands(command, (*prefix, name))
    return found


def _flat(text: str) -> str:
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_every_help_note_in_brackets_is_shown() -> None:
    commands = _commands(typer.main.get_command(app))
    assert len(commands) > 15
    checked = 0
    for path, command in commands:
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        shown = _flat(result.output)
        for param in command.params:
            help_text = getattr(param, "help", None) or ""
            for note in re.findall(r"\\?\[default:[^\]]*\]", help_text):
                assert _flat(note.replace("\\[", "[")) in shown, (path, param.name, note)
                checked += 1
    assert checked > 10


def test_every_option_says_what_it_takes() -> None:
    """One line of help per option; flags show no ``<bool>`` type; lists name every choice."""
    for path, command in _commands(typer.main.get_command(app)):
        for param in command.params:
            assert (getattr(param, "help", None) or "").strip(), (path, param.name)
    sweep = _flat(CliRunner().invoke(app, ["sweep", "--help"], env={"COLUMNS": "200"}).output)
    assert "<bool>" not in sweep and "Run the system at each rate on the chosen backend" in sweep
    assert "Request rates (QPS): a list 18,20,22" in sweep and "Output folder: summary.csv" in sweep
    assert "poisson, poisson-truncated, gamma, fixed, trace" in sweep
    capacity = _flat(CliRunner().invoke(app, ["capacity", "--help"], env={"COLUMNS": "200"}).output)
    assert "one of: paper, strict, strict-p99, distserve, sarathi" in capacity
    assert "Attainment target, a share in (0, 1]" in capacity and "Bisection tolerance" in capacity
