"""The engine against transformers' own Llama / Qwen2 / Mistral implementations, loading the same random
weights from a local safetensors checkpoint (skipped when transformers is not installed)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ascendra.batch import Batch  # noqa: E402
from ascendra.engine import Engine, EngineConfig, dummy_weights, load_weights, save_checkpoint  # noqa: E402
from ascendra.request import Request, RequestSpec  # noqa: E402

torch.set_num_threads(1)
BASE = {
    "vocab_size": 211,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-5,
    "hidden_act": "silu",
}
CASES = {
    "llama": dict(
        BASE,
        model_type="llama",
        architectures=["LlamaForCausalLM"],
        rope_theta=500000.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32,
        },
    ),
    "qwen2": dict(
        BASE, model_type="qwen2", architectures=["Qwen2ForCausalLM"], tie_word_embeddings=True, rope_theta=1e6
    ),
    "mistral": dict(BASE, model_type="mistral", architectures=["MistralForCausalLM"], sliding_window=24),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_engine_matches_transformers(name: str, tmp_path) -> None:
    cfg = EngineConfig.from_hf_dict(CASES[name])
    save_checkpoint(cfg, dummy_weights(cfg, seed=5, std=0.2), tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(CASES[name]))  # both sides read the original dict
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    loaded = EngineConfig.from_json_file(tmp_path)
    engine = Engine(loaded, load_weights(tmp_path, loaded), num_blocks=32, block_size=8)
    ids = torch.randint(cfg.shape.vocab, (70,), generator=torch.Generator().manual_seed(1)).tolist()
    with torch.no_grad():
        expected = hf(torch.tensor([ids])).logits[0].float()

    # Prefill 70 tokens in three chunks, batched with an unrelated request, then compare every position.
    req = Request(RequestSpec(0, 0.0, len(ids), 1, tuple(ids)))
    other = Request(RequestSpec(1, 0.0, 9, 1, tuple(range(9))))
    got = []
    for n in (31, 1, 38):
        batch = Batch()
        batch.add(req, n, True)
        if req.num_computed == 0:
            batch.add(other, 9, True)
        got.append(engine.logits(batch, {0: list(range(10, 19)), 1: [3, 4]})[0])
        req.num_computed += n
    assert (torch.cat(got) - expected).abs().max().item() < 1e-4
