"""Optional dependencies (pyproject's extras): a command that needs a missing one fails with one line naming the
install command, never with a ``ModuleNotFoundError`` traceback.

Wrap the imports of an extra's packages (or of project modules that import them) in ``needs``::

    with needs("engine", what="--backend engine"):
        from ascendra.harness.live_run import run_live
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ascendra.errors import UserError

#: The top-level packages each extra of pyproject.toml brings.
EXTRAS: dict[str, tuple[str, ...]] = {
    "engine": ("torch", "safetensors"),
    "serve": ("fastapi", "uvicorn", "aiohttp"),
    "dist": ("ray",),
    "hub": ("datasets",),
}


def install_command(*extras: str) -> str:
    """The README's install command for ``extras``."""
    return f"pip install -c constraints.txt -e '.[{','.join(extras)}]'"


@contextmanager
def needs(*extras: str, what: str) -> Iterator[None]:
    """Turn a missing package of one of ``extras`` (imported inside the block) into a one-line ``UserError``
    saying that ``what`` needs it and how to install it; any other missing module stays a bug."""
    if unknown := [e for e in extras if e not in EXTRAS]:
        raise ValueError(f"unknown extras {unknown}; known: {', '.join(EXTRAS)}")
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        owner = next((e for e in extras if missing in EXTRAS[e]), None)
        if owner is None:
            raise
        raise UserError(f"{what} needs {missing} (the {owner} extra): {install_command(*extras)}") from None
