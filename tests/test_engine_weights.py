"""Weights: seeded dummy initialisation, safetensors checkpoints, and clear errors for bad checkpoints."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from safetensors.torch import save_file  # noqa: E402

from ascendra.engine import (  # noqa: E402
    EngineConfig,
    check_weights,
    dummy_weights,
    load_weights,
    parse_dtype,
    save_checkpoint,
    weight_shapes,
)
from ascendra.errors import UserError  # noqa: E402
from ascendra.models import get_model  # noqa: E402

CFG = EngineConfig.from_model_spec(get_model("tiny"))


def test_dummy_weights_are_seeded_and_shaped() -> None:
    a = dummy_weights(CFG, seed=1)
    b = dummy_weights(CFG, seed=1)
    c = dummy_weights(CFG, seed=2)
    check_weights(CFG, a)
    assert sum(t.numel() for t in a.values()) == CFG.num_params
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["lm_head.weight"], c["lm_head.weight"])
    half = dummy_weights(CFG, seed=1, dtype="bf16")
    assert half["lm_head.weight"].dtype == torch.bfloat16
    assert torch.equal(half["lm_head.weight"], a["lm_head.weight"].to(torch.bfloat16))


def test_checkpoint_round_trip(tmp_path) -> None:
    w = dummy_weights(CFG, seed=0)
    save_checkpoint(CFG, w, tmp_path)
    assert EngineConfig.from_json_file(tmp_path).to_hf_dict() == CFG.to_hf_dict()
    loaded = load_weights(tmp_path, CFG)
    assert loaded.keys() == w.keys() and all(torch.equal(loaded[k], w[k]) for k in w)
    assert load_weights(tmp_path, CFG, dtype="fp16")["model.norm.weight"].dtype == torch.float16


def test_sharded_checkpoint_and_extra_tensors(tmp_path) -> None:
    w = dummy_weights(CFG, seed=0)
    names = list(weight_shapes(CFG))
    save_file({n: w[n] for n in names[:5]}, str(tmp_path / "model-00001-of-00002.safetensors"))
    rest = {n: w[n] for n in names[5:]} | {"model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(8)}
    save_file(rest, str(tmp_path / "model-00002-of-00002.safetensors"))
    loaded = load_weights(tmp_path, CFG)
    assert sorted(loaded) == sorted(names)


def test_loading_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="checkpoint directory not found"):
        load_weights(tmp_path / "absent", CFG)
    with pytest.raises(UserError, match=r"no \*\.safetensors files"):
        load_weights(tmp_path, CFG)
    w = dummy_weights(CFG, seed=0)
    partial = {k: v for k, v in w.items() if k != "model.layers.1.mlp.down_proj.weight"}
    save_file(partial, str(tmp_path / "model.safetensors"))
    with pytest.raises(UserError, match="missing tensor 'model.layers.1.mlp.down_proj.weight'"):
        load_weights(tmp_path, CFG)
    bad = dict(w, **{"model.norm.weight": torch.ones(CFG.shape.hidden + 1)})
    save_file(bad, str(tmp_path / "model.safetensors"))
    with pytest.raises(UserError, match=r"'model.norm.weight' in model.safetensors has shape \[65\]"):
        load_weights(tmp_path, CFG)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read safetensors file"):
        load_weights(tmp_path, CFG)


def test_check_weights_and_dtypes() -> None:
    w = dummy_weights(CFG, seed=0)
    del w["lm_head.weight"]
    with pytest.raises(UserError, match="missing tensor 'lm_head.weight'"):
        check_weights(CFG, w)
    assert parse_dtype("bf16") is torch.bfloat16 and parse_dtype(torch.float16) is torch.float16
    with pytest.raises(UserError, match="unsupported dtype 'int8'"):
        parse_dtype("int8")
