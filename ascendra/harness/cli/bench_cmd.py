"""`ascbench bench ...`: performance benchmarks that print numbers (never timed unit tests)."""

from __future__ import annotations

from typing import Annotated

import typer

from ascendra.errors import UserError
from ascendra.extras import needs
from ascendra.harness.cli.app import JSON_OPTION, new_app, print_json, stdout

bench_app = new_app("Benchmarks of the simulator and the engine.")


@bench_app.command("sim")
def bench_sim(
    systems: Annotated[str, typer.Option(help="Comma-separated systems to time, or 'all'.")] = "vllm,sarathi,ascendra",
    workload: Annotated[str, typer.Option(help="Workload.")] = "sharegpt",
    num_requests: Annotated[int, typer.Option(help="Requests per run.")] = 2000,
    rate: Annotated[float, typer.Option(help="Request rate (QPS) of the 3-instance cluster.")] = 20.0,
    repeats: Annotated[int, typer.Option(help="Timed repetitions per system (the best is kept).")] = 3,
    json_output: bool = JSON_OPTION,
) -> None:
    """Simulated requests per CPU second for a 3-instance ShareGPT run: of the simulation proper (building the
    system and running every request through it) and end to end (with the per-request records and the summary
    computed from them); and how many iterations the simulator advanced in bulk."""
    from ascendra.harness.config import RunConfig
    from ascendra.harness.registry import systems as registered
    from ascendra.harness.simulate import simulate
    from ascendra.harness.workload import workload_of

    names = sorted(registered()) if systems.strip() == "all" else [name.strip() for name in systems.split(",")]
    rows = []
    for system in names:
        config = RunConfig.from_flat(
            {"system": system.strip(), "workload": workload, "num_requests": num_requests, "rate": rate}
        )
        loaded = workload_of(config)  # loading and tokenising is not part of the simulator's speed
        sim_s = total_s = float("inf")
        for _ in range(repeats):  # one outcome alive at a time, as in a sweep
            outcome = simulate(config, workload=loaded)
            sim_s = min(sim_s, outcome.sim_seconds)
            total_s = min(total_s, outcome.sim_seconds + outcome.metrics_seconds)
        rows.append(
            {
                "system": config.system,
                "requests": num_requests,
                "sim_s": sim_s,
                "cpu_s": total_s,
                "sim_requests_per_s": num_requests / sim_s,
                "requests_per_s": num_requests / total_s,
                "batches": sum(i.num_batches for i in outcome.result.instances),
                "bulk_batches": outcome.result.bulk_steps,
            }
        )
    if json_output:
        print_json({"benchmark": "sim", "rows": rows})
        return
    stdout.print(f"Simulated requests per CPU second, best of {repeats} runs of {num_requests} {workload} requests:")
    for row in rows:
        stdout.print(
            f"{row['system']:>10}: {row['sim_requests_per_s']:7.0f} simulating ({row['sim_s'] * 1e3:.0f} ms), "
            f"{row['requests_per_s']:7.0f} with records and summary ({row['cpu_s'] * 1e3:.0f} ms); "
            f"{row['batches']} batches, {row['bulk_batches'] / row['batches']:.0%} advanced in bulk"
        )


def _parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UserError(f"bad --batch-sizes {text!r}: use a list of positive integers like 1,8,32") from None
    if not sizes or min(sizes) <= 0:
        raise UserError(f"bad --batch-sizes {text!r}: use a list of positive integers like 1,8,32")
    return sizes


@bench_app.command("engine")
def bench_engine(
    model: Annotated[str, typer.Option(help="Model: tiny, llama-3.1-8b, ... or llama-100m.")] = "tiny",
    device: Annotated[str, typer.Option(help="Torch device: cpu, cuda, cuda:1, ...")] = "cpu",
    batch_sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes (requests per batch).")] = "1,8,32",
    context: Annotated[int, typer.Option(help="Prompt length in tokens (prefill), then the decode context.")] = 512,
    decode_steps: Annotated[int, typer.Option(help="Decode steps timed per batch size.")] = 8,
    repeats: Annotated[int, typer.Option(help="Measurements per batch size (medians are reported).")] = 3,
    dtype: Annotated[str | None, typer.Option(help="fp32, bf16 or fp16 \\[default: fp32 on CPU, bf16 else].")] = None,
    threads: Annotated[int | None, typer.Option(help="Torch CPU threads for the run \\[default: torch's].")] = None,
    json_output: bool = JSON_OPTION,
) -> None:
    """The real engine on dummy weights: prefill tokens/s and decode step time versus batch size."""
    sizes = _parse_sizes(batch_sizes)
    with needs("engine", what="`bench engine`"):  # torch is optional: import only when this command runs
        from ascendra.harness.bench_engine import run_engine_bench

    rows = run_engine_bench(
        model,
        device=device,
        batch_sizes=sizes,
        context=context,
        decode_steps=decode_steps,
        dtype=dtype,
        repeats=repeats,
        num_threads=threads,
    )
    if json_output:
        print_json({"benchmark": "engine", "rows": rows})
        return
    from rich.table import Table

    first = rows[0]
    threads_note = f", {first['num_threads']} threads" if first["num_threads"] is not None else ""
    table = Table(
        title=f"Engine: {first['model']} ({first['num_params'] / 1e6:.1f}M params) on {first['device']}, "
        f"{first['dtype']}{threads_note}, context {context}"
    )
    for label in ("batch", "prefill tokens", "prefill s", "prefill tok/s", "decode step ms", "decode tok/s"):
        table.add_column(label, justify="right")
    for row in rows:
        table.add_row(
            str(row["batch_size"]),
            str(row["prefill_tokens"]),
            f"{row['prefill_s']:.4f}",
            f"{row['prefill_tok_s']:.0f}",
            f"{row['decode_step_ms']:.2f}",
            f"{row['decode_tok_s']:.0f}",
        )
    stdout.print(table)
