"""Shared figure conventions: Agg backend, seaborn theme, the 90% line, atomic PNG writes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from ascendra.harness.store import write_atomic  # noqa: E402

TARGET = 0.9
#: Fixed colours per system label so every figure uses the same one for the same system.
PALETTE = {
    "vllm": "#1f77b4",
    "sarathi": "#ff7f0e",
    "ascendra": "#2ca02c",
}


def theme() -> None:
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)


def palette(labels: list[str]) -> dict[str, str]:
    """Known systems keep their colours; other labels take the next colours of seaborn's palette."""
    extra = [
        c
        for c in sns.color_palette("tab10").as_hex() + sns.color_palette("Dark2").as_hex()
        if c not in PALETTE.values()
    ]
    out, i = {}, 0
    for label in labels:
        if label in PALETTE:
            out[label] = PALETTE[label]
        else:
            out[label] = extra[i % len(extra)]
            i += 1
    return out


def target_line(ax: plt.Axes) -> None:
    ax.axhline(TARGET, color="grey", linestyle="--", linewidth=1, label="90% target")


def save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    write_atomic(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)
