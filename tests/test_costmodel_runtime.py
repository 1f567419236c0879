"""The packaged cost model: the published measured point, physical sanity, monotonicity, TP, errors, hot path."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ascendra.batch import Batch
from ascendra.costmodel import CostModel, packaged_path
from ascendra.errors import UserError
from ascendra.gpus import get_gpu
from ascendra.models import MODELS, get_model
from ascendra.request import Request, RequestSpec

LLAMA_A100 = CostModel.load("llama-3.1-8b", "a100-80gb")


def ms(seconds: float) -> float:
    return seconds * 1e3


@pytest.mark.parametrize(("requests", "measured_ms"), [(20, 26.0), (27, 30.0)])
def test_published_decode_point_within_15_percent(requests: int, measured_ms: float) -> None:
    """Llama-3.1-8B on one A100: decode-only iterations at ~2K context took ~26 ms (20 requests), ~30 ms (27)."""
    predicted = ms(LLAMA_A100.time_of([], [2000] * requests))
    assert predicted == pytest.approx(measured_ms, rel=0.15)


def test_sanity_prefill_and_single_decode_on_a100() -> None:
    """A 2048-token prefill of a Llama-3-8B shape takes ~130-200 ms; a batch-1 decode ~10-15 ms (8 ms weights)."""
    assert 130 <= ms(LLAMA_A100.time_of([(2048, 0)], [])) <= 200
    assert 10 <= ms(LLAMA_A100.time_of([], [1000])) <= 15.5


def test_h100_is_faster_than_a100() -> None:
    h100 = CostModel.load("llama-3.1-8b", "h100-80gb")
    for prefills, decodes in (([(2048, 0)], []), ([], [2000] * 32), ([(512, 1000)], [1500] * 16)):
        assert h100.time_of(prefills, decodes) < LLAMA_A100.time_of(prefills, decodes)


def test_breakdown_components_sum_to_time_and_are_positive() -> None:
    b = LLAMA_A100.breakdown([(512, 1024)], [2000] * 8)
    assert b.total == pytest.approx(LLAMA_A100.time_of([(512, 1024)], [2000] * 8), rel=1e-12)
    assert b.linear > 0 and b.attention > 0 and b.lm_head > 0 and b.overhead > 0
    assert b.all_reduce == 0.0  # TP 1
    assert set(b.as_dict()) == {"linear", "attention", "lm_head", "all_reduce", "overhead", "total"}


def test_empty_iteration_costs_nothing() -> None:
    assert LLAMA_A100.time_of([], []) == 0.0
    assert LLAMA_A100.batch_time(Batch()) == 0.0


def _batch(prefills: list[tuple[int, int]], decodes: list[int]) -> Batch:
    batch = Batch()
    for i, (chunk, prior) in enumerate(prefills):
        req = Request(RequestSpec(i, 0.0, prior + chunk, 10))
        req.num_computed = prior
        batch.add(req, chunk, is_prefill=True)
    for j, ctx in enumerate(decodes):
        req = Request(RequestSpec(1000 + j, 0.0, ctx, 10))
        req.num_computed = ctx
        batch.add(req, 1, is_prefill=False)
    return batch


@pytest.mark.parametrize(
    ("prefills", "decodes"),
    [([(2048, 0)], []), ([], [1000, 2000, 3000]), ([(512, 3000), (100, 0)], [1500] * 40), ([(1, 5000)], [7])],
)
def test_batch_time_equals_time_of(prefills: list[tuple[int, int]], decodes: list[int]) -> None:
    batch = _batch(prefills, decodes)
    assert LLAMA_A100.batch_time(batch) == pytest.approx(LLAMA_A100.time_of(prefills, decodes), rel=1e-12)
    assert LLAMA_A100.batch_breakdown(batch).total == pytest.approx(LLAMA_A100.batch_time(batch), rel=1e-12)


prefill_lists = st.lists(st.tuples(st.integers(1, 9000), st.integers(0, 8000)), max_size=4)
decode_lists = st.lists(st.integers(0, 8000), max_size=150)


@settings(max_examples=200, deadline=None)
@given(
    prefills=prefill_lists,
    decodes=decode_lists,
    extra_chunk=st.integers(1, 4000),
    extra_ctx=st.integers(1, 4000),
    which=st.sampled_from(sorted(MODELS)),
    gpu=st.sampled_from(["a100-80gb", "h100-80gb"]),
)
def test_more_tokens_or_context_is_never_cheaper(
    prefills: list[tuple[int, int]],
    decodes: list[int],
    extra_chunk: int,
    extra_ctx: int,
    which: str,
    gpu: str,
) -> None:
    cm = CostModel.load(which, gpu)
    base = cm.time_of(prefills, decodes)
    if prefills:
        (chunk, prior), rest = prefills[0], prefills[1:]
        assert cm.time_of([(chunk + extra_chunk, prior), *rest], decodes) >= base
        assert cm.time_of([(chunk, prior + extra_ctx), *rest], decodes) >= base
    if decodes:
        assert cm.time_of(prefills, [decodes[0] + extra_ctx, *decodes[1:]]) >= base
    assert cm.time_of(prefills, [*decodes, extra_ctx]) >= base
    assert cm.time_of([*prefills, (extra_chunk, extra_ctx)], decodes) >= base


def test_tables_extrapolate_monotonically_past_the_grid() -> None:
    times = [LLAMA_A100.time_of([(n, 0)], []) for n in (16384, 32768, 40000, 65536)]
    assert times == sorted(times) and times[-1] > times[-2]


def test_tp2_adds_all_reduce_and_halves_per_gpu_compute() -> None:
    tp1 = LLAMA_A100
    tp2 = CostModel.load("llama-3.1-8b", "a100-80gb", tp=2)
    for prefills, decodes in (([(2048, 0)], []), ([], [2000] * 32)):
        b1, b2 = tp1.breakdown(prefills, decodes), tp2.breakdown(prefills, decodes)
        assert b1.all_reduce == 0.0 and b2.all_reduce > 0.0
        assert b2.linear < 0.75 * b1.linear
        assert b2.attention < 0.75 * b1.attention
    # A long prefill is compute-bound: TP 2 wins overall despite the all-reduces.
    assert tp2.time_of([(8192, 0)], []) < tp1.time_of([(8192, 0)], [])


def test_default_tp_comes_from_the_model_and_specs_are_accepted() -> None:
    qwen = CostModel.load("qwen-14b", "a100-80gb")
    assert qwen.tp == 2
    same = CostModel.load(get_model("qwen-14b"), get_gpu("a100-80gb"))
    assert same.time_of([(300, 0)], [900]) == qwen.time_of([(300, 0)], [900])


@pytest.mark.parametrize(
    ("model", "gpu", "tp", "message"),
    [
        ("gpt-5", "a100-80gb", None, "unknown model"),
        ("llama-3.1-8b", "v100", None, "unknown GPU"),
        ("llama-3.1-8b", "a100-80gb", 8, "no cost model"),
        ("tiny", "a100-80gb", 4, "no cost model"),
    ],
)
def test_unknown_or_uncalibrated_is_a_user_error(model: str, gpu: str, tp: int | None, message: str) -> None:
    with pytest.raises(UserError, match=message):
        CostModel.load(model, gpu, tp)


def test_a_spec_whose_shape_differs_from_the_calibration_is_refused() -> None:
    with pytest.raises(UserError, match="does not match the calibrated shape"):
        CostModel.load(replace(get_model("llama-3.1-8b"), num_layers=40), "a100-80gb")


def test_missing_or_foreign_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        CostModel.load("tiny", "a100-80gb", path=tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(UserError, match="is not an"):
        CostModel.load("tiny", "a100-80gb", path=bad)


def test_packaged_file_loads_without_reference_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The runtime reads only the packaged JSON, never ../shared."""
    monkeypatch.setenv("ASCENDRA_DATA_DIR", str(tmp_path / "absent"))
    assert packaged_path().parent.name == "data" and packaged_path().parent.parent.name == "ascendra"
    assert packaged_path().stat().st_size < 200_000
    for model in MODELS:
        for gpu in ("a100-80gb", "h100-80gb"):
            assert CostModel.load(model, gpu).time_of([(100, 0)], [100]) > 0
