"""`ascbench sweep` and `ascbench capacity`: runs over request rates, on the simulator or a live backend."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from ascendra.harness.cli.app import JSON_OPTION, app, print_json, run_progress, stderr, stdout
from ascendra.harness.cli.executor_options import ExecutorKind, RayAddress, executor_options, jobs_option
from ascendra.harness.cli.run_options import run_options
from ascendra.harness.config import RunConfig
from ascendra.harness.executors import ExecutorOptions
from ascendra.metrics import ATTAINMENT_KEYS

RATES_HELP = (
    "Request rates (QPS): a list 18,20,22 or a range start:stop:step (stop included); finite, positive, "
    "a repeated rate runs once."
)
OUT_HELP = (
    "Output folder: summary.csv (one row per rate, with its records file), per-point records (Parquet) and "
    "configs; reruns resume. \\[default: none, nothing written]"
)

SEEDS_HELP = (
    "Workload seeds: a range 1-5 or a list 1,3,5. Several seeds run each rate once per seed (in OUT/seed-<n>/) "
    "and report the mean with a 95% Student-t interval. \\[default: --seed]"
)

SUMMARY_COLUMNS = [
    ("rate", "QPS"),
    ("seed", "seed"),
    ("seeds", "seeds"),
    ("attainment", "attained"),
    ("attainment_ci_low", "CI low"),
    ("attainment_ci_high", "CI high"),
    ("attainment_strict_p99", "p99-strict"),
    ("ttft_p50", "TTFT p50"),
    ("ttft_p99", "TTFT p99"),
    ("req_mean_tbt_p50", "TBT mean p50"),
    ("tbt_p99", "TBT p99"),
    ("throughput_rps", "req/s"),
    ("offloaded", "offloaded"),
    ("preemptions", "preempts"),
    ("status", "status"),
]

FLOOR_HELP = (
    "Stop raising the rate once two consecutive rates attain less than this share; the higher rates are rows with "
    "status skipped. 0 runs every rate."
)


def _seed_list(config: RunConfig, seeds: str | None) -> list[int]:
    from ascendra.harness.sweep import parse_seeds

    return parse_seeds(seeds) if seeds is not None else [config.workload.seed]


def _sweep(
    config: RunConfig,
    rates: str,
    seeds: list[int],
    out: Path | None,
    data_dir: Path | None,
    floor: float,
    quiet: bool,
    where: ExecutorOptions,
):
    from ascendra.harness.executors import open_executor
    from ascendra.harness.sweep import parse_rates, run_seeds

    rate_list = parse_rates(rates)
    with open_executor(where) as pool, run_progress(f"{config.label} sweep", len(rate_list) * len(seeds), quiet) as bar:
        return run_seeds(config, seeds, rate_list, out, data_dir, bar.point, bar.requests, floor, pool)


def _ci(result: dict[str, object], prefix: str = "") -> str:
    """`` [low, high]`` of a several-seed capacity, empty otherwise."""
    low, high = result.get(f"{prefix}ci_low"), result.get(f"{prefix}ci_high")
    return "" if low is None or high is None else f" [95% CI {low:.2f}, {high:.2f}]"


def window_note(config: RunConfig) -> str | None:
    """The sentence that states a warm-up or cool-down (None without one: every request counts)."""
    slo = config.slo
    if slo.warmup == slo.cooldown == "0":
        return None
    return (
        f"warm-up {slo.warmup} and cool-down {slo.cooldown} excluded from attainment and latency statistics "
        "(counts and throughput cover the whole run)"
    )


def _cell(value: object) -> str:
    """Three significant digits; whole numbers (rates, counts) without decimals."""
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
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
    seeds: Annotated[str | None, typer.Option(help=SEEDS_HELP, show_default=False)] = None,
    saturation_floor: Annotated[float, typer.Option(help=FLOOR_HELP)] = 0.5,
    out: Annotated[Path | None, typer.Option(help=OUT_HELP)] = None,
    executor: ExecutorKind = "local",
    jobs: Annotated[int | None, jobs_option("1, in this process, with --executor local; every CPU with ray")] = None,
    ray_address: RayAddress = None,
    json_output: bool = JSON_OPTION,
) -> None:
    """Run the system at each rate on the chosen backend (the simulator by default) and report SLO attainment,
    latency percentiles and throughput."""
    from ascendra.harness.capacity import seed_summary
    from ascendra.harness.sweep import aggregate_seeds, measured, seeds_text
    from ascendra.metrics import capacity_from_sweep

    where = executor_options(executor, jobs, ray_address, config)
    seed_list = _seed_list(config, seeds)
    table = _sweep(config, rates, seed_list, out, data_dir, saturation_floor, json_output, where)
    ran = measured(table)
    if "send_lag_p99" in table:  # backend openai: did the client keep up with each rate?
        from ascendra.harness.loadgen import behind_schedule

        for rate, lag in zip(ran["rate"], ran["send_lag_p99"], strict=True):
            if (warning := behind_schedule(float(lag), float(rate))) is not None:
                stderr.print(warning)
    if len(seed_list) == 1:
        result = capacity_from_sweep(ran["rate"].tolist(), ran["attainment"].tolist())
        capacity: dict[str, object] = {"capacity_qps": result.capacity, "status": result.status}
        aggregate = None
    else:
        parts = [part for _, part in ran.groupby("seed", sort=True)]
        capacity = seed_summary([capacity_from_sweep(p["rate"].tolist(), p["attainment"].tolist()) for p in parts])
        aggregate = aggregate_seeds(table, [key for key, _ in SUMMARY_COLUMNS])
    if json_output:
        rows = table.to_dict(orient="records")
        extra = {} if aggregate is None else {"seeds": seed_list, "aggregate": aggregate.to_dict(orient="records")}
        print_json({"system": config.label, **capacity, "rows": rows, **extra})
        return
    c = config.cluster
    title = f"{config.label} on {config.workload.name} ({c.model}, {c.instances}x {c.gpu})"
    print_summary_table(title, table)
    if aggregate is not None:
        print_summary_table(f"{title}, mean over seeds {seeds_text(seed_list)}", aggregate)
    value = capacity["capacity_qps"]
    shown = "below the swept rates" if value is None else f"{value:.2f} QPS{_ci(capacity)}"
    stdout.print(f"capacity at 90% attainment (paper metric): {shown} ({capacity['status']})")
    if (note := window_note(config)) is not None:
        stdout.print(note)
    if (skipped := len(table) - len(ran)) > 0:
        stdout.print(f"{skipped} point(s) skipped: two consecutive rates attained less than {saturation_floor:.0%}")
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
    refine: Annotated[
        bool,
        typer.Option(
            help="After the grid, bisect the bracket around the target down to --tol, so the capacity does not "
            "depend on which rates were swept; both values are reported."
        ),
    ] = False,
    tol: Annotated[float, typer.Option(help="Bisection tolerance in QPS (--search, --refine), positive.")] = 0.1,
    seeds: Annotated[str | None, typer.Option(help=SEEDS_HELP, show_default=False)] = None,
    executor: ExecutorKind = "local",
    jobs: Annotated[
        int | None, jobs_option("1, in this process, with --executor local; every CPU with ray; grid points only")
    ] = None,
    ray_address: RayAddress = None,
    json_output: bool = JSON_OPTION,
) -> None:
    """The highest rate whose SLO attainment stays at or above the target (goodput capacity)."""
    from ascendra.harness.capacity import capacity_of
    from ascendra.harness.executors import open_executor
    from ascendra.harness.sweep import parse_rates

    where = executor_options(executor, jobs, ray_address, config)
    rate_list = parse_rates(rates)
    seed_list = _seed_list(config, seeds)
    # A bisection's step count is not known up front.
    points = None if search or refine else len(rate_list) * len(seed_list)
    with open_executor(where) as pool, run_progress(f"{config.label} capacity", points, json_output) as bar:
        result = capacity_of(
            config,
            rate_list,
            out,
            data_dir,
            target,
            slo_metric,
            search,
            tol,
            bar.point,
            bar.requests,
            seeds=seed_list,
            refine=refine,
            executor=pool,
        )
    if json_output:
        print_json(result)
        return
    value = result["capacity_qps"]
    shown = "none in range" if value is None else f"{value:.2f} QPS{_ci(result)}"
    from ascendra.harness.sweep import seeds_text

    over = f", mean over seeds {seeds_text(seed_list)}" if len(seed_list) > 1 else ""
    stdout.print(
        f"{config.label}: capacity {shown} ({result['status']}, {slo_metric} attainment >= {target:.0%}{over})"
    )
    if refine:
        fine = result["refined_capacity_qps"]
        shown = "none in range" if fine is None else f"{fine:.2f} QPS{_ci(result, 'refined_')}"
        stdout.print(f"{config.label}: refined by bisection to {tol:g} QPS: {shown}")
    if (note := window_note(config)) is not None:
        stdout.print(note)
