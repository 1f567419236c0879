"""One model x GPU x TP degree's runtime tables, evaluated from the calibrated per-op model when it is loaded.

The simulator's hot path interpolates three piecewise-linear tables (one layer's linear ops against tokens, the
LM head against sequences, one all-reduce against tokens); they are built here from the fitted curves on the
union of the curves' token counts, so the wave steps the curves carry stay in the tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ascendra.costmodel.ops import Curve, grid, layer_problems, lm_head_problem, nearest, predict_ms
from ascendra.costmodel.tables import EXTEND_TO
from ascendra.gpus import GpuSpec
from ascendra.models import ModelSpec


@dataclass(frozen=True, slots=True)
class LayerTables:
    """Per-layer linear ms and LM-head ms on ``tokens``; one all-reduce's ms on ``ar_tokens``."""

    tokens: list[float]
    layer_ms: list[float]
    lm_head_ms: list[float]
    ar_tokens: list[float]
    ar_ms: list[float]
    sources: str  # the profiled problems the prediction borrowed its efficiency curves from


def build_tables(model: ModelSpec, gpu: GpuSpec, tp: int, section: dict[str, Any], interconnect: str) -> LayerTables:
    """Evaluate the per-op model of ``model`` at TP ``tp`` on ``gpu`` from one GPU section of the calibration, the
    all-reduce over ``interconnect``."""
    curves = [Curve.from_dict(c) for c in section["curves"]]
    floor = float(section["launch_floor_ms"])
    problems = [*layer_problems(model, tp).values()]
    lm = lm_head_problem(model, tp)
    used = [nearest(p, curves) for p in [*problems, lm]]
    tokens = grid(used, EXTEND_TO)
    layer = sum(np.maximum(predict_ms(p, tokens, gpu, curves), floor) for p in problems)
    lm_head = np.maximum(predict_ms(lm, tokens, gpu, curves), floor)
    ar_tokens, ar_ms = [1.0], [0.0]
    if tp > 1:
        table = section["all_reduce"][interconnect][str(tp)]
        per_token = model.hidden * model.dtype_bytes
        ar_tokens = [max(b / per_token, 1e-9) for b in table["bytes"]]
        ar_ms = list(table["ms"])
    sources = sorted({c.source for c in used})
    return LayerTables(
        tokens.tolist(),
        np.maximum.accumulate(layer).tolist(),  # noise in a borrowed curve must not make more tokens cheaper
        np.maximum.accumulate(lm_head).tolist(),
        ar_tokens,
        ar_ms,
        ", ".join(sources),
    )
