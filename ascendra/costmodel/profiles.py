"""Readers for the measured GPU profiles (Vidur's public CSVs): compute ops per token count, all-reduce per size.

Only calibration reads these files; they are reduced here to medians per token count (or message size), the
numbers calibration needs, and never copied into the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ascendra.costmodel.ops import LAYER_OPS
from ascendra.errors import UserError
from ascendra.models import ModelSpec


@dataclass(frozen=True)
class ComputeProfile:
    """Median per-layer op times (ms) of one profiled model on one GPU, per TP degree."""

    name: str  # e.g. "a100/meta-llama/Meta-Llama-3-8B"
    shape: ModelSpec  # the profiled layer's shape (see ``profile_shape``)
    # tp -> (token counts ascending, {op: median ms at each token count})
    tables: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]]


@dataclass(frozen=True)
class AllReduceProfile:
    """Median all-reduce time (ms) against message size (bytes), per number of workers."""

    name: str
    tables: dict[int, tuple[np.ndarray, np.ndarray]]


def _read_csv(path: Path):  # noqa: ANN202 - pandas is imported lazily: only calibration needs it
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read profile {path}: {exc}") from None


def read_compute_profile(path: Path, name: str) -> ComputeProfile:
    """Read one ``mlp.csv``; several rows per (tp, num_tokens) are reduced to the median of their medians."""
    df = _read_csv(path)
    cols = [f"time_stats.{op}.median" for op in LAYER_OPS]
    needed = [*cols, "n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size", "use_gated_mlp"]
    missing = [c for c in [*needed, "num_tokens", "num_tensor_parallel_workers"] if c not in df.columns]
    if missing:
        raise UserError(f"profile {path} lacks columns: {', '.join(missing)}")
    shapes = df[needed[len(cols) :]].drop_duplicates()
    if len(shapes) != 1 or not bool(shapes["use_gated_mlp"].iloc[0]):
        raise UserError(f"profile {path} must hold exactly one gated-MLP model shape")
    shape = profile_shape(name, shapes.iloc[0], int(df["num_tokens"].max()))
    tables: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    for tp, group in df.groupby("num_tensor_parallel_workers"):
        med = group.groupby("num_tokens")[cols].median().sort_index()
        tokens = med.index.to_numpy(dtype=float)
        tables[int(tp)] = (tokens, {op: med[c].to_numpy(dtype=float) for op, c in zip(LAYER_OPS, cols, strict=True)})
    return ComputeProfile(name, shape, tables)


def profile_shape(name: str, row: Any, max_tokens: int) -> ModelSpec:
    """The profiled model as a ModelSpec, from a profile's shape columns.

    A profile times one decoder layer (hence ``num_layers=1``) and has no context length of its own, so
    ``max_model_len`` is the largest iteration it covers; neither enters the per-op work ratios. Vidur's
    profiles have no ``head_dim`` column: it is ``n_embd / n_head``, as in the profiled Llama models."""
    heads, hidden = int(row["n_head"]), int(row["n_embd"])
    return ModelSpec(
        name=name,
        hf_id=name.split("/", 1)[-1],
        num_layers=1,
        hidden=hidden,
        ffn=int(row["n_expanded_embd"]),
        num_heads=heads,
        num_kv_heads=int(row["n_kv_head"]),
        head_dim=hidden // heads,
        vocab=int(row["vocab_size"]),
        max_model_len=max_tokens,
    )


def read_all_reduce_profile(path: Path, name: str) -> AllReduceProfile:
    """Read one ``all_reduce.csv`` (``size`` is the message in bytes, as Vidur's predictor reads it).

    Only rows whose workers all sit in one node (``num_workers == devices_per_node``) are kept: a TP group never
    spans nodes here, and the DGX profiles also hold multi-node rows (e.g. 4 workers over two nodes, ~12x
    slower)."""
    df = _read_csv(path)
    col = "time_stats.all_reduce.median"
    missing = [c for c in (col, "size", "num_workers") if c not in df.columns]
    if missing:
        raise UserError(f"profile {path} lacks columns: {', '.join(missing)}")
    if "devices_per_node" in df.columns:
        df = df[df["num_workers"] == df["devices_per_node"]]
    tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for workers, group in df.groupby("num_workers"):
        med = group.groupby("size")[col].median().sort_index()
        tables[int(workers)] = (med.index.to_numpy(dtype=float), med.to_numpy(dtype=float))
    return AllReduceProfile(name, tables)
