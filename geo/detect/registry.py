"""The method registries and the two entry points that dispatch on them.

:data:`BUILDING_METHODS` (defined in :mod:`geo.detect.buildings`, re-exported here) and
:data:`CHANGE_METHODS` map the names of :data:`geo.types.BuildingMethod` and
:data:`geo.types.ChangeMethod` (less ``auto``) to their functions. ``auto`` resolves through
:data:`AUTO_CHANGE` / :data:`geo.detect.buildings.AUTO_BUILDING` to registry keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from geo.config import DetectParams
from geo.detect.buildings import BUILDING_METHODS
from geo.detect.change import (
    cva_change,
    imad_change,
    index_diff_change,
    pcc_change,
    rgb_objects_change,
)
from geo.detect.common import ChangeMap, ChangeMethodFn
from geo.detect.learned import learned_change_method
from geo.errors import BandError, ConfigError
from geo.geoarray import GeoArray
from geo.grid import check_same_grid
from geo.types import CHANGE_METHODS as _CHANGE_NAMES
from geo.types import ChangeMethod

__all__ = ["AUTO_CHANGE", "BUILDING_METHODS", "CHANGE_METHODS", "METHODS", "change_map"]

METHODS: tuple[str, ...] = _CHANGE_NAMES
"""Change-map methods accepted by :func:`change_map` (:data:`geo.types.CHANGE_METHODS`)."""

CHANGE_METHODS: Mapping[ChangeMethod, ChangeMethodFn] = {
    "imad": imad_change,
    "cva": cva_change,
    "index-diff": index_diff_change,
    "pcc": pcc_change,
    "rgb-objects": rgb_objects_change,
    "learned": learned_change_method,
}
"""Change method name (:data:`geo.types.ChangeMethod`, less ``auto``) -> implementation."""

AUTO_CHANGE: dict[str, str] = {"multispectral": "rgb-objects", "rgb": "cva", "pan": "cva"}
"""``auto`` change method per imagery kind, as chosen by the benchmark (docs/detection.md).

Rule: the highest mean F1 over the four real RGB change sets (LEVIR crops, LEVIR 1024²,
WHU-CD, DSIFN) among methods that reach F1 >= 0.8 on every SYNTHETIC demo pair. RGB VHR:
``cva`` (mean 0.32, WHU-CD industrial halls 0.57); ``learned`` is best on LEVIR-CD itself
but does not transfer (WHU-CD 0.02, demo 0.00). 10 m multispectral: ``rgb-objects``
(object-based CVA) is best on OSCD Paris-Bercy (F1 0.20 vs iMAD 0.09), the only labelled
10 m pair we have.
"""
AUTO_CHANGE_FALLBACK = "cva"
"""``auto`` change method for an imagery kind missing from :data:`AUTO_CHANGE`."""


def _resolve(m: str, kind: str) -> ChangeMethod:
    """The registry key for a ``[detect]`` method name; building-only names mean ``auto``."""
    if m == "auto" or (m in BUILDING_METHODS and m not in CHANGE_METHODS):
        m = AUTO_CHANGE.get(kind, AUTO_CHANGE_FALLBACK)
    if m not in CHANGE_METHODS:
        raise ConfigError(f"[detect] change_method: unknown method {m!r}; use one of "
                          f"{', '.join(METHODS)}")
    return cast(ChangeMethod, m)


def change_map(a: GeoArray, b: GeoArray, *, params: DetectParams,
               method: str | None = None) -> ChangeMap:
    """Pixel change between two co-registered dates.

    Parameters
    ----------
    a, b : GeoArray
        Earlier and later date on the same grid, same band roles.
    params : DetectParams
        ``change_method`` (used when ``method`` is None), ``threshold``
        (None: the method's automatic rule: chi-square p > 0.99 for iMAD,
        Otsu for the others), ``opening_m``, ``min_area_m2``, ``connectivity``.
    method : str, optional
        One of :data:`METHODS`; overrides ``params.change_method``.

    Returns
    -------
    ChangeMap
        ``probability`` is 0 and ``mask`` False where either date is invalid.

    Raises
    ------
    ConfigError
        Unknown method.
    CrsMismatchError
        The two dates are not on one grid (:func:`geo.grid.check_same_grid`).
    BandError
        The two dates have different bands.
    """
    m = _resolve(method or params.change_method, a.kind)
    check_same_grid(a.grid, b.grid, what=f"{b.source_id or b.date} vs {a.source_id or a.date}")
    if a.bands != b.bands:
        raise BandError(f"{b.source_id or b.date}: bands {', '.join(b.bands)} differ from "
                        f"{a.source_id or a.date}'s ({', '.join(a.bands)}); set [source] bands "
                        "so that every date has the same ones")
    return CHANGE_METHODS[m](a, b, params)
