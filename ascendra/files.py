"""The one way the project writes a file: atomically, with a write failure as one line for the user.

Every output (a sweep's points and summary, reproduce's tables and figures, plots, records, batch logs) goes
through ``write_atomic``: the file is written under a temporary name in its folder and renamed, so an
interrupted or failed write leaves nothing half-written, and an ``OSError`` (read-only mount, a folder that is a
file, a full disk, ``/proc``) becomes a ``UserError``: one line and exit code 2 instead of a traceback.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from ascendra.errors import UserError


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def make_dir(path: Path) -> None:
    """Create the folder ``path`` (and its parents) or raise a one-line ``UserError`` saying why not."""
    if path.exists() and not path.is_dir():
        raise UserError(f"cannot write to {path}: it is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create folder {path}: {_reason(exc)}") from None
    if not os.access(path, os.W_OK):  # an existing read-only folder: fail now, not after a long run
        raise UserError(f"cannot write to {path}: permission denied or a read-only file system")


def check_output_file(path: Path, force: bool) -> None:
    """Refuse, before any work, an output file that exists (unless ``force``), is a folder, or whose folder is
    missing or read-only, so a long command never ends in an unwritable path or half its outputs."""
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder")
    if path.exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        raise UserError(f"cannot write {path}: folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise UserError(f"cannot write to {path.parent}: permission denied or a read-only file system")


def check_writable(path: Path) -> None:
    """Fail now, in one line, when ``path`` cannot be (or become) a writable folder: a long run learns it before
    it starts, not at its first write. Leaves nothing behind: folders created to find out are removed."""
    created = [p for p in (path, *path.parents) if not p.exists()]  # deepest first
    try:
        make_dir(path)
    finally:
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through ``write(tmp)`` and a rename, so readers never see it half-written. ``write`` must
    not infer a format from the temporary name's suffix (pass it explicitly)."""
    make_dir(path.parent)
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {_reason(exc)}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda p: p.write_text(text))
