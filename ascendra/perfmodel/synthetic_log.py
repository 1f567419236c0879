"""A batch log sampled from realistic batch compositions and timed by the simulator's cost model.

This stands in for the profiler until ``ascbench profile`` exists: it gives the performance model the batches
the schedulers actually build, timed by the executor the simulator uses. The shipped coefficients are
regenerated, per configuration, with (seed 0 throughout)::

    python -m ascendra.perfmodel.synthetic_log --model M --gpu G --tp T --out synthetic_M_G_tpT.csv
    ascbench fit-perf-model synthetic_M_G_tpT.csv --out ascendra/data/perf_model_M_G_tpT.json
    ascbench fit-perf-model synthetic_M_G_tpT.csv --per-seq --out ascendra/data/perf_model_M_G_tpT_perseq.json

Compositions (all within the serving limits: 8192 batched tokens, 128 sequences, the KV pool of the GPU):

- prefill: whole prompts (no prior context), lengths log-uniform in 4..8192 below a per-batch maximum that is
  itself log-uniform, packed FCFS-like until the token budget or a drawn batch size is reached;
- decode: 1..128 sequences, contexts uniform below a per-batch maximum drawn log-uniform in 8..8192;
- mixed: decodes as above plus whole prompts filling (part of) the remaining ``8192 - decodes`` tokens.

``chunked_share`` turns that share of prefills into chunks of a longer prompt (with prior context), which
chunked-prefill schedulers produce; it is 0 by default, as Ascendra prefills whole prompts.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ascendra.errors import UserError
from ascendra.gpus import get_gpu
from ascendra.kv_cache import num_kv_blocks
from ascendra.models import get_model
from ascendra.perfmodel.log import log_row, write_log

TimeFn = Callable[[list[tuple[int, int]], list[int]], float]

MAX_BATCH_TOKENS = 8192
MAX_SEQS = 128
MIN_PROMPT = 4


def _log_uniform_int(rng: np.random.Generator, lo: int, hi: int) -> int:
    """An integer in [lo, hi] whose logarithm is uniform (covers short and long lengths alike)."""
    if hi <= lo:
        return lo
    return min(hi, int(math.exp(rng.uniform(math.log(lo), math.log(hi + 1)))))


class BatchSampler:
    """Draws batch compositions within the token budget, sequence cap, context limit and KV capacity."""

    def __init__(
        self,
        rng: np.random.Generator,
        max_context: int,
        kv_capacity: int,
        max_batch_tokens: int = MAX_BATCH_TOKENS,
        max_seqs: int = MAX_SEQS,
        chunked_share: float = 0.0,
    ) -> None:
        self.rng = rng
        self.max_context = max_context
        self.kv_capacity = kv_capacity
        self.max_batch_tokens = max_batch_tokens
        self.max_seqs = max_seqs
        self.chunked_share = chunked_share

    def _prefills(self, budget: int, seqs_left: int, kv_left: int) -> list[tuple[int, int]]:
        """Whole prompts (or, with ``chunked_share``, chunks with prior context) within ``budget`` tokens."""
        rng = self.rng
        cap = min(budget, self.max_context, kv_left)
        if cap < 1 or seqs_left < 1:
            return []
        longest = _log_uniform_int(rng, MIN_PROMPT, self.max_context)
        wanted = _log_uniform_int(rng, 1, seqs_left)
        out: list[tuple[int, int]] = []
        used = kv_used = 0
        for _ in range(wanted):
            room = min(budget - used, kv_left - kv_used)
            if room < 1:
                break
            length = _log_uniform_int(rng, MIN_PROMPT, max(MIN_PROMPT, longest))
            prior = 0
            if self.chunked_share > 0 and rng.random() < self.chunked_share and length < self.max_context:
                prior = int(rng.integers(0, self.max_context - length + 1))
                prior = min(prior, kv_left - kv_used - min(length, room))
            if not out:
                length = min(length, room)  # the first prompt always goes in, clipped to the budget
            elif length > room or prior + length > kv_left - kv_used:
                break
            out.append((length, max(0, prior)))
            used += length
            kv_used += length + max(0, prior)
        return out

    def _decodes(self, n: int) -> list[int]:
        """``n`` decode contexts below a per-batch maximum, shrunk to fit the KV pool."""
        hi = _log_uniform_int(self.rng, 8, self.max_context - 1)
        contexts = self.rng.integers(1, hi + 1, size=n)
        total = int(contexts.sum()) + n
        if total > self.kv_capacity:
            contexts = np.maximum(1, (contexts * (self.kv_capacity - n) / total).astype(int))
        return [int(c) for c in contexts]

    def prefill(self) -> tuple[list[tuple[int, int]], list[int]]:
        return self._prefills(self.max_batch_tokens, self.max_seqs, self.kv_capacity), []

    def decode(self) -> tuple[list[tuple[int, int]], list[int]]:
        return [], self._decodes(int(self.rng.integers(1, self.max_seqs + 1)))

    def mixed(self) -> tuple[list[tuple[int, int]], list[int]]:
        decodes = self._decodes(int(self.rng.integers(1, self.max_seqs)))
        kv_left = self.kv_capacity - sum(decodes) - len(decodes)
        prefills = self._prefills(self.max_batch_tokens - len(decodes), self.max_seqs - len(decodes), kv_left)
        if not prefills:  # KV pool full: keep the batch mixed with a minimal prompt, as a scheduler could
            prefills = [(MIN_PROMPT, 0)]
        return prefills, decodes


def synthetic_log(
    model: str,
    gpu: str,
    time_fn: TimeFn,
    tp: int = 1,
    per_kind: int = 2000,
    seed: int = 0,
    chunked_share: float = 0.0,
    kinds: Sequence[str] = ("prefill", "decode", "mixed"),
) -> pd.DataFrame:
    """``per_kind`` sampled batches of each kind, timed by ``time_fn(prefills, decode_contexts) -> seconds``."""
    if per_kind < 1:
        raise UserError(f"batches per kind must be >= 1, got {per_kind}")
    if not 0.0 <= chunked_share <= 1.0:
        raise UserError(f"chunked share must be in [0, 1], got {chunked_share}")
    spec = get_model(model)
    kv_capacity = num_kv_blocks(spec, get_gpu(gpu), tp) * 16
    sampler = BatchSampler(np.random.default_rng(seed), spec.max_model_len, kv_capacity, chunked_share=chunked_share)
    draw = {"prefill": sampler.prefill, "decode": sampler.decode, "mixed": sampler.mixed}
    rows = []
    for kind in kinds:
        if kind not in draw:
            raise UserError(f"unknown batch kind {kind!r}; expected prefill, decode or mixed")
        for _ in range(per_kind):
            prefills, decodes = draw[kind]()
            rows.append(log_row(model, gpu, tp, prefills, decodes, time_fn(prefills, decodes)))
    return pd.DataFrame(rows)


def cost_model_time_fn(model: str, gpu: str, tp: int) -> TimeFn:
    """The simulator's executor cost for one configuration, as a ``time_fn``."""
    from ascendra.costmodel import CostModel

    cost = CostModel.load(model, gpu, tp)
    return cost.time_of


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ascendra.perfmodel.synthetic_log",
        description="Sample batches, time them with the simulator's cost model, write a batch log.",
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--gpu", required=True)
    parser.add_argument("--tp", type=int, default=None, help="tensor parallelism (default: the model's)")
    parser.add_argument("--per-kind", type=int, default=2000, help="batches per kind (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunked-share", type=float, default=0.0)
    parser.add_argument("--out", required=True, type=Path, help="batch log to write (.csv or .parquet)")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    args = parser.parse_args(argv)
    try:
        if args.out.exists() and not args.force:
            raise UserError(f"{args.out} exists; pass --force to overwrite it")
        tp = get_model(args.model).default_tp if args.tp is None else args.tp
        time_fn = cost_model_time_fn(args.model, args.gpu, tp)
        log = synthetic_log(args.model, args.gpu, time_fn, tp, args.per_kind, args.seed, args.chunked_share)
        write_log(log, args.out)
    except UserError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    print(f"wrote {len(log)} batches to {args.out}")


if __name__ == "__main__":
    main()
