"""Figures and reports for people: Japanese labels rendered with the IPAex font bundled by matplotlib-fontja."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.config import Domain


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib_fontja  # noqa: F401  (registers and selects the bundled Japanese font)

    return plt


def confusion_figure(cm: pd.DataFrame, domain: Domain, path: Path) -> Path:
    """Confusion matrix (rows: gold, columns: predicted) with the Japanese category labels."""
    plt = _plt()
    labels = [domain.category_label(c) for c in cm.index]
    fig, ax = plt.subplots(figsize=(8.5, 7))
    ax.imshow(cm.to_numpy(), cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("予測")
    ax.set_ylabel("正解")
    vmax = cm.to_numpy().max() or 1
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            v = int(cm.iat[i, j])
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > vmax / 2 else "black")
    ax.set_title("分類の混同行列（dev 分割）")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
