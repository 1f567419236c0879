"""The batch log: the table every profiler writes (simulator or real engine) and the performance model fits on.

One row per executed batch (iteration), CSV or Parquet, columns:

=================  ======  ==============================================================================
column             type    meaning
=================  ======  ==============================================================================
model              str     model short name (``ascendra.models.MODELS``), e.g. ``llama-3.1-8b``
gpu                str     GPU name (``ascendra.gpus.GPUS``), e.g. ``a100-80gb``
tp                 int     tensor-parallel degree of the instance
kind               str     ``prefill``, ``decode`` or ``mixed`` (``Batch.kind``); must match the composition
prefills           str     JSON list of ``[chunk_tokens, prior_context]`` pairs, one per prefill chunk:
                           ``chunk_tokens`` new prompt tokens on top of ``prior_context`` already cached
decode_contexts    str     JSON list of ints, one per decoding sequence: tokens already in its KV cache
seconds            float   measured wall time of the iteration (forward pass + scheduling overhead)
=================  ======  ==============================================================================

Extra columns (timestamps, instance ids, ...) are allowed and ignored. The compositions are kept whole rather
than reduced to statistics so a log stays valid if the work counts are refined later. Use :func:`log_row` to
build rows and :func:`write_log` / :func:`read_log` for files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ascendra.errors import UserError
from ascendra.files import write_atomic
from ascendra.perfmodel.features import KINDS

COLUMNS: tuple[str, ...] = ("model", "gpu", "tp", "kind", "prefills", "decode_contexts", "seconds")


def kind_of(prefills: Sequence[Sequence[int]], decode_contexts: Sequence[int]) -> str:
    """The batch kind of a composition, with the rule of :attr:`ascendra.batch.Batch.kind`."""
    if not decode_contexts:
        return "prefill"
    return "decode" if sum(c for c, _ in prefills) == 0 else "mixed"


def log_row(
    model: str,
    gpu: str,
    tp: int,
    prefills: Iterable[tuple[int, int]],
    decode_contexts: Iterable[int],
    seconds: float,
) -> dict[str, Any]:
    """One log row in the schema above."""
    pre = [[int(c), int(p)] for c, p in prefills]
    dec = [int(c) for c in decode_contexts]
    return {
        "model": model,
        "gpu": gpu,
        "tp": int(tp),
        "kind": kind_of(pre, dec),
        "prefills": json.dumps(pre, separators=(",", ":")),
        "decode_contexts": json.dumps(dec, separators=(",", ":")),
        "seconds": float(seconds),
    }


def _parse_prefills(text: Any, row: int) -> list[tuple[int, int]]:
    try:
        value = json.loads(text)
        pairs = [(int(c), int(p)) for c, p in value]
    except (TypeError, ValueError) as exc:
        raise UserError(f"batch log row {row}: prefills must be a JSON list of [chunk_tokens, prior_context]") from exc
    if any(c < 1 or p < 0 for c, p in pairs):
        raise UserError(f"batch log row {row}: prefill chunks need chunk_tokens >= 1 and prior_context >= 0")
    return pairs


def _parse_decodes(text: Any, row: int) -> list[int]:
    try:
        value = json.loads(text)
        contexts = [int(c) for c in value]
    except (TypeError, ValueError) as exc:
        raise UserError(f"batch log row {row}: decode_contexts must be a JSON list of integers") from exc
    if any(c < 0 for c in contexts):
        raise UserError(f"batch log row {row}: decode contexts must be >= 0")
    return contexts


def parse_compositions(log: pd.DataFrame) -> tuple[list[list[tuple[int, int]]], list[list[int]]]:
    """Decode the JSON composition columns of a validated log, checking each row's kind against them."""
    prefills: list[list[tuple[int, int]]] = []
    decodes: list[list[int]] = []
    columns = zip(log["prefills"], log["decode_contexts"], log["kind"], strict=True)
    for i, (pre_text, dec_text, kind) in enumerate(columns):
        pre = _parse_prefills(pre_text, i)
        dec = _parse_decodes(dec_text, i)
        if not pre and not dec:
            raise UserError(f"batch log row {i}: empty batch (no prefills and no decodes)")
        if kind_of(pre, dec) != kind:
            raise UserError(f"batch log row {i}: kind {kind!r} does not match its composition ({kind_of(pre, dec)})")
        prefills.append(pre)
        decodes.append(dec)
    return prefills, decodes


def validate_log(log: pd.DataFrame) -> pd.DataFrame:
    """Check columns and types of a batch log; returns it with normalised dtypes (UserError on bad input)."""
    missing = [c for c in COLUMNS if c not in log.columns]
    if missing:
        raise UserError(f"batch log lacks column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    if log.empty:
        raise UserError("batch log has no rows")
    out = log.copy()
    out["model"] = out["model"].astype(str)
    out["gpu"] = out["gpu"].astype(str)
    out["kind"] = out["kind"].astype(str)
    try:
        out["tp"] = pd.to_numeric(out["tp"], errors="raise").astype(int)
        out["seconds"] = pd.to_numeric(out["seconds"], errors="raise").astype(float)
    except (TypeError, ValueError) as exc:
        raise UserError(f"batch log: tp and seconds must be numeric ({exc})") from None
    bad_kinds = sorted(set(out["kind"]) - set(KINDS))
    if bad_kinds:
        raise UserError(f"batch log: unknown kind(s) {', '.join(bad_kinds)}; expected {', '.join(KINDS)}")
    if not (out["seconds"] > 0).all() or out["seconds"].isna().any():
        raise UserError("batch log: seconds must be positive numbers")
    if (out["tp"] < 1).any():
        raise UserError("batch log: tp must be >= 1")
    return out


def read_log(path: str | Path) -> pd.DataFrame:
    """Read and validate a batch log from ``.csv`` or ``.parquet``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"batch log {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            log = pd.read_csv(path, dtype={"prefills": str, "decode_contexts": str})
        elif suffix in (".parquet", ".pq"):
            log = pd.read_parquet(path)
        else:
            raise UserError(f"batch log {path}: expected a .csv or .parquet file")
    except UserError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for malformed files
        raise UserError(f"cannot read batch log {path}: {exc}".splitlines()[0]) from None
    return validate_log(log)


def write_log(log: pd.DataFrame, path: str | Path) -> None:
    """Write a batch log as ``.csv`` or ``.parquet`` (by suffix), schema columns first."""
    path = Path(path)
    ordered = log[list(COLUMNS) + [c for c in log.columns if c not in COLUMNS]]
    if path.suffix.lower() == ".csv":
        write_atomic(path, lambda p: ordered.to_csv(p, index=False))
    elif path.suffix.lower() in (".parquet", ".pq"):
        write_atomic(path, lambda p: ordered.to_parquet(p, index=False))
    else:
        raise UserError(f"batch log {path}: expected a .csv or .parquet file")
