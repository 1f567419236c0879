"""`ascbench workloads`: list the workload names and describe what a workload's requests look like."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ascendra.errors import UserError
from ascendra.files import check_output_file
from ascendra.harness.cli.app import JSON_OPTION, app, new_app, print_json, stdout

workloads_app = new_app("Workloads: datasets, traces and synthetic lengths, with arrival processes.")
app.add_typer(workloads_app, name="workloads")


@workloads_app.command("list")
def list_command(json_output: bool = JSON_OPTION) -> None:
    """Show every workload name, its kind and what it is (synthetic ones with their parameter syntax)."""
    from rich.table import Table

    from workloads import list_workloads
    from workloads.arrivals import ARRIVALS

    rows = list_workloads()
    if json_output:
        print_json(
            {
                "workloads": [{"name": r.name, "kind": r.kind, "description": r.description} for r in rows],
                "arrivals": ARRIVALS,
            }
        )
        return
    table = Table(title="workloads (pass the name to --workload; synthetic: KIND:key=value,...)")
    table.add_column("name", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("description", overflow="fold")
    for row in rows:
        table.add_row(row.name, row.kind, row.description)
    stdout.print(table)
    arrivals = Table(title="arrival processes (--arrival)")
    arrivals.add_column("name", no_wrap=True)
    arrivals.add_column("description")
    for name, text in ARRIVALS.items():
        arrivals.add_row(name, text)
    stdout.print(arrivals)


def _check_plot_path(plot: Path, force: bool) -> None:
    check_output_file(plot, force)
    if plot.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise UserError(f"--plot must end in .png, .pdf or .svg, got {plot.name}")


@workloads_app.command("describe")
def describe_command(
    name: Annotated[str, typer.Argument(help="Workload name (see `ascbench workloads list`) or a trace file path.")],
    model: Annotated[str, typer.Option(help="Model whose tokenizer and maximum length apply.")] = "llama-3.1-8b",
    num_requests: Annotated[int, typer.Option(help="Requests to draw.")] = 2000,
    all_requests: Annotated[bool, typer.Option("--all", help="Take the whole pool or trace.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed (sampling and preprocessing).")] = 1,
    rate: Annotated[float | None, typer.Option(help="Mean request rate (QPS); omitted: all arrive at 0.")] = None,
    arrival: Annotated[str, typer.Option(help="Arrival process (see `workloads list`).")] = "poisson",
    cv: Annotated[float, typer.Option(help="Gamma arrivals' coefficient of variation.")] = 1.0,
    time_scale: Annotated[float, typer.Option(help="Trace replay: multiply every gap by this.")] = 1.0,
    data_dir: Annotated[Path | None, typer.Option(help="Folder holding the trace files.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a histogram of the lengths here (.png).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing --plot file.")] = False,
    json_output: bool = JSON_OPTION,
) -> None:
    """Summarise a workload: request count, prompt and output token statistics, trimmed requests."""
    from rich.table import Table

    from workloads import make_workload
    from workloads.stats import describe, lengths

    if plot is not None:
        _check_plot_path(plot, force)
    workload = make_workload(
        name,
        model=model,
        num_requests=None if all_requests else num_requests,
        rate=rate,
        arrival=arrival,
        cv=cv,
        time_scale=time_scale,
        seed=seed,
        data_dir=data_dir,
    )
    summary = describe(workload)
    summary.update({"model": model, "seed": seed, "source": workload.meta.get("source")})
    if plot is not None:
        from workloads.plot import plot_lengths

        plot_lengths(*lengths(workload), f"{name}: {len(workload.requests)} requests, {model} tokens", plot)
        summary["plot"] = str(plot)
    if json_output:
        print_json(summary)
        return
    table = Table(title=f"{name} ({summary['count']} requests, {model} tokens, seed {seed})")
    table.add_column("tokens")
    for stat in ("mean", "median", "p90", "p99", "max"):
        table.add_column(stat, justify="right")
    for side in ("prompt_tokens", "output_tokens"):
        table.add_row(side.split("_")[0], *(f"{value:.1f}" for value in summary[side].values()))
    stdout.print(table)
    stdout.print(f"requests trimmed to fit the model's {workload.meta['max_model_len']} tokens: {workload.num_trimmed}")
    if rate is not None or arrival == "trace":
        stdout.print(f"realised rate: {summary['realised_rate']:.3f} req/s over {summary['duration_s']:.1f} s")
    if plot is not None:
        stdout.print(f"histogram written to {plot}")
