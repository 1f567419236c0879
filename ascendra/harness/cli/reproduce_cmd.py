"""`ascbench reproduce ID|all`: run the paper's experiments (specs in experiments/) and write results/."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from ascendra.errors import UserError
from ascendra.harness.cli.app import JSON_OPTION, app, print_json, stderr, stdout
from ascendra.harness.cli.executor_options import ExecutorKind, RayAddress, executor_options, jobs_option


@app.command()
def reproduce(
    experiment: Annotated[str, typer.Argument(help="An experiment id (see experiments/*.toml) or 'all'.")],
    quick: Annotated[bool, typer.Option(help="Fewer rates and requests; written under OUT/quick/.")] = False,
    jobs: Annotated[int | None, jobs_option("one per core; with ray, every CPU of the cluster")] = None,
    out: Annotated[Path, typer.Option(help="Results folder; reruns skip every finished point.")] = Path("results"),
    specs: Annotated[Path | None, typer.Option(help="Folder of experiment specs (default: experiments/).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder holding the trace files.")] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            help="Workload seeds replacing every grid's own: a range 1-5 or a list 1,3,5 (tables: means, 95% CIs)."
        ),
    ] = None,
    executor: ExecutorKind = "local",
    ray_address: RayAddress = None,
    json_output: bool = JSON_OPTION,
) -> None:
    """Run an experiment's grid in parallel (live experiments, on real engines, one point at a time and only
    when named, not with 'all'), then write its table, figure and configs."""
    from ascendra.harness.executors import default_jobs, open_executor
    from ascendra.harness.reproduce import load_specs, result_root, run_experiment, write_readme
    from ascendra.harness.sweep import parse_seeds

    where = executor_options(executor, jobs, ray_address)
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
    seed_list = parse_seeds(seeds) if seeds is not None else None
    outcomes = []
    # One pool (one Ray start) for every experiment; live experiments run their points here regardless.
    simulated = any(not s.live for s in chosen)
    with open_executor(where, workers) if simulated else nullcontext() as pool:
        for spec in chosen:
            outcome = run_experiment(
                spec, out, quick, workers, stderr, data_dir, quiet=json_output, seeds=seed_list, executor=pool
            )
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
