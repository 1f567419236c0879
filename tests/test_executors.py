"""Executors: a sweep's tables and point store do not depend on where its points ran (in process, a process
pool, Ray), points arriving out of order still stop a sweep at the same rate, and a Ray sweep resumes."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import ascendra.harness.cli.main  # noqa: F401  (registers the commands)
import ascendra.harness.sweep as sweep
from ascendra.errors import UserError
from ascendra.harness.cli.app import app
from ascendra.harness.config import RunConfig
from ascendra.harness.executors import ExecutorOptions, InlineExecutor, _check_reachable, run_each

WORKLOAD = "uniform:prompt=32-1500,output=8-300"
ARGS = ["--system", "vllm", "--workload", WORKLOAD, "--num-requests", "200", "--instances", "2"]


def _folder_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path (the report of a run is not part of it)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _sweep(out: Path, *extra: str, rates: str = "10,40,80,120") -> None:
    args = ["sweep", *ARGS, "--rates", rates, "--seeds", "1-2", "--out", str(out), "--json", *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


class _Reversed(ThreadPoolExecutor):
    """Three points at once, the later submitted finishing first: results arrive out of rate order."""

    width = 3
    in_process = False


#: Attainment by rate: below the floor (0.5) at 30 and 40, so a sweep stops there and skips 50 and 60.
CURVE = {10.0: 0.95, 20.0: 0.7, 30.0: 0.45, 40.0: 0.3, 50.0: 0.2, 60.0: 0.1}


@pytest.fixture
def curve(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    calls: list[float] = []

    def fake_run_point(config: RunConfig, data_dir=None, on_progress=None):
        calls.append(config.rate)
        time.sleep(0.05 * (70 - config.rate) / 10)  # higher rates return sooner
        row = {"system": config.label, "rate": config.rate, "attainment": CURVE[config.rate]}
        return pd.DataFrame({"rid": [0]}), row

    monkeypatch.setattr(sweep, "run_point", fake_run_point)
    return calls


def test_out_of_order_points_stop_the_sweep_where_the_sequential_one_stops(curve: list[float], tmp_path) -> None:
    inline = sweep.run_sweep(RunConfig.of(), list(CURVE), tmp_path / "a", saturation_floor=0.5)
    assert curve == [10.0, 20.0, 30.0, 40.0]
    curve.clear()
    seen: list[float] = []
    with _Reversed(max_workers=3) as pool:
        pooled = sweep.run_sweep(RunConfig.of(), list(CURVE), tmp_path / "b", None, seen.append, None, 0.5, pool)
    assert 50.0 in curve  # in flight when 30 and 40 were found below the floor...
    pd.testing.assert_frame_equal(pooled, inline)
    assert _folder_bytes(tmp_path / "b") == _folder_bytes(tmp_path / "a")  # ...and never stored
    assert seen == list(CURVE)  # every rate reported once, in order (50 and 60 as skipped)


def test_run_each_keeps_at_most_width_in_flight_and_reads_items_lazily() -> None:
    handed: list[int] = []

    def items():
        for i in range(5):
            handed.append(i)
            yield i, i

    done: list[tuple[int, int]] = []
    run_each(InlineExecutor(), lambda x: x * x, items(), lambda k, r: done.append((k, r)) or None)
    assert done == [(i, i * i) for i in range(5)] and handed == list(range(5))
    with pytest.raises(ZeroDivisionError):  # a failing point surfaces in the caller
        run_each(InlineExecutor(), lambda x: 1 / x, iter([(0, 0)]), lambda k, r: None)


def test_bad_executor_options_are_user_errors() -> None:
    for kwargs, message in (
        ({"kind": "slurm"}, "unknown --executor"),
        ({"jobs": 0}, "--jobs must be at least 1"),
        ({"ray_address": "auto"}, "--ray-address needs --executor ray"),
    ):
        with pytest.raises(UserError, match=message):
            ExecutorOptions(**kwargs)
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UserError, match=f"cannot reach Ray at 127.0.0.1:{port}"):
        _check_reachable(f"127.0.0.1:{port}")  # Ray alone would retry for minutes
    result = CliRunner().invoke(
        app, ["sweep", "--backend", "openai", "--endpoint", "http://x", "--instances", "1", "--jobs", "2"]
    )
    assert result.exit_code == 2 and "one point at a time" in result.stderr, result.output


def test_process_pool_and_inline_sweeps_write_identical_folders(tmp_path) -> None:
    _sweep(tmp_path / "inline")
    _sweep(tmp_path / "pool", "--jobs", "2")
    assert _folder_bytes(tmp_path / "pool") == _folder_bytes(tmp_path / "inline")


def test_ray_sweep_is_byte_identical_and_resumes(ray_session, tmp_path) -> None:
    _sweep(tmp_path / "local", "--jobs", "2")
    expected = _folder_bytes(tmp_path / "local")
    ray_out = tmp_path / "ray"
    _sweep(ray_out, "--executor", "ray", rates="10,40")  # a partial run...
    stored = {p: p.stat().st_mtime_ns for p in ray_out.rglob("points/*.json")}
    assert len(stored) == 4
    _sweep(ray_out, "--executor", "ray")  # ...resumed: its points are reused, the rest computed on Ray
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in stored.items())
    assert _folder_bytes(ray_out) == expected
    assert {p.name for p in (ray_out / "seed-1" / "points").iterdir()} == {
        p.name for p in (tmp_path / "local" / "seed-1" / "points").iterdir()
    }


def test_ray_capacity_matches_local(ray_session) -> None:
    def capacity(*extra: str) -> str:
        args = ["capacity", *ARGS, "--rates", "20,60,100,140", "--seeds", "1-2", "--json", *extra]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return result.stdout

    assert capacity("--executor", "ray") == capacity()


def test_a_user_error_in_a_ray_task_stays_one_line(ray_session, tmp_path) -> None:
    from ascendra.files import check_output_file
    from ascendra.harness.executors import RayPool

    with RayPool(None, None) as pool:
        assert pool.width == 2  # the session's Ray: two CPUs, one point each
        failed = pool.submit(check_output_file, tmp_path / "missing" / "x", False)  # raises in the worker
        with pytest.raises(UserError) as caught:
            failed.result()
    missing = tmp_path / "missing"
    assert str(caught.value) == f"cannot write {missing / 'x'}: folder {missing} does not exist"
    assert ray_session.is_initialized()  # a Ray it did not start is left up
