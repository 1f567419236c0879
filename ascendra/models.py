"""Model shapes: the one table, and the one shape type, every component reads.

``ModelSpec`` is the only place a model's shape fields are defined. The cost model's per-op work
(``ascendra.costmodel.ops``), KV sizing (``ascendra.kv_cache``), the performance model's work counts and the
engine's config (``EngineConfig.shape``) all read a ``ModelSpec``; a HF ``config.json`` becomes one through
``ModelSpec.from_hf_dict`` / ``from_hf_config``, so any Llama-family checkpoint's shape can be simulated too:
``get_model`` takes a table name or the path of a ``config.json`` (or of a checkpoint folder holding one),
so a path works wherever a run names its model.
Each shape field carries its HF ``config.json`` key, the only copy of the mapping between the two spellings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from ascendra.errors import UserError


def _shape(hf_key: str, *, architecture: bool = True) -> Any:
    """A shape field: its key in a HF ``config.json``, and whether the weights' shapes depend on it."""
    return field(metadata={"hf_key": hf_key, "architecture": architecture})


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Shape of a Llama-family decoder (SwiGLU MLP, GQA attention), as far as serving cost and memory are concerned.

    Invalid shapes (non-positive sizes, query heads not a multiple of KV heads) are a UserError, whichever way
    the spec was made (the table, a ``config.json``, a profile).
    """

    name: str
    hf_id: str
    num_layers: int = _shape("num_hidden_layers")
    hidden: int = _shape("hidden_size")
    ffn: int = _shape("intermediate_size")
    num_heads: int = _shape("num_attention_heads")
    num_kv_heads: int = _shape("num_key_value_heads")
    head_dim: int = _shape("head_dim")
    vocab: int = _shape("vocab_size")
    max_model_len: int = _shape("max_position_embeddings", architecture=False)
    default_tp: int = 1
    dtype_bytes: int = 2

    def __post_init__(self) -> None:
        for name, key in HF_KEYS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise UserError(f"model {self.name}: {key} must be a positive integer, got {value!r}")
        if self.num_heads % self.num_kv_heads:
            raise UserError(
                f"model {self.name}: num_attention_heads ({self.num_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_kv_heads})"
            )

    @property
    def linear_params_per_layer(self) -> int:
        """Weights of one layer's GEMMs: fused QKV, attention output, SwiGLU gate + up and down projections."""
        q, kv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        return self.hidden * (q + 2 * kv) + q * self.hidden + 3 * self.hidden * self.ffn

    @property
    def num_params(self) -> int:
        """Parameter count: the GEMMs and two norms per layer, embeddings, final norm and an untied LM head."""
        per_layer = self.linear_params_per_layer + 2 * self.hidden
        return self.num_layers * per_layer + 2 * self.vocab * self.hidden + self.hidden

    @property
    def weight_bytes(self) -> int:
        return self.num_params * self.dtype_bytes

    def kv_bytes_per_token(self, tp: int = 1) -> int:
        """Bytes of K and V cached per token on one GPU of a TP group."""
        return self.num_layers * 2 * self.num_kv_heads * self.head_dim * self.dtype_bytes // tp

    def valid_tp(self, tp: int) -> bool:
        """Whether TP ``tp`` splits both the query and the KV heads evenly (KV heads are never replicated here)."""
        return tp >= 1 and self.num_heads % tp == 0 and self.num_kv_heads % tp == 0

    def architecture(self) -> dict[str, int]:
        """The fields the weights' shapes depend on (not the name, context length or serving defaults), in field
        order: two specs with equal architectures run the same checkpoints and cost the same per layer."""
        return {name: getattr(self, name) for name in ARCHITECTURE}

    def to_hf_dict(self) -> dict[str, int]:
        """The shape as HF ``config.json`` keys (the architecture and numerics keys are the engine's to add)."""
        return {key: getattr(self, name) for name, key in HF_KEYS.items()}

    @classmethod
    def from_hf_dict(cls, cfg: dict[str, Any], name: str = "custom", hf_id: str | None = None) -> ModelSpec:
        """The shape of a HF ``config.json`` dict (HF defaults for the optional keys); bad fields are a UserError.

        Only the shape is read here; whether the engine supports the architecture is ``EngineConfig``'s check."""
        if not isinstance(cfg, dict):
            raise UserError(f"model config must be a JSON object, got {type(cfg).__name__}")
        keys = HF_KEYS
        hidden = hf_field(cfg, keys["hidden"], int)
        heads = hf_field(cfg, keys["num_heads"], int)
        head_dim = hf_field(cfg, keys["head_dim"], int, None)
        if head_dim is None:
            if heads <= 0 or hidden % heads:
                raise UserError(
                    f"model config: hidden_size ({hidden}) is not divisible by num_attention_heads "
                    f"({heads}) and no head_dim is given"
                )
            head_dim = hidden // heads
        return cls(
            name=name,
            hf_id=name if hf_id is None else hf_id,
            num_layers=hf_field(cfg, keys["num_layers"], int),
            hidden=hidden,
            ffn=hf_field(cfg, keys["ffn"], int),
            num_heads=heads,
            num_kv_heads=hf_field(cfg, keys["num_kv_heads"], int, heads),
            head_dim=head_dim,
            vocab=hf_field(cfg, keys["vocab"], int),
            max_model_len=hf_field(cfg, keys["max_model_len"], int, 2048),
        )

    @classmethod
    def from_hf_config(cls, path: str | Path) -> ModelSpec:
        """The shape of a ``config.json`` (or the one in a checkpoint directory), named after its directory."""
        cfg, name = read_hf_config(path)
        return cls.from_hf_dict(cfg, name)


#: ModelSpec shape field -> its HF ``config.json`` key, in field order (derived from the field definitions).
HF_KEYS: dict[str, str] = {f.name: f.metadata["hf_key"] for f in fields(ModelSpec) if "hf_key" in f.metadata}
#: The shape fields that set the weights' shapes, in field order.
ARCHITECTURE: tuple[str, ...] = tuple(f.name for f in fields(ModelSpec) if f.metadata.get("architecture"))

_MISSING: Any = object()


def hf_field(cfg: dict[str, Any], key: str, kind: type, default: Any = _MISSING) -> Any:
    """A typed ``config.json`` field: missing without a default, or of the wrong type, is a UserError naming it.

    An explicit ``null`` reads as the default where there is one (HF writes ``null`` for "not set")."""
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


def read_hf_config(path: str | Path) -> tuple[dict[str, Any], str]:
    """A ``config.json`` (or the one inside a checkpoint directory) and the name it goes by (its directory's)."""
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise UserError(f"model config not found: {p}")
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read model config {p}: {exc}") from None
    return data, p.parent.name or "custom"


MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec("llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct", 32, 4096, 14336, 32, 8, 128, 128256, 8192),
        ModelSpec("mistral-7b", "mistralai/Mistral-7B-Instruct-v0.2", 32, 4096, 14336, 32, 8, 128, 32000, 8192),
        # Qwen2.5-14B-Instruct shapes (GQA); served with tensor parallelism 2 by default.
        ModelSpec("qwen-14b", "Qwen/Qwen2.5-14B-Instruct", 48, 5120, 13824, 40, 8, 128, 152064, 8192, default_tp=2),
        # The public model cards' shapes and context lengths; the default TP is the fewest GPUs that hold the
        # bf16 weights with room for a KV pool on an 80 GB GPU (KV bytes per token follow from the shape:
        # Llama-2-13B has no GQA, 800 KiB per token; Yi-34B 240 KiB; Llama-3-70B 320 KiB; Qwen2.5-14B 192 KiB).
        ModelSpec("llama-2-13b", "meta-llama/Llama-2-13b-chat-hf", 40, 5120, 13824, 40, 40, 128, 32000, 4096),
        ModelSpec("yi-34b", "01-ai/Yi-34B-Chat", 60, 7168, 20480, 56, 8, 128, 64000, 4096, default_tp=2),
        ModelSpec(
            "llama-3-70b",
            "meta-llama/Meta-Llama-3-70B-Instruct",
            80,
            8192,
            28672,
            64,
            8,
            128,
            128256,
            8192,
            default_tp=4,
        ),
        # The same checkpoint as qwen-14b at its full native context and on one GPU.
        ModelSpec("qwen2.5-14b", "Qwen/Qwen2.5-14B-Instruct", 48, 5120, 13824, 40, 8, 128, 152064, 32768),
        # A tiny model for tests and the CPU engine: same structure, toy sizes.
        ModelSpec("tiny", "ascendra/tiny-llama", 2, 64, 128, 4, 2, 16, 512, 2048),
    )
}


def is_config_path(name: str) -> bool:
    """Whether a model name is a path to a HF ``config.json`` (or a folder) rather than a table name."""
    return name not in MODELS and (name.endswith(".json") or "/" in name or Path(name).is_dir())


def get_model(name: str) -> ModelSpec:
    """A model by its short name, or the shape of the ``config.json`` at a path (see ``is_config_path``);
    unknown names are a user error listing the known ones."""
    spec = MODELS.get(name)
    if spec is not None:
        return spec
    if is_config_path(name):
        path = Path(name)
        path = path / "config.json" if path.is_dir() else path
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            raise UserError(f"model config not found: {path}") from None
        return _config_model(str(path.resolve()), stamp)
    raise UserError(
        f"unknown model {name!r}; known models: {', '.join(MODELS)}, or the path of a HF config.json"
    ) from None


@lru_cache(maxsize=32)
def _config_model(path: str, _stamp: int) -> ModelSpec:
    """A config file's shape, read once per file version (runs look their model up often)."""
    return ModelSpec.from_hf_config(path)
