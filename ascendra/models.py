"""Model shapes: the one table every component (cost model, performance model, KV sizing, engine) reads."""

from __future__ import annotations

from dataclasses import dataclass

from ascendra.errors import UserError


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Shape of a Llama-family decoder, as far as serving cost and memory are concerned."""

    name: str
    hf_id: str
    num_layers: int
    hidden: int
    ffn: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab: int
    max_model_len: int
    default_tp: int = 1
    dtype_bytes: int = 2

    @property
    def num_params(self) -> int:
        """Parameter count: attention + SwiGLU MLP + two norms per layer, embeddings and an untied LM head."""
        attn = self.hidden * (self.num_heads + 2 * self.num_kv_heads) * self.head_dim
        attn += self.num_heads * self.head_dim * self.hidden
        mlp = 3 * self.hidden * self.ffn
        per_layer = attn + mlp + 2 * self.hidden
        return self.num_layers * per_layer + 2 * self.vocab * self.hidden + self.hidden

    @property
    def weight_bytes(self) -> int:
        return self.num_params * self.dtype_bytes

    def kv_bytes_per_token(self, tp: int = 1) -> int:
        """Bytes of K and V cached per token on one GPU of a TP group."""
        return self.num_layers * 2 * self.num_kv_heads * self.head_dim * self.dtype_bytes // tp


MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec("llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct", 32, 4096, 14336, 32, 8, 128, 128256, 8192),
        ModelSpec("mistral-7b", "mistralai/Mistral-7B-Instruct-v0.2", 32, 4096, 14336, 32, 8, 128, 32000, 8192),
        # Qwen2.5-14B-Instruct shapes (GQA); served with tensor parallelism 2 by default.
        ModelSpec("qwen-14b", "Qwen/Qwen2.5-14B-Instruct", 48, 5120, 13824, 40, 8, 128, 152064, 8192, default_tp=2),
        # A tiny model for tests and the CPU engine: same structure, toy sizes.
        ModelSpec("tiny", "ascendra/tiny-llama", 2, 64, 128, 4, 2, 16, 512, 2048),
    )
}


def get_model(name: str) -> ModelSpec:
    """Look a model up by its short name; unknown names are a user error listing the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise UserError(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None
