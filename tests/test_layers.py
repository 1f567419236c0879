"""The import graph flows downward: the serving core never imports the harness or the baselines, the workloads
never import the harness, and the baselines never import the harness (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _modules(package: str, exclude: str | None = None) -> list[Path]:
    paths = sorted((ROOT / package).rglob("*.py"))
    return [p for p in paths if exclude is None or not p.is_relative_to(ROOT / exclude)]


LAYERS = [
    # (modules, import prefixes they must not use)
    ("ascendra", "ascendra/harness", ("ascendra.harness", "baselines", "workloads")),
    ("workloads", None, ("ascendra.harness", "baselines")),
    ("baselines", None, ("ascendra.harness",)),
]


@pytest.mark.parametrize(("package", "exclude", "forbidden"), LAYERS, ids=[layer[0] for layer in LAYERS])
def test_no_import_climbs_a_layer(package: str, exclude: str | None, forbidden: tuple[str, ...]) -> None:
    bad = []
    for path in _modules(package, exclude):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_function_level_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from ascendra.harness.config import RunConfig\n    import baselines.vllm\n")
    assert {"ascendra.harness.config", "baselines.vllm"} <= _imports(module)
