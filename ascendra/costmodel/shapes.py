"""Per-operation work of a decoder layer, so profiled op times can be scaled to another model's shape.

For every profiled op the work per token (FLOPs, and equally the weight or activation bytes it moves) is
proportional to the product of the dimensions below; scaling a profiled time by the ratio of these products
between the target model and the profiled one is the FLOP-ratio scaling the cost model uses for shapes that
were not profiled. Both numerator and denominator are per GPU of a TP group, so TP cancels out except for the
norms and the residual add, which every TP worker computes in full.

Shapes are ``ModelSpec``s (a profile's shape is one too, see ``profiles``); only the per-layer dimensions
matter here, so layer count, context length and dtype never enter a ratio. A gated, SwiGLU MLP is assumed,
as in all our models.
"""

from __future__ import annotations

import math

from ascendra.models import ModelSpec

# The per-layer ops of the compute profiles, in execution order.
LAYER_OPS: tuple[str, ...] = (
    "input_layernorm",
    "attn_pre_proj",
    "attn_rope",
    "attn_post_proj",
    "post_attention_layernorm",
    "mlp_up_proj",
    "mlp_act",
    "mlp_down_proj",
    "add",
)


def op_work(model: ModelSpec, tp: int) -> dict[str, float]:
    """Work per token of each op on one GPU of a TP group (arbitrary units, only ratios matter)."""
    h, f, q, kv, d = model.hidden, model.ffn, model.num_heads, model.num_kv_heads, model.head_dim
    return {
        "input_layernorm": h,
        "attn_pre_proj": h * (q + 2 * kv) * d / tp,
        "attn_rope": (q + kv) * d / tp,
        "attn_post_proj": q * d * h / tp,
        "post_attention_layernorm": h,
        "mlp_up_proj": h * 2 * f / tp,
        "mlp_act": f / tp,
        "mlp_down_proj": f * h / tp,
        "add": h,
    }


def lm_head_work(model: ModelSpec, tp: int) -> float:
    """The LM head is a hidden x vocab GEMM, vocabulary-parallel under TP; same units as ``mlp_up_proj``."""
    return model.hidden * model.vocab / tp


def ratios_to(model: ModelSpec, profiled: ModelSpec, tp: int) -> dict[str, float]:
    """Per-op scale factors that turn ``profiled``'s op times into ``model``'s."""
    mine, theirs = op_work(model, tp), op_work(profiled, tp)
    return {op: mine[op] / theirs[op] for op in LAYER_OPS}


def distance_to(model: ModelSpec, profiled: ModelSpec) -> float:
    """How much scaling borrowing ``profiled``'s times needs: the sum over ops of |log ratio| (0 = same)."""
    return sum(abs(math.log(r)) for r in ratios_to(model, profiled, 1).values())
