"""Small learned models (weights in this folder) and their feature code (pure).

Placeholder until the trained weights land; see ``benchmarks/train_change_mlp.py``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from geo.geoarray import GeoArray

__all__ = ["learned_change"]


def learned_change(a: GeoArray, b: GeoArray) -> tuple[NDArray[np.float32], float]:
    """Per-pixel change probability from the learned model, and its threshold."""
    raise NotImplementedError("the learned change model is not trained yet")
