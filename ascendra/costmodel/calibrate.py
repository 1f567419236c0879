"""Calibration: derive the cost model's compact tables from the measured profiles and write them as JSON.

For every model x GPU x TP degree this produces, on a fixed grid of token counts (``TOKEN_GRID``):

- ``linear_layer_ms``: one decoder layer's GEMM/norm/activation time (the nine profiled ops summed), at the
  iteration's total token count;
- ``lm_head_ms``: the hidden x vocab GEMM at that many sequences (one sampled token per sequence);
- ``all_reduce_ms``: one TP all-reduce of that many tokens' hidden states (``tokens * hidden * 2`` bytes);
  the runtime charges two per layer. ``null`` at TP 1.

How the numbers are derived (documented here because the runtime only sees the result):

- The profile is the GPU's own profile with the same layer shape where one exists (Llama-3-8B shapes on
  A100), otherwise the GPU's profile that needs the least scaling (sum over ops of |log FLOP ratio|);
  profiles of different GPUs are never mixed. Each op's median time is scaled by the ratio of the target's
  work per token to the profiled shape's (``shapes.LayerShape``): exact for bandwidth-bound small batches
  (weight bytes scale the same way) and for compute-bound large ones, approximate in between. A scaled-down
  op is never faster than the fastest kernel in the profile (the launch floor), which matters for ``tiny``.
- The LM head is the profiled ``mlp_up_proj`` GEMM (hidden x 2*ffn) scaled by hidden*vocab / (hidden*2*ffn).
- Measurement noise is removed by an isotonic (pool-adjacent-violators) fit, so more tokens never cost
  less. Beyond the profile's largest token count (4,096 for the Llama-2-7B profiles) times are extended by
  a least-squares line through the upper half of the profile (GEMMs are compute-bound there, linear in
  tokens); below the smallest all-reduce message the smallest message's latency applies.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ascendra.costmodel.model import FORMAT
from ascendra.costmodel.params import chosen_params
from ascendra.costmodel.profiles import (
    AllReduceProfile,
    ComputeProfile,
    read_all_reduce_profile,
    read_compute_profile,
)
from ascendra.costmodel.shapes import LAYER_OPS, LayerShape
from ascendra.errors import UserError
from ascendra.gpus import GPUS, GpuSpec
from ascendra.models import MODELS, ModelSpec

# Token counts at which the tables are sampled: dense where GEMM times bend, sparse where they are linear.
TOKEN_GRID: tuple[int, ...] = (
    1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024,
    1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288, 16384, 24576, 32768,
)  # fmt: skip

TP_DEGREES: tuple[int, ...] = (1, 2, 4)
NETWORK_TOPOLOGY = "pairwise_nvlink"
SIGNIFICANT_DIGITS = 5
_NUMBER_LIST = re.compile(r"\[([-+0-9.eE,\s]*)\]")


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    """``$ASCENDRA_DATA_DIR`` or ``../shared/data`` next to the repository root."""
    env = os.environ.get("ASCENDRA_DATA_DIR")
    return Path(env) if env else repo_root() / ".." / "shared" / "data"


def isotonic(y: np.ndarray) -> np.ndarray:
    """Least-squares non-decreasing fit (pool adjacent violators): noise must never make more work cheaper."""
    blocks: list[list[float]] = []  # [mean, weight]
    for v in y.tolist():
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2 = blocks.pop()
            m1, w1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    return np.concatenate([np.full(int(w), m) for m, w in blocks])


def sample(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Monotone ``y(x)`` at ``at``: interpolated inside, flat below, a fitted line (never lower) above."""
    y = isotonic(y)
    out = np.interp(at, x, y)
    above = at > x[-1]
    if above.any():
        upper = x >= x[-1] / 2
        slope, intercept = np.polyfit(x[upper], y[upper], 1)
        out[above] = np.maximum(intercept + slope * at[above], y[-1])
    return out


def _round(values: np.ndarray) -> list[float]:
    return [float(f"{v:.{SIGNIFICANT_DIGITS}g}") for v in values.tolist()]


def layer_shape(model: ModelSpec) -> LayerShape:
    return LayerShape(model.hidden, model.ffn, model.num_heads, model.num_kv_heads, model.head_dim, model.vocab)


def valid_tp(model: ModelSpec, tp: int) -> bool:
    """TP must split both the query and the KV heads evenly (KV heads are not replicated here)."""
    return tp >= 1 and model.num_heads % tp == 0 and model.num_kv_heads % tp == 0


@dataclass(frozen=True)
class Profiles:
    """Every profile calibration uses, read once."""

    compute: dict[str, list[ComputeProfile]]  # gpu name -> its compute profiles
    all_reduce: dict[str, AllReduceProfile]  # gpu name -> its all-reduce profile


def read_profiles(data_dir: Path) -> Profiles:
    """Find and read the compute and network profiles of every known GPU under ``data_dir``."""
    root = data_dir / "profiles"
    if not root.is_dir():
        raise UserError(f"no profiles under {data_dir} (pass --data-dir or set ASCENDRA_DATA_DIR)")
    compute: dict[str, list[ComputeProfile]] = {}
    all_reduce: dict[str, AllReduceProfile] = {}
    for gpu in GPUS.values():
        gdir = root / "compute" / gpu.profile_dir
        files = sorted(gdir.glob("*/*/mlp.csv"))
        if not files:
            raise UserError(f"no compute profiles (*/*/mlp.csv) under {gdir}")
        compute[gpu.name] = [read_compute_profile(f, f.parent.relative_to(root / "compute").as_posix()) for f in files]
        net = root / "network" / f"{gpu.profile_dir}_{NETWORK_TOPOLOGY}" / "all_reduce.csv"
        if not net.is_file():
            raise UserError(f"no all-reduce profile at {net}")
        all_reduce[gpu.name] = read_all_reduce_profile(net, net.parent.name)
    return Profiles(compute, all_reduce)


def closest_profile(model: ModelSpec, candidates: list[ComputeProfile]) -> ComputeProfile:
    shape = layer_shape(model)
    return min(candidates, key=lambda p: (shape.distance_to(p.shape), p.name))


def launch_floor(profile: ComputeProfile) -> float:
    """The fastest op time anywhere in the profile: no scaled-down kernel can beat it."""
    return min(float(t.min()) for _, ops in profile.tables.values() for t in ops.values())


def derive_entry(model: ModelSpec, gpu: GpuSpec, tp: int, profiles: Profiles) -> dict[str, Any]:
    """The tables of one model x GPU x TP degree (see the module docstring)."""
    profile = closest_profile(model, profiles.compute[gpu.name])
    if tp not in profile.tables:
        raise UserError(f"profile {profile.name} has no rows for TP {tp}")
    shape = layer_shape(model)
    ratios = shape.ratios_to(profile.shape, tp)
    lm_ratio = shape.lm_head_work(tp) / profile.shape.op_work(tp)["mlp_up_proj"]
    floor = launch_floor(profile)
    tokens, ops = profile.tables[tp]
    layer = sum(np.maximum(ratios[op] * ops[op], floor) for op in LAYER_OPS)
    lm_head = np.maximum(lm_ratio * ops["mlp_up_proj"], floor)
    grid = np.asarray(TOKEN_GRID, dtype=float)
    entry: dict[str, Any] = {
        "model": model.name,
        "gpu": gpu.name,
        "tp": tp,
        "shape": {
            "num_layers": model.num_layers,
            "hidden": model.hidden,
            "ffn": model.ffn,
            "num_heads": model.num_heads,
            "num_kv_heads": model.num_kv_heads,
            "head_dim": model.head_dim,
            "vocab": model.vocab,
            "dtype_bytes": model.dtype_bytes,
        },
        "profile": profile.name,
        "op_scale": {op: float(f"{r:.6g}") for op, r in ratios.items()},
        "lm_head_scale": float(f"{lm_ratio:.6g}"),
        "linear_layer_ms": _round(sample(tokens, layer, grid)),
        "lm_head_ms": _round(sample(tokens, lm_head, grid)),
        "all_reduce_ms": None,
    }
    if tp > 1:
        network = profiles.all_reduce[gpu.name]
        if tp not in network.tables:
            raise UserError(f"all-reduce profile {network.name} has no rows for {tp} workers")
        sizes, times = network.tables[tp]
        entry["network_profile"] = network.name
        entry["all_reduce_ms"] = _round(sample(sizes, times, grid * model.hidden * model.dtype_bytes))
    return entry


def entry_key(model: str, gpu: str, tp: int) -> str:
    return f"{model}/{gpu}/tp{tp}"


def calibrate(data_dir: Path) -> dict[str, Any]:
    """The full calibration document for every known model, GPU and valid TP degree."""
    profiles = read_profiles(data_dir)
    entries: dict[str, Any] = {}
    for model in MODELS.values():
        for gpu in GPUS.values():
            for tp in TP_DEGREES:
                if valid_tp(model, tp):
                    entries[entry_key(model.name, gpu.name, tp)] = derive_entry(model, gpu, tp, profiles)
    return {
        "format": FORMAT,
        "generated_by": "ascbench calibrate",
        "units": {"time": "ms", "grid": "tokens (linear, all-reduce) or sequences (LM head)"},
        "token_grid": list(TOKEN_GRID),
        **chosen_params(),
        "entries": entries,
    }


def write_json(doc: dict[str, Any], path: Path) -> int:
    """Write compactly (one table per line keeps diffs readable); returns the size in bytes."""
    text = json.dumps(doc, indent=1, separators=(",", ": "))
    text = _NUMBER_LIST.sub(lambda m: "[" + re.sub(r"\s+", "", m.group(1)).replace(",", ", ") + "]", text) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return len(text.encode())
