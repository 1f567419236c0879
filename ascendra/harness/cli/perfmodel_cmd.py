"""`ascbench fit-perf-model`: fit the performance model on a batch log and report its accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ascendra.errors import UserError
from ascendra.files import check_output_file
from ascendra.harness.cli.app import JSON_OPTION, app, print_json, stdout

# Square brackets are escaped: typer renders help text as rich markup.
LOG_HELP = (
    "Batch log (.csv or .parquet): one row per batch with columns model, gpu, tp, kind, prefills (JSON "
    "\\[\\[chunk_tokens, prior_context], ...]), decode_contexts (JSON \\[context, ...]) and seconds."
)


@app.command("fit-perf-model")
def fit_perf_model(
    log_path: Annotated[Path, typer.Argument(metavar="LOG", help=LOG_HELP, show_default=False)],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Coefficients JSON \\[default: perf_model_<model>_<gpu>_tp<tp>\\[_perseq].json]."),
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Predicted-vs-actual PNG to write.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the train/validation/test split.")] = 0,
    outlier_k: Annotated[
        float, typer.Option(help="Drop training rows beyond this many robust standard deviations (MAD).")
    ] = 5.0,
    per_seq: Annotated[
        bool, typer.Option("--per-seq", help="Add a per-sequence term to the paper's four features (extension).")
    ] = False,
    model: Annotated[str | None, typer.Option(help="Use only this model's rows.")] = None,
    gpu: Annotated[str | None, typer.Option(help="Use only this GPU's rows.")] = None,
    tp: Annotated[int | None, typer.Option(help="Use only rows with this tensor parallelism.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")] = False,
    as_json: bool = JSON_OPTION,
) -> None:
    """Fit one regression per batch kind on a batch log; print R^2, RMSE and MAPE on the test split."""
    from ascendra.perfmodel.fit import MIN_ROWS_PER_KIND, fit
    from ascendra.perfmodel.log import read_log
    from ascendra.perfmodel.model import shipped_name

    if plot is not None:
        if plot.suffix.lower() != ".png":
            raise UserError(f"--plot must name a .png file, got {plot}")
        check_output_file(plot, force)
    if out is not None:
        check_output_file(out, force)
    log = read_log(log_path)
    for column, value in (("model", model), ("gpu", gpu), ("tp", tp)):
        if value is not None:
            log = log[log[column] == value]
            if log.empty:
                raise UserError(f"batch log {log_path} has no rows with {column} = {value}")
    perf, report = fit(log, seed=seed, outlier_k=outlier_k, per_seq=per_seq)
    out = out if out is not None else Path(shipped_name(perf.model, perf.gpu, perf.tp, per_seq))
    check_output_file(out, force)
    perf.meta["fit"]["log"] = log_path.name
    perf.save(out)
    if plot is not None:
        from ascendra.perfmodel.plot import plot_fit

        plot_fit(report, plot)

    result = report.to_dict()
    result["out"] = str(out)
    result["plot"] = None if plot is None else str(plot)
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"Performance model fit: {perf.model} on {perf.gpu}, TP {perf.tp} (test split, seed {seed})")
    table.add_column("kind", no_wrap=True, min_width=7)
    for label in ("train", "dropped", "test", "R^2", "RMSE ms", "MAPE %", "val R^2", "val MAPE %"):
        table.add_column(label, justify="right")
    for kind, kr in report.kinds.items():
        table.add_row(
            kind,
            str(kr.n_train),
            str(kr.n_outliers),
            str(kr.test.n),
            f"{kr.test.r2:.4f}",
            f"{kr.test.rmse_s * 1e3:.3f}",
            f"{kr.test.mape_pct:.2f}",
            f"{kr.validation.r2:.4f}",
            f"{kr.validation.mape_pct:.2f}",
        )
    stdout.print(table)
    for kind, n in report.skipped.items():
        stdout.print(f"skipped {kind}: only {n} rows (need at least {MIN_ROWS_PER_KIND})")
    stdout.print(f"coefficients: {out}")
    if plot is not None:
        stdout.print(f"plot: {plot}")
