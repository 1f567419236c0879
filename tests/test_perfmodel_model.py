"""PerfModel: prediction forms agree, predictions are monotone in work, JSON storage round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.gpus import get_gpu
from ascendra.models import get_model
from ascendra.perfmodel import KindCoefficients, PerfModel, WorkCounter, batch_stats, features
from ascendra.request import Request, RequestSpec

MODEL, GPU = "llama-3.1-8b", "a100-80gb"
COEFS = {
    "prefill": KindCoefficients(0.004, 0.5, 0.2, 0.7, 0.1),
    "decode": KindCoefficients(0.006, 0.0, 1.2, 2.0, 0.3),
    "mixed": KindCoefficients(0.008, 0.4, 0.3, 0.1, 0.2),
}


def make_model(per_seq: bool = False) -> PerfModel:
    gpu = get_gpu(GPU)
    coefs = COEFS
    if per_seq:
        coefs = {k: KindCoefficients(*c.to_dict().values(), seqs=2e-4) for k, c in COEFS.items()}
    return PerfModel(MODEL, GPU, 1, gpu.peak_flops, gpu.mem_bandwidth, coefs, {"note": "test"}, per_seq)


def test_prediction_is_the_regression_on_the_features() -> None:
    perf = make_model()
    gpu = get_gpu(GPU)
    counter = WorkCounter(get_model(MODEL), 1)
    for prefills, decodes in (([(1000, 0), (300, 0)], []), ([], [100, 2000, 50]), ([(700, 64)], [10] * 20)):
        stats = batch_stats(prefills, decodes)
        c = COEFS[stats.kind]
        x = features(*counter.flops_bytes(stats), gpu.peak_flops, gpu.mem_bandwidth)
        expected = c.intercept + sum(w * v for w, v in zip(c.weights, x, strict=True))
        assert perf.predict(prefills, decodes) == pytest.approx(expected, rel=1e-12)


def test_prediction_forms_agree() -> None:
    perf = make_model()
    waiting = Request(RequestSpec(0, 0.0, prompt_tokens=900, output_tokens=5))
    running = Request(RequestSpec(1, 0.0, prompt_tokens=300, output_tokens=5), num_computed=321)
    batch = Batch()
    batch.add(running, 1, is_prefill=False)
    batch.add(waiting, 900, is_prefill=True)
    assert perf.predict_batch(batch) == perf.predict([(900, 0)], [321])
    only = Batch()
    only.add(waiting, 900, is_prefill=True)
    assert perf.predict_batch(only) == perf.predict_prefill(900) == perf.predict([(900, 0)], [])
    assert perf.predict_prefill(256, context=512) == perf.predict([(256, 512)], [])
    assert perf.predict([], []) == perf.predict_batch(Batch()) == perf.predict_prefill(0) == 0.0


def test_per_sequence_term_adds_per_sequence_time() -> None:
    plain, extended = make_model(), make_model(per_seq=True)
    assert extended.predict([], [100] * 10) == pytest.approx(plain.predict([], [100] * 10) + 10 * 2e-4)


@pytest.mark.parametrize("per_seq", [False, True])
def test_prediction_is_monotone_in_tokens_and_context(per_seq: bool) -> None:
    perf = make_model(per_seq)
    by_tokens = [perf.predict_prefill(n) for n in (1, 4, 16, 64, 256, 1024, 4096, 8192)]
    by_context = [perf.predict_prefill(512, c) for c in (0, 100, 1000, 4000, 7000)]
    by_decode_ctx = [perf.predict([], [c] * 16) for c in (1, 10, 100, 1000, 8000)]
    by_decodes = [perf.predict([], [500] * n) for n in (1, 2, 8, 32, 128)]
    by_mixed = [perf.predict([(n, 0)], [500] * 8) for n in (1, 64, 512, 4096)]
    for series in (by_tokens, by_context, by_decode_ctx, by_decodes, by_mixed):
        assert all(a < b for a, b in zip(series, series[1:], strict=False)), series


@pytest.mark.parametrize("per_seq", [False, True])
def test_json_round_trip(tmp_path: Path, per_seq: bool) -> None:
    perf = make_model(per_seq)
    path = tmp_path / "pm.json"
    perf.save(path)
    data = json.loads(path.read_text())
    assert data["features"][-1] == ("seqs" if per_seq else "memory")
    back = PerfModel.from_file(path)
    assert back.to_dict() == perf.to_dict()
    assert back.per_seq == per_seq
    assert back.predict([(700, 64)], [10] * 20) == perf.predict([(700, 64)], [10] * 20)


def test_malformed_files_are_user_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    with pytest.raises(UserError, match="does not exist"):
        PerfModel.from_file(path)
    path.write_text("{not json")
    with pytest.raises(UserError, match="cannot read"):
        PerfModel.from_file(path)
    data = make_model().to_dict()
    data["coefficients"]["decode"].pop("memory")
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="malformed"):
        PerfModel.from_file(path)
    data = make_model().to_dict()
    data["format"] = "pickle"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="malformed"):
        PerfModel.from_file(path)


def test_missing_kind_is_a_clear_error() -> None:
    gpu = get_gpu(GPU)
    perf = PerfModel(MODEL, GPU, 1, gpu.peak_flops, gpu.mem_bandwidth, {"prefill": COEFS["prefill"]})
    assert perf.predict_prefill(100) > 0
    with pytest.raises(UserError, match="no 'mixed' regression"):
        perf.predict([(10, 0)], [5])


def test_load_without_shipped_coefficients_needs_a_simulable_configuration() -> None:
    """Without shipped coefficients a fit is made on first use (tests/test_perfmodel_cache.py), which needs the
    simulator's cost model: a TP degree that does not split the heads is one clear error."""
    with pytest.raises(UserError, match="must both split evenly"):
        PerfModel.load("tiny", "h100-80gb", tp=4)
    with pytest.raises(UserError, match="unknown model"):
        PerfModel.load("gpt-5", GPU)


def shipped_files() -> list[str]:
    from importlib import resources

    return sorted(p.name for p in (resources.files("ascendra") / "data").iterdir() if p.name.startswith("perf_model_"))


def test_shipped_coefficients_load_under_their_names() -> None:
    from itertools import product

    from ascendra.gpus import GPUS
    from ascendra.models import MODELS
    from ascendra.perfmodel.model import shipped_name

    configs = {shipped_name(*c): c for c in product(MODELS, GPUS, (1, 2, 4), (False, True))}
    names = shipped_files()
    assert "perf_model_llama-3.1-8b_a100-80gb_tp1.json" in names
    for name in names:
        assert name in configs, f"{name} matches no (model, gpu, tp)"
        model, gpu, tp, per_seq = configs[name]
        perf = PerfModel.load(model, gpu, tp, per_seq=per_seq)
        assert (perf.model, perf.gpu, perf.tp, perf.per_seq) == (model, gpu, tp, per_seq)
        assert set(perf.coefficients) == {"prefill", "decode", "mixed"}
    assert PerfModel.load("qwen-14b", "a100-80gb").tp == 2  # the model's default TP


@pytest.mark.parametrize("per_seq, tolerance", [(False, 0.25), (True, 0.05)])
def test_shipped_coefficients_track_the_current_cost_model(per_seq: bool, tolerance: float) -> None:
    """Fails when the simulator's cost model changes and the shipped coefficients were not regenerated."""
    import numpy as np

    from ascendra.costmodel import CostModel
    from ascendra.perfmodel.log import parse_compositions
    from ascendra.perfmodel.synthetic_log import synthetic_log

    cost = CostModel.load(MODEL, GPU, 1)
    perf = PerfModel.load(MODEL, GPU, 1, per_seq=per_seq)
    log = synthetic_log(MODEL, GPU, cost.time_of, per_kind=100, seed=123)
    prefills, decodes = parse_compositions(log)
    predicted = np.array([perf.predict(p, d) for p, d in zip(prefills, decodes, strict=True)])
    rel = np.abs(predicted - log["seconds"].to_numpy()) / log["seconds"].to_numpy()
    assert np.median(rel) < tolerance
