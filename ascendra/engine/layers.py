"""Elementwise building blocks of a Llama-family layer, with the reference numerics."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm computed in fp32 and cast back before the gain, as the HF Llama/Qwen2 models do."""
    dtype = x.dtype
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(dtype)


def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    """SiLU(gate) * up for the fused [.., 2 * ffn] gate/up projection output."""
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up
