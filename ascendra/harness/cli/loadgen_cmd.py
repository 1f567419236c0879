"""`ascbench loadgen`: replay a workload against any OpenAI-compatible server and summarise its latencies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ascendra.harness.cli.app import JSON_OPTION, app, print_json, stderr, stdout
from workloads.arrivals import ARRIVALS


@app.command()
def loadgen(
    endpoint: Annotated[str, typer.Option(help="Server base URL, e.g. http://127.0.0.1:8000.")],
    workload: Annotated[str, typer.Option(help="Workload name or trace path (see `workloads list`).")] = "sharegpt",
    model: Annotated[str, typer.Option(help="Model whose token counts the workload uses.")] = "llama-3.1-8b",
    served_model: Annotated[
        str | None, typer.Option(help="Model name sent in requests \\[default: the server's default].")
    ] = None,
    rate: Annotated[float, typer.Option(help="Request rate (QPS).")] = 1.0,
    num_requests: Annotated[int, typer.Option(help="Requests to send.")] = 100,
    arrival: Annotated[str, typer.Option(help=f"Arrival process: {', '.join(ARRIVALS)}.")] = "poisson",
    cv: Annotated[float, typer.Option(help="Burstiness of gamma arrivals.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the workload and arrivals.")] = 1,
    max_concurrency: Annotated[int | None, typer.Option(help="Cap on requests in flight \\[default: none].")] = None,
    request_timeout: Annotated[float, typer.Option(help="Per-request timeout, s.")] = 300.0,
    ttft_slo: Annotated[float, typer.Option(help="TTFT SLO, s.")] = 1.0,
    tbt_slo: Annotated[float, typer.Option(help="TBT SLO, s.")] = 0.15,
    records: Annotated[
        Path | None, typer.Option(help="Write the per-request records here (Parquet). \\[default: not written]")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Folder with trace files \\[default: $ASCENDRA_DATA_DIR or ../shared/data].")
    ] = None,
    max_failure_rate: Annotated[
        float, typer.Option(help="Exit with code 1 when more than this share of requests fails, in [0, 1].")
    ] = 0.01,
    json_output: bool = JSON_OPTION,
) -> None:
    """Send each request at its arrival time (streaming /v1/completions, token-id prompts, ignore_eos), stamp every
    token, and report SLO attainment, TTFT, TBT and throughput from the same records as simulated runs. Exits
    with code 1 when more requests failed than --max-failure-rate allows (the summary counts them)."""
    from ascendra.errors import UserError
    from ascendra.harness.loadgen import behind_schedule, run_openai
    from ascendra.harness.workload import check_run_fits
    from ascendra.metrics import SLO, summarize
    from ascendra.records import records_frame, write_records
    from workloads import make_workload

    if not rate > 0 or num_requests < 1:
        raise UserError("--rate and --num-requests must be positive")
    if not 0 <= max_failure_rate <= 1:
        raise UserError(f"--max-failure-rate must be in [0, 1], got {max_failure_rate}")
    check_run_fits(num_requests)
    specs = make_workload(
        workload,
        model=model,
        num_requests=num_requests,
        rate=rate,
        arrival=arrival,
        cv=cv,
        seed=seed,
        data_dir=data_dir,
    )
    result = run_openai(specs, endpoint, served_model, max_concurrency, request_timeout)
    frame = records_frame(result.requests)
    summary = summarize(frame, SLO(ttft_slo, tbt_slo))
    summary.update(result.client_stats())
    if records is not None:
        write_records(frame, records)
    if (warning := behind_schedule(summary["send_lag_p99"], rate)) is not None:
        stderr.print(warning)
    failed, sent = len(result.errors), len(result.requests)
    summary["failure_rate"] = failed / sent if sent else 0.0
    if json_output:
        print_json({"endpoint": endpoint, "summary": summary, "errors": {str(k): v for k, v in result.errors.items()}})
    else:
        keys = ("arrived", "finished", "failed", "failure_rate", "attainment", "ttft_p50", "ttft_p99")
        for key in (*keys, "req_mean_tbt_p50", "tbt_p99", "throughput_rps", "duration_s", "send_lag_p99"):
            value = summary.get(key)
            stdout.print(f"{key:>18}: {value:.4g}" if isinstance(value, float) else f"{key:>18}: {value}")
        for request_id, reason in list(result.errors.items())[:5]:
            stdout.print(f"request {request_id} failed: {reason}")
    if summary["failure_rate"] > max_failure_rate:
        typer.echo(
            f"ascbench: {failed} of {sent} requests failed ({summary['failure_rate']:.0%}), above "
            f"--max-failure-rate {max_failure_rate:g}",
            err=True,
        )
        raise typer.Exit(1)
