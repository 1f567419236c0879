"""`ascbench cost-model` and `ascbench calibrate` through the shared typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ascendra.harness.cli.main  # noqa: F401  (registers the commands)
from ascendra.costmodel.calibrate import default_data_dir
from ascendra.harness.cli.app import app

runner = CliRunner()
DATA = default_data_dir()
needs_data = pytest.mark.skipif(
    not (DATA / "profiles").is_dir(), reason=f"reference profiles not found at {DATA} (set ASCENDRA_DATA_DIR)"
)


def test_cost_model_table() -> None:
    result = runner.invoke(app, ["cost-model", "--model", "llama-3.1-8b", "--gpu", "a100-80gb"])
    assert result.exit_code == 0, result.output
    for text in ("prefill 2048", "decode 128 x 4096", "decode 20 x 2000", "Published point"):
        assert text in result.output


def test_cost_model_json_is_one_object_with_every_case() -> None:
    result = runner.invoke(app, ["cost-model", "--model", "qwen-14b", "--gpu", "h100-80gb", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert (doc["model"], doc["gpu"], doc["tp"]) == ("qwen-14b", "h100-80gb", 2)
    cases = {c["case"]: c for c in doc["cases"]}
    assert set(cases) == {
        "prefill 512", "prefill 2048", "prefill 8192",
        "decode 1 x 1024", "decode 32 x 1024", "decode 128 x 1024",
        "decode 1 x 4096", "decode 32 x 4096", "decode 128 x 4096",
    }  # fmt: skip
    assert all(c["all_reduce_ms"] > 0 for c in cases.values())
    parts = ("linear_ms", "attention_ms", "lm_head_ms", "all_reduce_ms", "overhead_ms")
    for c in cases.values():
        assert c["total_ms"] == pytest.approx(sum(c[p] for p in parts))
    points = doc["measured"]["points"]
    assert [p["measured_ms"] for p in points] == [26.0, 30.0]
    assert all(p["within_tolerance"] for p in points)


def test_a_70b_config_at_tp4_is_shown_next_to_tensorrt_llms_published_latency() -> None:
    config = Path(__file__).parent / "data" / "llama-3-70b" / "config.json"
    result = runner.invoke(app, ["cost-model", "--model", str(config), "--tp", "4", "--json"])
    assert result.exit_code == 0, result.output
    published = json.loads(result.output)["published"]
    assert [(p["case"], p["measured_ms"]) for p in published] == [("prefill 128", 47.0), ("prefill 2048", 377.0)]
    assert all(abs(p["error"]) < 0.2 for p in published)  # NVSwitch: ~+10%, the pairwise profile would be ~+70%
    eight_b = json.loads(runner.invoke(app, ["cost-model", "--json"]).output)
    assert eight_b["published"] == []  # no published first-token latency for that setup


@pytest.mark.parametrize(
    "args",
    [["--model", "nope"], ["--gpu", "tpu-v5"], ["--model", "tiny", "--tp", "4"], ["--interconnect", "ethernet"]],
)
def test_cost_model_bad_input_exits_2_with_one_line(args: list[str]) -> None:
    result = runner.invoke(app, ["cost-model", *args])
    assert result.exit_code == 2
    assert result.output.strip().startswith("ascbench: error:") and len(result.output.strip().splitlines()) == 1


def test_calibrate_without_data_is_a_user_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["calibrate", "--data-dir", str(tmp_path), "--out", str(tmp_path / "x.json")])
    assert result.exit_code == 2 and "no profiles under" in result.output


def test_calibrate_refuses_to_overwrite_other_files_without_force(tmp_path: Path) -> None:
    out = tmp_path / "mine.json"
    out.write_text("{}")
    result = runner.invoke(app, ["calibrate", "--data-dir", str(tmp_path), "--out", str(out)])
    assert result.exit_code == 2 and "--force" in result.output
    assert out.read_text() == "{}"


@needs_data
def test_calibrate_writes_json_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "cm.json"
    result = runner.invoke(app, ["calibrate", "--data-dir", str(DATA), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["out"] == str(out) and report["bytes"] == out.stat().st_size
    assert any(e["key"] == "llama-3.1-8b/a100-80gb/tp1" for e in report["entries"])
    assert all(p["within_tolerance"] for p in report["measured"])
    # The file is usable straight away, and a second run needs --force.
    shown = runner.invoke(app, ["cost-model", "--file", str(out), "--json"])
    assert shown.exit_code == 0 and json.loads(shown.output)["model"] == "llama-3.1-8b"
    assert runner.invoke(app, ["calibrate", "--data-dir", str(DATA), "--out", str(out)]).exit_code == 2
    again = runner.invoke(app, ["calibrate", "--data-dir", str(DATA), "--out", str(out), "--force"])
    assert again.exit_code == 0, again.output
    assert "wrote" in again.output


def test_cost_model_reads_a_hf_config_json() -> None:
    """`--model path/config.json`: Yi-34B (hand-written config) at TP 2, named after its folder."""
    config = Path(__file__).parent / "data" / "yi-34b" / "config.json"
    result = runner.invoke(app, ["cost-model", "--model", str(config), "--tp", "2", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert (doc["model"], doc["tp"]) == ("yi-34b", 2)
    cases = {c["case"]: c for c in doc["cases"]}
    assert cases["prefill 2048"]["total_ms"] > cases["decode 32 x 1024"]["total_ms"] > 0
    missing = runner.invoke(app, ["cost-model", "--model", "nowhere/config.json"])
    assert missing.exit_code == 2 and "model config not found" in missing.output
