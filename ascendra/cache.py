"""Where the project keeps what it derives and can derive again (tokenised workloads, performance models fitted
on first use): ``$ASCENDRA_CACHE_DIR``, else the platform's user cache folder."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "ASCENDRA_CACHE_DIR"


def cache_dir() -> Path:
    """The user cache folder: $ASCENDRA_CACHE_DIR, else the platform's user cache dir for "ascendra"."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("ascendra"))
