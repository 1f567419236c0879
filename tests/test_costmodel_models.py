"""Models beyond the paper's: the table's new shapes, config.json paths wherever a run names a model, KV sizing
from the shape, and the run options that pick the interconnect and the chunked-prefill term."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ascendra.errors import UserError
from ascendra.gpus import get_gpu
from ascendra.harness.config import RunConfig
from ascendra.harness.simulate import simulate
from ascendra.kv_cache import num_kv_blocks
from ascendra.models import get_model, is_config_path

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    ("name", "kv_bytes", "params_b"),
    [
        # layers x 2 (K, V) x KV heads x head_dim x 2 bytes; parameters from the model cards.
        ("llama-2-13b", 40 * 2 * 40 * 128 * 2, 13.0),
        ("yi-34b", 60 * 2 * 8 * 128 * 2, 34.4),
        ("llama-3-70b", 80 * 2 * 8 * 128 * 2, 70.6),
        ("qwen2.5-14b", 48 * 2 * 8 * 128 * 2, 14.8),
    ],
)
def test_new_table_models_have_their_model_card_size(name: str, kv_bytes: int, params_b: float) -> None:
    spec = get_model(name)
    assert spec.kv_bytes_per_token() == kv_bytes
    assert spec.num_params / 1e9 == pytest.approx(params_b, rel=0.02)
    assert spec.valid_tp(spec.default_tp)


@pytest.mark.parametrize("name", ["llama-3-70b", "yi-34b"])
def test_a_config_path_is_a_model_name_with_the_same_shape(name: str) -> None:
    path = str(DATA / name / "config.json")
    assert is_config_path(path) and not is_config_path(name)
    assert get_model(path).architecture() == get_model(name).architecture()
    assert get_model(str(DATA / name)) is get_model(path)  # a folder holding config.json, read once
    with pytest.raises(UserError, match="model config not found"):
        get_model(str(DATA / "absent" / "config.json"))
    with pytest.raises(UserError, match="or the path of a HF config.json"):
        get_model("gpt-5")


def test_kv_capacity_follows_the_shape_and_the_gpu_memory() -> None:
    """Llama-3-70B's 141 GB of bf16 weights do not fit one 80 GB GPU; at TP 4 each GPU holds a quarter of them
    and of each token's KV, and TP 8 leaves more room still."""
    spec, gpu = get_model("llama-3-70b"), get_gpu("a100-80gb")
    with pytest.raises(UserError, match="leaves no memory for the KV cache"):
        num_kv_blocks(spec, gpu, 1)
    tp4, tp8 = num_kv_blocks(spec, gpu, 4), num_kv_blocks(spec, gpu, 8)
    # (0.9 x 80 GiB - 141.1 GB / 4) / (16 tokens x 80 KiB) = 32,050 blocks before the activation reserve.
    assert 28_000 < tp4 < 32_050 and tp8 > 2 * tp4


def test_a_run_with_a_config_path_simulates_and_the_switches_reach_the_cost_model() -> None:
    path = str(DATA / "llama-3-70b" / "config.json")
    config = RunConfig.of(system="sarathi", model=path, tp=4, instances=1, num_requests=40, rate=1.0)
    assert config.cost_model().interconnect == "nvswitch" and config.cost_model().chunked_prefill
    off = config.replace(chunked_prefill_cost=False, interconnect="pairwise-nvlink").cost_model()
    assert off.interconnect == "pairwise-nvlink" and not off.chunked_prefill
    # The default stored form (and so every existing run key) is unchanged by the two new options.
    assert "interconnect" not in RunConfig.of().to_dict().get("cluster", {})
    assert "chunked_prefill_cost" not in RunConfig.of().to_dict().get("backend", {})
    fast = simulate(config).summary
    slow = simulate(config.replace(interconnect="pairwise-nvlink")).summary
    assert fast["finished"] == slow["finished"] == 40
    assert slow["ttft_p50"] > fast["ttft_p50"]  # the same prefills, slower all-reduces


def test_bad_switch_combinations_are_user_errors() -> None:
    with pytest.raises(UserError, match="applies to --backend sim"):
        RunConfig.of(chunked_prefill_cost=False, backend="engine", model="tiny")
    with pytest.raises(UserError, match="unknown --interconnect"):
        RunConfig.of(interconnect="ethernet")


def test_a_config_file_model_names_its_runs_by_its_shape(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    shape = json.loads((Path(__file__).parent / "data" / "yi-34b" / "config.json").read_text())
    config.write_text(json.dumps(shape))
    run = RunConfig.from_flat({"system": "vllm", "model": str(config), "tp": 2}, notices=False)
    before = run.key()
    assert run.key() == before  # stable while the file stays the same
    config.write_text(json.dumps({**shape, "num_hidden_layers": 30}))
    os.utime(config, ns=(1, 1))  # a new version even on a coarse clock
    assert run.key() != before
