"""Calibration: its numeric helpers, the FLOP-ratio scaling, and that ../shared reproduces the packaged file."""

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
from ascendra.costmodel.profiles import read_compute_profile
from ascendra.costmodel.shapes import LAYER_OPS, distance_to, lm_head_work, ratios_to
from ascendra.costmodel.tables import EXTEND_TO, compact_table, isotonic, sample, simplify
from ascendra.errors import UserError
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


def test_flop_ratios_of_identical_and_scaled_shapes() -> None:
    llama31 = get_model("llama-3.1-8b")
    assert ratios_to(llama31, LLAMA3_8B, 2) == dict.fromkeys(LAYER_OPS, 1.0)
    assert distance_to(llama31, LLAMA3_8B) == 0.0  # layer count and context length do not enter the work
    # Llama-3 on Llama-2's profile: GQA halves the QKV projection, the wider MLP adds 14336/11008.
    r = ratios_to(llama31, LLAMA2_7B, 1)
    assert r["attn_pre_proj"] == pytest.approx(0.5)
    assert r["mlp_up_proj"] == r["mlp_down_proj"] == pytest.approx(14336 / 11008)
    assert r["attn_post_proj"] == r["input_layernorm"] == 1.0
    # qwen-14b is closer to the Llama-3-8B profile than to Llama-2-7B.
    qwen = get_model("qwen-14b")
    assert distance_to(qwen, LLAMA3_8B) < distance_to(qwen, LLAMA2_7B)
    assert ratios_to(qwen, LLAMA3_8B, 2)["attn_post_proj"] == pytest.approx((5120 / 4096) ** 2)
    assert lm_head_work(qwen, 2) == 5120 * 152064 / 2


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
    for entry in doc["entries"].values():
        tables = [(entry["linear_layer"], "tokens"), (entry["lm_head"], "seqs")]
        if entry["tp"] == 1:
            assert entry["all_reduce"] is None
        else:
            tables.append((entry["all_reduce"], "tokens"))
        for table, axis in tables:
            xs, ms = table[axis], table["ms"]
            assert xs[0] == 1 and xs[-1] == EXTEND_TO and xs == sorted(set(xs)) and len(xs) == len(ms)
            assert ms == sorted(ms) and ms[0] > 0


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


def test_calibrated_table_follows_the_profile_it_came_from(calibrated: dict) -> None:
    """Llama-3.1-8B on A100 uses its own shape's profile unscaled: 1 token ~0.30 ms/layer, 4096 ~8.5 ms/layer."""
    entries = calibrated["entries"]
    entry = entries["llama-3.1-8b/a100-80gb/tp1"]
    assert entry["profile"].endswith("Meta-Llama-3-8B")
    layer = PiecewiseLinear(entry["linear_layer"]["tokens"], entry["linear_layer"]["ms"])
    assert 0.25 < layer(1) < 0.35 and 7.5 < layer(4096) < 9.5
    h100 = entries["llama-3.1-8b/h100-80gb/tp1"]
    assert h100["profile"].startswith("h100/") and h100["op_scale"]["attn_pre_proj"] == pytest.approx(0.5)
