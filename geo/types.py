"""Type aliases and the project's small vocabularies (``Literal`` types).

Every vocabulary (methods, relations, verdicts, statuses, events, band roles,
footprint kinds, source kinds) is defined here once as a ``Literal`` with a
tuple of its values (``get_args``); the config models, the click choices and
the QGIS styles (:mod:`geo.export.qml`) all use these.
"""

from __future__ import annotations

from typing import Literal, TypeAlias, get_args

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BAND_ROLES",
    "BUILDING_METHODS",
    "CHANGE_METHODS",
    "DETECT_METHODS",
    "EVENTS",
    "FOOTPRINT_KINDS",
    "QUANTITIES",
    "RELATIONS",
    "SOURCE_KINDS",
    "STATUSES",
    "VERDICTS",
    "BBox",
    "BandRole",
    "BoolMask",
    "BuildingMethod",
    "ChangeMethod",
    "DetectMethod",
    "Event",
    "FloatImage",
    "FootprintKind",
    "Quantity",
    "Relation",
    "SourceKind",
    "Status",
    "Verdict",
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

BuildingMethod = Literal["builtup", "rgb-objects", "contrast-objects", "cnn"]
"""Per-date building-mask methods (:func:`geo.detect.building_mask`)."""
BUILDING_METHODS: tuple[str, ...] = get_args(BuildingMethod)

ChangeMethod = Literal[
    "imad", "cva", "index-diff", "pcc", "rgb-objects", "learned", "cnn", "auto"]
"""Change-map methods accepted by :func:`geo.detect.change_map` (and ``benchmark -m``)."""
CHANGE_METHODS: tuple[str, ...] = get_args(ChangeMethod)

DetectMethod = Literal[
    "auto", "builtup", "rgb-objects", "contrast-objects", "imad", "cva", "index-diff", "pcc",
    "learned", "cnn",
]
"""Values of ``[detect] method`` in a run config."""
DETECT_METHODS: tuple[str, ...] = get_args(DetectMethod)

Relation = Literal[">", ">=", "<", "<=", "~"]
"""Relation of a claim ("A is > 2x B")."""
RELATIONS: tuple[str, ...] = get_args(Relation)

Verdict = Literal["supported", "contradicted", "undecidable"]
"""Verdict of a checked claim."""
VERDICTS: tuple[str, ...] = get_args(Verdict)

Quantity = Literal["area", "floor-space", "output", "production", "capacity"]
"""What a claim compares; only ``area`` and ``floor-space`` are visible from above."""
QUANTITIES: tuple[str, ...] = get_args(Quantity)

FootprintKind = Literal["building", "built-up region"]
"""Values of ``footprint_kind`` (and of the sites' ``site_kind``)."""
FOOTPRINT_KINDS: tuple[str, ...] = get_args(FootprintKind)

SourceKind = Literal["local", "stac", "synthetic"]
"""Values of ``[source] kind`` in a run config."""
SOURCE_KINDS: tuple[str, ...] = get_args(SourceKind)

PresenceState = Literal["absent", "cleared ground", "under construction", "roofed", "not observed"]
"""Per-date state of a guided building (``not observed``: the imagery does not show it)."""
PRESENCE_STATES: tuple[str, ...] = get_args(PresenceState)
NOT_OBSERVED: PresenceState = "not observed"
"""The state of a date on which the imagery does not support the prior (no edges, cloud)."""
