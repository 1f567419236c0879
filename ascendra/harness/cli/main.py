"""Entry point: assembles the command groups onto the shared app."""

from __future__ import annotations

from ascendra.harness.cli import (
    calibrate_cmd,  # noqa: F401  (registers `ascbench calibrate` and `ascbench cost-model`)
    loadgen_cmd,  # noqa: F401  (registers `ascbench loadgen`)
    metrics_cmd,  # noqa: F401  (registers `ascbench metrics`)
    perfmodel_cmd,  # noqa: F401  (registers `ascbench fit-perf-model`)
    profile_cmd,  # noqa: F401  (registers `ascbench profile`)
    report_cmd,  # noqa: F401  (registers `ascbench report`)
    reproduce_cmd,  # noqa: F401  (registers `ascbench reproduce`)
    serve_cmd,  # noqa: F401  (registers `ascbench serve`)
    sim_cmd,  # noqa: F401  (registers `ascbench sweep` and `ascbench capacity`)
    systems_cmd,  # noqa: F401  (registers `ascbench systems`)
    vllm_engine_cmd,  # noqa: F401  (registers `ascbench vllm-engine`)
    workloads_cmd,  # noqa: F401  (registers `ascbench workloads`)
)
from ascendra.harness.cli.app import app
from ascendra.harness.cli.bench_cmd import bench_app

app.add_typer(bench_app, name="bench")


def main() -> None:
    app(prog_name="ascbench")


if __name__ == "__main__":
    main()
