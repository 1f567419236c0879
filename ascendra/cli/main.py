"""Entry point: assembles the command groups onto the shared app."""

from __future__ import annotations

from ascendra.cli import workloads_cmd  # noqa: F401  (registers `ascbench workloads`)
from ascendra.cli import calibrate_cmd  # noqa: F401  (registers `ascbench calibrate` and `ascbench cost-model`)
from ascendra.cli import perfmodel_cmd  # noqa: F401  (registers `ascbench fit-perf-model`)
from ascendra.cli import metrics_cmd  # noqa: F401  (registers `ascbench metrics`)
from ascendra.cli.app import app


def main() -> None:
    app(prog_name="ascbench")


if __name__ == "__main__":
    main()
