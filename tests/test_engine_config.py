"""EngineConfig: parsing and validating HF config.json dicts, and shapes from the model table."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from ascendra.engine.config import EngineConfig  # noqa: E402
from ascendra.engine.kv_pool import PagedKVCache  # noqa: E402
from ascendra.errors import UserError  # noqa: E402
from ascendra.kv_cache import DEFAULT_BLOCK_SIZE, kv_bytes_per_block  # noqa: E402
from ascendra.models import MODELS, ModelSpec, get_model  # noqa: E402

LLAMA = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "tie_word_embeddings": False,
    "hidden_act": "silu",
    "attention_bias": False,
}


def test_llama31_config_parses_with_llama3_rope() -> None:
    cfg = EngineConfig.from_hf_dict(LLAMA)
    assert (cfg.shape.num_layers, cfg.shape.num_heads, cfg.shape.num_kv_heads, cfg.shape.head_dim) == (32, 32, 8, 128)
    assert cfg.rope_scaling.rope_type == "llama3" and cfg.rope_scaling.factor == 8.0
    assert cfg.rope_theta == 500000.0 and not cfg.qkv_bias and cfg.sliding_window is None
    assert cfg.num_params == get_model("llama-3.1-8b").num_params


def test_qwen2_has_qkv_bias_and_mistral_sliding_window() -> None:
    qwen = dict(
        LLAMA,
        model_type="qwen2",
        architectures=["Qwen2ForCausalLM"],
        rope_scaling=None,
        tie_word_embeddings=True,
        use_sliding_window=False,
        sliding_window=131072,
    )
    qwen.pop("attention_bias")
    cfg = EngineConfig.from_hf_dict(qwen)
    assert cfg.qkv_bias and cfg.tie_word_embeddings and cfg.sliding_window is None
    mistral = dict(
        LLAMA,
        model_type="mistral",
        architectures=["MistralForCausalLM"],
        rope_scaling=None,
        sliding_window=4096,
        max_position_embeddings=32768,
    )
    assert EngineConfig.from_hf_dict(mistral).sliding_window == 4096
    assert EngineConfig.from_hf_dict(dict(mistral, sliding_window=None)).sliding_window is None


def test_newer_rope_parameters_layout_and_linear_scaling() -> None:
    d = dict(LLAMA, rope_scaling=None)
    d.pop("rope_theta")
    d["rope_parameters"] = {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e6}
    cfg = EngineConfig.from_hf_dict(d)
    assert cfg.rope_theta == 1e6 and cfg.rope_scaling.rope_type == "linear" and cfg.rope_scaling.factor == 2.0


def test_round_trip_through_hf_dict() -> None:
    cfg = EngineConfig.from_hf_dict(LLAMA)
    again = EngineConfig.from_hf_dict(json.loads(json.dumps(cfg.to_hf_dict())))
    assert again == EngineConfig.from_hf_dict(LLAMA)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "gpt2"}, "unsupported model_type 'gpt2'"),
        ({"architectures": ["LlamaForSequenceClassification"]}, "unsupported architectures"),
        ({"hidden_act": "gelu"}, "unsupported hidden_act"),
        ({"num_hidden_layers": None}, "missing field 'num_hidden_layers'"),
        ({"hidden_size": "4096"}, "field 'hidden_size' must be int"),
        ({"num_key_value_heads": 5}, "must be a multiple of num_key_value_heads"),
        ({"vocab_size": 0}, "vocab_size must be a positive integer"),
        ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "unsupported rope scaling type 'yarn'"),
        ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "missing field 'low_freq_factor'"),
        ({"attention_bias": True}, "unsupported attention_bias"),
        ({"mlp_bias": True}, "unsupported mlp_bias"),
    ],
)
def test_invalid_configs_are_user_errors(change: dict, message: str) -> None:
    d = dict(LLAMA, **change)
    if change.get("num_hidden_layers", 1) is None:
        d.pop("num_hidden_layers")
    with pytest.raises(UserError, match=message):
        EngineConfig.from_hf_dict(d)


def test_from_json_file_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="model config not found"):
        EngineConfig.from_json_file(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read model config"):
        EngineConfig.from_json_file(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(LLAMA))
    assert EngineConfig.from_json_file(tmp_path).shape.hidden == 4096


def test_a_config_json_is_a_model_spec_the_simulator_can_use(tmp_path) -> None:
    """The engine's shape is a ModelSpec: a checkpoint's config.json has the table model's architecture."""
    (tmp_path / "Llama-3.1-8B").mkdir()
    (tmp_path / "Llama-3.1-8B" / "config.json").write_text(json.dumps(LLAMA))
    spec = ModelSpec.from_hf_config(tmp_path / "Llama-3.1-8B")
    assert spec == EngineConfig.from_json_file(tmp_path / "Llama-3.1-8B").shape
    table = get_model("llama-3.1-8b")
    assert spec.name == "Llama-3.1-8B" and spec.max_model_len == 131072
    assert spec.architecture() == table.architecture() and spec.num_params == table.num_params
    assert spec.to_hf_dict() == {k: {**LLAMA, "head_dim": 128}[k] for k in spec.to_hf_dict()}


def test_invalid_shapes_are_user_errors_however_made() -> None:
    with pytest.raises(UserError, match="vocab_size must be a positive integer"):
        ModelSpec("bad", "x", 2, 64, 128, 4, 2, 16, 0, 2048)
    with pytest.raises(UserError, match="must be a multiple of num_key_value_heads"):
        ModelSpec("bad", "x", 2, 64, 128, 4, 3, 16, 512, 2048)
    with pytest.raises(UserError, match="head_dim must be even"):
        EngineConfig(ModelSpec("odd", "x", 2, 60, 128, 4, 2, 15, 512, 2048))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_from_model_spec_matches_table_shapes(name: str) -> None:
    spec = get_model(name)
    cfg = EngineConfig.from_model_spec(spec)
    assert cfg.shape is spec and cfg.num_params == spec.num_params
    assert EngineConfig.from_hf_dict(cfg.to_hf_dict(), name).shape.architecture() == spec.architecture()


def test_kv_block_bytes_matches_table_and_pool() -> None:
    spec = get_model("llama-3.1-8b")
    cfg = EngineConfig.from_model_spec(spec)
    assert PagedKVCache.block_bytes(cfg, dtype=torch.float16) == kv_bytes_per_block(spec)
    assert PagedKVCache.block_bytes(cfg, 8, torch.float16) * 2 == kv_bytes_per_block(spec, block_size=16)
    assert DEFAULT_BLOCK_SIZE == 16
    tiny = EngineConfig.from_model_spec(get_model("tiny"))
    pool = PagedKVCache(tiny, num_blocks=3, block_size=8, dtype=torch.bfloat16)
    assert pool.num_bytes == 3 * PagedKVCache.block_bytes(tiny, 8, torch.bfloat16)
