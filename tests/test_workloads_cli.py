"""`ascbench workloads`: list, describe (table, JSON, plot) and one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ascendra.harness.cli.main  # noqa: F401  (registers the command groups)
from ascendra.harness.cli.app import app

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["workloads", *args])


def test_list_names_workloads_and_arrivals() -> None:
    result = run("list")
    assert result.exit_code == 0, result.output
    for name in ("sharegpt", "longbench", "azure-conv", "mooncake", "zipf", "poisson-truncated"):
        assert name in result.stdout
    listed = json.loads(run("list", "--json").stdout)
    assert "sharegpt" in {w["name"] for w in listed["workloads"]} and "gamma" in listed["arrivals"]


def test_describe_json_synthetic() -> None:
    result = run("describe", "fixed:prompt=512,output=128", "--num-requests", "30", "--rate", "2", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["count"] == 30 and summary["num_trimmed"] == 0
    assert summary["prompt_tokens"] == {"mean": 512, "median": 512, "p90": 512, "p99": 512, "max": 512}
    assert summary["output_tokens"]["max"] == 128


def test_describe_reports_trimming() -> None:
    result = run("describe", "fixed:prompt=3000,output=1000", "--model", "tiny", "--num-requests", "5", "--json")
    summary = json.loads(result.stdout)
    assert summary["num_trimmed"] == 5 and summary["prompt_tokens"]["max"] == 1536
    table = run("describe", "fixed:prompt=3000,output=1000", "--model", "tiny", "--num-requests", "5")
    assert "2048 tokens: 5" in table.stdout


@pytest.mark.skipif(not (SHARED_DATA / "traces").is_dir(), reason="reference traces (../shared/data) are absent")
def test_describe_longbench_trace() -> None:
    """Numbers checked against the CSV itself: 1,274 rows, mean prompt 1905.16, max prompt 2048, max output 1699."""
    result = run("describe", "longbench", "--all", "--data-dir", str(SHARED_DATA), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["count"] == 1274 and summary["num_trimmed"] == 0
    assert summary["prompt_tokens"]["mean"] == pytest.approx(1905.159341, abs=1e-5)
    assert summary["prompt_tokens"]["max"] == 2048 and summary["output_tokens"]["max"] == 1699


def test_plot_is_written_and_never_silently_overwritten(tmp_path: Path) -> None:
    plot = tmp_path / "hist.png"
    args = ("describe", "uniform:prompt=10-500,output=5-50", "--num-requests", "200", "--plot", str(plot))
    assert run(*args).exit_code == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plot.write_bytes(b"keep me")
    refused = run(*args)
    assert refused.exit_code == 2 and "--force" in refused.stderr
    assert plot.read_bytes() == b"keep me"
    assert run(*args, "--force").exit_code == 0
    assert plot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("describe", "nope"), "unknown workload 'nope'"),
        (("describe", "sharegpt", "--model", "gpt-9"), "unknown model 'gpt-9'"),
        (("describe", "sharegpt", "--rate", "-1"), "positive"),
        (("describe", "fixed:prompt=5"), "missing output"),
        (("describe", "arxiv", "--data-dir", "/nonexistent-dir"), "pass --data-dir DIR containing"),
        (("describe", "fixed:prompt=5,output=5", "--plot", "/nonexistent-dir/x.png"), "does not exist"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("ascbench: error:")


def test_bad_trace_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("num_prefill_tokens,num_decode_tokens\n12,-1\n")
    result = run("describe", str(path))
    assert result.exit_code == 2 and "integers >= 1" in result.stderr
