"""The simulator's reality: how long one iteration of a batch takes on a GPU, from the calibrated per-op model.

An iteration's time is the sum of

- linear: ``num_layers`` x one layer's nine GEMM/norm/activation ops at the batch's total tokens, each
  predicted by the generalised per-operation model (``ascendra.costmodel.ops``: roofline time over an
  efficiency curve fitted on the profiles), tabulated once per model x GPU x TP when the model is loaded;
- all-reduce (TP > 1): two all-reduces per layer of the batch's hidden states, from the network profile of the
  cluster's interconnect (``nvswitch``, the default: DGX/HGX servers; ``pairwise-nvlink``: only GPU pairs share
  NVLink, ~4x slower at TP 4);
- attention (analytic): each prefill chunk of ``c`` tokens over ``p`` prior tokens does
  ``4 * heads * head_dim * (c*p + c*(c+1)/2)`` FLOPs per layer at a fraction of the peak FLOP rate; decodes
  read the K and V of their context plus the new token at a fraction of the HBM bandwidth; plus a kernel
  launch per layer for each kind present;
- chunked-prefill overhead (``chunked_prefill=True``, the default; off reproduces the model before it): the
  prefill attention kernel runs as tiles of 128 query rows per head, one wave of tiles per SM at a time, so a
  chunk is never faster than ``ceil(tiles / SMs)`` waves of its heaviest tile (``128 x (p + c/2)`` pairs per
  head, each SM at its share of the rate above): a 512-token chunk of a 32-head model is 128 tiles, two
  waves on an A100's 108 SMs, ~1.7x the ideal time. And each chunk re-reads its prior KV at the decode
  bandwidth *in addition to* its compute (off: only the larger of the two counts). Both grow with the number
  of chunks a prompt is split into. Evidence: no published number was found to check it against. The
  Sarathi-Serve paper (Agrawal et al., OSDI'24, arXiv 2403.02310) discusses the overhead of chunked prefills
  against chunk size, but its figure data could not be retrieved (its repository ships none); vLLM's
  chunked-prefill RFC (vllm-project/vllm#3130) states the overhead only qualitatively (per-step overhead and
  repeated KV reads slow TTFT). The term is switched per run (``--no-chunked-prefill-cost``) so its effect on a
  result can be measured; results/sim-validation tabulates it for an 8K prompt;
- LM head: the hidden x vocab GEMM for one token per sequence (per-op model);
- CPU overhead of the engine: a constant plus a per-sequence term.

The efficiency factors and overheads (and why they were chosen) are in ``ascendra.costmodel.params``; the
curves come from ``ascendra.costmodel.calibrate``. The hot path is plain Python over precomputed lists
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

from ascendra.batch import Batch, DecodeCounts
from ascendra.costmodel.layer_tables import LayerTables, build_tables
from ascendra.errors import UserError
from ascendra.gpus import GpuSpec, get_gpu
from ascendra.models import ModelSpec, get_model

FORMAT = "ascendra-cost-model/3"  # 3: all-reduce tables per interconnect
#: How the GPUs of a TP group are connected (see ``ascendra.costmodel.calibrate``).
INTERCONNECTS: tuple[str, ...] = ("nvswitch", "pairwise-nvlink")
DEFAULT_INTERCONNECT = "nvswitch"
_MS = 1e-3
_TILE_ROWS = 128  # query rows per attention tile (FlashAttention-2's block for head_dim 128)


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
        raise UserError(f"{path} is not an {FORMAT} file (run `ascbench calibrate`)")
    return doc


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
    """A piecewise-linear function on a fixed grid, extended past its end by its last segment.

    Values are remembered by argument: a simulation asks for the same token and sequence counts thousands of
    times (one lookup instead of a bisection each)."""

    __slots__ = ("xs", "ys", "slopes", "_values")

    def __init__(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        self.xs = [float(x) for x in xs]
        self.ys = [float(y) for y in ys]
        slopes = [(self.ys[i + 1] - self.ys[i]) / (self.xs[i + 1] - self.xs[i]) for i in range(len(xs) - 1)]
        self.slopes = [*slopes, slopes[-1] if slopes else 0.0]
        self._values: dict[float, float] = {}

    def __call__(self, x: float) -> float:
        value = self._values.get(x)
        if value is None:
            value = self._values[x] = self._at(x)
        return value

    def _at(self, x: float) -> float:
        i = bisect_right(self.xs, x) - 1
        if i < 0:
            return self.ys[0]
        return self.ys[i] + self.slopes[i] * (x - self.xs[i])


class CostModel:
    """Iteration time of one model on one GPU type at one TP degree; see the module docstring."""

    def __init__(
        self, model: ModelSpec, gpu: GpuSpec, tp: int, tables: LayerTables, section: dict[str, Any],
        engine: dict[str, float], chunked_prefill: bool = True, interconnect: str = DEFAULT_INTERCONNECT,
    ) -> None:  # fmt: skip
        self.model, self.gpu, self.tp, self.interconnect = model, gpu, tp, interconnect
        self.chunked_prefill = chunked_prefill
        self.profile: str = tables.sources
        self.params: dict[str, float] = {
            "prefill_attention_efficiency": section["prefill_attention_efficiency"],
            "decode_attention_bandwidth_efficiency": section["decode_attention_bandwidth_efficiency"],
            **engine,
        }
        layers = model.num_layers
        self._linear = PiecewiseLinear(tables.tokens, [layers * t * _MS for t in tables.layer_ms])
        self._all_reduce = PiecewiseLinear(tables.ar_tokens, [2 * layers * t * _MS for t in tables.ar_ms])
        both = sorted({*self._linear.xs, *self._all_reduce.xs})
        self._linear_ar = PiecewiseLinear(both, [self._linear(x) + self._all_reduce(x) for x in both])
        self._lm_head = PiecewiseLinear(tables.tokens, [t * _MS for t in tables.lm_head_ms])
        heads = model.num_heads // tp
        rate = self.params["prefill_attention_efficiency"] * gpu.peak_flops
        self._pair_s = 4 * heads * model.head_dim * layers / rate
        # One tile: 128 query rows of one head against one key, on one SM's share of the rate.
        self._tile_pair_s = 4 * _TILE_ROWS * model.head_dim * layers * gpu.num_sms / rate
        self._heads, self._sms = heads, gpu.num_sms
        kv_bytes = model.kv_bytes_per_token() / tp
        bandwidth = self.params["decode_attention_bandwidth_efficiency"] * gpu.mem_bandwidth
        self._kv_token_s = kv_bytes / bandwidth
        self._launch_s = engine["attention_launch_ms"] * layers * _MS
        self._cpu_s = engine["cpu_overhead_ms"] * _MS
        self._cpu_seq_s = engine["cpu_overhead_per_seq_ms"] * _MS

    @classmethod
    def load(
        cls, model: str | ModelSpec, gpu: str | GpuSpec, tp: int | None = None, *, path: Path | None = None,
        chunked_prefill: bool = True, interconnect: str = DEFAULT_INTERCONNECT,
    ) -> CostModel:  # fmt: skip
        """The model for ``model`` (a table name, a ``config.json`` path or any Llama-family ``ModelSpec``) on
        ``gpu`` at ``tp`` (None: the model's default TP) whose TP group is linked by ``interconnect``;
        ``chunked_prefill=False`` leaves out the chunked-prefill overhead.

        ``path`` defaults to the packaged JSON; unknown names, a TP degree that does not split the heads or that
        the interconnect's profile lacks, or a GPU the file does not cover are a UserError.
        """
        spec = get_model(model) if isinstance(model, str) else model
        gspec = get_gpu(gpu) if isinstance(gpu, str) else gpu
        tp = spec.default_tp if tp is None else tp
        path = Path(path) if path is not None else packaged_path()
        doc = _read_document(path)
        section = doc["gpus"].get(gspec.name)
        if section is None:
            raise UserError(f"cost model file has no parameters for GPU {gspec.name}")
        if not spec.valid_tp(tp):
            raise UserError(
                f"no cost model for {spec.name} at TP {tp}: {spec.num_heads} query and {spec.num_kv_heads} KV "
                "heads must both split evenly"
            )
        if interconnect not in section["all_reduce"]:
            have = ", ".join(section["all_reduce"]) or "none"
            raise UserError(f"no {interconnect!r} interconnect profile for {gspec.name}; the cost model has: {have}")
        degrees = section["all_reduce"][interconnect]
        if tp > 1 and str(tp) not in degrees:
            have = ", ".join(sorted(degrees, key=int)) or "none"
            raise UserError(
                f"no cost model for TP {tp} on {gspec.name} over {interconnect}: its all-reduce profile covers "
                f"TP {have}"
            )
        tables = _layer_tables(spec, gspec, tp, interconnect, str(path), path.stat().st_mtime_ns)
        return cls(spec, gspec, tp, tables, section, doc["engine"], chunked_prefill, interconnect)

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

    def prefill_attention(self, prefills: Sequence[tuple[int, int]]) -> float:
        """Seconds of the prefill attention kernel over ``(chunk, prior)`` pairs (0 without prefills)."""
        pair_s, kv_s = self._pair_s, self._kv_token_s
        if not self.chunked_prefill:  # each chunk at its own roofline
            legacy = 0.0
            for chunk, prior in prefills:
                compute, memory = (chunk * prior + chunk * (chunk + 1) * 0.5) * pair_s, (prior + chunk) * kv_s
                legacy += compute if compute > memory else memory
            return legacy
        pairs = kv = heaviest = 0.0
        tiles = 0
        for chunk, prior in prefills:
            pairs += chunk * prior + chunk * (chunk + 1) * 0.5
            kv += prior + chunk
            tiles += -(-chunk // _TILE_ROWS)
            weight = prior + chunk * 0.5
            if weight > heaviest:
                heaviest = weight
        waves = -(-tiles * self._heads // self._sms)
        return max(pairs * pair_s, waves * heaviest * self._tile_pair_s) + kv * kv_s

    def breakdown(self, prefills: Sequence[tuple[int, int]], decode_contexts: Sequence[int]) -> Breakdown:
        """Components of ``time_of`` (seconds)."""
        if not prefills and not decode_contexts:
            return Breakdown(0.0, 0.0, 0.0, 0.0, 0.0)
        tokens = sum(c for c, _ in prefills)
        seqs = len(prefills) + len(decode_contexts)
        kv = sum(decode_contexts) + len(decode_contexts)
        attn = self.prefill_attention(prefills)
        return Breakdown(*self._parts(tokens + len(decode_contexts), seqs, attn, kv, bool(prefills)))

    def time_of(self, prefills: Sequence[tuple[int, int]], decode_contexts: Sequence[int]) -> float:
        """Seconds for one iteration: ``prefills`` are (chunk_tokens, prior_context) pairs, ``decode_contexts``
        the tokens already cached for each decoding sequence. An empty iteration takes 0."""
        n_dec = len(decode_contexts)
        if not prefills and not n_dec:
            return 0.0
        tokens = n_dec + sum(c for c, _ in prefills)
        seqs = len(prefills) + n_dec
        attn = 0.0
        if prefills:
            attn += self.prefill_attention(prefills) + self._launch_s
        if n_dec:
            attn += (sum(decode_contexts) + n_dec) * self._kv_token_s + self._launch_s
        return self._linear_ar(tokens) + attn + self._lm_head(seqs) + self._cpu_s + self._cpu_seq_s * seqs

    def batch_time(self, batch: Batch) -> float:
        """Seconds for one iteration of ``batch`` (the simulator's hot path; same result as ``time_of``)."""
        prefills = batch.prefills
        n_dec = len(batch.decodes)
        if not prefills and not n_dec:
            return 0.0
        seqs = len(prefills) + n_dec
        attn = 0.0
        if prefills:
            attn += self.prefill_attention([(i.num_tokens, i.context) for i in prefills]) + self._launch_s
        if n_dec:
            attn += (batch.decode_kv + n_dec) * self._kv_token_s + self._launch_s
        tokens = batch.num_prefill_tokens + n_dec
        return self._linear_ar(tokens) + attn + self._lm_head(seqs) + self._cpu_s + self._cpu_seq_s * seqs

    def decode_run_times(self, run: DecodeCounts, steps: int) -> list[float]:
        """Seconds of the first ``steps`` of a run of decode-only iterations (the run in counts: ``DecodeCounts``),
        fewer when every decode has left. Bit for bit ``batch_time`` of each of those batches (same operations in
        the same order), computed from the run's counts instead of one batch per step: the simulator's bulk
        advance of decode runs relies on it."""
        n_dec, kv, leaving, offset = run.num_decodes, run.kv, run.leaving, run.offset
        kv_s, launch, cpu, cpu_seq = self._kv_token_s, self._launch_s, self._cpu_s, self._cpu_seq_s
        linear_ar, lm_head = self._linear_ar, self._lm_head
        # The per-batch-size terms change only when a decode leaves: looked up then, not at every step.
        linear, head, seqs = linear_ar(n_dec), lm_head(n_dec), cpu_seq * n_dec
        times: list[float] = []
        for step in range(steps):
            left = leaving.get(offset + step)
            if left is not None:
                n_dec -= left[0]
                kv -= left[1] + left[0] * offset
                if not n_dec:
                    break
                linear, head, seqs = linear_ar(n_dec), lm_head(n_dec), cpu_seq * n_dec
            attn = (kv + step * n_dec + n_dec) * kv_s + launch
            times.append(linear + attn + head + cpu + seqs)
        return times

    def batch_breakdown(self, batch: Batch) -> Breakdown:
        """Components of ``batch_time``."""
        return self.breakdown(*batch.composition())

    def __repr__(self) -> str:
        return (
            f"CostModel({self.model.name!r}, {self.gpu.name!r}, tp={self.tp}, interconnect={self.interconnect!r}, "
            f"profile={self.profile!r})"
        )


@lru_cache(maxsize=32)
def _layer_tables(model: ModelSpec, gpu: GpuSpec, tp: int, interconnect: str, path: str, stamp: int) -> LayerTables:
    """The runtime tables of one combination, built once per calibration file version."""
    return build_tables(model, gpu, tp, _parse_document(path, stamp)["gpus"][gpu.name], interconnect)
