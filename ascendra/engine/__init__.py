"""The real PyTorch execution engine for Llama-family decoders (needs the ``engine`` extra: torch, safetensors).

Typical use::

    config = EngineConfig.from_json_file(checkpoint_dir)
    engine = Engine(config, load_weights(checkpoint_dir, config, "bf16", "cuda"), num_blocks, device="cuda",
                    dtype="bf16")
    next_tokens = engine.execute(batch, {rid: block_manager.block_table(rid) for rid in ...})
"""

from ascendra.engine.config import EngineConfig, RopeScaling
from ascendra.engine.engine import Engine
from ascendra.engine.kv_pool import PagedKVCache
from ascendra.engine.sampler import Sampler
from ascendra.engine.weights import (
    Weights,
    check_weights,
    dummy_weights,
    load_weights,
    parse_dtype,
    save_checkpoint,
    weight_shapes,
)

__all__ = [
    "Engine",
    "EngineConfig",
    "PagedKVCache",
    "RopeScaling",
    "Sampler",
    "Weights",
    "check_weights",
    "dummy_weights",
    "load_weights",
    "parse_dtype",
    "save_checkpoint",
    "weight_shapes",
]
