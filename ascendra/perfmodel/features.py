"""The four roofline features the per-kind regressions map to seconds.

With ``F`` FLOPs, ``B`` bytes, peak FLOP rate ``P`` and memory bandwidth ``W``: the roofline time
``max(B/W, F/P)``, the no-overlap time ``B/W + F/P``, and the two pure times ``F/P`` and ``B/W``. The regression
decides how much each contributes, which absorbs kernel efficiencies without modelling them one by one. Note
that ``sum`` is ``compute + memory``: only the combined weights ``sum + compute`` and ``sum + memory`` are
identified by data, which is harmless for prediction.

Optionally (not in the paper) a fifth term, the number of sequences in the batch (coefficient: seconds per
sequence), captures per-sequence work that neither FLOPs nor bytes see: the CPU time Python engines spend per
sequence on scheduling, metadata and sampling. It matters for batches of many short sequences.
"""

from __future__ import annotations

import numpy as np

FEATURES: tuple[str, ...] = ("max", "sum", "compute", "memory")
PER_SEQ_FEATURE = "seqs"
KINDS: tuple[str, ...] = ("prefill", "decode", "mixed")


def features(flops: float, nbytes: float, peak_flops: float, mem_bandwidth: float) -> tuple[float, float, float, float]:
    """``(max(B/W, F/P), B/W + F/P, F/P, B/W)`` in seconds, in the order of :data:`FEATURES`."""
    compute = flops / peak_flops
    memory = nbytes / mem_bandwidth
    return (compute if compute > memory else memory), compute + memory, compute, memory


def feature_matrix(flops: np.ndarray, nbytes: np.ndarray, peak_flops: float, mem_bandwidth: float) -> np.ndarray:
    """The features of many batches as an ``(n, 4)`` array, columns in the order of :data:`FEATURES`."""
    compute = np.asarray(flops, dtype=float) / peak_flops
    memory = np.asarray(nbytes, dtype=float) / mem_bandwidth
    return np.column_stack([np.maximum(compute, memory), compute + memory, compute, memory])
