"""The decoder forward pass over one flat batch of tokens with a paged KV cache.

Weights are kept as plain tensors (no nn.Module): Q/K/V and gate/up projections are fused into one matrix
each so a layer runs four GEMMs over all T tokens of the batch regardless of how many requests it mixes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ascendra.engine.attention import AttentionMetadata, paged_attention
from ascendra.engine.config import EngineConfig
from ascendra.engine.kv_pool import PagedKVCache
from ascendra.engine.layers import rms_norm, swiglu
from ascendra.engine.rope import RotaryEmbedding, apply_rotary
from ascendra.engine.weights import check_weights


@dataclass(slots=True)
class LayerWeights:
    input_norm: torch.Tensor
    qkv: torch.Tensor  # [q_size + 2 * kv_size, hidden]
    qkv_bias: torch.Tensor | None
    o: torch.Tensor
    post_norm: torch.Tensor
    gate_up: torch.Tensor  # [2 * ffn, hidden]
    down: torch.Tensor


class DecoderModel:
    """A Llama / Mistral / Qwen2 decoder; ``forward`` maps a flat batch to logits of selected rows."""

    def __init__(
        self,
        config: EngineConfig,
        weights: Mapping[str, torch.Tensor],
        device: str | torch.device,
        dtype: torch.dtype,
    ) -> None:
        check_weights(config, weights)
        self.config = config
        self.device = torch.device(device)
        self.dtype = dtype

        def w(name: str) -> torch.Tensor:
            return weights[name].to(device=self.device, dtype=dtype)

        self.embed = w("model.embed_tokens.weight")
        self.layers: list[LayerWeights] = []
        for i in range(config.shape.num_layers):
            p = f"model.layers.{i}."
            a = p + "self_attn."
            bias = None
            if config.qkv_bias:
                bias = torch.cat([w(a + "q_proj.bias"), w(a + "k_proj.bias"), w(a + "v_proj.bias")])
            self.layers.append(
                LayerWeights(
                    input_norm=w(p + "input_layernorm.weight"),
                    qkv=torch.cat([w(a + "q_proj.weight"), w(a + "k_proj.weight"), w(a + "v_proj.weight")]),
                    qkv_bias=bias,
                    o=w(a + "o_proj.weight"),
                    post_norm=w(p + "post_attention_layernorm.weight"),
                    gate_up=torch.cat([w(p + "mlp.gate_proj.weight"), w(p + "mlp.up_proj.weight")]),
                    down=w(p + "mlp.down_proj.weight"),
                )
            )
        self.norm = w("model.norm.weight")
        self.lm_head = self.embed if config.tie_word_embeddings else w("lm_head.weight")
        self.rope = RotaryEmbedding(config, self.device)

    @torch.inference_mode()
    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        meta: AttentionMetadata,
        cache: PagedKVCache,
        logit_rows: torch.Tensor,
    ) -> torch.Tensor:
        """Run ``input_ids`` [T] at ``positions`` [T], updating ``cache``; return fp32 logits [len(logit_rows),
        vocab] for the selected rows only (the LM head is the largest GEMM for small batches)."""
        cfg = self.config
        heads, kv_heads, head_dim = cfg.shape.num_heads, cfg.shape.num_kv_heads, cfg.shape.head_dim
        t = input_ids.shape[0]
        cos, sin = self.rope.cos_sin(positions, self.dtype)
        x = F.embedding(input_ids, self.embed)
        for i, lw in enumerate(self.layers):
            h = rms_norm(x, lw.input_norm, cfg.rms_norm_eps)
            qkv = F.linear(h, lw.qkv, lw.qkv_bias)
            q, k, v = qkv.split([cfg.q_size, cfg.kv_size, cfg.kv_size], dim=-1)
            q = apply_rotary(q.view(t, heads, head_dim), cos, sin)
            k = apply_rotary(k.view(t, kv_heads, head_dim), cos, sin)
            v = v.view(t, kv_heads, head_dim)
            attn = paged_attention(i, q, k, v, cache, meta)
            x = x + F.linear(attn.view(t, cfg.q_size), lw.o)
            h = rms_norm(x, lw.post_norm, cfg.rms_norm_eps)
            x = x + F.linear(swiglu(F.linear(h, lw.gate_up)), lw.down)
        h = rms_norm(x[logit_rows], self.norm, cfg.rms_norm_eps)
        return F.linear(h, self.lm_head).float()
