"""The engine's model configuration: the subset of a HF ``config.json`` a Llama-family decoder needs.

Read from the checkpoint's own config so the engine runs exactly the architecture the weights were trained
for, or derived from the project's model table for dummy-weight performance runs. Either way the shape is a
``ModelSpec`` (``EngineConfig.shape``), so a checkpoint's shape is also one the simulator can cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ascendra.errors import UserError
from ascendra.models import ModelSpec, hf_field, read_hf_config

# model_type -> the HF architecture class name it must carry, when ``architectures`` is given.
SUPPORTED_ARCHITECTURES: dict[str, str] = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
}
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")


@dataclass(frozen=True, slots=True)
class RopeScaling:
    """RoPE frequency scaling: ``default`` (none), ``linear`` (positions / factor) or ``llama3`` (Llama-3.1)."""

    rope_type: str = "default"
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """A Llama / Mistral / Qwen2 decoder: its shape (a ``ModelSpec``, the one shape type) and its numerics.

    Only what the shape does not say lives here: the architecture flavour and the numerics that change the
    logits but not the cost (RoPE, norm epsilon, QKV bias, tied embeddings, sliding window).
    """

    shape: ModelSpec
    model_type: str = "llama"
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling = field(default_factory=RopeScaling)
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    sliding_window: int | None = None

    def __post_init__(self) -> None:
        if self.model_type not in SUPPORTED_ARCHITECTURES:
            raise UserError(
                f"unsupported model_type {self.model_type!r}; supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
            )
        if self.shape.head_dim % 2:
            raise UserError(f"model config: head_dim must be even for rotary embeddings, got {self.shape.head_dim}")
        if not (self.rms_norm_eps > 0 and math.isfinite(self.rms_norm_eps)):
            raise UserError(f"model config: rms_norm_eps must be positive, got {self.rms_norm_eps!r}")
        if not (self.rope_theta > 0 and math.isfinite(self.rope_theta)):
            raise UserError(f"model config: rope_theta must be positive, got {self.rope_theta!r}")
        if self.sliding_window is not None and self.sliding_window <= 0:
            raise UserError(f"model config: sliding_window must be positive, got {self.sliding_window!r}")

    @property
    def q_size(self) -> int:
        return self.shape.num_heads * self.shape.head_dim

    @property
    def kv_size(self) -> int:
        return self.shape.num_kv_heads * self.shape.head_dim

    @property
    def num_params(self) -> int:
        """Parameters held by the engine: the shape's count, less a tied LM head, plus any QKV biases."""
        tied = self.shape.vocab * self.shape.hidden if self.tie_word_embeddings else 0
        bias = self.shape.num_layers * (self.q_size + 2 * self.kv_size) if self.qkv_bias else 0
        return self.shape.num_params - tied + bias

    @classmethod
    def from_hf_dict(cls, cfg: dict[str, Any], name: str = "custom") -> EngineConfig:
        """Validate a HF ``config.json`` dict; unsupported architectures and bad fields are a UserError."""
        if not isinstance(cfg, dict):
            raise UserError(f"model config must be a JSON object, got {type(cfg).__name__}")
        model_type = cfg.get("model_type")
        if model_type not in SUPPORTED_ARCHITECTURES:
            raise UserError(f"unsupported model_type {model_type!r}; supported: {', '.join(SUPPORTED_ARCHITECTURES)}")
        archs = cfg.get("architectures")
        if archs is not None:
            expected = SUPPORTED_ARCHITECTURES[model_type]
            if not isinstance(archs, list) or archs != [expected]:
                raise UserError(
                    f"unsupported architectures {archs!r} for model_type {model_type!r}; expected [{expected!r}]"
                )
        act = cfg.get("hidden_act", "silu")
        if act != "silu":
            raise UserError(f"unsupported hidden_act {act!r}; only 'silu' (SwiGLU) is supported")
        if cfg.get("mlp_bias", False):
            raise UserError("unsupported mlp_bias=true; Llama-family MLPs without bias only")
        if model_type == "qwen2":
            qkv_bias = True
            if cfg.get("attention_bias", False):
                raise UserError("unsupported attention_bias=true for qwen2 (o_proj bias)")
        else:
            qkv_bias = hf_field(cfg, "attention_bias", bool, False)
            if qkv_bias:
                raise UserError("unsupported attention_bias=true for llama/mistral (o_proj bias)")

        shape = ModelSpec.from_hf_dict(cfg, name)
        sliding_window: int | None = None
        if model_type == "mistral":
            sliding_window = hf_field(cfg, "sliding_window", int, None)
            if sliding_window is not None and sliding_window >= shape.max_model_len:
                sliding_window = None  # never reached: plain causal attention
        elif model_type == "qwen2" and cfg.get("use_sliding_window", False):
            raise UserError("unsupported use_sliding_window=true for qwen2 (per-layer sliding windows)")

        theta, scaling = _rope(cfg, shape.max_model_len)
        return cls(
            shape=shape,
            model_type=model_type,
            rms_norm_eps=hf_field(cfg, "rms_norm_eps", float, 1e-6),
            rope_theta=theta,
            rope_scaling=scaling,
            tie_word_embeddings=hf_field(cfg, "tie_word_embeddings", bool, False),
            qkv_bias=qkv_bias,
            sliding_window=sliding_window,
        )

    @classmethod
    def from_json_file(cls, path: str | Path) -> EngineConfig:
        """Read a ``config.json`` (or the one inside a checkpoint directory), named after its directory."""
        cfg, name = read_hf_config(path)
        return cls.from_hf_dict(cfg, name=name)

    @classmethod
    def from_model_spec(cls, spec: ModelSpec) -> EngineConfig:
        """A Llama config of a table model's shape, for dummy-weight performance runs.

        The table holds shapes only; RoPE base and norm epsilon take Llama defaults, which do not change cost.
        """
        return cls(spec)

    def to_hf_dict(self) -> dict[str, Any]:
        """The equivalent HF ``config.json`` dict (round-trips through ``from_hf_dict``)."""
        out: dict[str, Any] = {
            "model_type": self.model_type,
            "architectures": [SUPPORTED_ARCHITECTURES[self.model_type]],
            **self.shape.to_hf_dict(),
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": None,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
        }
        rs = self.rope_scaling
        if rs.rope_type == "linear":
            out["rope_scaling"] = {"rope_type": "linear", "factor": rs.factor}
        elif rs.rope_type == "llama3":
            out["rope_scaling"] = {
                "rope_type": "llama3",
                "factor": rs.factor,
                "low_freq_factor": rs.low_freq_factor,
                "high_freq_factor": rs.high_freq_factor,
                "original_max_position_embeddings": rs.original_max_position_embeddings,
            }
        if self.model_type == "mistral":
            out["sliding_window"] = self.sliding_window
        if self.model_type == "llama":
            out["attention_bias"] = False
        return out


def _rope(cfg: dict[str, Any], max_pos: int) -> tuple[float, RopeScaling]:
    """RoPE base and scaling from either the classic (``rope_theta`` + ``rope_scaling``) or the newer
    ``rope_parameters`` layout."""
    params = cfg.get("rope_parameters")
    if params is not None:
        if not isinstance(params, dict):
            raise UserError(f"model config: rope_parameters must be an object, got {params!r}")
        theta = hf_field(params, "rope_theta", float, hf_field(cfg, "rope_theta", float, 10000.0))
        scaling = params
    else:
        theta = hf_field(cfg, "rope_theta", float, 10000.0)
        scaling = cfg.get("rope_scaling")
    if scaling is None:
        return theta, RopeScaling()
    if not isinstance(scaling, dict):
        raise UserError(f"model config: rope_scaling must be an object or null, got {scaling!r}")
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise UserError(f"unsupported rope scaling type {rope_type!r}; supported: {', '.join(SUPPORTED_ROPE_TYPES)}")
    if rope_type == "default":
        return theta, RopeScaling()
    factor = hf_field(scaling, "factor", float)
    if factor <= 0:
        raise UserError(f"model config: rope scaling factor must be positive, got {factor}")
    if rope_type == "linear":
        return theta, RopeScaling("linear", factor)
    low = hf_field(scaling, "low_freq_factor", float)
    high = hf_field(scaling, "high_freq_factor", float)
    if not 0 < low < high:
        raise UserError(f"model config: llama3 rope needs 0 < low_freq_factor < high_freq_factor, got {low}, {high}")
    orig = hf_field(scaling, "original_max_position_embeddings", int, max_pos)
    return theta, RopeScaling("llama3", factor, low, high, orig)
