"""`ascbench vllm-engine`: the workload served by the real vLLM engine, in this process, on the wall clock.

The table and JSON have the shape of `ascbench sweep`'s (one summary row per rate), so a vLLM-engine run lines
up with simulated and live runs of the same workload. vLLM starts once and serves every rate in turn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ascendra.harness.cli.app import JSON_OPTION, app, print_json
from baselines.vllm_engine.runner import POLICIES, TINY_VLLM

_VLLM = "vLLM engine"


@app.command("vllm-engine")
def vllm_engine(
    workload: Annotated[
        str, typer.Option(help="Workload name or trace path (see `workloads list`).")
    ] = "fixed:prompt=128,output=32",
    model: Annotated[str, typer.Option(help="Model whose tokens the workload counts (its lengths, its limit).")] = (
        "tiny"
    ),
    num_requests: Annotated[int, typer.Option(help="Requests per rate.")] = 100,
    rates: Annotated[str, typer.Option(help="Request rates (QPS): a list 2,4 or a range start:stop:step.")] = "4",
    arrival: Annotated[str, typer.Option(help="Arrival process: poisson, poisson-truncated, gamma, fixed.")] = (
        "poisson"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the workload sampling and arrivals.")] = 1,
    ttft_slo: Annotated[float, typer.Option(help="TTFT SLO in seconds.")] = 1.0,
    tbt_slo: Annotated[float, typer.Option(help="TBT SLO in seconds.")] = 0.15,
    engine_model: Annotated[
        str, typer.Option(help=f"Shapes of the random-weight Llama vLLM serves ({TINY_VLLM.name} or a table model).")
    ] = TINY_VLLM.name,
    checkpoint: Annotated[
        Path | None, typer.Option(help="Serve this local HF checkpoint instead.", rich_help_panel=_VLLM)
    ] = None,
    chunked_prefill: Annotated[bool, typer.Option(help="vLLM's enable_chunked_prefill.", rich_help_panel=_VLLM)] = True,
    max_batched_tokens: Annotated[
        int, typer.Option(help="vLLM's max_num_batched_tokens.", rich_help_panel=_VLLM)
    ] = 8192,
    max_num_seqs: Annotated[int, typer.Option(help="vLLM's max_num_seqs.", rich_help_panel=_VLLM)] = 128,
    policy: Annotated[
        str,
        typer.Option(
            help=f"vLLM's scheduling policy: {', '.join(POLICIES)} (priority: shortest job first).",
            rich_help_panel=_VLLM,
        ),
    ] = "fcfs",
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16.", rich_help_panel=_VLLM)] = "float32",
    kv_cache_gib: Annotated[float, typer.Option(help="KV cache memory in GiB.", rich_help_panel=_VLLM)] = 0.25,
    cpu_cores: Annotated[
        str | None, typer.Option(help="Cores for vLLM's threads, e.g. 0-1 \\[default: all].", rich_help_panel=_VLLM)
    ] = None,
    enforce_eager: Annotated[
        bool | None,
        typer.Option(help="vLLM's enforce_eager \\[default: on CPU only; CUDA graphs on GPU].", rich_help_panel=_VLLM),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder with trace files.")] = None,
    json_output: bool = JSON_OPTION,
) -> None:
    """Serve the workload with the real vLLM engine (the `vllm` extra) and report the sweep table's numbers."""
    from ascendra.harness.cli.sim_cmd import print_summary_table
    from ascendra.harness.sweep import parse_rates
    from ascendra.metrics import SLO, capacity_from_sweep
    from baselines.vllm_engine.runner import VllmEngineOptions, open_vllm_engine
    from workloads import make_workload

    options = VllmEngineOptions(
        model=engine_model,
        checkpoint=checkpoint,
        dtype=dtype,
        enable_chunked_prefill=chunked_prefill,
        max_num_batched_tokens=max_batched_tokens,
        max_num_seqs=max_num_seqs,
        policy=policy,
        kv_cache_gib=kv_cache_gib,
        cpu_cores=cpu_cores,
        enforce_eager=enforce_eager,
        seed=seed,
    )
    slo = SLO(ttft_slo, tbt_slo)
    rate_list = parse_rates(rates)
    workloads = [
        make_workload(
            workload, model=model, num_requests=num_requests, rate=rate, arrival=arrival, seed=seed, data_dir=data_dir
        )
        for rate in rate_list
    ]
    rows = []
    with open_vllm_engine(workloads, options) as server:
        for rate, load in zip(rate_list, workloads, strict=True):
            outcome = server.serve(load, slo)
            rows.append({"system": "vllm-engine", "rate": rate, **outcome.summary})
    import pandas as pd

    table = pd.DataFrame(rows)
    capacity = capacity_from_sweep(table["rate"].tolist(), table["attainment"].tolist())
    if json_output:
        print_json({"system": "vllm-engine", "capacity_qps": capacity.capacity, "rows": table.to_dict("records")})
        return
    print_summary_table(f"vLLM engine on {workload} ({options.model}, {options.dtype}, CPU)", table)
