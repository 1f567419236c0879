"""Calibration: fit the generalised per-operation model on the measured profiles and write it as JSON.

Per GPU the document holds (see ``ascendra.costmodel.ops`` for the model itself):

- ``curves``: one efficiency curve per profiled op kind, profile and TP degree (the GPU's own profiles only;
  profiles of different GPUs are never mixed). Each profile's rows for one TP degree are reduced to the median
  per token count and denoised by an isotonic (pool-adjacent-violators) fit, so more tokens never cost less,
  before the curve is taken.
- ``launch_floor_ms``: the fastest op anywhere in the GPU's profiles; no predicted op is faster (it matters
  for the ``tiny`` model, whose ops are far smaller than any profiled one).
- ``all_reduce``: per interconnect (``NETWORK_PROFILES``: ``nvswitch``, the DGX/HGX servers TP 4/8 serving runs
  on, where every GPU reaches every other at full NVLink bandwidth; ``pairwise-nvlink``, a server where only
  GPU pairs share NVLink and larger groups cross PCIe), the TP all-reduce time against the message size
  (bytes), per number of workers in one node, from that interconnect's network profile, as a compact monotone
  table; the runtime charges two per layer, of the batch's hidden states. At TP 2 the two profiles agree
  (~0.06 ms for 4 MB on the A100); at TP 4 the pairwise machine is ~4x slower (0.32 vs 0.085 ms).
- the chosen attention and engine constants (``ascendra.costmodel.params``).

Which models can be simulated is therefore not fixed here: any Llama-family shape (the table or a HF
``config.json``) at any TP degree that splits its heads and that the interconnect's profile covers (NVSwitch:
2, 4 and 8; pairwise NVLink: 2 and 4).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ascendra.costmodel.model import FORMAT
from ascendra.costmodel.ops import Curve, fit_curve, layer_problems
from ascendra.costmodel.params import chosen_params
from ascendra.costmodel.profiles import (
    AllReduceProfile,
    ComputeProfile,
    read_all_reduce_profile,
    read_compute_profile,
)
from ascendra.costmodel.tables import ABS_TOL_MS, REL_TOL, compact_table, isotonic
from ascendra.errors import UserError
from ascendra.files import write_text
from ascendra.gpus import GPUS, GpuSpec

#: Interconnect (``ascendra.costmodel.model.INTERCONNECTS``) -> the suffix of its network profile folder.
NETWORK_PROFILES: dict[str, str] = {"nvswitch": "dgx", "pairwise-nvlink": "pairwise_nvlink"}
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
    all_reduce: dict[str, dict[str, AllReduceProfile]]  # gpu name -> interconnect -> its all-reduce profile


def read_profiles(data_dir: Path) -> Profiles:
    """Find and read the compute and network profiles of every known GPU under ``data_dir``."""
    root = data_dir / "profiles"
    if not root.is_dir():
        raise UserError(f"no profiles under {data_dir} (pass --data-dir or set ASCENDRA_DATA_DIR)")
    compute: dict[str, list[ComputeProfile]] = {}
    all_reduce: dict[str, dict[str, AllReduceProfile]] = {}
    for gpu in GPUS.values():
        gdir = root / "compute" / gpu.profile_dir
        files = sorted(gdir.glob("*/*/mlp.csv"))
        if not files:
            raise UserError(f"no compute profiles (*/*/mlp.csv) under {gdir}")
        compute[gpu.name] = [read_compute_profile(f, f.parent.relative_to(root / "compute").as_posix()) for f in files]
        all_reduce[gpu.name] = {}
        for interconnect, suffix in NETWORK_PROFILES.items():
            net = root / "network" / f"{gpu.profile_dir}_{suffix}" / "all_reduce.csv"
            if net.is_file():
                all_reduce[gpu.name][interconnect] = read_all_reduce_profile(net, net.parent.name)
        if not all_reduce[gpu.name]:
            raise UserError(f"no all-reduce profile under {root / 'network'} for {gpu.name}")
    return Profiles(compute, all_reduce)


def fit_curves(profiles: list[ComputeProfile], gpu: GpuSpec) -> list[Curve]:
    """Efficiency curves of every op kind of every profile and TP degree, against ``gpu``'s peak rates."""
    curves = []
    for profile in profiles:
        for tp, (tokens, ops) in sorted(profile.tables.items()):
            if not profile.shape.valid_tp(tp):
                continue
            for op, problem in layer_problems(profile.shape, tp).items():
                curves.append(fit_curve(problem, f"{profile.name}/tp{tp}", tokens, isotonic(ops[op]), gpu))
    return curves


def launch_floor(profiles: list[ComputeProfile]) -> float:
    """The fastest op time anywhere in the profiles: no predicted kernel can beat it."""
    return min(float(t.min()) for p in profiles for _, ops in p.tables.values() for t in ops.values())


def gpu_section(gpu: GpuSpec, compute: list[ComputeProfile], network: dict[str, AllReduceProfile]) -> dict[str, Any]:
    """One GPU's part of the calibration document (see the module docstring); ``network``: per interconnect."""
    section: dict[str, Any] = {
        **chosen_params()["gpus"][gpu.name],
        "profiles": [p.name for p in compute],
        "launch_floor_ms": launch_floor(compute),
        "curves": [c.as_dict() for c in fit_curves(compute, gpu)],
        "network_profiles": {},
        "all_reduce": {},
    }
    for interconnect, profile in sorted(network.items()):
        section["network_profiles"][interconnect] = profile.name
        tables = section["all_reduce"][interconnect] = {}
        for workers, (sizes, times) in sorted(profile.tables.items()):
            xs, ys = compact_table(sizes, times, extend_to=int(sizes[-1]) * 64)
            tables[str(workers)] = {"bytes": xs, "ms": ys}
    return section


def calibrate(data_dir: Path) -> dict[str, Any]:
    """The full calibration document for every known GPU."""
    profiles = read_profiles(data_dir)
    params = chosen_params()
    return {
        "format": FORMAT,
        "generated_by": "ascbench calibrate",
        "units": {"time": "ms", "all_reduce": "ms against message bytes", "curves": "roofline / measured time"},
        "table_tolerance": {"relative": REL_TOL, "absolute_ms": ABS_TOL_MS},
        "engine": params["engine"],
        "gpus": {
            name: gpu_section(gpu, profiles.compute[name], profiles.all_reduce[name]) for name, gpu in GPUS.items()
        },
    }


def write_json(doc: dict[str, Any], path: Path) -> int:
    """Write compactly (one table per line keeps diffs readable); returns the size in bytes."""
    text = json.dumps(doc, indent=1, separators=(",", ": "))
    text = _NUMBER_LIST.sub(lambda m: "[" + re.sub(r"\s+", "", m.group(1)).replace(",", ", ") + "]", text) + "\n"
    write_text(path, text)
    return len(text.encode())
