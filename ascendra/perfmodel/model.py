"""The performance model: Ascendra's own predictor of batch execution time (a policy input that can be wrong).

It is fitted to an executor's batch log (:mod:`ascendra.perfmodel.fit`) and stored as plain JSON per
(model, GPU, TP). Prediction is pure Python arithmetic on sufficient statistics, because the scheduler calls it
for every waiting request after every step.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ascendra.batch import Batch
from ascendra.errors import UserError
from ascendra.files import write_text
from ascendra.gpus import get_gpu
from ascendra.models import get_model, is_config_path
from ascendra.perfmodel.features import FEATURES, KINDS, PER_SEQ_FEATURE
from ascendra.perfmodel.work import BatchStats, WorkCounter, batch_stats

FORMAT = "ascendra-perf-model"
VERSION = 1


def shipped_name(model: str, gpu: str, tp: int, per_seq: bool = False) -> str:
    """File name of the shipped coefficients of one configuration in ``ascendra/data``."""
    return f"perf_model_{model}_{gpu}_tp{tp}{'_perseq' if per_seq else ''}.json"


@dataclass(frozen=True, slots=True)
class KindCoefficients:
    """``seconds = intercept + max*max(B/W,F/P) + sum*(B/W+F/P) + compute*F/P + memory*B/W + seqs*sequences``
    for one kind; ``seqs`` is 0 unless the model was fitted with the per-sequence term."""

    intercept: float
    max: float
    sum: float
    compute: float
    memory: float
    seqs: float = 0.0

    @classmethod
    def from_vector(cls, intercept: float, weights: Sequence[float]) -> KindCoefficients:
        """From an intercept and the weights of :data:`FEATURES` (plus, optionally, the per-sequence one)."""
        return cls(float(intercept), *(float(w) for w in weights))

    @property
    def weights(self) -> tuple[float, float, float, float]:
        """Feature weights in the order of :data:`~ascendra.perfmodel.features.FEATURES`."""
        return self.max, self.sum, self.compute, self.memory

    def to_dict(self, per_seq: bool = False) -> dict[str, float]:
        out = {"intercept": self.intercept, **dict(zip(FEATURES, self.weights, strict=True))}
        if per_seq:
            out[PER_SEQ_FEATURE] = self.seqs
        return out


@dataclass(slots=True)
class PerfModel:
    """Per-kind linear regressions over roofline features of analytic work counts.

    ``peak_flops`` and ``mem_bandwidth`` are the rates the features were computed with at fit time; they are
    stored with the coefficients so a later edit of the GPU table cannot silently skew predictions.
    ``per_seq`` says whether the optional per-sequence term was fitted (see :mod:`~ascendra.perfmodel.features`).
    """

    model: str
    gpu: str
    tp: int
    peak_flops: float
    mem_bandwidth: float
    coefficients: dict[str, KindCoefficients]
    meta: dict[str, Any] = field(default_factory=dict)
    per_seq: bool = False
    counter: WorkCounter = field(init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.coefficients) - set(KINDS)
        if unknown:
            raise UserError(f"performance model: unknown batch kind(s) {', '.join(sorted(unknown))}")
        if not self.coefficients:
            raise UserError("performance model has no regression for any batch kind")
        if self.peak_flops <= 0 or self.mem_bandwidth <= 0:
            raise UserError("performance model: peak_flops and mem_bandwidth must be positive")
        self.counter = WorkCounter(get_model(self.model), self.tp)

    # --- prediction -------------------------------------------------------------------------------------------

    def predict_stats(self, stats: BatchStats) -> float:
        """Predicted seconds of a batch given its sufficient statistics; 0 for an empty batch."""
        if stats.seqs == 0:
            return 0.0
        kind = stats.kind
        coef = self.coefficients.get(kind)
        if coef is None:
            raise UserError(
                f"the performance model of {self.model} on {self.gpu} (TP {self.tp}) has no {kind!r} regression; "
                f"fit it on a batch log with {kind} batches (ascbench fit-perf-model)"
            )
        flops, nbytes = self.counter.flops_bytes(stats)
        compute = flops / self.peak_flops
        memory = nbytes / self.mem_bandwidth
        roof = compute if compute > memory else memory
        t = coef.intercept + coef.max * roof + coef.sum * (compute + memory) + coef.compute * compute
        t += coef.memory * memory + coef.seqs * stats.seqs
        return t if t > 0.0 else 0.0

    def predict(self, prefills: Iterable[tuple[int, int]], decode_contexts: Sequence[int]) -> float:
        """Predicted seconds of a batch of prefill chunks ``(chunk_tokens, prior_context)`` and decodes (tokens
        already cached per decoding sequence)."""
        return self.predict_stats(batch_stats(prefills, decode_contexts))

    def predict_batch(self, batch: Batch) -> float:
        """Predicted seconds of a scheduler's batch."""
        n_dec = len(batch.decodes)
        tokens = seqs = n_dec
        pairs = kv = batch.decode_kv + n_dec  # a decode: one token over its context
        for item in batch.prefills:
            c, p = item.num_tokens, item.context
            tokens += c
            seqs += 1
            pairs += c * p + c * (c + 1) // 2
            kv += p + c
        stats = BatchStats(tokens, seqs, pairs, kv, batch.num_prefill_tokens, n_dec)
        return self.predict_stats(stats)

    def predict_prefill(self, tokens: int, context: int = 0) -> float:
        """Predicted seconds of a prefill-only batch holding one request's ``tokens`` on top of ``context``."""
        if tokens <= 0:
            return 0.0
        pairs = tokens * context + tokens * (tokens + 1) // 2
        return self.predict_stats(BatchStats(tokens, 1, pairs, context + tokens, tokens, 0))

    # --- storage ----------------------------------------------------------------------------------------------

    @property
    def features(self) -> list[str]:
        """Names of the regression's features, as stored in the JSON."""
        return [*FEATURES, PER_SEQ_FEATURE] if self.per_seq else list(FEATURES)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model,
            "gpu": self.gpu,
            "tp": self.tp,
            "peak_flops": self.peak_flops,
            "mem_bandwidth": self.mem_bandwidth,
            "features": self.features,
            "coefficients": {k: self.coefficients[k].to_dict(self.per_seq) for k in KINDS if k in self.coefficients},
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "performance model") -> PerfModel:
        """Rebuild a model from :meth:`to_dict` output; malformed input is a UserError naming ``source``."""
        try:
            if data.get("format") != FORMAT:
                raise ValueError(f"not an {FORMAT} file")
            if int(data["version"]) > VERSION:
                raise ValueError(f"format version {data['version']} is newer than this code's {VERSION}")
            names = list(data["features"])
            per_seq = names == [*FEATURES, PER_SEQ_FEATURE]
            if names != list(FEATURES) and not per_seq:
                raise ValueError(f"features {names} are neither {list(FEATURES)} nor that plus {PER_SEQ_FEATURE!r}")
            expected = {"intercept", *names}
            coefficients = {}
            for kind, coef in data["coefficients"].items():
                if set(coef) != expected:
                    raise ValueError(f"{kind} coefficients {sorted(coef)} differ from {sorted(expected)}")
                coefficients[kind] = KindCoefficients(**{k: float(v) for k, v in coef.items()})
            return cls(
                model=str(data["model"]),
                gpu=str(data["gpu"]),
                tp=int(data["tp"]),
                peak_flops=float(data["peak_flops"]),
                mem_bandwidth=float(data["mem_bandwidth"]),
                coefficients=coefficients,
                meta=dict(data.get("meta", {})),
                per_seq=per_seq,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{source}: malformed performance model ({exc})") from None

    def save(self, path: str | Path) -> None:
        """Write the coefficients as JSON (the caller decides about overwriting)."""
        write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_file(cls, path: str | Path) -> PerfModel:
        """Read coefficients written by :meth:`save` or ``ascbench fit-perf-model``."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"performance model file {path} does not exist") from None
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read performance model {path}: {exc}") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: malformed performance model (not a JSON object)")
        return cls.from_dict(data, source=str(path))

    @classmethod
    def load(cls, model: str, gpu: str, tp: int | None = None, *, per_seq: bool = False) -> PerfModel:
        """The shipped coefficients for (model, GPU, TP); TP defaults to the model's default. A configuration
        shipped without coefficients (another table model, a ``config.json`` path) gets a fit made on first use
        and cached (``ascendra.perfmodel.cache``).

        ``per_seq`` picks the variant fitted with the per-sequence term instead of the paper's four features."""
        spec = get_model(model)
        get_gpu(gpu)
        tp = spec.default_tp if tp is None else tp
        resource = resources.files("ascendra") / "data" / shipped_name(model, gpu, tp, per_seq)
        if is_config_path(model) or not resource.is_file():
            from ascendra.perfmodel.cache import fit_on_first_use

            return fit_on_first_use(model, gpu, tp, per_seq)
        data = json.loads(resource.read_text())
        return cls.from_dict(data, source=resource.name)
