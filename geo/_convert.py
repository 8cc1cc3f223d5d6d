"""Small value conversions shared by the JSON edges (STAC properties, run.json, watch rows)."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["finite_or_none"]


def finite_or_none(v: Any) -> float | None:
    """``v`` as a finite float, or ``None`` (missing, not a number, NaN or infinite).

    >>> finite_or_none("2.5"), finite_or_none(None), finite_or_none(float("nan"))
    (2.5, None, None)
    """
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
