"""What an outsider hits first (issue 14): every failure is one line with exit code 2 (a load test over its failure
budget exits 1), nothing is left half-written, and nothing is silently wrong (a false 0, a truncated digit)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from typer.core import TyperOption
from typer.testing import CliRunner

import ascendra.memory
from ascendra.errors import UserError
from ascendra.files import write_atomic, write_text
from ascendra.harness.cli.main import app
from ascendra.harness.reproduce import write_readme
from ascendra.harness.sweep import parse_rates
from ascendra.metrics import SLO, attainment
from ascendra.records import RECORD_COLUMNS

runner = CliRunner()
SMALL = ["--system", "vllm", "--workload", "fixed:prompt=16,output=4", "--num-requests", "20", "--instances", "1"]


def _fails_in_one_line(args: list[str], message: str, code: int = 2) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


# --- sizes that cannot fit in memory ------------------------------------------------------------------------------


def test_a_request_count_that_cannot_fit_is_refused_before_any_work(tmp_path: Path) -> None:
    _fails_in_one_line(["sweep", "--num-requests", "1000000000", "--rates", "5"], "--num-requests 1,000,000,000")
    _fails_in_one_line(["workloads", "describe", "sharegpt", "--num-requests", "1000000000"], "of memory")


def test_the_memory_check_compares_with_what_is_available(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (ascendra.memory.available_bytes() or 1) > 0
    monkeypatch.setattr(ascendra.memory, "available_bytes", lambda: 10 * 2**20)
    _fails_in_one_line(["sweep", *SMALL, "--num-requests", "1000", "--rates", "5"], "more than the 0.0 GiB")
    ascendra.memory.check_fits(100, 1000, "--num-requests", "requests")  # 100 kB fit in 10 MiB


# --- write failures -----------------------------------------------------------------------------------------------


def test_an_out_that_is_a_file_or_below_one_is_one_line(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine")
    _fails_in_one_line(["sweep", *SMALL, "--rates", "5", "--out", str(afile)], "is a file, not a folder")
    _fails_in_one_line(["sweep", *SMALL, "--rates", "5", "--out", str(afile / "sub")], "Not a directory")
    _fails_in_one_line(["reproduce", "all", "--quick", "--out", str(afile)], "Not a directory")
    assert afile.read_text() == "mine"


def test_a_read_only_out_is_refused_before_running(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("os.access", lambda path, mode: False)  # every folder read-only (root ignores chmod)
    out = tmp_path / "new" / "sweep"
    _fails_in_one_line(["sweep", *SMALL, "--rates", "5", "--out", str(out)], "read-only file system")
    assert not (tmp_path / "new").exists()  # the folders made to find out are gone


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")
def test_a_plot_on_proc_is_one_line(tmp_path: Path) -> None:
    args = ["workloads", "describe", "fixed:prompt=4,output=2", "--num-requests", "5", "--plot", "/proc/x.png"]
    _fails_in_one_line(args, "cannot write /proc/x.png")


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    target.write_text("old")

    def half_then_fail(path: Path) -> None:
        path.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(UserError, match=f"cannot write {target}: No space left on device"):
        write_atomic(target, half_then_fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]
    with pytest.raises(UserError, match="it is a folder"):
        write_text(tmp_path, "x")


# --- reproduce never rewrites its index from nothing --------------------------------------------------------------


def test_reproduce_refuses_an_empty_spec_folder_and_keeps_the_index(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = tmp_path / "results"
    out.mkdir()
    (out / "README.md").write_text("272 lines of results")
    _fails_in_one_line(
        ["reproduce", "all", "--specs", str(tmp_path / "empty"), "--out", str(out)], "no experiment specs"
    )
    with pytest.raises(UserError, match="left as it is"):
        write_readme(out, [], quick=False)
    assert (out / "README.md").read_text() == "272 lines of results"


# --- extras -------------------------------------------------------------------------------------------------------


#: Project modules that import an extra's packages (torch, ray) when they load.
_IMPORT_EXTRAS = ("ascendra.live", "ascendra.engine", "ascendra.harness.live_run", "ascendra.harness.serving")


def _without(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """``import package`` fails as if it were not installed, also through project modules imported before."""
    monkeypatch.setitem(sys.modules, package, None)
    for name in [m for m in sys.modules if m.startswith(_IMPORT_EXTRAS)]:
        monkeypatch.delitem(sys.modules, name)


def test_engine_backend_without_torch_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "torch")
    args = ["sweep", *SMALL, "--backend", "engine", "--model", "tiny", "--rates", "5"]
    _fails_in_one_line(args, "--backend engine needs torch (the engine extra): pip install -c constraints.txt")


def test_serve_without_torch_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "torch")
    _fails_in_one_line(["serve", "--model", "tiny"], "-e '.[engine,serve]'")


def test_ray_without_ray_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    _without(monkeypatch, "ray")
    args = ["sweep", *SMALL, "--backend", "engine", "--model", "tiny", "--distributed", "ray", "--rates", "5"]
    message = "--distributed ray needs ray (the dist extra): pip install -c constraints.txt -e '.[dist]'"
    _fails_in_one_line(args, message)


def test_loadgen_without_aiohttp_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    args = ["loadgen", "--endpoint", "http://127.0.0.1:9", "--workload", "fixed:prompt=4,output=2"]
    _fails_in_one_line(args, "needs aiohttp (the serve extra)")


# --- numbers ------------------------------------------------------------------------------------------------------


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, command) of every leaf command (typer's own click objects)."""
    found = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found += _commands(command, (*prefix, name))
        else:
            found.append(((*prefix, name), command))
    return found


#: What a command needs besides the option under test, to get as far as parsing it.
REQUIRED = {
    ("loadgen",): ["--endpoint", "http://127.0.0.1:9"],
    ("metrics",): ["records.parquet", "--ttft-slo", "1", "--tbt-slo", "1"],
    ("fit-perf-model",): ["log.csv"],
    ("workloads", "describe"): ["sharegpt"],
}


def test_every_float_option_must_be_finite_and_is_named() -> None:
    """NaN for every float option of every command (infinities for one, as they take the same path)."""
    _fails_in_one_line(["sweep", "--margin", "inf"], "--margin must be a finite number, got inf")
    _fails_in_one_line(["capacity", "--target", "-inf"], "--target must be a finite number, got -inf")
    value = "nan"
    checked = 0
    for path, command in _commands(typer.main.get_command(app)):
        ctx = typer.Context(command)
        for param in command.params:
            if not isinstance(param, TyperOption) or "float" not in param.display_type(ctx):
                continue
            result = runner.invoke(app, [*path, *REQUIRED.get(path, []), param.opts[0], value])
            assert result.exit_code == 2, (path, param.opts, result.output)
            assert f"{param.opts[0]} must be a finite number" in result.stderr, (path, result.output)
            checked += 1
    assert checked > 20


def test_rates_are_finite_distinct_and_name_their_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_rates("5,5,6") == [5.0, 6.0]
    assert "ascbench: notice: --rates repeats 5; each rate runs once" in capsys.readouterr().err
    for bad, message in (("nan", "finite"), ("1:inf:1", "finite"), ("1:1e9:1", "more than 1000")):
        with pytest.raises(UserError, match=f"bad --rates '{bad}': .*{message}"):
            parse_rates(bad)
    _fails_in_one_line(["sweep", *SMALL, "--rates", "nan"], "--rates")


def test_capacity_target_and_tolerance_are_checked() -> None:
    _fails_in_one_line(["capacity", *SMALL, "--rates", "5", "--target", "1.5"], "--target must be in (0, 1]")
    _fails_in_one_line(["capacity", *SMALL, "--rates", "5,6", "--search", "--tol", "0"], "--tol must be positive")


def test_a_directory_as_workload_says_so(tmp_path: Path) -> None:
    _fails_in_one_line(["sweep", *SMALL, "--workload", str(tmp_path), "--rates", "5"], "is a directory")


# --- the sarathi metric where scheduling is not seen --------------------------------------------------------------


def test_sarathi_metric_is_refused_on_an_external_server() -> None:
    args = ["capacity", "--backend", "openai", "--endpoint", "http://127.0.0.1:9", "--instances", "1", "--rates", "5"]
    _fails_in_one_line([*args, "--slo-metric", "sarathi"], "--slo-metric sarathi is unavailable with --backend openai")


def test_sarathi_attainment_is_nan_without_scheduling_times() -> None:
    """A client sees tokens but not when the server scheduled the request: unknown, not a failing 0."""
    row = {c: None for c in RECORD_COLUMNS}
    row.update(request_id=0, arrival=0.0, prompt_tokens=4, output_tokens=2, token_times=[0.1, 0.2])
    row.update(finish_time=0.2, dropped=False, offloaded=False, preemptions=0)
    assert math.isnan(attainment(pd.DataFrame([row]), SLO(1.0, 0.15), "sarathi"))
    row["first_scheduled"] = 0.05
    assert attainment(pd.DataFrame([row]), SLO(1.0, 0.15), "sarathi") == 1.0


# --- loadgen's failure budget -------------------------------------------------------------------------------------


def test_loadgen_exits_1_above_its_failure_budget() -> None:
    pytest.importorskip("aiohttp")
    args = ["loadgen", "--endpoint", "http://127.0.0.1:9", "--workload", "fixed:prompt=4,output=2"]
    args += ["--num-requests", "3", "--rate", "100", "--request-timeout", "5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "failed:3\n" in result.stdout.replace(" ", "")
    # The last line is the verdict (a loaded host may first warn that the client sent requests late).
    assert (
        result.stderr.strip().splitlines()[-1]
        == "ascbench: 3 of 3 requests failed (100%), above --max-failure-rate 0.01"
    )
    assert runner.invoke(app, [*args, "--max-failure-rate", "1"]).exit_code == 0
    _fails_in_one_line([*args, "--max-failure-rate", "2"], "--max-failure-rate must be in [0, 1]")


# --- tables and progress off a terminal ---------------------------------------------------------------------------


def test_tables_off_a_terminal_keep_every_digit() -> None:
    result = runner.invoke(app, ["sweep", *SMALL, "--workload", "sharegpt", "--instances", "3", "--rates", "5"])
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout and "TTFT p50" in result.stdout  # headers on one line, cells whole
    assert "━" not in result.stderr  # no progress bar off a terminal
