"""Type aliases and the project's small vocabularies (``Literal`` types).

The status and event vocabularies are defined here once; the QGIS styles are
generated from the same tuples (see :mod:`geo.export.qml`).
"""

from __future__ import annotations

from typing import Literal, TypeAlias, get_args

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BAND_ROLES",
    "EVENTS",
    "STATUSES",
    "BBox",
    "BandRole",
    "BoolMask",
    "Event",
    "FloatImage",
    "Status",
]

BBox: TypeAlias = tuple[float, float, float, float]
"""Bounds as ``(minx, miny, maxx, maxy)`` = ``(left, bottom, right, top)``."""

BoolMask: TypeAlias = NDArray[np.bool_]
FloatImage: TypeAlias = NDArray[np.float32]

Status = Literal["new", "grown", "unchanged", "shrunk", "demolished"]
"""Status of a tracked building (site) between its first and last sighting."""
STATUSES: tuple[str, ...] = get_args(Status)

Event = Literal["new", "grown", "shrunk", "merged", "split", "demolished", "unchanged"]
"""Event between two consecutive sightings of a site."""
EVENTS: tuple[str, ...] = get_args(Event)

BandRole = Literal[
    "coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3",
    "nir", "nir08", "swir16", "swir22", "pan", "alpha",
]
BAND_ROLES: tuple[str, ...] = get_args(BandRole)
