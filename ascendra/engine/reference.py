"""A plain dense forward pass over one whole sequence, used only to check the engine.

No cache, no paging, no fusion, no SDPA: separate projections, explicitly repeated K/V heads and a
hand-built causal softmax, all in fp32. Slow and simple on purpose, so it can be trusted by reading.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from ascendra.engine.config import EngineConfig
from ascendra.engine.rope import inverse_frequencies


@torch.inference_mode()
def reference_logits(
    config: EngineConfig, weights: Mapping[str, torch.Tensor], token_ids: Sequence[int]
) -> torch.Tensor:
    """fp32 logits [len(token_ids), vocab] of a full recompute of ``token_ids``."""
    shape = config.shape

    def w(name: str) -> torch.Tensor:
        return weights[name].detach().to("cpu", torch.float32)

    def norm(x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        return gain * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + config.rms_norm_eps))

    def rotate(x: torch.Tensor) -> torch.Tensor:  # x: [heads, L, head_dim]
        half = shape.head_dim // 2
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)

    n = len(token_ids)
    angles = torch.arange(n, dtype=torch.float32)[:, None] * inverse_frequencies(config)[None, :]
    cos, sin = angles.cos(), angles.sin()  # [L, head_dim / 2]
    pos = torch.arange(n)
    allowed = pos[None, :] <= pos[:, None]
    if config.sliding_window is not None:
        allowed &= pos[None, :] > pos[:, None] - config.sliding_window
    group = shape.num_heads // shape.num_kv_heads

    x = w("model.embed_tokens.weight")[torch.tensor(list(token_ids), dtype=torch.long)]
    for i in range(shape.num_layers):
        p = f"model.layers.{i}."
        h = norm(x, w(p + "input_layernorm.weight"))
        proj = {}
        for name in ("q", "k", "v"):
            out = h @ w(p + f"self_attn.{name}_proj.weight").T
            if config.qkv_bias:
                out = out + w(p + f"self_attn.{name}_proj.bias")
            proj[name] = out.view(n, -1, shape.head_dim).transpose(0, 1)  # [heads, L, head_dim]
        q = rotate(proj["q"])
        k = rotate(proj["k"]).repeat_interleave(group, dim=0)
        v = proj["v"].repeat_interleave(group, dim=0)
        scores = (q @ k.transpose(1, 2)) / math.sqrt(shape.head_dim)
        scores = scores.masked_fill(~allowed, float("-inf"))
        attn = (scores.softmax(-1) @ v).transpose(0, 1).reshape(n, config.q_size)
        x = x + attn @ w(p + "self_attn.o_proj.weight").T
        h = norm(x, w(p + "post_attention_layernorm.weight"))
        gate = h @ w(p + "mlp.gate_proj.weight").T
        up = h @ w(p + "mlp.up_proj.weight").T
        x = x + (gate * torch.sigmoid(gate) * up) @ w(p + "mlp.down_proj.weight").T
    head = "model.embed_tokens.weight" if config.tie_word_embeddings else "lm_head.weight"
    return norm(x, w("model.norm.weight")) @ w(head).T
