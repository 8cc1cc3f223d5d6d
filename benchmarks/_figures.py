"""Panel figures for the benchmark scripts: image panels and a TP / FP / missed overlay."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

LEGEND = "green TP, red FP, blue missed"


def overlay(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """RGB image: green = true positive, red = false positive, blue = missed."""
    over = np.zeros((*truth.shape, 3))
    over[pred & truth] = (0, 0.8, 0)
    over[pred & ~truth] = (0.9, 0, 0)
    over[~pred & truth] = (0, 0.3, 1)
    return over


def rgb(data: np.ndarray) -> np.ndarray:
    """(bands, H, W) 8-bit values -> (H, W, 3) 0..1 for imshow (pan repeated)."""
    x = data[:3] if data.shape[0] >= 3 else np.repeat(data[:1], 3, axis=0)
    q99 = float(np.quantile(x, 0.99))
    x = x / (255.0 if 2 < q99 <= 255 else max(q99, 1e-6))
    return np.asarray(x.transpose(1, 2, 0))


def save_panels(dst: Path, title: str, panels: list[tuple[np.ndarray, str]]) -> None:
    """One row of panels written atomically to ``dst`` (PNG)."""
    fig, ax = plt.subplots(1, len(panels), figsize=(3.25 * len(panels), 3.6))
    for axi, (img, t) in zip(ax, panels, strict=True):
        axi.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None)
        axi.set_title(t, fontsize=9)
        axi.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=dst.parent, suffix=".png")
    os.close(fd)
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, dst)
