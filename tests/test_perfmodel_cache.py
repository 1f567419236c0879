"""Performance models fitted on first use: fitted once, cached by shape/GPU/TP/cost model, said on stderr."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ascendra.costmodel import CostModel, packaged_path
from ascendra.models import get_model
from ascendra.perfmodel import cache
from ascendra.perfmodel.fit import fit
from ascendra.perfmodel.model import PerfModel
from ascendra.perfmodel.synthetic_log import synthetic_log


@pytest.fixture
def tiny_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The tiny model's shape as a config.json (no shipped fit can match a path), with a private cache folder."""
    monkeypatch.setenv("ASCENDRA_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "toy-llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(get_model("tiny").to_hf_dict()))
    return str(folder / "config.json")


def test_fitted_once_then_read_from_the_cache(tiny_config: str, capsys: pytest.CaptureFixture[str]) -> None:
    first = PerfModel.load(tiny_config, "a100-80gb", 1)
    assert "fitting one on a simulated batch log" in capsys.readouterr().err
    assert cache.cache_file(tiny_config, "a100-80gb", 1, False).is_file()
    again = PerfModel.load(tiny_config, "a100-80gb", 1)
    assert capsys.readouterr().err == ""  # no second fit
    assert again.to_dict() == first.to_dict() and again.model == tiny_config
    assert set(first.coefficients) == {"prefill", "decode", "mixed"}
    # The cached fit is the shipped recipe: the same coefficients as fitting the sampled log directly.
    time_fn = CostModel.load(tiny_config, "a100-80gb", 1).time_of
    direct, _ = fit(synthetic_log(tiny_config, "a100-80gb", time_fn, 1, cache.PER_KIND, cache.SEED), seed=cache.SEED)
    assert direct.coefficients == first.coefficients


def test_the_key_follows_everything_the_fit_depends_on(
    tiny_config: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = cache.cache_key(tiny_config, "a100-80gb", 1, False)
    assert key == cache.cache_key("tiny", "a100-80gb", 1, False)  # the same shape by name or by path
    others = {
        cache.cache_key(tiny_config, "h100-80gb", 1, False),
        cache.cache_key(tiny_config, "a100-80gb", 2, False),
        cache.cache_key(tiny_config, "a100-80gb", 1, True),
        cache.cache_key("llama-3-70b", "a100-80gb", 1, False),
    }
    assert key not in others and len(others) == 4
    recalibrated = tmp_path / "cost_model.json"
    shutil.copy(packaged_path(), recalibrated)
    recalibrated.write_text(recalibrated.read_text().replace('"cpu_overhead_ms": 4.0', '"cpu_overhead_ms": 4.5'))
    monkeypatch.setattr(cache, "packaged_path", lambda: recalibrated)
    assert cache.cache_key(tiny_config, "a100-80gb", 1, False) != key


def test_a_broken_cache_entry_is_refitted(tiny_config: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = cache.cache_file(tiny_config, "a100-80gb", 1, False)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    perf = PerfModel.load(tiny_config, "a100-80gb", 1)
    assert "fitting one" in capsys.readouterr().err and perf.coefficients
    assert json.loads(path.read_text())["format"] == "ascendra-perf-model"


def test_shipped_fits_are_still_used() -> None:
    assert PerfModel.load("llama-3.1-8b", "a100-80gb", 1).meta["fit"]["log"].startswith("synthetic_llama-3.1-8b")
