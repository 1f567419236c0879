"""The simulator's reality: how long one iteration of a batch takes on a GPU, from the calibrated tables.

An iteration's time is the sum of

- linear: ``num_layers`` x the profiled per-layer GEMM/norm/activation time at the batch's total tokens;
- all-reduce (TP > 1): two all-reduces per layer of the batch's hidden states (network profile);
- attention (analytic): each prefill chunk of ``c`` tokens over ``p`` prior tokens does
  ``4 * heads * head_dim * (c*p + c*(c+1)/2)`` FLOPs per layer at a fraction of the peak FLOP rate (never
  faster than reading its KV once); decodes read the K and V of their context plus the new token at a
  fraction of the HBM bandwidth; plus a kernel launch per layer for each kind present;
- LM head: the hidden x vocab GEMM for one token per sequence;
- CPU overhead of the engine: a constant plus a per-sequence term.

The efficiency factors and overheads (and why they were chosen) are in ``ascendra.costmodel.params``; the
tables come from ``ascendra.costmodel.calibrate``. The hot path is plain Python over precomputed lists
(bisect + linear interpolation), tens of thousands of evaluations per second.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.gpus import GpuSpec, get_gpu
from ascendra.models import ModelSpec, get_model

FORMAT = "ascendra-cost-model/1"
_MS = 1e-3


def packaged_path() -> Path:
    """The cost model shipped with the package (regenerate with ``ascbench calibrate``)."""
    return Path(__file__).resolve().parents[1] / "data" / "cost_model.json"


def _read_document(path: Path) -> dict[str, Any]:
    """The parsed file, cached while the file is unchanged (a re-calibration in the same process is seen)."""
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise UserError(f"cost model file not found: {path} (run `ascbench calibrate`)") from None
    return _parse_document(str(path), stamp)


@lru_cache(maxsize=8)
def _parse_document(path: str, _stamp: int) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"cost model file not found: {path} (run `ascbench calibrate`)") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read cost model file {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UserError(f"{path} is not an {FORMAT} file")
    return doc


def calibrated_shape(model: ModelSpec) -> dict[str, int]:
    """What an entry is calibrated for: the architecture and the dtype. ``calibrate`` writes it and ``load``
    compares the model against it, so a changed model table is caught instead of silently using stale times."""
    return {**model.architecture(), "dtype_bytes": model.dtype_bytes}


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Seconds of one iteration by component (the review table shows these)."""

    linear: float
    attention: float
    lm_head: float
    all_reduce: float
    overhead: float

    @property
    def total(self) -> float:
        return self.linear + self.attention + self.lm_head + self.all_reduce + self.overhead

    def as_dict(self) -> dict[str, float]:
        return {
            "linear": self.linear,
            "attention": self.attention,
            "lm_head": self.lm_head,
            "all_reduce": self.all_reduce,
            "overhead": self.overhead,
            "total": self.total,
        }


class PiecewiseLinear:
    """A piecewise-linear function on a fixed grid, extended past its end by its last segment."""

    __slots__ = ("xs", "ys", "slopes")

    def __init__(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        self.xs = [float(x) for x in xs]
        self.ys = [float(y) for y in ys]
        slopes = [(self.ys[i + 1] - self.ys[i]) / (self.xs[i + 1] - self.xs[i]) for i in range(len(xs) - 1)]
        self.slopes = [*slopes, slopes[-1] if slopes else 0.0]

    def __call__(self, x: float) -> float:
        i = bisect_right(self.xs, x) - 1
        if i < 0:
            return self.ys[0]
        return self.ys[i] + self.slopes[i] * (x - self.xs[i])


class CostModel:
    """Iteration time of one model on one GPU type at one TP degree; see the module docstring."""

    def __init__(self, model: ModelSpec, gpu: GpuSpec, tp: int, entry: dict[str, Any], doc: dict[str, Any]) -> None:
        self.model, self.gpu, self.tp = model, gpu, tp
        self.profile: str = entry["profile"]
        self.op_scale: dict[str, float] = dict(entry["op_scale"])
        gpu_params = doc["gpus"][gpu.name]
        engine = doc["engine"]
        self.params: dict[str, float] = {**gpu_params, **engine}
        layers = model.num_layers
        linear, lm = entry["linear_layer"], entry["lm_head"]
        ar = entry["all_reduce"] or {"tokens": [1], "ms": [0.0]}
        self._linear = PiecewiseLinear(linear["tokens"], [layers * t * _MS for t in linear["ms"]])
        self._all_reduce = PiecewiseLinear(ar["tokens"], [2 * layers * t * _MS for t in ar["ms"]])
        both = sorted({*self._linear.xs, *self._all_reduce.xs})
        self._linear_ar = PiecewiseLinear(both, [self._linear(x) + self._all_reduce(x) for x in both])
        self._lm_head = PiecewiseLinear(lm["seqs"], [t * _MS for t in lm["ms"]])
        flops_per_pair = 4 * model.num_heads * model.head_dim * layers / tp
        self._pair_s = flops_per_pair / (gpu_params["prefill_attention_efficiency"] * gpu.peak_flops)
        kv_bytes = model.kv_bytes_per_token() / tp
        self._kv_token_s = kv_bytes / (gpu_params["decode_attention_bandwidth_efficiency"] * gpu.mem_bandwidth)
        self._launch_s = engine["attention_launch_ms"] * layers * _MS
        self._cpu_s = engine["cpu_overhead_ms"] * _MS
        self._cpu_seq_s = engine["cpu_overhead_per_seq_ms"] * _MS

    @classmethod
    def load(
        cls, model: str | ModelSpec, gpu: str | GpuSpec, tp: int | None = None, *, path: Path | None = None
    ) -> CostModel:
        """The calibrated model for ``model`` on ``gpu`` at ``tp`` (None: the model's default TP).

        ``path`` defaults to the packaged JSON; unknown names or an uncalibrated combination are a UserError.
        """
        spec = get_model(model) if isinstance(model, str) else model
        gspec = get_gpu(gpu) if isinstance(gpu, str) else gpu
        tp = spec.default_tp if tp is None else tp
        doc = _read_document(Path(path) if path is not None else packaged_path())
        entry = doc["entries"].get(f"{spec.name}/{gspec.name}/tp{tp}")
        if entry is None:
            same = (e for e in doc["entries"].values() if e["model"] == spec.name and e["gpu"] == gspec.name)
            have = sorted(e["tp"] for e in same)
            raise UserError(
                f"no cost model for {spec.name} on {gspec.name} at TP {tp}"
                + (f"; calibrated TP degrees: {', '.join(map(str, have))}" if have else "; run `ascbench calibrate`")
            )
        if gspec.name not in doc["gpus"]:
            raise UserError(f"cost model file has no parameters for GPU {gspec.name}")
        shape = entry["shape"]
        if calibrated_shape(spec) != shape:
            raise UserError(f"model {spec.name} does not match the calibrated shape {shape}; run `ascbench calibrate`")
        return cls(spec, gspec, tp, entry, doc)

    def _parts(
        self, tokens: int, seqs: int, prefill_attn: float, decode_kv_tokens: int, has_prefill: bool
    ) -> tuple[float, float, float, float, float]:
        attention = prefill_attn + decode_kv_tokens * self._kv_token_s
        if has_prefill:
            attention += self._launch_s
        if decode_kv_tokens:
            attention += self._launch_s
        return (
            self._linear(tokens),
            attention,
            self._lm_head(seqs),
            self._all_reduce(tokens),
            self._cpu_s + self._cpu_seq_s * seqs,
        )

    def _prefill_attention(self, chunk: int, prior: int) -> float:
        compute = (chunk * prior + chunk * (chunk + 1) / 2) * self._pair_s
        memory = (prior + chunk) * self._kv_token_s
        return compute if compute > memory else memory

    def breakdown(self, prefills: Sequence[tuple[int, int]], decode_contexts: Sequence[int]) -> Breakdown:
        """Components of ``time_of`` (seconds)."""
        if not prefills and not decode_contexts:
            return Breakdown(0.0, 0.0, 0.0, 0.0, 0.0)
        attn = 0.0
        tokens = 0
        for chunk, prior in prefills:
            tokens += chunk
            attn += self._prefill_attention(chunk, prior)
        seqs = len(prefills) + len(decode_contexts)
        kv = sum(decode_contexts) + len(decode_contexts)
        return Breakdown(*self._parts(tokens + len(decode_contexts), seqs, attn, kv, bool(prefills)))

    def time_of(self, prefills: Sequence[tuple[int, int]], decode_contexts: Sequence[int]) -> float:
        """Seconds for one iteration: ``prefills`` are (chunk_tokens, prior_context) pairs, ``decode_contexts``
        the tokens already cached for each decoding sequence. An empty iteration takes 0."""
        n_dec = len(decode_contexts)
        if not prefills and not n_dec:
            return 0.0
        attn = 0.0
        tokens = n_dec
        pair_s, kv_s = self._pair_s, self._kv_token_s
        for chunk, prior in prefills:
            tokens += chunk
            compute = (chunk * prior + chunk * (chunk + 1) * 0.5) * pair_s
            memory = (prior + chunk) * kv_s
            attn += compute if compute > memory else memory
        seqs = len(prefills) + n_dec
        if prefills:
            attn += self._launch_s
        if n_dec:
            attn += (sum(decode_contexts) + n_dec) * kv_s + self._launch_s
        return self._linear_ar(tokens) + attn + self._lm_head(seqs) + self._cpu_s + self._cpu_seq_s * seqs

    def batch_time(self, batch: Batch) -> float:
        """Seconds for one iteration of ``batch`` (the simulator's hot path; same result as ``time_of``).

        Relies on the counters ``Batch.add`` keeps (``num_prefill_tokens``, ``num_decodes``)."""
        if not batch.items:
            return 0.0
        attn = 0.0
        kv = 0
        pair_s, kv_s = self._pair_s, self._kv_token_s
        for item in batch.items:
            if item.is_prefill:
                chunk, prior = item.num_tokens, item.context
                compute = (chunk * prior + chunk * (chunk + 1) * 0.5) * pair_s
                memory = (prior + chunk) * kv_s
                attn += compute if compute > memory else memory
            else:
                kv += item.context
        n_dec = batch.num_decodes
        seqs = len(batch.items)
        if seqs > n_dec:
            attn += self._launch_s
        if n_dec:
            attn += (kv + n_dec) * kv_s + self._launch_s
        tokens = batch.num_prefill_tokens + n_dec
        return self._linear_ar(tokens) + attn + self._lm_head(seqs) + self._cpu_s + self._cpu_seq_s * seqs

    def batch_breakdown(self, batch: Batch) -> Breakdown:
        """Components of ``batch_time``."""
        return self.breakdown(*batch.composition())

    def __repr__(self) -> str:
        return f"CostModel({self.model.name!r}, {self.gpu.name!r}, tp={self.tp}, profile={self.profile!r})"
