"""The engine benchmark runs end to end on a tiny model and rejects bad arguments."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ascendra.errors import UserError  # noqa: E402
from ascendra.harness.bench_engine import BENCH_MODELS, resolve_bench_model, run_engine_bench  # noqa: E402
from ascendra.models import get_model  # noqa: E402


def test_bench_rows_for_tiny_model() -> None:
    threads = torch.get_num_threads()
    rows = run_engine_bench(
        "tiny", batch_sizes=(1, 3), context=20, decode_steps=2, max_batch_tokens=40, repeats=1, num_threads=1
    )
    assert [r["batch_size"] for r in rows] == [1, 3]
    for r in rows:
        assert r["model"] == "tiny" and r["dtype"] == "float32" and r["prefill_tokens"] == 20 * r["batch_size"]
        assert r["num_threads"] == 1
        assert r["prefill_s"] > 0 and r["decode_step_ms"] > 0
        assert r["prefill_tok_s"] == pytest.approx(r["prefill_tokens"] / r["prefill_s"])
        assert r["decode_tok_s"] == pytest.approx(r["batch_size"] / (r["decode_step_ms_mean"] / 1e3))
    assert torch.get_num_threads() == threads  # restored


def test_bench_models_and_errors() -> None:
    assert 95e6 < BENCH_MODELS["llama-100m"].num_params < 105e6
    assert resolve_bench_model(get_model("tiny")).shape == get_model("tiny")
    with pytest.raises(UserError, match="unknown model 'nope'"):
        resolve_bench_model("nope")
    with pytest.raises(UserError, match="batch sizes must be positive"):
        run_engine_bench("tiny", batch_sizes=(0,))
    with pytest.raises(UserError, match="exceeds the model's 2048 positions"):
        run_engine_bench("tiny", context=2048, max_batch_tokens=4096)
    with pytest.raises(UserError, match="does not fit max_batch_tokens"):
        run_engine_bench("tiny", context=100, max_batch_tokens=50)
