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


def _at(table: dict[str, list[float]] | None, tokens: int) -> float | None:
    """A calibrated table's value at ``tokens`` (the runtime's interpolation), None for an absent table."""
    if table is None:
        return None
    from ascendra.costmodel.model import PiecewiseLinear

    return PiecewiseLinear(table["tokens"], table["ms"])(tokens)


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
    """Derive the simulator's cost-model tables from the measured GPU profiles and write them as JSON."""
    from ascendra.costmodel.calibrate import calibrate, default_data_dir, write_json
    from ascendra.costmodel.model import packaged_path
    from ascendra.costmodel.review import MEASURED_TOLERANCE, measured_comparison

    data_dir = data_dir if data_dir is not None else default_data_dir()
    out = out if out is not None else packaged_path()
    _check_out(out, packaged_path(), force)
    doc = calibrate(data_dir)
    size = write_json(doc, out)
    entries = [
        {
            "key": key,
            "profile": e["profile"],
            **{f"linear_layer_ms@{n}": _at(e["linear_layer"], n) for n in SUMMARY_TOKENS},
            "all_reduce_ms@512": _at(e["all_reduce"], 512),
        }
        for key, e in doc["entries"].items()
    ]
    measured = measured_comparison(out)
    result: dict[str, Any] = {"out": str(out), "bytes": size, "entries": entries, "measured": measured}
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"Cost model calibrated from {data_dir}: per-layer linear ms at N tokens, one all-reduce")
    table.add_column("model/gpu/tp", no_wrap=True)
    table.add_column("profile")
    for label in (*(f"layer @{n}" for n in SUMMARY_TOKENS), "AR @512"):
        table.add_column(label, justify="right")
    for e in entries:
        ar = e["all_reduce_ms@512"]
        table.add_row(
            e["key"],
            e["profile"],
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
    model: Annotated[str, typer.Option("--model", help="Model name (see ascendra/models.py).")] = "llama-3.1-8b",
    gpu: Annotated[str, typer.Option("--gpu", help="GPU name (see ascendra/gpus.py).")] = "a100-80gb",
    tp: Annotated[int | None, typer.Option("--tp", help="Tensor parallelism \\[default: the model's].")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Calibration JSON to read \\[default: the packaged one].")
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Print the simulator's predicted iteration times (by component) and the check against the published point."""
    from ascendra.costmodel.model import CostModel
    from ascendra.costmodel.review import MEASURED_TOLERANCE, review

    cm = CostModel.load(model, gpu, tp, path=file)
    result = review(cm, file)
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    title = f"Predicted iteration times (ms): {cm.model.name} on {cm.gpu.name}, TP {cm.tp} (profile {cm.profile})"
    table = Table(title=title)
    parts = ("linear", "attention", "lm_head", "all_reduce", "overhead", "total")
    table.add_column("iteration", no_wrap=True)
    for label in ("linear", "attn", "LM head", "all-red", "CPU", "total"):
        table.add_column(label, justify="right")
    for c in result["cases"]:
        table.add_row(c["case"], *(f"{c[f'{p}_ms']:.2f}" for p in parts))
    stdout.print(table)
    _print_measured(result["measured"]["points"], MEASURED_TOLERANCE)
