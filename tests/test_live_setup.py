"""Bad live-run input is a UserError before any instance starts: devices, options, checkpoints, workloads."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ascendra.engine import EngineConfig, dummy_weights, save_checkpoint  # noqa: E402
from ascendra.errors import UserError  # noqa: E402
from ascendra.harness.config import RunConfig  # noqa: E402
from ascendra.harness.live_run import run_live  # noqa: E402
from ascendra.live.engines import LiveOptions, kv_blocks  # noqa: E402
from ascendra.models import get_model  # noqa: E402
from ascendra.request import RequestSpec  # noqa: E402
from workloads import Workload  # noqa: E402

CFG = RunConfig.of(system="vllm", workload="fixed:prompt=16,output=8", model="tiny", instances=1, num_requests=2)
TWO = Workload("two", [RequestSpec(0, 0.0, 8, 3), RequestSpec(1, 0.01, 12, 2)])
TINY = EngineConfig.from_model_spec(get_model("tiny"))


def run(options: LiveOptions, workload: Workload = TWO):
    return run_live(CFG, workload, options)


@pytest.mark.parametrize(
    ("device", "message"),
    [("tpu", "unknown device"), ("meta", "unsupported device"), ("cuda", "CUDA is not available")],
)
def test_bad_or_missing_devices(device: str, message: str) -> None:
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(UserError, match=message):
        run(LiveOptions(device=device, num_blocks=8))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_blocks": 0}, "--kv-blocks must be positive"),
        ({"kv_cache_gib": 0.0}, "--kv-cache-gib must be positive"),
        ({"torch_threads": 0}, "--torch-threads must be positive"),
        ({"dtype": "int8"}, "unsupported dtype"),
    ],
)
def test_bad_options(options: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        run(LiveOptions(**options))


def test_kv_budget_is_divided_by_the_engines_real_block_size() -> None:
    # tiny in fp32: 2 layers x (K, V) x 16 slots x 2 KV heads x 16 dims x 4 bytes = 8 KiB per block.
    assert kv_blocks(TINY, LiveOptions(kv_cache_gib=1 / 1024), torch.float32) == 128
    assert kv_blocks(TINY, LiveOptions(kv_cache_gib=1 / 1024), torch.float16) == 256
    assert kv_blocks(TINY, LiveOptions(num_blocks=5), torch.float32) == 5
    with pytest.raises(UserError, match="holds no KV block"):
        kv_blocks(TINY, LiveOptions(kv_cache_gib=1e-9), torch.float32)


def test_missing_or_mismatched_checkpoints(tmp_path) -> None:
    with pytest.raises(UserError, match="model config not found"):
        run(LiveOptions(checkpoint=tmp_path / "nowhere", num_blocks=8))
    (tmp_path / "no-weights").mkdir()
    (tmp_path / "no-weights" / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(UserError, match="missing field"):
        run(LiveOptions(checkpoint=tmp_path / "no-weights", num_blocks=8))
    other = EngineConfig.from_hf_dict({**TINY.to_hf_dict(), "hidden_size": 32, "head_dim": 8})
    save_checkpoint(other, dummy_weights(other), tmp_path / "other")
    with pytest.raises(UserError, match="hidden 32 vs 64"):
        run(LiveOptions(checkpoint=tmp_path / "other", num_blocks=8))
    save_checkpoint(TINY, dummy_weights(TINY), tmp_path / "ok")
    (tmp_path / "ok" / "model.safetensors").unlink()
    with pytest.raises(UserError, match="no \\*.safetensors"):
        run(LiveOptions(checkpoint=tmp_path / "ok", num_blocks=8))


def test_a_checkpoint_of_the_right_shapes_serves_and_matches_its_dummy_twin(tmp_path) -> None:
    save_checkpoint(TINY, dummy_weights(TINY, seed=0), tmp_path / "tiny")
    from_disk = run(LiveOptions(checkpoint=tmp_path / "tiny", num_blocks=8))
    dummy = run(LiveOptions(num_blocks=8))
    outputs = [[r.output_ids for r in o.result.requests] for o in (from_disk, dummy)]
    assert outputs[0] == outputs[1] and [len(x) for x in outputs[0]] == [3, 2]


def test_workloads_the_engine_cannot_run() -> None:
    foreign = Workload("ids", [RequestSpec(0, 0.0, 3, 2, (1, 2, 9999))])
    with pytest.raises(UserError, match="outside the vocabulary of 512"):
        run(LiveOptions(num_blocks=8), foreign)
    too_long = Workload("long", [RequestSpec(0, 0.0, 2040, 10)])
    with pytest.raises(UserError, match="needs 2050 positions, the model has 2048"):
        run(LiveOptions(num_blocks=200), too_long)


def test_a_model_too_large_for_memory_is_refused_before_allocating(monkeypatch):
    from ascendra.live import engines

    pages = {"SC_AVPHYS_PAGES": 1024, "SC_PAGE_SIZE": 4096}  # 4 MiB free
    monkeypatch.setattr(engines.os, "sysconf", pages.__getitem__)
    config, _ = engines.load_model("tiny", engines.LiveOptions(), torch.device("cpu"), torch.float32)  # 0.6 MB
    assert config.num_params < 1_000_000
    with pytest.raises(UserError, match="GiB of memory is free"):
        engines.load_model("llama-3.1-8b", engines.LiveOptions(), torch.device("cpu"), torch.float32)
