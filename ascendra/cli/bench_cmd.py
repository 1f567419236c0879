"""`ascbench bench ...`: performance benchmarks that print numbers (never timed unit tests)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ascendra.cli.app import JSON_OPTION, new_app, print_json, stdout

bench_app = new_app("Benchmarks of the simulator and the engine.")


@bench_app.command("sim")
def bench_sim(
    systems: Annotated[str, typer.Option(help="Comma-separated systems to time.")] = "vllm,sarathi",
    workload: Annotated[str, typer.Option(help="Workload.")] = "sharegpt",
    num_requests: Annotated[int, typer.Option(help="Requests per run.")] = 2000,
    rate: Annotated[float, typer.Option(help="Request rate (QPS) of the 3-instance cluster.")] = 20.0,
    repeats: Annotated[int, typer.Option(help="Timed repetitions per system (the best is kept).")] = 3,
    json_output: bool = JSON_OPTION,
) -> None:
    """Simulated requests per wall-clock second for a 3-instance ShareGPT run (goal: >= 2,000)."""
    from ascendra.config import RunConfig
    from ascendra.sim.simulate import simulate, workload_of

    rows = []
    for system in systems.split(","):
        config = RunConfig(system=system.strip(), workload=workload, num_requests=num_requests, rate=rate)
        loaded = workload_of(config)  # loading and tokenising is not part of the simulator's speed
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            outcome = simulate(config, workload=loaded)
            best = min(best, time.perf_counter() - start)
        rows.append(
            {
                "system": config.system,
                "requests": num_requests,
                "wall_s": best,
                "requests_per_s": num_requests / best,
                "batches": sum(i.num_batches for i in outcome.result.instances),
            }
        )
    if json_output:
        print_json({"benchmark": "sim", "rows": rows})
        return
    for row in rows:
        stdout.print(
            f"{row['system']:>8}: {row['requests_per_s']:8.0f} simulated requests/s "
            f"({row['requests']} requests, {row['batches']} batches in {row['wall_s']:.3f} s)"
        )
