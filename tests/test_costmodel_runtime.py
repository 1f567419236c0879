"""The packaged cost model: the published measured point, physical sanity, monotonicity, TP, errors, hot path."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ascendra.batch import Batch
from ascendra.costmodel import CostModel, packaged_path
from ascendra.errors import UserError
from ascendra.gpus import get_gpu
from ascendra.models import MODELS, ModelSpec, get_model
from ascendra.request import Request, RequestSpec

LLAMA_A100 = CostModel.load("llama-3.1-8b", "a100-80gb")
DATA_DIR = Path(__file__).parent / "data"


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
        ("llama-3.1-8b", "a100-80gb", 3, "no cost model"),
        ("tiny", "a100-80gb", 4, "no cost model"),
    ],
)
def test_unknown_or_uncalibrated_is_a_user_error(model: str, gpu: str, tp: int | None, message: str) -> None:
    with pytest.raises(UserError, match=message):
        CostModel.load(model, gpu, tp)


def test_any_llama_shape_from_a_config_json_and_tp() -> None:
    """Llama-3-70B (hand-written config from the model card) at TP 4 on A100: 80 layers of twice the hidden size.
    A decode step reads each GPU's quarter of the 140 GB of weights (35 GB at 1.3-1.7 TB/s: 20-27 ms of GEMMs) and
    a 2048-token prefill is compute-bound (~140 GFLOP/token / 4 GPUs at ~230 TFLOP/s: ~310 ms of GEMMs)."""
    spec = ModelSpec.from_hf_config(DATA_DIR / "llama-3-70b" / "config.json")
    cm = CostModel.load(spec, "a100-80gb", 4)
    decode = cm.breakdown([], [1000])
    assert 20 <= ms(decode.linear) <= 30
    prefill = cm.breakdown([(2048, 0)], [])
    assert 250 <= ms(prefill.linear) <= 400 and prefill.all_reduce > 0
    # More GPUs split the work: TP 8 < TP 4 < TP 2 over NVSwitch; pairwise NVLink has no TP 8 profile.
    tp2, tp8 = (CostModel.load(spec, "a100-80gb", t).time_of([(2048, 0)], []) for t in (2, 8))
    assert tp8 < cm.time_of([(2048, 0)], []) < tp2
    with pytest.raises(UserError, match="all-reduce profile covers TP 2, 4"):
        CostModel.load(spec, "a100-80gb", 8, interconnect="pairwise-nvlink")


def test_interconnect_changes_only_the_all_reduce() -> None:
    """One 4 MB all-reduce (the hidden states of 256 Llama-3-70B tokens) from the profiles: ~0.085 ms over
    NVSwitch and ~0.32 ms over pairwise NVLink at TP 4 on the A100; at TP 2 both are NVLink pairs (0.063 vs
    0.064 ms). Everything else is the same, and TP 1 has no all-reduce at all."""
    spec = get_model("llama-3-70b")
    per_all_reduce = 2 * spec.num_layers * 1e-3  # two all-reduces per layer, in ms -> s
    by = {ic: CostModel.load(spec, "a100-80gb", 4, interconnect=ic) for ic in ("nvswitch", "pairwise-nvlink")}
    switch, pairs = (by[ic].breakdown([(256, 0)], []) for ic in ("nvswitch", "pairwise-nvlink"))
    assert switch.all_reduce / per_all_reduce == pytest.approx(0.085, rel=0.15)
    assert pairs.all_reduce / per_all_reduce == pytest.approx(0.317, rel=0.15)
    assert (switch.linear, switch.attention, switch.lm_head) == (pairs.linear, pairs.attention, pairs.lm_head)
    tp2 = [CostModel.load(spec, "a100-80gb", 2, interconnect=ic).breakdown([(256, 0)], []) for ic in by]
    assert tp2[0].all_reduce == pytest.approx(tp2[1].all_reduce, rel=0.1)
    tp1 = [CostModel.load("llama-3.1-8b", "a100-80gb", 1, interconnect=ic).time_of([(512, 0)], [64]) for ic in by]
    assert tp1[0] == tp1[1]
    with pytest.raises(UserError, match="no 'infiniband' interconnect"):
        CostModel.load(spec, "a100-80gb", 4, interconnect="infiniband")


def test_chunked_prefill_term_only_adds_cost_to_prefills() -> None:
    """The switch changes prefill attention only: decode-only iterations are identical, a 512-token chunk over
    2,000 prior tokens (128 tiles: two waves on 108 SMs) costs more, and a whole 8K prompt barely moves."""
    off = CostModel.load("llama-3.1-8b", "a100-80gb", chunked_prefill=False)
    assert off.time_of([], [2000] * 20) == LLAMA_A100.time_of([], [2000] * 20)
    chunk_on, chunk_off = LLAMA_A100.prefill_attention([(512, 2000)]), off.prefill_attention([(512, 2000)])
    assert chunk_on > 1.5 * chunk_off
    whole_on, whole_off = LLAMA_A100.time_of([(8192, 0)], []), off.time_of([(8192, 0)], [])
    assert whole_off < whole_on < 1.01 * whole_off


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
