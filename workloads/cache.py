"""On-disk cache of tokenised lengths: tokenising 17k conversations takes seconds, reading two arrays does not."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ascendra.cache import cache_dir

# Bump when the cached content or its meaning changes, so stale entries are never read.
CACHE_FORMAT = 2  # 2: ShareGPT pairs with an empty reply are dropped


def cache_key(**parts: object) -> str:
    """A stable hash of everything that determines the cached content (source, preprocessing, tokenizer, seed)."""
    text = json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cache_path(prefix: str, key: str) -> Path:
    return cache_dir() / f"{prefix}-{key}.npz"


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays stored at ``path``, or None when absent or unreadable (a broken entry is rebuilt, not fatal)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError):
        return None


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically (temp file in the same folder, then rename) so a concurrent reader never sees half a file.

    A cache that cannot be written (read-only home, full disk) only costs speed, so errors are swallowed.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass
