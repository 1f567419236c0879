"""Rotary position embeddings (RoPE) with the scalings Llama-family checkpoints use.

cos/sin tables are computed once in fp32 for every position up to the model's limit and indexed by each
token's absolute position, so chunked prefills and decodes rotate exactly like a full-sequence pass.
"""

from __future__ import annotations

import math

import torch

from ascendra.engine.config import EngineConfig


def inverse_frequencies(config: EngineConfig) -> torch.Tensor:
    """Per-pair rotation frequencies [head_dim / 2], after the config's RoPE scaling.

    Computed in fp32, as the reference implementations do, so long positions rotate identically."""
    dim = config.shape.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    rs = config.rope_scaling
    if rs.rope_type == "linear":
        inv_freq = inv_freq / rs.factor
    elif rs.rope_type == "llama3":
        # Llama-3.1: long wavelengths are slowed by `factor`, short ones kept, the band between interpolated.
        low_wavelen = rs.original_max_position_embeddings / rs.low_freq_factor
        high_wavelen = rs.original_max_position_embeddings / rs.high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        smooth = (rs.original_max_position_embeddings / wavelen - rs.low_freq_factor) / (
            rs.high_freq_factor - rs.low_freq_factor
        )
        interpolated = (1 - smooth) * inv_freq / rs.factor + smooth * inv_freq
        inv_freq = torch.where(
            wavelen > low_wavelen,
            inv_freq / rs.factor,
            torch.where(wavelen < high_wavelen, inv_freq, interpolated),
        )
    return inv_freq


class RotaryEmbedding:
    """Precomputed cos/sin tables [max_positions, head_dim] on the engine's device."""

    def __init__(self, config: EngineConfig, device: torch.device | str) -> None:
        inv_freq = inverse_frequencies(config).to(device)
        positions = torch.arange(config.shape.max_model_len, dtype=torch.float32, device=device)
        freqs = torch.outer(positions, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos = emb.cos()
        self.sin = emb.sin()

    def cos_sin(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Tables for ``positions`` [T], shaped [T, 1, head_dim] to broadcast over heads."""
        return self.cos[positions].to(dtype)[:, None, :], self.sin[positions].to(dtype)[:, None, :]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` [T, heads, head_dim] in the half-split layout HF checkpoints use."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin
