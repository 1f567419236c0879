"""`ascbench reproduce ID|all`: run the paper's experiments (specs in experiments/) and write results/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ascendra.errors import UserError
from ascendra.harness.cli.app import JSON_OPTION, app, print_json, stderr, stdout


@app.command()
def reproduce(
    experiment: Annotated[str, typer.Argument(help="An experiment id (see experiments/*.toml) or 'all'.")],
    quick: Annotated[bool, typer.Option(help="Fewer rates and requests; written under OUT/quick/.")] = False,
    jobs: Annotated[int | None, typer.Option(help="Worker processes (default: one per core).")] = None,
    out: Annotated[Path, typer.Option(help="Results folder; reruns skip every finished point.")] = Path("results"),
    specs: Annotated[Path | None, typer.Option(help="Folder of experiment specs (default: experiments/).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder holding the trace files.")] = None,
    json_output: bool = JSON_OPTION,
) -> None:
    """Run an experiment's grid in parallel (live experiments, on real engines, one point at a time and only
    when named, not with 'all'), then write its table, figure and configs."""
    from ascendra.harness.reproduce import load_specs, result_root, run_experiment, write_readme
    from ascendra.harness.reproduce.runner import default_jobs

    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    if specs is not None and not specs.is_dir():
        raise UserError(f"--specs {specs} is not a folder")
    known = load_specs(specs)
    if not known:
        raise UserError(f"no experiment specs (*.toml) in {specs if specs is not None else 'experiments/'}")
    if experiment != "all" and experiment not in known:
        raise UserError(f"unknown experiment {experiment!r}; known: {', '.join(known)} or all")
    chosen = [s for s in known.values() if not s.live] if experiment == "all" else [known[experiment]]
    if not chosen:
        raise UserError("every experiment in the specs is live: run each by name, not with 'all'")
    workers = jobs or default_jobs()
    outcomes = []
    for spec in chosen:
        outcome = run_experiment(spec, out, quick, workers, stderr, data_dir, quiet=json_output)
        outcomes.append(outcome)
        if not json_output:
            stdout.print(
                f"{spec.id}: {outcome.points} points ({outcome.computed} computed) in {outcome.seconds:.1f} s "
                f"-> {outcome.folder}"
            )
    readme = write_readme(result_root(out, quick), list(known.values()), quick)
    if json_output:
        rows = [
            {"id": o.id, "folder": str(o.folder), "points": o.points, "computed": o.computed, "seconds": o.seconds}
            for o in outcomes
        ]
        print_json({"experiments": rows, "readme": str(readme)})
    else:
        stdout.print(f"summary in {readme}")
