"""`ascbench bench engine`: the tiny model end to end, bad input, and the message when torch is missing."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

import ascendra.harness.cli.main  # noqa: F401  (registers the commands)
from ascendra.harness.cli.app import app

runner = CliRunner()
TINY = ["bench", "engine", "--model", "tiny", "--batch-sizes", "1,3", "--context", "16"]
FAST = ["--decode-steps", "2", "--repeats", "1", "--threads", "1"]


def test_bench_engine_json_on_tiny() -> None:
    pytest.importorskip("torch")
    result = runner.invoke(app, [*TINY, *FAST, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["benchmark"] == "engine"
    rows = report["rows"]
    assert [r["batch_size"] for r in rows] == [1, 3]
    for row in rows:
        assert row["model"] == "tiny" and row["device"] == "cpu" and row["num_threads"] == 1
        assert row["context"] == 16 and row["prefill_tokens"] == 16 * row["batch_size"]
        assert row["prefill_tok_s"] > 0 and row["decode_step_ms"] > 0 and row["decode_steps"] == 2


def test_bench_engine_table_on_tiny() -> None:
    pytest.importorskip("torch")
    result = runner.invoke(app, [*TINY, *FAST])
    assert result.exit_code == 0, result.output
    assert "Engine: tiny" in result.stdout and "1 threads, context 16" in result.stdout
    rows = [line.split("│")[1].strip() for line in result.stdout.splitlines() if line.startswith("│")]
    assert rows == ["1", "3"]  # one table row per batch size


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-sizes", "1,x"], "bad --batch-sizes"),
        (["--batch-sizes", "0"], "bad --batch-sizes"),
        (["--model", "nope"], "unknown model 'nope'"),
        (["--context", "0"], "must be positive"),
        (["--threads", "0"], "num_threads must be positive"),
        (["--dtype", "int3"], "unsupported dtype"),
        (["--device", "bogus"], "invalid device"),
    ],
)
def test_bench_engine_bad_input_exits_2(args: list[str], message: str) -> None:
    pytest.importorskip("torch")
    result = runner.invoke(app, [*TINY, *FAST, *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bench_engine_without_torch_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails as if it were not installed
    for name in [m for m in sys.modules if m.startswith(("ascendra.engine", "ascendra.harness.bench_engine"))]:
        monkeypatch.delitem(sys.modules, name)
    result = runner.invoke(app, [*TINY, *FAST])
    assert result.exit_code == 2, result.output
    assert "needs torch (the engine extra): pip install -c constraints.txt -e '.[engine]'" in result.stderr
