"""The engine's model configuration: the subset of a HF ``config.json`` a Llama-family decoder needs.

Read from the checkpoint's own config so the engine runs exactly the architecture the weights were trained
for, or derived from the project's model table (``ModelSpec``) for dummy-weight performance runs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ascendra.errors import UserError
from ascendra.models import ModelSpec

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
    """Shape and numerics of a Llama / Mistral / Qwen2 decoder."""

    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    max_position_embeddings: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling = field(default_factory=RopeScaling)
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    sliding_window: int | None = None
    name: str = "custom"

    def __post_init__(self) -> None:
        for attr in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "head_dim",
            "max_position_embeddings",
        ):
            value = getattr(self, attr)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise UserError(f"model config: {attr} must be a positive integer, got {value!r}")
        if self.num_heads % self.num_kv_heads:
            raise UserError(
                f"model config: num_attention_heads ({self.num_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_kv_heads})"
            )
        if self.head_dim % 2:
            raise UserError(f"model config: head_dim must be even for rotary embeddings, got {self.head_dim}")
        if not (self.rms_norm_eps > 0 and math.isfinite(self.rms_norm_eps)):
            raise UserError(f"model config: rms_norm_eps must be positive, got {self.rms_norm_eps!r}")
        if not (self.rope_theta > 0 and math.isfinite(self.rope_theta)):
            raise UserError(f"model config: rope_theta must be positive, got {self.rope_theta!r}")
        if self.sliding_window is not None and self.sliding_window <= 0:
            raise UserError(f"model config: sliding_window must be positive, got {self.sliding_window!r}")

    @property
    def q_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def num_params(self) -> int:
        """Parameters held by the engine (a tied LM head is counted once)."""
        attn = self.hidden_size * (self.q_size + 2 * self.kv_size) + self.q_size * self.hidden_size
        if self.qkv_bias:
            attn += self.q_size + 2 * self.kv_size
        per_layer = attn + 3 * self.hidden_size * self.intermediate_size + 2 * self.hidden_size
        heads = 1 if self.tie_word_embeddings else 2
        return self.num_layers * per_layer + heads * self.vocab_size * self.hidden_size + self.hidden_size

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
            qkv_bias = _get(cfg, "attention_bias", bool, False)
            if qkv_bias:
                raise UserError("unsupported attention_bias=true for llama/mistral (o_proj bias)")

        hidden = _get(cfg, "hidden_size", int)
        heads = _get(cfg, "num_attention_heads", int)
        kv_heads = _get(cfg, "num_key_value_heads", int, heads)
        head_dim = _get(cfg, "head_dim", int, None)
        if head_dim is None:
            if heads <= 0 or hidden % heads:
                raise UserError(
                    f"model config: hidden_size ({hidden}) is not divisible by num_attention_heads "
                    f"({heads}) and no head_dim is given"
                )
            head_dim = hidden // heads
        max_pos = _get(cfg, "max_position_embeddings", int, 2048)

        sliding_window: int | None = None
        if model_type == "mistral":
            sliding_window = _get(cfg, "sliding_window", int, None)
            if sliding_window is not None and sliding_window >= max_pos:
                sliding_window = None  # never reached: plain causal attention
        elif model_type == "qwen2" and cfg.get("use_sliding_window", False):
            raise UserError("unsupported use_sliding_window=true for qwen2 (per-layer sliding windows)")

        theta, scaling = _rope(cfg, max_pos)
        return cls(
            model_type=model_type,
            vocab_size=_get(cfg, "vocab_size", int),
            hidden_size=hidden,
            intermediate_size=_get(cfg, "intermediate_size", int),
            num_layers=_get(cfg, "num_hidden_layers", int),
            num_heads=heads,
            num_kv_heads=kv_heads,
            head_dim=head_dim,
            max_position_embeddings=max_pos,
            rms_norm_eps=_get(cfg, "rms_norm_eps", float, 1e-6),
            rope_theta=theta,
            rope_scaling=scaling,
            tie_word_embeddings=_get(cfg, "tie_word_embeddings", bool, False),
            qkv_bias=qkv_bias,
            sliding_window=sliding_window,
            name=name,
        )

    @classmethod
    def from_json_file(cls, path: str | Path) -> EngineConfig:
        """Read a ``config.json`` (or the one inside a checkpoint directory)."""
        p = Path(path)
        if p.is_dir():
            p = p / "config.json"
        if not p.is_file():
            raise UserError(f"model config not found: {p}")
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read model config {p}: {exc}") from None
        return cls.from_hf_dict(data, name=p.parent.name or "custom")

    @classmethod
    def from_model_spec(cls, spec: ModelSpec) -> EngineConfig:
        """A Llama-shaped config from the project's model table, for dummy-weight performance runs.

        The table holds shapes only; RoPE base and norm epsilon take Llama defaults, which do not change cost.
        """
        return cls(
            model_type="llama",
            vocab_size=spec.vocab,
            hidden_size=spec.hidden,
            intermediate_size=spec.ffn,
            num_layers=spec.num_layers,
            num_heads=spec.num_heads,
            num_kv_heads=spec.num_kv_heads,
            head_dim=spec.head_dim,
            max_position_embeddings=spec.max_model_len,
            tie_word_embeddings=False,
            name=spec.name,
        )

    def to_hf_dict(self) -> dict[str, Any]:
        """The equivalent HF ``config.json`` dict (round-trips through ``from_hf_dict``)."""
        out: dict[str, Any] = {
            "model_type": self.model_type,
            "architectures": [SUPPORTED_ARCHITECTURES[self.model_type]],
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "max_position_embeddings": self.max_position_embeddings,
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


_MISSING = object()


def _get(cfg: dict[str, Any], key: str, kind: type, default: Any = _MISSING) -> Any:
    """A typed field: missing without a default, or of the wrong type, is a UserError naming the field."""
    value = cfg.get(key, _MISSING)
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise UserError(f"model config: missing field {key!r}")
        return default
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise UserError(f"model config: field {key!r} must be {kind.__name__}, got {value!r}")
    return value


def _rope(cfg: dict[str, Any], max_pos: int) -> tuple[float, RopeScaling]:
    """RoPE base and scaling from either the classic (``rope_theta`` + ``rope_scaling``) or the newer
    ``rope_parameters`` layout."""
    params = cfg.get("rope_parameters")
    if params is not None:
        if not isinstance(params, dict):
            raise UserError(f"model config: rope_parameters must be an object, got {params!r}")
        theta = _get(params, "rope_theta", float, _get(cfg, "rope_theta", float, 10000.0))
        scaling = params
    else:
        theta = _get(cfg, "rope_theta", float, 10000.0)
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
    factor = _get(scaling, "factor", float)
    if factor <= 0:
        raise UserError(f"model config: rope scaling factor must be positive, got {factor}")
    if rope_type == "linear":
        return theta, RopeScaling("linear", factor)
    low = _get(scaling, "low_freq_factor", float)
    high = _get(scaling, "high_freq_factor", float)
    if not 0 < low < high:
        raise UserError(f"model config: llama3 rope needs 0 < low_freq_factor < high_freq_factor, got {low}, {high}")
    orig = _get(scaling, "original_max_position_embeddings", int, _get(cfg, "max_position_embeddings", int, max_pos))
    return theta, RopeScaling("llama3", factor, low, high, orig)
