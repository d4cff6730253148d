"""The PNG plots labelmend draws, on matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap(colour: np.ndarray, path: Path, *, class_names, text: np.ndarray | None = None, xlabel: str,
            ylabel: str, title: str, cmap: str, vmax: float = 1.0, title_size: float | None = None) -> Path:
    """A K × K class-by-class heatmap of ``colour`` (0 … ``vmax``) with class names on both axes and, while they stay
    legible (K <= 20), ``text`` written in each cell (default: ``colour`` to 2 decimals)."""
    plt = pyplot()
    k = len(class_names)
    text = np.vectorize(lambda v: f"{v:.2f}")(colour) if text is None else text
    size = max(6.5, 0.35 * k)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(colour, cmap=cmap, vmin=0, vmax=vmax)
    ax.set_xticks(range(k), class_names, rotation=90 if k > 10 else 45, fontsize=7 if k > 10 else 9)
    ax.set_yticks(range(k), class_names, fontsize=7 if k > 10 else 9)
    if k <= 20:
        rgb = im.cmap(im.norm(colour))[..., :3]
        dark = rgb @ np.array([0.299, 0.587, 0.114]) < 0.5  # white text on dark cells, whatever the colour map
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(text[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if dark[i, j] else "black")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=title_size)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
