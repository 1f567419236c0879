"""`ascbench profile`: log every batch of one-instance runs, the input of `ascbench fit-perf-model`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ascendra.errors import UserError
from ascendra.files import check_output_file
from ascendra.harness.cli.app import JSON_OPTION, app, print_json, stderr, stdout

RATES_HELP = "Request rates (QPS) of the single instance: a list 2,4,6 or a range start:stop:step (stop included)."
OUT_HELP = "Batch log to write (.csv or .parquet) \\[default: batch_log_<model>_<gpu>_tp<tp>.csv]."
LOG_SUFFIXES = (".csv", ".parquet", ".pq")


def _check_out(path: Path, force: bool) -> None:
    """Refuse before any work is done, so a long profile never ends in an unwritable path."""
    if path.suffix.lower() not in LOG_SUFFIXES:
        raise UserError(f"--out must name a .csv or .parquet file, got {path}")
    check_output_file(path, force)


def _parse_systems(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


@app.command("profile")
def profile_cmd(
    model: Annotated[str, typer.Option(help="Model (llama-3.1-8b, mistral-7b, qwen-14b, tiny).")] = "llama-3.1-8b",
    gpu: Annotated[str, typer.Option(help="GPU (a100-80gb, h100-80gb).")] = "a100-80gb",
    tp: Annotated[int | None, typer.Option(help="Tensor parallelism \\[default: the model's].")] = None,
    workload: Annotated[str, typer.Option(help="Workload name or trace path (see `workloads list`).")] = "sharegpt",
    rates: Annotated[str, typer.Option(help=RATES_HELP)] = "2:10:2",
    num_requests: Annotated[int, typer.Option(help="Requests per run.")] = 250,
    systems: Annotated[
        str, typer.Option(help="Comma-separated one-instance policies: vllm, sarathi.")
    ] = "vllm,sarathi",
    seed: Annotated[int, typer.Option(help="Seed of the workload sampling and arrivals.")] = 1,
    backend: Annotated[
        str, typer.Option(help="Executor whose batch times are logged: sim (the cost model) or engine (live).")
    ] = "sim",
    device: Annotated[str, typer.Option(help="Engine backend: cpu or cuda[:i].")] = "cpu",
    kv_blocks: Annotated[int | None, typer.Option(help="Engine backend: KV blocks \\[default: 0.25 GiB].")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Folder with trace files (default: $ASCENDRA_DATA_DIR or ../shared/data).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help=OUT_HELP)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing log.")] = False,
    json_output: bool = JSON_OPTION,
) -> None:
    """Run a workload on ONE instance per policy and rate, logging every batch (composition and time)."""
    from ascendra.harness.profiling import ProfileSpec, kind_counts, profile, run_summary
    from ascendra.harness.progress import new_progress
    from ascendra.harness.sweep import parse_rates
    from ascendra.perfmodel.log import write_log

    spec = ProfileSpec(
        model=model,
        gpu=gpu,
        tp=tp,
        workload=workload,
        rates=tuple(parse_rates(rates)),
        num_requests=num_requests,
        systems=_parse_systems(systems),
        seed=seed,
        backend=backend,
        device=device,
        kv_blocks=kv_blocks,
    )
    tp_value = spec.config(spec.systems[0], spec.rates[0]).cluster.tensor_parallel
    out = out if out is not None else Path(f"batch_log_{model}_{gpu}_tp{tp_value}.csv")
    _check_out(out, force)

    start = time.perf_counter()
    with new_progress(stderr, json_output) as progress:
        task = progress.add_task("profiling", total=len(spec.systems) * len(spec.rates))
        log = profile(spec, data_dir, on_run=lambda *_: progress.advance(task))
    wall_s = time.perf_counter() - start
    write_log(log, out)  # atomically: no half-written log

    counts = kind_counts(log)
    runs = run_summary(log)
    if json_output:
        print_json(
            {
                "path": str(out),
                "backend": spec.backend,
                "model": spec.model,
                "gpu": spec.gpu,
                "tp": tp_value,
                "workload": spec.workload,
                "total_batches": len(log),
                "rows_per_kind": counts,
                "runs": runs,
                "wall_s": wall_s,
            }
        )
        return
    from rich.table import Table

    table = Table(title=f"Batches logged: {spec.model} on {spec.gpu}, TP {tp_value}, {spec.workload} ({backend})")
    for label in ("system", "QPS", "batches", "prefill", "decode", "mixed", "busy s"):
        table.add_column(label, justify="left" if label == "system" else "right")
    for run in runs:
        table.add_row(
            run["system"],
            f"{run['rate']:g}",
            *(str(run[k]) for k in ("batches", "prefill", "decode", "mixed")),
            f"{run['busy_s']:.1f}",
        )
    stdout.print(table)
    stdout.print(f"{len(log)} batches ({', '.join(f'{k} {n}' for k, n in counts.items())}) in {wall_s:.1f} s")
    stdout.print(f"batch log: {out}", soft_wrap=True)
