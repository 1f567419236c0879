"""Calibration: derive the cost model's compact tables from the measured profiles and write them as JSON.

For every model x GPU x TP degree this produces three compact piecewise-linear tables (``tables``: the
fewest measured points that interpolate the full-resolution curve within 2%):

- ``linear_layer``: one decoder layer's GEMM/norm/activation time (the nine profiled ops summed) against the
  iteration's total token count;
- ``lm_head``: the hidden x vocab GEMM against the number of sequences (one sampled token per sequence);
- ``all_reduce``: one TP all-reduce of that many tokens' hidden states (``tokens * hidden * 2`` bytes)
  against tokens; the runtime charges two per layer. ``null`` at TP 1.

How the numbers are derived (documented here because the runtime only sees the result):

- The profile is the GPU's own profile with the same layer shape where one exists (Llama-3-8B shapes on
  A100), otherwise the GPU's profile that needs the least scaling (sum over ops of |log FLOP ratio|);
  profiles of different GPUs are never mixed. Each op's median time is scaled by the ratio of the target's
  work per token to the profiled shape's (``shapes.op_work``): exact for bandwidth-bound small batches
  (weight bytes scale the same way) and for compute-bound large ones, approximate in between. A scaled-down
  op is never faster than the fastest kernel in the profile (the launch floor), which matters for ``tiny``.
- The LM head is the profiled ``mlp_up_proj`` GEMM (hidden x 2*ffn) scaled by hidden*vocab / (hidden*2*ffn).
- Measurement noise is removed by an isotonic (pool-adjacent-violators) fit, so more tokens never cost
  less. Beyond the profile's largest token count (4,096 for the Llama-2-7B profiles, 32,768 for
  Llama-3-8B) times are extended by a least-squares line through the upper half of the profile (GEMMs are
  compute-bound there, linear in tokens); below the smallest all-reduce message the smallest message's
  latency applies.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ascendra.costmodel.model import FORMAT, calibrated_shape
from ascendra.costmodel.params import chosen_params
from ascendra.costmodel.profiles import (
    AllReduceProfile,
    ComputeProfile,
    read_all_reduce_profile,
    read_compute_profile,
)
from ascendra.costmodel.shapes import LAYER_OPS, distance_to, lm_head_work, op_work, ratios_to
from ascendra.costmodel.tables import ABS_TOL_MS, REL_TOL, compact_table
from ascendra.errors import UserError
from ascendra.files import write_text
from ascendra.gpus import GPUS, GpuSpec
from ascendra.models import MODELS, ModelSpec

TP_DEGREES: tuple[int, ...] = (1, 2, 4)
NETWORK_TOPOLOGY = "pairwise_nvlink"
_NUMBER_LIST = re.compile(r"\[([-+0-9.eE,\s]*)\]")


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    """``$ASCENDRA_DATA_DIR`` or ``../shared/data`` next to the repository root."""
    env = os.environ.get("ASCENDRA_DATA_DIR")
    return Path(env) if env else repo_root() / ".." / "shared" / "data"


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
    """The profile whose shape needs the least scaling to ``model``'s (ties: by name, so the choice is stable)."""
    return min(candidates, key=lambda p: (distance_to(model, p.shape), p.name))


def launch_floor(profile: ComputeProfile) -> float:
    """The fastest op time anywhere in the profile: no scaled-down kernel can beat it."""
    return min(float(t.min()) for _, ops in profile.tables.values() for t in ops.values())


def derive_entry(model: ModelSpec, gpu: GpuSpec, tp: int, profiles: Profiles) -> dict[str, Any]:
    """The tables of one model x GPU x TP degree (see the module docstring)."""
    profile = closest_profile(model, profiles.compute[gpu.name])
    if tp not in profile.tables:
        raise UserError(f"profile {profile.name} has no rows for TP {tp}")
    ratios = ratios_to(model, profile.shape, tp)
    lm_ratio = lm_head_work(model, tp) / op_work(profile.shape, tp)["mlp_up_proj"]
    floor = launch_floor(profile)
    tokens, ops = profile.tables[tp]
    layer = sum(np.maximum(ratios[op] * ops[op], floor) for op in LAYER_OPS)
    lm_head = np.maximum(lm_ratio * ops["mlp_up_proj"], floor)
    entry: dict[str, Any] = {
        "model": model.name,
        "gpu": gpu.name,
        "tp": tp,
        "shape": calibrated_shape(model),
        "profile": profile.name,
        "op_scale": {op: float(f"{r:.6g}") for op, r in ratios.items()},
        "lm_head_scale": float(f"{lm_ratio:.6g}"),
        "linear_layer": _table("tokens", tokens, layer),
        "lm_head": _table("seqs", tokens, lm_head),
        "all_reduce": None,
    }
    if tp > 1:
        network = profiles.all_reduce[gpu.name]
        if tp not in network.tables:
            raise UserError(f"all-reduce profile {network.name} has no rows for {tp} workers")
        sizes, times = network.tables[tp]
        entry["network_profile"] = network.name
        entry["all_reduce"] = _table("tokens", sizes / (model.hidden * model.dtype_bytes), times)
    return entry


def _table(axis: str, x: np.ndarray, y: np.ndarray) -> dict[str, list[Any]]:
    xs, ys = compact_table(x, y)
    return {axis: xs, "ms": ys}


def entry_key(model: str, gpu: str, tp: int) -> str:
    return f"{model}/{gpu}/tp{tp}"


def calibrate(data_dir: Path) -> dict[str, Any]:
    """The full calibration document for every known model, GPU and valid TP degree."""
    profiles = read_profiles(data_dir)
    entries: dict[str, Any] = {}
    for model in MODELS.values():
        for gpu in GPUS.values():
            for tp in TP_DEGREES:
                if model.valid_tp(tp):
                    entries[entry_key(model.name, gpu.name, tp)] = derive_entry(model, gpu, tp, profiles)
    return {
        "format": FORMAT,
        "generated_by": "ascbench calibrate",
        "units": {"time": "ms per layer (linear, one all-reduce) or per iteration (LM head)"},
        "table_tolerance": {"relative": REL_TOL, "absolute_ms": ABS_TOL_MS},
        **chosen_params(),
        "entries": entries,
    }


def write_json(doc: dict[str, Any], path: Path) -> int:
    """Write compactly (one table per line keeps diffs readable); returns the size in bytes."""
    text = json.dumps(doc, indent=1, separators=(",", ": "))
    text = _NUMBER_LIST.sub(lambda m: "[" + re.sub(r"\s+", "", m.group(1)).replace(",", ", ") + "]", text) + "\n"
    write_text(path, text)
    return len(text.encode())
