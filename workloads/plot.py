"""Histogram of a workload's prompt and output lengths, drawn from the lengths only (never from live objects)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ascendra.files import write_atomic


def plot_lengths(prompt: np.ndarray, output: np.ndarray, title: str, path: Path) -> None:
    """Two side-by-side histograms (prompt tokens, output tokens) with their medians marked, saved as an image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, values, label, colour in (
        (axes[0], prompt, "prompt length (tokens)", "tab:blue"),
        (axes[1], output, "output length (tokens)", "tab:orange"),
    ):
        sns.histplot(x=values, bins=50, ax=ax, color=colour)
        median = float(np.median(values)) if len(values) else 0.0
        ax.axvline(median, color="black", linestyle="--", linewidth=1, label=f"median {median:.0f}")
        ax.set_xlabel(label)
        ax.set_ylabel("requests")
        ax.legend()
    fig.suptitle(title)
    write_atomic(path, lambda p: fig.savefig(p, dpi=120, format=path.suffix.lstrip(".") or "png"))
    plt.close(fig)
