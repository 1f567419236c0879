"""`ascbench metrics`: summarise a records Parquet file under an SLO, as a table or one JSON object."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from ascendra.harness.cli.app import JSON_OPTION, app, print_json, stdout


def _format(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return "n/a" if math.isnan(value) else str(value)
    return f"{value:.4g}"


@app.command("metrics")
def metrics(
    records: Annotated[Path, typer.Argument(help="Records Parquet file of a run (one row per arrived request).")],
    ttft_slo: Annotated[float, typer.Option("--ttft-slo", help="TTFT SLO in seconds.")],
    tbt_slo: Annotated[float, typer.Option("--tbt-slo", help="TBT SLO in seconds.")],
    ci: Annotated[
        bool, typer.Option("--ci", help="Add 95% bootstrap intervals of the TTFT and TBT percentiles.")
    ] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Summarise a run: counts, attainment under every definition, TTFT/TBT percentiles, throughput."""
    from rich.table import Table

    from ascendra.errors import UserError
    from ascendra.metrics import SLO, latencies, percentile_intervals, summarize
    from ascendra.records import read_records

    slo = SLO(ttft=ttft_slo, tbt=tbt_slo)
    if not records.is_file():
        raise UserError(f"records file not found: {records}")
    frame = read_records(records)
    summary = summarize(frame, slo)
    if ci:
        lat = latencies(frame)
        summary |= percentile_intervals("ttft", lat.requests["ttft"].to_numpy())
        summary |= percentile_intervals("tbt", lat.gaps)
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"{records.name}: TTFT SLO {slo.ttft:g} s, TBT SLO {slo.tbt:g} s (attainment = paper)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, _format(value))
    stdout.print(table)
