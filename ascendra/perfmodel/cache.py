"""Performance models fitted on first use, for (model, GPU, TP) configurations shipped without coefficients.

Ascendra (and the baselines that predict batch times) need a performance model per (model, GPU, TP). The shipped
ones (``ascendra/data/perf_model_*.json``) cover the paper's configurations; for any other model (a table model
without a fit, or a ``config.json``) one is fitted the first time it is needed, the way the shipped ones were
made: a batch log sampled by ``ascendra.perfmodel.synthetic_log`` (2,000 batches per kind, seed 0) timed by the
simulator's cost model (default interconnect, chunked-prefill term on), then ``ascendra.perfmodel.fit`` (seed 0).
It takes about a second, and a notice on stderr says it happened.

The result is cached as JSON under the user cache folder (``$ASCENDRA_CACHE_DIR`` or the platform's), named by a
hash of everything the fit depends on: the model's architecture and context length, the GPU, the TP degree, the
feature set, the sampling and fit settings and the bytes of the packaged cost model. A recalibrated cost model or
another shape therefore never reads a stale fit; a cache that cannot be written only costs the refit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from ascendra.costmodel.model import DEFAULT_INTERCONNECT, packaged_path
from ascendra.errors import UserError
from ascendra.gpus import get_gpu
from ascendra.models import get_model
from ascendra.perfmodel.model import PerfModel

#: Batches sampled per kind and the seeds of the sampling and of the fit's split (the shipped fits' settings).
PER_KIND = 2000
SEED = 0
#: Bump when what a cached fit holds, or how it is made, changes.
CACHE_VERSION = 1


def cache_key(model: str, gpu: str, tp: int, per_seq: bool) -> str:
    """A stable hash of everything the fitted coefficients depend on."""
    spec = get_model(model)
    parts: dict[str, Any] = {
        "version": CACHE_VERSION,
        "architecture": spec.architecture(),
        "max_model_len": spec.max_model_len,
        "dtype_bytes": spec.dtype_bytes,
        "gpu": gpu,
        "tp": tp,
        "per_seq": per_seq,
        "per_kind": PER_KIND,
        "seed": SEED,
        "interconnect": DEFAULT_INTERCONNECT,
        "cost_model": hashlib.sha256(packaged_path().read_bytes()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def cache_file(model: str, gpu: str, tp: int, per_seq: bool) -> Path:
    from ascendra.cache import cache_dir

    return cache_dir() / "perf-models" / f"perf_model-{cache_key(model, gpu, tp, per_seq)}.json"


def fit_on_first_use(model: str, gpu: str, tp: int, per_seq: bool = False) -> PerfModel:
    """The cached fit of (``model``, ``gpu``, ``tp``), fitted and cached now if there is none."""
    from ascendra.files import write_text
    from ascendra.perfmodel.fit import fit
    from ascendra.perfmodel.synthetic_log import cost_model_time_fn, synthetic_log

    get_gpu(gpu)
    path = cache_file(model, gpu, tp, per_seq)
    if path.is_file():
        try:
            return _named(PerfModel.from_dict(json.loads(path.read_text()), source=str(path)), model)
        except (OSError, ValueError, UserError):
            pass  # a broken entry is refitted
    print(
        f"ascbench: notice: no performance model shipped for {model} on {gpu} with TP {tp}; fitting one on a "
        f"simulated batch log (cached in {path.parent})",
        file=sys.stderr,
    )
    log = synthetic_log(model, gpu, cost_model_time_fn(model, gpu, tp), tp, PER_KIND, SEED)
    perf, _ = fit(log, seed=SEED, per_seq=per_seq)
    perf.meta["fit"]["log"] = f"synthetic (first use, {PER_KIND} batches per kind, seed {SEED})"
    with contextlib.suppress(UserError):  # an unwritable cache only costs the refit next time
        write_text(path, json.dumps(perf.to_dict(), indent=2) + "\n")
    return perf


def _named(perf: PerfModel, model: str) -> PerfModel:
    """The cached fit under the name it is asked for (the same shape may be asked for by name and by path)."""
    if perf.model == model:
        return perf
    return PerfModel.from_dict({**perf.to_dict(), "model": model})
