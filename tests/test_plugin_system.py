"""A system in a package of its own (tests/plugin_example) is found through the ``ascbench.systems`` entry point
and compared with ``ascbench sweep`` and ``ascbench capacity`` without any edit to the project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).parent / "plugin_example"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The example package installed (pip, as a user would) into a folder of its own, put on the path."""
    source = tmp_path_factory.mktemp("src") / "plugin"
    shutil.copytree(PLUGIN, source)  # builds leave their artefacts in the copy, not in tests/
    target = tmp_path_factory.mktemp("site")
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target"]
    subprocess.run([*cmd, str(target), str(source)], check=True, capture_output=True)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}


def _ascbench(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    code = "from ascendra.harness.cli.main import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)


def test_plugin_is_listed_with_its_knobs(plugin_env: dict[str, str]) -> None:
    out = _ascbench(plugin_env, "systems", "--json")
    assert out.returncode == 0, out.stderr
    systems = {s["name"]: s for s in json.loads(out.stdout)["systems"]}
    assert {"ascendra", "vllm", "sarathi", "fcfs-example"} <= set(systems)
    knobs = {k["name"]: k["default"] for k in systems["fcfs-example"]["knobs"]}
    assert knobs == {"max_num_seqs": 128, "token_budget": 4096}


def test_plugin_sweeps_and_has_a_capacity(plugin_env: dict[str, str], tmp_path: Path) -> None:
    common = ("--system", "fcfs-example", "--num-requests", "300", "--token-budget", "2048", "--json")
    sweep = _ascbench(plugin_env, "sweep", *common, "--rates", "5,60", "--out", str(tmp_path / "sweep"))
    assert sweep.returncode == 0, sweep.stderr
    rows = json.loads(sweep.stdout)["rows"]
    assert [r["system"] for r in rows] == ["fcfs-example"] * 2
    assert [r["rate"] for r in rows] == [5.0, 60.0]
    assert rows[0]["attainment"] > 0.9 > rows[1]["attainment"]  # light load meets the SLOs, overload does not
    assert json.loads((tmp_path / "sweep" / "sweep.json").read_text())["base"]["knobs"] == {"token_budget": 2048}

    capacity = _ascbench(plugin_env, "capacity", *common, "--rates", "5:60:5")
    assert capacity.returncode == 0, capacity.stderr
    assert 5 <= json.loads(capacity.stdout)["capacity_qps"] < 60


def test_a_knob_of_another_system_is_one_line_and_exit_2(plugin_env: dict[str, str]) -> None:
    out = _ascbench(plugin_env, "sweep", "--system", "fcfs-example", "--chunk-size", "256", "--rates", "5")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "--chunk-size" in out.stderr and "--token-budget" in out.stderr


def test_unknown_system_lists_the_known_ones() -> None:
    out = _ascbench(dict(os.environ), "sweep", "--system", "orca-nope", "--rates", "5")
    assert out.returncode == 2
    assert "unknown system 'orca-nope'" in out.stderr and "vllm" in out.stderr and "Traceback" not in out.stderr


def test_the_readme_shows_the_example_as_it_is_tested() -> None:
    source = (PLUGIN / "ascbench_fcfs" / "__init__.py").read_text()
    assert len(source.splitlines()) < 80
    assert source in (PLUGIN.parents[1] / "README.md").read_text()
