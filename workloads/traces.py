"""Trace files: token-length CSVs, Azure LLM inference CSVs and the Mooncake JSONL, found in a data directory.

Every loader validates what it reads (columns present, lengths positive integers, timestamps parseable) and
turns any problem into a one-line UserError naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ascendra.errors import UserError
from workloads.pool import LengthPool

DATA_ENV = "ASCENDRA_DATA_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[1]

LENGTH_COLUMNS = ("num_prefill_tokens", "num_decode_tokens")
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
MOONCAKE_FIELDS = ("timestamp", "input_length", "output_length")


def data_dirs(data_dir: Path | None) -> list[Path]:
    """Folders searched for trace files, in order: ``data_dir`` when given, else $ASCENDRA_DATA_DIR when set, else
    ../shared/data relative to the current directory and to the repository root. Each folder's traces/
    subfolder is searched too."""
    if data_dir is not None:
        roots = [Path(data_dir)]
    elif os.environ.get(DATA_ENV):
        roots = [Path(os.environ[DATA_ENV])]
    else:
        roots = [Path.cwd() / ".." / "shared" / "data", _REPO_ROOT / ".." / "shared" / "data"]
    found: list[Path] = []
    for root in roots:
        for folder in (root, root / "traces"):
            if folder not in found:
                found.append(folder)
    return found


def find_trace(filename: str, data_dir: Path | None) -> Path | None:
    """The first existing ``filename`` among ``data_dirs(data_dir)``, or None."""
    for folder in data_dirs(data_dir):
        if (folder / filename).is_file():
            return folder / filename
    return None


def _read_table(path: Path, **kwargs: object) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)
    except FileNotFoundError:
        raise UserError(f"no such trace file: {path}") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"cannot read trace {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None


def _require(frame: pd.DataFrame, columns: tuple[str, ...], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns)) or "none"
        raise UserError(f"trace {path} lacks column(s) {', '.join(missing)} (it has: {have})")
    if frame.empty:
        raise UserError(f"trace {path} has no rows")


def _lengths(series: pd.Series, column: str, path: Path) -> np.ndarray:
    """A length column as int64, refusing blanks, non-numbers, fractions and values below 1."""
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna() | (values != np.floor(values)) | (values < 1)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        value = series.iloc[row]
        shown = "nothing" if pd.isna(value) else repr(value) if isinstance(value, str) else str(value)
        raise UserError(f"trace {path}: column {column} must hold integers >= 1, row {row + 1} has {shown}")
    return values.to_numpy(dtype=np.int64)


def read_length_csv(path: Path) -> LengthPool:
    """A token-length trace: any CSV with num_prefill_tokens and num_decode_tokens columns (others ignored)."""
    frame = _read_table(path)
    _require(frame, LENGTH_COLUMNS, path)
    return LengthPool(
        prompt=_lengths(frame["num_prefill_tokens"], "num_prefill_tokens", path),
        output=_lengths(frame["num_decode_tokens"], "num_decode_tokens", path),
        info={"source": path.name, "pool_size": len(frame)},
    )


def _sorted_pool(times: np.ndarray, prompt: np.ndarray, output: np.ndarray, path: Path) -> LengthPool:
    order = np.argsort(times, kind="stable")
    return LengthPool(
        prompt=prompt[order],
        output=output[order],
        timestamps=times[order] - times[order][0],
        info={"source": path.name, "pool_size": len(times), "duration_s": float(times.max() - times.min())},
    )


def read_azure_csv(path: Path) -> LengthPool:
    """An Azure LLM inference trace (TIMESTAMP, ContextTokens, GeneratedTokens): datetimes become seconds."""
    frame = _read_table(path)
    _require(frame, AZURE_COLUMNS, path)
    stamps = pd.to_datetime(frame["TIMESTAMP"], errors="coerce", format="ISO8601")
    if stamps.isna().any():
        row = int(np.flatnonzero(stamps.isna().to_numpy())[0])
        raise UserError(f"trace {path}: row {row + 1} has an unreadable TIMESTAMP {frame['TIMESTAMP'].iloc[row]!r}")
    seconds = (stamps - stamps.min()).dt.total_seconds().to_numpy(dtype=float)
    return _sorted_pool(
        seconds,
        _lengths(frame["ContextTokens"], "ContextTokens", path),
        _lengths(frame["GeneratedTokens"], "GeneratedTokens", path),
        path,
    )


def read_mooncake_jsonl(path: Path) -> LengthPool:
    """A Mooncake trace: one JSON object per line with timestamp (ms), input_length and output_length."""
    try:
        frame = pd.read_json(path, lines=True, dtype=False)
    except FileNotFoundError:
        raise UserError(f"no such trace file: {path}") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read trace {path} as JSON lines: {str(exc).splitlines()[0]}") from None
    _require(frame, MOONCAKE_FIELDS, path)
    millis = pd.to_numeric(frame["timestamp"], errors="coerce")
    if millis.isna().any() or (millis < 0).any():
        raise UserError(f"trace {path}: timestamp must hold non-negative milliseconds")
    return _sorted_pool(
        millis.to_numpy(dtype=float) / 1000.0,
        _lengths(frame["input_length"], "input_length", path),
        _lengths(frame["output_length"], "output_length", path),
        path,
    )


def read_trace_file(path: Path) -> LengthPool:
    """Any supported trace file, by its content: .jsonl is Mooncake; a CSV with Azure's columns is Azure;
    otherwise a token-length CSV."""
    if path.suffix == ".jsonl":
        return read_mooncake_jsonl(path)
    header = _read_table(path, nrows=0)
    if all(c in header.columns for c in AZURE_COLUMNS):
        return read_azure_csv(path)
    return read_length_csv(path)
