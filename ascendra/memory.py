"""Refuse a run that cannot fit in memory, up front and in one line, instead of growing until the machine dies.

Runs hold every request in memory (its spec, its state, its token times, its record), so their footprint grows
linearly with the request count; callers state what one request costs and ``check_fits`` compares the total with
the memory available now (psutil if installed, else /proc/meminfo, else sysconf; a cgroup v2 limit when lower).
"""

from __future__ import annotations

import os
from pathlib import Path

from ascendra.errors import UserError

_CGROUP = Path("/sys/fs/cgroup")


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup v2 memory limit (None without one)."""
    try:
        limit = (_CGROUP / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((_CGROUP / "memory.current").read_text())
    except (OSError, ValueError):
        return None


def _host_available() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def available_bytes() -> int | None:
    """Memory this process can still take, in bytes (None when the platform does not say)."""
    known = [b for b in (_host_available(), _cgroup_room()) if b is not None]
    return min(known) if known else None


def _gib(size: float) -> str:
    return f"{size / 2**30:,.1f} GiB"


def check_fits(count: int, bytes_each: int, option: str, what: str) -> None:
    """Raise ``UserError`` (naming ``option``) when ``count`` items of ``bytes_each`` bytes exceed the memory
    available now; ``what`` says what the items are."""
    need = count * bytes_each
    free = available_bytes()
    if free is not None and need > free:
        raise UserError(
            f"{option} {count:,} needs about {_gib(need)} of memory for {what}, more than the {_gib(free)} "
            "available: use fewer requests"
        )
