"""Model weights under their HF names: loaded from a local safetensors checkpoint, or drawn at random
("dummy") for performance work where only shapes matter.

Weights are a plain ``dict[str, Tensor]`` keyed by the HF checkpoint names, so a checkpoint, a dummy
initialisation and a reference implementation all exchange the same object.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch

from ascendra.engine.config import EngineConfig
from ascendra.errors import UserError

Weights = dict[str, torch.Tensor]

_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
}


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``fp32``/``bf16``/``fp16`` (or a torch dtype among those) -> torch dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype in _DTYPES.values():
            return dtype
        raise UserError(f"unsupported dtype {dtype}; use fp32, bf16 or fp16")
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise UserError(f"unsupported dtype {dtype!r}; use fp32, bf16 or fp16") from None


def weight_shapes(config: EngineConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor the engine needs, by HF name, in a fixed order (dummy initialisation draws in this order)."""
    h, f, vocab = config.shape.hidden, config.shape.ffn, config.shape.vocab
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, h)}
    for i in range(config.shape.num_layers):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (h,)
        shapes[p + "self_attn.q_proj.weight"] = (config.q_size, h)
        shapes[p + "self_attn.k_proj.weight"] = (config.kv_size, h)
        shapes[p + "self_attn.v_proj.weight"] = (config.kv_size, h)
        if config.qkv_bias:
            shapes[p + "self_attn.q_proj.bias"] = (config.q_size,)
            shapes[p + "self_attn.k_proj.bias"] = (config.kv_size,)
            shapes[p + "self_attn.v_proj.bias"] = (config.kv_size,)
        shapes[p + "self_attn.o_proj.weight"] = (h, config.q_size)
        shapes[p + "post_attention_layernorm.weight"] = (h,)
        shapes[p + "mlp.gate_proj.weight"] = (f, h)
        shapes[p + "mlp.up_proj.weight"] = (f, h)
        shapes[p + "mlp.down_proj.weight"] = (h, f)
    shapes["model.norm.weight"] = (h,)
    if not config.tie_word_embeddings:
        shapes["lm_head.weight"] = (vocab, h)
    return shapes


def check_weights(config: EngineConfig, weights: Mapping[str, torch.Tensor]) -> None:
    """A missing tensor or a shape that does not match the config is a UserError naming it."""
    for name, shape in weight_shapes(config).items():
        if name not in weights:
            raise UserError(f"weights: missing tensor {name!r}")
        got = tuple(weights[name].shape)
        if got != shape:
            raise UserError(f"weights: tensor {name!r} has shape {list(got)}, config expects {list(shape)}")


def dummy_weights(
    config: EngineConfig,
    seed: int = 0,
    dtype: str | torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    std: float = 0.02,
) -> Weights:
    """Seeded random weights: projections ~ N(0, std), norm gains ~ 1 + N(0, 0.1).

    Norm gains are perturbed (not ones) so that a path which forgets a gain gives different logits. Values are
    drawn in fp32 one tensor at a time on ``device`` and then cast, so they do not depend on ``dtype``; the
    stream does depend on the device type (CPU and CUDA generators differ).
    """
    dtype = parse_dtype(dtype)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    out: Weights = {}
    for name, shape in weight_shapes(config).items():
        t = torch.randn(shape, generator=gen, device=device, dtype=torch.float32)
        t = 1.0 + 0.1 * t if name.endswith("norm.weight") else t * std
        out[name] = t.to(dtype)
    return out


def load_weights(
    path: str | Path,
    config: EngineConfig,
    dtype: str | torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Weights:
    """The tensors ``config`` needs from the ``*.safetensors`` files of a local checkpoint directory.

    Shapes are checked before any data is read; extra tensors (e.g. a tied ``lm_head``) are ignored.
    """
    from safetensors import safe_open

    dtype = parse_dtype(dtype)
    directory = Path(path)
    if not directory.is_dir():
        raise UserError(f"checkpoint directory not found: {directory}")
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise UserError(f"no *.safetensors files in checkpoint directory {directory}")
    wanted = weight_shapes(config)
    out: Weights = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt", device=str(device)) as f:
                for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    if name not in wanted or name in out:
                        continue
                    shape = tuple(f.get_slice(name).get_shape())
                    if shape != wanted[name]:
                        raise UserError(
                            f"weights: tensor {name!r} in {file.name} has shape {list(shape)}, "
                            f"config expects {list(wanted[name])}"
                        )
                    out[name] = f.get_tensor(name).to(dtype)
        except UserError:
            raise
        except Exception as exc:  # safetensors raises its own error types for corrupt files
            raise UserError(f"cannot read safetensors file {file}: {exc}") from None
    missing = [name for name in wanted if name not in out]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(f"weights: missing tensor {missing[0]!r}{more} in checkpoint {directory}")
    return out


def save_checkpoint(config: EngineConfig, weights: Mapping[str, torch.Tensor], path: str | Path) -> Path:
    """Write ``config.json`` and ``model.safetensors`` in the HF layout (tiny test models, dummy exports)."""
    from safetensors.torch import save_file

    check_weights(config, weights)
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config.to_hf_dict(), indent=2))
    tensors = {name: weights[name].detach().to("cpu").contiguous() for name in weight_shapes(config)}
    save_file(tensors, str(directory / "model.safetensors"))
    return directory
