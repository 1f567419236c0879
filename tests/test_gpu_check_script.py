"""``scripts/gpu_check.sh`` in its CPU fallback: summary files, argument handling, roofline arithmetic.

No GPU exists in CI, so this is how far the script can be tested: the fallback runs every stage on tiny shapes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "CUDA_VISIBLE_DEVICES")}
    env["CUDA_VISIBLE_DEVICES"] = ""  # the fallback even on a GPU machine
    env["PYTHON"] = sys.executable  # this interpreter, whether or not its environment is activated
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300)


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cpu_fallback_writes_summaries(tmp_path: Path) -> None:
    out = tmp_path / "gc"
    proc = _run("--out", str(out), "--budget-s", "300")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((out / "summary.json").read_text())
    assert data["mode"] == "cpu" and data["device"] == "cpu" and data["hbm_peak_tb_s"] is None
    assert data["tests"]["ok"]
    assert [r["tokens"] for r in data["prefill"]] == data["plan"]["prefill"]
    assert {(r["context"], r["batch_size"]) for r in data["decode"]} == {(64, 1), (64, 8), (128, 1), (128, 8)}
    assert all(r["achieved_gb_s"] > 0 and r["of_peak"] is None for r in data["decode"])
    assert {r["system"] for r in data["live"]} == {"vllm", "sarathi", "ascendra"}
    assert all(r["summary"]["finished"] == data["plan"]["live_requests"] for r in data["live"]), data["live"]
    md = (out / "summary.md").read_text()
    assert "## Decode step" in md and "## Live smoke run" in md and "CPU fallback" in md


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget-s", "5"], "--budget-s must be in [10, 480]"),
        (["--mode", "tpu"], "invalid choice: 'tpu'"),
        (["--mode", "gpu"], "--mode gpu but CUDA is not available"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_fail_in_one_line(args: list[str], message: str) -> None:
    proc = _run(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: error:") and message in lines[0]


def test_out_must_be_a_folder(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    proc = _run("--out", str(f))
    assert proc.returncode == 2 and "is not a folder" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_peaks_and_roofline_arithmetic() -> None:
    from ascendra.models import get_model

    gc = _module()
    assert gc.peaks("NVIDIA H200") == (4.8, 989.0)
    assert gc.peaks("NVIDIA H100 80GB HBM3") == (3.35, 989.0)
    assert gc.peaks("NVIDIA H100 PCIe") == (2.0, 756.0)
    assert gc.peaks("cpu") == (None, None)
    shape = get_model("llama-3.1-8b")
    row = {"batch_size": 32, "context": 1024, "decode_step_ms": 10.0}
    r = gc.decode_roofline(row, shape, 2)
    assert r["kv_bytes"] == 32 * 1024 * 128 * 1024  # 128 KiB of bf16 K+V per token for Llama-3.1-8B
    assert 14.5e9 < r["weight_bytes"] < 15.5e9  # ~7.5B parameters besides the embedding table
    assert r["achieved_gb_s"] == pytest.approx((r["weight_bytes"] + r["kv_bytes"]) / 0.01 / 1e9)
