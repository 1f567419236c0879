"""`--backend openai`: sweep and capacity load an OpenAI-compatible server (here `ascbench serve`'s tiny model on
loopback) and store the same tables as simulated runs; bad configurations are user errors."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("aiohttp")

from typer.testing import CliRunner  # noqa: E402

from ascendra.errors import UserError  # noqa: E402
from ascendra.harness.cli.main import app  # noqa: E402
from ascendra.harness.config import RunConfig  # noqa: E402
from ascendra.harness.runs import run_point  # noqa: E402
from ascendra.harness.serving import serving  # noqa: E402
from ascendra.live.engines import LiveOptions  # noqa: E402

WORKLOAD = "fixed:prompt=16,output=4"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    served = RunConfig.of(system="sarathi", model="tiny", instances=1, workload=WORKLOAD, backend="engine")
    with serving(served, LiveOptions(num_blocks=64)) as base:
        yield base


def _sweep_args(url: str, out: Path) -> list[str]:
    args = ["sweep", "--backend", "openai", "--instances", "1", "--endpoint", url, "--model", "tiny"]
    return [*args, "--workload", WORKLOAD, "--num-requests", "8", "--rates", "20", "--out", str(out), "--json"]


def test_a_sweep_against_a_server_finishes_every_request_and_writes_the_tables(url: str, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = CliRunner().invoke(app, _sweep_args(url, out))
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["rows"]
    assert row["system"] == "openai" and row["rate"] == 20
    assert row["arrived"] == row["finished"] == 8 and row["failed"] == 0
    assert row["ttft_p50"] > 0 and row["throughput_rps"] > 0
    summary = pd.read_csv(out / "summary.csv")
    assert summary["finished"].tolist() == [8]
    (records_path,) = (out / "points").glob("*.parquet")
    records = pd.read_parquet(records_path)
    assert len(records) == 8 and records["finish_time"].notna().all()
    point = json.loads(next((out / "points").glob("*.json")).read_text())
    assert point["config"]["backend"] == {"name": "openai", "endpoint": url}  # served_model: not set, not stored
    # The old `--system openai` is an alias of `--backend openai` (with a notice): the same point, so the rerun
    # resumes and reuses it.
    alias = ["--system" if arg == "--backend" else arg for arg in _sweep_args(url, out)]
    rerun = CliRunner().invoke(app, alias)
    assert rerun.exit_code == 0 and json.loads(rerun.stdout)["rows"] == [row]
    assert "--system openai is now --backend openai" in rerun.stderr


def test_the_served_model_name_is_sent(url: str) -> None:
    config = RunConfig.of(
        backend="openai", model="tiny", instances=1, workload=WORKLOAD, num_requests=2, endpoint=url, served_model="x"
    )
    with pytest.raises(UserError, match="every request"):  # the server knows only "tiny": 404 for each
        run_point(config)
    records, row = run_point(config.replace(served_model="tiny"))
    assert row["finished"] == 2 and len(records) == 2


def test_endpoint_fields_are_hashed_only_when_set() -> None:
    plain = RunConfig.of(model="tiny", instances=3)
    assert "backend" not in plain.to_dict()  # no endpoint, no served model: nothing of the backend is stored
    a = RunConfig.of(backend="openai", model="tiny", instances=1, endpoint="http://127.0.0.1:1")
    b = RunConfig.of(backend="openai", model="tiny", instances=1, endpoint="http://127.0.0.1:2")
    assert a.key() != b.key() and RunConfig.from_dict(a.to_dict()) == a
    assert a.to_dict()["backend"] == {"name": "openai", "endpoint": "http://127.0.0.1:1"}
    assert "max_concurrency" not in a.to_dict()["backend"] and "request_timeout" not in a.to_dict()["backend"]
    capped = a.replace(max_concurrency=2, request_timeout=5.0)
    assert capped.to_dict()["backend"]["max_concurrency"] == 2 and capped.to_dict()["backend"]["request_timeout"] == 5.0
    assert capped.key() != a.key() and RunConfig.from_dict(capped.to_dict()) == capped


def test_a_sweep_point_honours_the_request_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # accepts connections but never replies: every request times out
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = RunConfig.of(
            backend="openai",
            model="tiny",
            instances=1,
            workload=WORKLOAD,
            num_requests=2,
            rate=50.0,
            endpoint=endpoint,
            max_concurrency=1,
            request_timeout=0.2,
        )
        with pytest.raises(UserError, match="timed out after 0.2 s"):
            run_point(config)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"backend": "openai", "instances": 1}, "pass --endpoint"),
        ({"backend": "openai", "instances": 2, "endpoint": "http://127.0.0.1:1"}, "--instances 1"),
        ({"backend": "openai", "instances": 1, "endpoint": "127.0.0.1:8000"}, "http"),
        ({"system": "vllm", "instances": 2, "endpoint": "http://127.0.0.1:1"}, "only to --backend openai"),
        ({"system": "sarathi", "instances": 2, "max_concurrency": 4}, "only to --backend openai"),
        ({"backend": "openai", "instances": 1, "endpoint": "http://127.0.0.1:1", "max_concurrency": 0}, "positive"),
        ({"backend": "openai", "instances": 1, "endpoint": "http://127.0.0.1:1", "request_timeout": 0}, "positive"),
        ({"system": "vllm", "backend": "openai", "instances": 3, "endpoint": "http://127.0.0.1:1"}, "--instances 1"),
    ],
)
def test_bad_openai_configs_are_user_errors(fields: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        RunConfig.of(model="tiny", **fields)


def test_the_cli_refuses_bad_openai_options_with_exit_2() -> None:
    base = ["sweep", "--backend", "openai", "--model", "tiny", "--workload", WORKLOAD, "--rates", "50"]
    for extra in ([], ["--endpoint", "http://127.0.0.1:1"], ["--instances", "1", "--endpoint", "nope"]):
        result = CliRunner().invoke(app, [*base, *extra])
        assert result.exit_code == 2, result.output
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    endpoint = f"http://127.0.0.1:{port}"
    down = CliRunner().invoke(app, [*base, "--instances", "1", "--endpoint", endpoint, "--num-requests", "2"])
    assert down.exit_code == 2 and "every request" in down.output
