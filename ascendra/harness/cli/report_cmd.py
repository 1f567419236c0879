"""`ascbench report DIR`: one self-contained HTML page of a sweep folder or an experiment's results folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ascendra.harness.cli.app import JSON_OPTION, app, print_json, stdout


@app.command()
def report(
    folder: Annotated[
        Path, typer.Argument(help="A sweep folder (sweep --out) or an experiment's results folder (results/<id>/).")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="The HTML file to write; an existing file is overwritten only if it is an ascbench report. "
            "\\[default: FOLDER/report.html]",
            show_default=False,
        ),
    ] = None,
    json_output: bool = JSON_OPTION,
) -> None:
    """Write one HTML page holding the folder's figures (embedded), tables, configs, seeds and package versions,
    to share the results as a single file."""
    from ascendra.harness.report import write_report

    path = write_report(folder, out)
    if json_output:
        print_json({"report": str(path)})
    else:
        stdout.print(f"report in {path}")
