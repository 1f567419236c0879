"""`ascbench loadgen`: replay a workload against any OpenAI-compatible server and summarise its latencies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ascendra.harness.cli.app import JSON_OPTION, app, print_json, stderr, stdout


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
    arrival: Annotated[str, typer.Option(help="poisson, poisson-truncated, gamma or fixed.")] = "poisson",
    cv: Annotated[float, typer.Option(help="Burstiness of gamma arrivals.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the workload and arrivals.")] = 1,
    max_concurrency: Annotated[int | None, typer.Option(help="Cap on requests in flight \\[default: none].")] = None,
    request_timeout: Annotated[float, typer.Option(help="Per-request timeout, s.")] = 300.0,
    ttft_slo: Annotated[float, typer.Option(help="TTFT SLO, s.")] = 1.0,
    tbt_slo: Annotated[float, typer.Option(help="TBT SLO, s.")] = 0.15,
    records: Annotated[Path | None, typer.Option(help="Write the per-request records here (Parquet).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder with trace files.")] = None,
    json_output: bool = JSON_OPTION,
) -> None:
    """Send each request at its arrival time (streaming /v1/completions, token-id prompts, ignore_eos), stamp every
    token, and report SLO attainment, TTFT, TBT and throughput from the same records as simulated runs."""
    from ascendra.errors import UserError
    from ascendra.harness.loadgen import behind_schedule, run_openai
    from ascendra.metrics import SLO, summarize
    from ascendra.records import records_frame, write_records
    from workloads import make_workload

    if not rate > 0 or num_requests < 1:
        raise UserError("--rate and --num-requests must be positive")
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
    if json_output:
        print_json({"endpoint": endpoint, "summary": summary, "errors": {str(k): v for k, v in result.errors.items()}})
        return
    keys = ("arrived", "finished", "failed", "attainment", "ttft_p50", "ttft_p99", "req_mean_tbt_p50", "tbt_p99")
    for key in (*keys, "throughput_rps", "duration_s", "send_lag_p99"):
        value = summary.get(key)
        stdout.print(f"{key:>18}: {value:.4g}" if isinstance(value, float) else f"{key:>18}: {value}")
    for request_id, reason in list(result.errors.items())[:5]:
        stdout.print(f"request {request_id} failed: {reason}")
