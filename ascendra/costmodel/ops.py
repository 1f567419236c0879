"""The generalised per-operation model: any Llama-family layer's op times from efficiency curves fitted on profiles.

Algorithm (in the spirit of Vidur's per-operation predictors, Agrawal et al., MLSys'24, which fit a regressor
per operation on profiled times; here a roofline with a fitted efficiency instead, so that shapes, TP degrees
and GPUs outside the profiles can be predicted):

- Every profiled op of a decoder layer is a GEMM (``attn_pre_proj``, ``attn_post_proj``, ``mlp_up_proj``,
  ``mlp_down_proj``: ``M`` tokens x ``K`` x ``N`` on one GPU of a TP group) or a bandwidth-bound elementwise op
  (the two RMSNorms, RoPE, the SwiGLU activation, the residual add). Its *roofline time* at ``M`` tokens is
  ``max(2MKN / peak, bytes / bandwidth)`` for a GEMM (bytes: both operands and the output in fp16) and
  ``bytes / bandwidth`` for an elementwise op (bytes: what it reads and writes).
- Calibration fits, per GPU, per op kind and per profiled problem (profile x TP degree), an *efficiency curve*
  ``e(M) = roofline(M) / measured(M)`` against the token count, with the measured times denoised to be
  non-decreasing first. The curve keeps the steps the profiles show (a new wave of GEMM tiles past 64, 128,
  256... tokens), because it is tabulated on the measured token counts, not smoothed.
- Prediction of op ``o`` for a target shape: take the curve of the same op kind whose problem is nearest to
  the target's (``|log K/K'| + |log N/N'|`` for GEMMs, ``|log width/width'|`` for elementwise ops), and divide
  the target's roofline time on the target GPU by ``e(M)`` (interpolated; held at its end values outside the
  profiled token range, where a GEMM is compute-bound and its efficiency flat). The LM head is a GEMM
  ``seqs x hidden x vocab/TP`` and takes the nearest GEMM curve of any kind.
- A curve fitted on one GPU can be applied to another (the held-out check does so): the efficiency is a
  fraction of that GPU's own peak rates.

Deviations: wave quantisation along ``N`` (the weight's output width) is not modelled, only the steps along
tokens the nearest profiled problem shows; fp16/bf16 only; cuBLAS kernel selection for a shape far from every
profiled one can differ, which the held-out errors (``ascendra.costmodel.validation``) quantify.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ascendra.gpus import GpuSpec
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
GEMM_OPS: tuple[str, ...] = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
ELEMENTWISE_OPS: tuple[str, ...] = ("input_layernorm", "attn_rope", "post_attention_layernorm", "mlp_act", "add")
_ACT_BYTES = 2  # fp16/bf16 activations and weights


@dataclass(frozen=True, slots=True)
class Problem:
    """One op's size on one GPU of a TP group: ``(K, N)`` of a GEMM, or ``(width, bytes moved per element)``."""

    op: str
    k: int
    n: int

    @property
    def is_gemm(self) -> bool:
        return self.op in GEMM_OPS or self.op == "lm_head"

    def roofline_ms(self, tokens: np.ndarray, gpu: GpuSpec) -> np.ndarray:
        """Time at the GPU's peak rates (ms): FLOPs at the tensor-core peak or bytes at the HBM bandwidth."""
        m = np.asarray(tokens, dtype=float)
        if self.is_gemm:
            flops = 2.0 * m * self.k * self.n
            moved = _ACT_BYTES * (m * self.k + self.k * self.n + m * self.n)
            return np.maximum(flops / gpu.peak_flops, moved / gpu.mem_bandwidth) * 1e3
        # elementwise: k is the row width, n how many row-sized tensors it reads plus writes
        return m * self.k * self.n * _ACT_BYTES / gpu.mem_bandwidth * 1e3

    def distance(self, other: Problem) -> float:
        """How far apart two problems are (0: the same); only problems of the same kind are compared."""
        return abs(math.log(self.k / other.k)) + abs(math.log(self.n / other.n))


def layer_problems(model: ModelSpec, tp: int) -> dict[str, Problem]:
    """The nine profiled ops of one decoder layer of ``model`` on one GPU of a TP group of ``tp``."""
    h, f, d = model.hidden, model.ffn, model.head_dim
    q, kv = model.num_heads * d // tp, model.num_kv_heads * d // tp
    return {
        "input_layernorm": Problem("input_layernorm", h, 2),
        "attn_pre_proj": Problem("attn_pre_proj", h, q + 2 * kv),
        "attn_rope": Problem("attn_rope", q + kv, 2),
        "attn_post_proj": Problem("attn_post_proj", q, h),
        "post_attention_layernorm": Problem("post_attention_layernorm", h, 2),
        "mlp_up_proj": Problem("mlp_up_proj", h, 2 * f // tp),
        "mlp_act": Problem("mlp_act", f // tp, 3),
        "mlp_down_proj": Problem("mlp_down_proj", f // tp, h),
        "add": Problem("add", h, 3),
    }


def lm_head_problem(model: ModelSpec, tp: int) -> Problem:
    """The hidden x vocab GEMM, vocabulary-parallel under TP, for one sampled token per sequence."""
    return Problem("lm_head", model.hidden, math.ceil(model.vocab / tp))


@dataclass(frozen=True, slots=True)
class Curve:
    """A fitted efficiency curve: ``problem``'s roofline over its measured time at each profiled token count."""

    problem: Problem
    source: str  # "<profile>/tp<n>", for the record
    tokens: tuple[float, ...]
    efficiency: tuple[float, ...]

    def at(self, tokens: np.ndarray) -> np.ndarray:
        return np.interp(tokens, self.tokens, self.efficiency)

    def as_dict(self) -> dict[str, object]:
        p = self.problem
        return {"op": p.op, "k": p.k, "n": p.n, "source": self.source,
                "tokens": [int(t) for t in self.tokens], "efficiency": list(self.efficiency)}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Curve:
        problem = Problem(str(d["op"]), int(d["k"]), int(d["n"]))  # type: ignore[call-overload]
        return cls(problem, str(d["source"]), tuple(map(float, d["tokens"])), tuple(map(float, d["efficiency"])))  # type: ignore[call-overload]


def fit_curve(problem: Problem, source: str, tokens: np.ndarray, measured_ms: np.ndarray, gpu: GpuSpec) -> Curve:
    """The efficiency curve of one profiled op (``measured_ms`` already denoised), compacted to the points that
    interpolate it within the table tolerance."""
    from ascendra.costmodel.tables import simplify

    eff = problem.roofline_ms(tokens, gpu) / np.maximum(measured_ms, 1e-6)
    keep = simplify(tokens, eff, abs_tol=1e-3)
    return Curve(problem, source, tuple(float(t) for t in tokens[keep]), tuple(float(f"{e:.5g}") for e in eff[keep]))


def nearest(problem: Problem, curves: Iterable[Curve]) -> Curve:
    """The curve whose problem is nearest to ``problem`` (same op kind; any GEMM for the LM head)."""
    if problem.op == "lm_head":
        pool = [c for c in curves if c.problem.op in GEMM_OPS]
    else:
        pool = [c for c in curves if c.problem.op == problem.op]
    if not pool:
        raise ValueError(f"no efficiency curve for op {problem.op}")
    return min(pool, key=lambda c: (problem.distance(c.problem), c.source))


def predict_ms(problem: Problem, tokens: np.ndarray, gpu: GpuSpec, curves: Sequence[Curve]) -> np.ndarray:
    """Predicted time (ms) of ``problem`` at each token count on ``gpu``."""
    tokens = np.asarray(tokens, dtype=float)
    return problem.roofline_ms(tokens, gpu) / nearest(problem, curves).at(tokens)


def grid(curves: Iterable[Curve], upto: int) -> np.ndarray:
    """The token counts at which a table built from ``curves`` must be evaluated to keep their steps."""
    points = {1.0, float(upto)}
    for c in curves:
        points.update(t for t in c.tokens if t <= upto)
    return np.array(sorted(points))
