"""`ascbench sweep` and `ascbench capacity`: runs over request rates, on the simulator or a live backend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ascendra.harness.cli.app import JSON_OPTION, app, print_json, run_progress, stderr, stdout
from ascendra.harness.cli.run_options import run_options
from ascendra.harness.config import RunConfig
from ascendra.metrics import ATTAINMENT_KEYS

RATES_HELP = (
    "Request rates (QPS): a list 18,20,22 or a range start:stop:step (stop included); finite, positive, "
    "a repeated rate runs once."
)
OUT_HELP = (
    "Output folder: summary.csv (one row per rate, with its records file), per-point records (Parquet) and "
    "configs; reruns resume. \\[default: none, nothing written]"
)

SUMMARY_COLUMNS = [
    ("rate", "QPS"),
    ("attainment", "attained"),
    ("attainment_strict_p99", "p99-strict"),
    ("ttft_p50", "TTFT p50"),
    ("ttft_p99", "TTFT p99"),
    ("req_mean_tbt_p50", "TBT mean p50"),
    ("tbt_p99", "TBT p99"),
    ("throughput_rps", "req/s"),
    ("offloaded", "offloaded"),
    ("preemptions", "preempts"),
]


def _sweep(config: RunConfig, rates: str, out: Path | None, data_dir: Path | None, quiet: bool):
    from ascendra.harness.sweep import parse_rates, run_sweep

    rate_list = parse_rates(rates)
    with run_progress(f"{config.label} sweep", len(rate_list), quiet) as bar:
        table = run_sweep(config, rate_list, out, data_dir, bar.point, bar.requests)
    return table[table["rate"].isin(rate_list)]


def _cell(value: object) -> str:
    """Three significant digits; whole numbers (rates, counts) without decimals."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.3g}"
    return str(value)


def print_summary_table(title: str, table) -> None:
    from rich.table import Table

    view = Table(title=title)
    present = [(key, label) for key, label in SUMMARY_COLUMNS if key in table.columns]
    for _, label in present:
        view.add_column(label, justify="right", overflow="fold")  # a narrow terminal wraps digits, never cuts them
    for _, row in table.iterrows():
        view.add_row(*(_cell(row[key]) for key, _ in present))
    stdout.print(view)


@app.command()
@run_options
def sweep(
    config: RunConfig,
    data_dir: Path | None,
    rates: Annotated[str, typer.Option(help=RATES_HELP)] = "18:25:1",
    out: Annotated[Path | None, typer.Option(help=OUT_HELP)] = None,
    json_output: bool = JSON_OPTION,
) -> None:
    """Run the system at each rate on the chosen backend (the simulator by default) and report SLO attainment,
    latency percentiles and throughput."""
    from ascendra.metrics import capacity_from_sweep

    table = _sweep(config, rates, out, data_dir, quiet=json_output)
    if "send_lag_p99" in table:  # backend openai: did the client keep up with each rate?
        from ascendra.harness.loadgen import behind_schedule

        for rate, lag in zip(table["rate"], table["send_lag_p99"], strict=True):
            if (warning := behind_schedule(float(lag), float(rate))) is not None:
                stderr.print(warning)
    capacity = capacity_from_sweep(table["rate"].tolist(), table["attainment"].tolist())
    if json_output:
        rows = table.to_dict(orient="records")
        print_json({"system": config.label, "capacity_qps": capacity.capacity, "rows": rows})
        return
    c = config.cluster
    print_summary_table(f"{config.label} on {config.workload.name} ({c.model}, {c.instances}x {c.gpu})", table)
    shown = "below the swept rates" if capacity.capacity is None else f"{capacity.capacity:.2f} QPS"
    stdout.print(f"capacity at 90% attainment (paper metric): {shown} ({capacity.status})")
    if out is not None:
        stdout.print(f"results in {out}")


SLO_METRIC_HELP = (
    f"Attainment definition, one of: {', '.join(ATTAINMENT_KEYS)} (see the README; sarathi needs --backend sim "
    "or engine)."
)


@app.command()
@run_options
def capacity(
    config: RunConfig,
    data_dir: Path | None,
    rates: Annotated[str, typer.Option(help=RATES_HELP)] = "18:25:1",
    out: Annotated[Path | None, typer.Option(help=OUT_HELP)] = None,
    target: Annotated[float, typer.Option(help="Attainment target, a share in (0, 1].")] = 0.9,
    slo_metric: Annotated[str, typer.Option(help=SLO_METRIC_HELP)] = "paper",
    search: Annotated[
        bool, typer.Option(help="Bisect between the lowest and highest rate instead of running every rate.")
    ] = False,
    tol: Annotated[float, typer.Option(help="Bisection tolerance in QPS (with --search), positive.")] = 0.1,
    json_output: bool = JSON_OPTION,
) -> None:
    """The highest rate whose SLO attainment stays at or above the target (goodput capacity)."""
    from ascendra.harness.capacity import capacity_of
    from ascendra.harness.sweep import parse_rates

    rate_list = parse_rates(rates)
    points = None if search else len(rate_list)  # a bisection's step count is not known up front
    with run_progress(f"{config.label} capacity", points, json_output) as bar:
        result = capacity_of(config, rate_list, out, data_dir, target, slo_metric, search, tol, bar.point, bar.requests)
    if json_output:
        print_json(result)
        return
    value = result["capacity_qps"]
    shown = "none in range" if value is None else f"{value:.2f} QPS"
    stdout.print(f"{config.label}: capacity {shown} ({result['status']}, {slo_metric} attainment >= {target:.0%})")
