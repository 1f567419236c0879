"""Calibration: its numeric helpers, the per-op model, and that ../shared reproduces the packaged file."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from ascendra.costmodel import packaged_path
from ascendra.costmodel.calibrate import calibrate, default_data_dir, write_json
from ascendra.costmodel.model import PiecewiseLinear
from ascendra.costmodel.ops import GEMM_OPS, Problem, layer_problems, lm_head_problem
from ascendra.costmodel.profiles import read_compute_profile
from ascendra.costmodel.tables import EXTEND_TO, compact_table, isotonic, sample, simplify
from ascendra.errors import UserError
from ascendra.gpus import get_gpu
from ascendra.models import ModelSpec, get_model

DATA = default_data_dir()

# The profiled shapes (from the profile files' shape columns), as ``profiles.profile_shape`` builds them.
LLAMA3_8B = ModelSpec("a100/meta-llama/Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-8B", 1, 4096, 14336, 32, 8, 128,
                      128256, 32768)  # fmt: skip
LLAMA2_7B = ModelSpec("a100/meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-7b-hf", 1, 4096, 11008, 32, 32, 128,
                      32000, 4096)  # fmt: skip


def test_isotonic_removes_dips_and_keeps_monotone_input() -> None:
    assert isotonic(np.array([1.0, 3.0, 2.0, 4.0])).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert isotonic(np.array([1.0, 2.0, 5.0])).tolist() == [1.0, 2.0, 5.0]
    assert isotonic(np.array([5.0, 1.0, 0.0])).tolist() == pytest.approx([2.0, 2.0, 2.0])


def test_sample_interpolates_clamps_and_extrapolates_linearly() -> None:
    x = np.array([2.0, 4.0, 6.0, 8.0])
    y = 3.0 * x + 1.0
    out = sample(x, y, np.array([1.0, 3.0, 8.0, 16.0]))
    assert out.tolist() == pytest.approx([7.0, 10.0, 25.0, 49.0])  # flat below, line above


def test_simplify_keeps_steps_and_drops_collinear_points() -> None:
    """A staircase on a linear trend: every step edge survives, points on straight runs do not."""
    x = np.arange(1.0, 401.0)
    y = 0.01 * x + 0.5 * (x > 128) + 0.5 * (x > 256)
    keep = simplify(x, y, rel_tol=0.01, abs_tol=0.0)
    assert len(keep) < 12
    approx = np.interp(x, x[keep], y[keep])
    assert np.all(np.abs(approx - y) <= 0.01 * y + 1e-12)
    assert {128.0, 129.0, 256.0, 257.0} <= set(x[keep].tolist())


def test_compact_table_is_monotone_and_spans_to_the_end() -> None:
    rng = np.random.default_rng(0)
    x = np.arange(1.0, 2049.0, 8.0)
    y = 0.1 + 0.001 * x + rng.normal(0, 0.002, len(x))
    xs, ys = compact_table(x, y)
    assert xs[0] == 1 and xs[-1] == EXTEND_TO and len(xs) < 30
    assert ys == sorted(ys)
    assert PiecewiseLinear(xs, ys)(4096) == pytest.approx(0.1 + 0.001 * 4096, rel=0.05)


def test_layer_problems_are_the_per_gpu_gemm_shapes() -> None:
    """Llama-3-8B at TP 2: QKV 4096 x (16 + 2*4)*128, the SwiGLU up projection 4096 x 14336, down 7168 x 4096."""
    p = layer_problems(get_model("llama-3.1-8b"), 2)
    assert (p["attn_pre_proj"].k, p["attn_pre_proj"].n) == (4096, 3072)
    assert (p["attn_post_proj"].k, p["attn_post_proj"].n) == (2048, 4096)
    assert (p["mlp_up_proj"].k, p["mlp_up_proj"].n) == (4096, 14336)
    assert (p["mlp_down_proj"].k, p["mlp_down_proj"].n) == (7168, 4096)
    assert lm_head_problem(get_model("llama-3.1-8b"), 4).n == 128256 // 4
    # Layer count and context length never enter an op's problem.
    assert layer_problems(LLAMA3_8B, 1) == layer_problems(get_model("mistral-7b"), 1)


def test_roofline_of_a_gemm_by_hand() -> None:
    """One token through a 4096 x 28672 GEMM reads its 235 MB of weights: 0.1152 ms at 2.039 TB/s; 4096 tokens
    are compute-bound: 2 * 4096 * 4096 * 28672 FLOPs at 312 TFLOP/s = 3.084 ms."""
    gemm, a100 = Problem("mlp_up_proj", 4096, 28672), get_gpu("a100-80gb")
    one, many = gemm.roofline_ms(np.array([1.0, 4096.0]), a100)
    assert one == pytest.approx(2 * (4096 + 4096 * 28672 + 28672) / 2.039e12 * 1e3)
    assert many == pytest.approx(2 * 4096 * 4096 * 28672 / 312e12 * 1e3)
    norm = Problem("input_layernorm", 4096, 2)
    assert norm.roofline_ms(np.array([1000.0]), a100)[0] == pytest.approx(1000 * 4096 * 2 * 2 / 2.039e12 * 1e3)


def test_valid_tp_requires_even_head_split() -> None:
    assert get_model("tiny").valid_tp(2) and not get_model("tiny").valid_tp(4)
    assert get_model("qwen-14b").valid_tp(4) and not get_model("qwen-14b").valid_tp(3)
    assert not get_model("tiny").valid_tp(0)


def test_missing_data_dir_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no profiles under"):
        calibrate(tmp_path)


def test_packaged_file_is_small_and_machine_independent() -> None:
    text = packaged_path().read_text()
    assert len(text.encode()) < 200_000
    doc = json.loads(text)
    assert not re.search(r'"(/|[A-Za-z]:\\)', text), "the packaged file must not hold absolute paths"
    for section in doc["gpus"].values():
        assert section["curves"] and section["launch_floor_ms"] > 0
        for curve in section["curves"]:
            assert curve["tokens"] == sorted(set(curve["tokens"])) and len(curve["tokens"]) == len(curve["efficiency"])
            # A GEMM never beats the peak; a small elementwise op can beat HBM when its tensors sit in L2.
            assert all(0 < e <= (1.0 if curve["op"] in GEMM_OPS else 2.0) for e in curve["efficiency"])
        assert set(section["all_reduce"]) == {"nvswitch", "pairwise-nvlink"}
        for tables in section["all_reduce"].values():
            for table in tables.values():
                xs, ms = table["bytes"], table["ms"]
                assert xs[0] == 1 and xs == sorted(set(xs)) and ms == sorted(ms) and ms[0] > 0


def _assert_same(a: object, b: object, where: str = "") -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-9), f"{where}: {a} != {b}"  # type: ignore[arg-type]
    else:
        assert a == b, where


def test_a_profile_row_becomes_a_one_layer_model_spec() -> None:
    path = DATA / "profiles" / "compute" / "a100" / "meta-llama" / "Meta-Llama-3-8B" / "mlp.csv"
    if not path.is_file():
        pytest.skip(f"reference profiles not found at {DATA} (set ASCENDRA_DATA_DIR)")
    profile = read_compute_profile(path, "a100/meta-llama/Meta-Llama-3-8B")
    assert profile.shape == LLAMA3_8B
    assert profile.shape.architecture() == {**get_model("llama-3.1-8b").architecture(), "num_layers": 1}


@pytest.fixture(scope="module")
def calibrated() -> dict:
    if not (DATA / "profiles").is_dir():
        pytest.skip(f"reference profiles not found at {DATA} (set ASCENDRA_DATA_DIR)")
    return calibrate(DATA)


def test_calibration_from_reference_data_reproduces_the_packaged_file(calibrated: dict, tmp_path: Path) -> None:
    out = tmp_path / "cost_model.json"
    size = write_json(calibrated, out)
    assert size < 200_000
    _assert_same(json.loads(out.read_text()), json.loads(packaged_path().read_text()))


def test_fitted_model_reproduces_the_profile_it_was_fitted_on(calibrated: dict, tmp_path: Path) -> None:
    """Llama-3.1-8B on A100 is its own profile's shape: its layer times come back within 3% (1 token ~0.30 ms,
    4096 ~8.5 ms per layer), whatever the efficiency curves' compaction dropped."""
    from ascendra.costmodel import CostModel

    out = tmp_path / "cm.json"
    write_json(calibrated, out)
    cm = CostModel.load("llama-3.1-8b", "a100-80gb", path=out)
    profile = read_compute_profile(
        DATA / "profiles" / "compute" / "a100" / "meta-llama" / "Meta-Llama-3-8B" / "mlp.csv", "llama3"
    )
    tokens, ops = profile.tables[1]
    measured = sum(isotonic(t) for t in ops.values())
    for n, ms in zip(tokens, measured, strict=True):
        if n in (1, 64, 512, 1000, 4096, 16384):
            assert cm.breakdown([(int(n), 0)], []).linear * 1e3 / 32 == pytest.approx(ms, rel=0.03)
    assert "Meta-Llama-3-8B/tp1" in cm.profile
