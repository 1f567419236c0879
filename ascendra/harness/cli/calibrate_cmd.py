"""`ascbench calibrate` (derive the simulator's cost model from GPU profiles) and `ascbench cost-model` (review it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ascendra.files import check_output_file
from ascendra.harness.cli.app import JSON_OPTION, app, print_json, stdout

SUMMARY_TOKENS = (1, 512, 4096)


def _check_out(out: Path, packaged: Path, force: bool) -> None:
    """The packaged default is regenerable and may be overwritten; any other existing file needs --force."""
    if out.resolve() == packaged.resolve():
        return
    check_output_file(out, force)


def _summary(out: Path) -> list[dict[str, Any]]:
    """Per-layer linear ms at a few token counts and one all-reduce (default interconnect), for every table model,
    GPU and TP 1/2/4/8."""
    from ascendra.costmodel.model import CostModel
    from ascendra.gpus import GPUS
    from ascendra.models import MODELS

    rows = []
    for model in MODELS.values():
        for gpu in GPUS:
            for tp in (t for t in (1, 2, 4, 8) if model.valid_tp(t)):
                cm = CostModel.load(model, gpu, tp, path=out)
                layers = model.num_layers
                ar = cm.breakdown([(512, 0)], []).all_reduce
                rows.append({
                    "key": f"{model.name}/{gpu}/tp{tp}",
                    "profile": cm.profile,
                    **{f"linear_layer_ms@{n}": cm.breakdown([(n, 0)], []).linear * 1e3 / layers
                       for n in SUMMARY_TOKENS},
                    "all_reduce_ms@512": ar * 1e3 / (2 * layers) if tp > 1 else None,
                })  # fmt: skip
    return rows


@app.command("calibrate")
def calibrate_cmd(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="Reference data folder with profiles/ \\[default: $ASCENDRA_DATA_DIR or ../shared/data]."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="JSON to write \\[default: the packaged ascendra/data/cost_model.json, which is always overwritten; "
            "another existing file needs --force].",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out file.")] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Fit the simulator's per-operation cost model on the measured GPU profiles and write it as JSON."""
    from ascendra.costmodel.calibrate import calibrate, default_data_dir, write_json
    from ascendra.costmodel.model import packaged_path
    from ascendra.costmodel.review import MEASURED_TOLERANCE, measured_comparison

    data_dir = data_dir if data_dir is not None else default_data_dir()
    out = out if out is not None else packaged_path()
    _check_out(out, packaged_path(), force)
    doc = calibrate(data_dir)
    size = write_json(doc, out)
    entries = _summary(out)
    measured = measured_comparison(out)
    result: dict[str, Any] = {"out": str(out), "bytes": size, "entries": entries, "measured": measured}
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"Cost model calibrated from {data_dir}: per-layer linear ms at N tokens, one all-reduce")
    table.add_column("model/gpu/tp", no_wrap=True)
    for label in (*(f"layer @{n}" for n in SUMMARY_TOKENS), "AR @512"):
        table.add_column(label, justify="right")
    for e in entries:
        ar = e["all_reduce_ms@512"]
        table.add_row(
            e["key"],
            *(f"{e[f'linear_layer_ms@{n}']:.4f}" for n in SUMMARY_TOKENS),
            "-" if ar is None else f"{ar:.4f}",
        )
    stdout.print(table)
    _print_measured(measured, MEASURED_TOLERANCE)
    stdout.print(f"wrote {out} ({size / 1024:.1f} KiB)")


def _print_measured(rows: list[dict[str, Any]], tolerance: float) -> None:
    from rich.table import Table

    table = Table(title=f"Published point: Llama-3.1-8B, one A100-80GB, decode-only (tolerance {tolerance:.0%})")
    for label in ("iteration", "predicted ms", "measured ms", "error"):
        table.add_column(label, justify="left" if label == "iteration" else "right")
    for r in rows:
        flag = "" if r["within_tolerance"] else " (outside)"
        table.add_row(r["case"], f"{r['predicted_ms']:.1f}", f"{r['measured_ms']:.1f}", f"{r['error']:+.1%}{flag}")
    stdout.print(table)


@app.command("cost-model")
def cost_model_cmd(
    model: Annotated[
        str,
        typer.Option("--model", help="Model name (see ascendra/models.py) or a HF config.json (or its folder)."),
    ] = "llama-3.1-8b",
    gpu: Annotated[str, typer.Option("--gpu", help="GPU name (see ascendra/gpus.py).")] = "a100-80gb",
    tp: Annotated[int | None, typer.Option("--tp", help="Tensor parallelism \\[default: the model's].")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Calibration JSON to read \\[default: the packaged one].")
    ] = None,
    interconnect: Annotated[
        str, typer.Option("--interconnect", help="How the TP group's GPUs are linked: nvswitch or pairwise-nvlink.")
    ] = "nvswitch",
    chunked_prefill_cost: Annotated[
        bool, typer.Option(help="Charge the chunked-prefill overhead (off: the model before it).")
    ] = True,
    as_json: bool = JSON_OPTION,
) -> None:
    """Print the simulator's predicted iteration times (by component) and the check against the published point."""
    from ascendra.costmodel.model import CostModel
    from ascendra.costmodel.review import MEASURED_TOLERANCE, review

    cm = CostModel.load(model, gpu, tp, path=file, interconnect=interconnect, chunked_prefill=chunked_prefill_cost)
    result = review(cm, file)
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    title = (
        f"Predicted iteration times (ms): {cm.model.name} on {cm.gpu.name}, TP {cm.tp} over {cm.interconnect} "
        f"(profile {cm.profile})"
    )
    table = Table(title=title)
    parts = ("linear", "attention", "lm_head", "all_reduce", "overhead", "total")
    table.add_column("iteration", no_wrap=True)
    for label in ("linear", "attn", "LM head", "all-red", "CPU", "total"):
        table.add_column(label, justify="right")
    for c in result["cases"]:
        table.add_row(c["case"], *(f"{c[f'{p}_ms']:.2f}" for p in parts))
    stdout.print(table)
    if result["published"]:
        published = Table(
            title="Published: TensorRT-LLM v0.5, Llama-2-70B FP16 on 4x A100-80GB, batch-1 first-token latency"
        )
        for label in ("iteration", "predicted ms", "measured ms", "error"):
            published.add_column(label, justify="left" if label == "iteration" else "right")
        for r in result["published"]:
            published.add_row(r["case"], f"{r['predicted_ms']:.1f}", f"{r['measured_ms']:.1f}", f"{r['error']:+.1%}")
        stdout.print(published)
    _print_measured(result["measured"]["points"], MEASURED_TOLERANCE)
