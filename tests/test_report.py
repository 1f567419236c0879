"""`ascbench report`: one self-contained page with every figure and table of a sweep or an experiment, refused
for folders and files it does not own, and (where Chromium is installed) every figure decodes in a browser."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import ascendra.harness.cli.main  # noqa: F401  (registers the commands)
from ascendra.harness.cli.app import app

ARGS = ["--system", "vllm", "--workload", "uniform:prompt=32-1500,output=8-300", "--num-requests", "150"]
SPEC = """
id = "tiny"
kind = "goodput"
title = "tiny goodput"
about = "A tiny goodput grid."
[fixed]
num_requests = 60
[[grid]]
name = "rate"
axis = "rate"
systems = ["vllm", "sarathi"]
workloads = ["sharegpt"]
[grid.workload.sharegpt]
values = [5, 15]
"""
IMG = re.compile(r'<img src="data:image/png;base64,([^"]+)"')


def _invoke(*args: str) -> object:
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "s"
    result = _invoke("sweep", *ARGS, "--rates", "10,30", "--seeds", "1-2", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def sweep_report(sweep_dir: Path) -> Path:
    result = _invoke("report", str(sweep_dir), "--json")
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["report"])


def _pngs(html: str) -> list[bytes]:
    return [base64.b64decode(data) for data in IMG.findall(html)]


def test_sweep_report_holds_every_figure_table_config_and_seed(sweep_dir: Path, sweep_report: Path) -> None:
    html = sweep_report.read_text()
    assert sweep_report == sweep_dir / "report.html"
    pngs = _pngs(html)
    # Attainment against rate, latency against throughput (one workload), the frontier.
    assert len(pngs) == 3 and all(p[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert not re.search(r'(src|href)="(?!data:|#)', html)  # nothing outside the page
    for title in ("Results by rate", "Mean over seeds", "summary.csv (every column)"):
        assert title in html
    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert html.count("<table") == 2 + 3  # facts, versions and the three tables
    assert f"{summary['attainment'].iloc[0]:.4g}" in html
    assert "Workload seeds: 1, 2." in html and "uniform:prompt=32-1500,output=8-300" in html
    assert re.search(r"<th>numpy</th><td>\d", html)


def test_experiment_report_embeds_its_figures_and_tables(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "tiny.toml").write_text(SPEC)
    out = tmp_path / "results"
    result = _invoke("reproduce", "tiny", "--specs", str(specs), "--out", str(out), "--jobs", "1", "--json")
    assert result.exit_code == 0, result.output
    folder = out / "tiny"
    assert {"pareto.png", "frontier.png"} <= {p.name for p in folder.iterdir()}
    page = tmp_path / "page.html"
    result = _invoke("report", str(folder), "--out", str(page))
    assert result.exit_code == 0, result.output
    html = page.read_text()
    pngs = _pngs(html)
    assert sorted(pngs) == sorted((folder / n).read_bytes() for n in ("figure.png", "pareto.png", "frontier.png"))
    for csv in folder.glob("*.csv"):
        assert f">{csv.name}<" in html
    assert "<h1>tiny: tiny goodput</h1>" in html and "<p>A tiny goodput grid.</p>" in html  # summary.md...
    assert 'href="#fig-pareto.png"' in html  # ...its links to figures pointing into the page
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    keys = json.loads((folder / "configs.json").read_text()).keys()
    assert keys <= set(re.findall(r"&#34;([0-9a-f]{12})&#34;", html))  # every point's config


def test_bad_folders_and_outputs_are_one_line_errors(sweep_dir: Path, sweep_report: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    for args, message in (
        ([str(tmp_path)], "is neither a sweep folder"),
        ([str(tmp_path / "missing")], "is not a folder"),
        ([str(sweep_dir), "--out", str(tmp_path / "notes.txt")], "is not an ascbench report"),
        ([str(sweep_dir), "--out", str(tmp_path)], "is a folder"),
    ):
        result = _invoke("report", *args)
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
        assert message in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
    before = sweep_report.read_bytes()
    assert _invoke("report", str(sweep_dir)).exit_code == 0  # our own page is rewritten, identically
    assert sweep_report.read_bytes() == before


#: Set on <body> once the page has loaded: images, then those decoded with a width.
PROBE = (
    '<script>addEventListener("load", () => { const i = [...document.images]; document.body.setAttribute('
    '"data-decoded", i.length + "/" + i.filter(x => x.complete && x.naturalWidth > 0).length); });</script>'
)


def _decoded_in_chromium(html: str, path: Path) -> str:
    """The page with the probe, opened by headless Chromium: ``images/decoded``, read back from its DOM."""
    path.write_text(html.replace("</body>", PROBE + "</body>"))
    command = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]
    dom = subprocess.run(
        [*command, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    found = re.search(r'<body[^>]*data-decoded="([^"]+)"', dom)
    assert found, f"the probe did not run: {dom[:300]}"
    return found.group(1)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed (apt-get install chromium)")
def test_report_opens_in_headless_chromium_with_every_figure_decoded(sweep_report: Path, tmp_path: Path) -> None:
    html = sweep_report.read_text()
    assert _decoded_in_chromium(html, tmp_path / "page.html") == "3/3"
    broken = IMG.sub('<img src="data:image/png;base64,AAAA"', html, count=1)  # the check can fail
    assert _decoded_in_chromium(broken, tmp_path / "broken.html") == "3/2"
