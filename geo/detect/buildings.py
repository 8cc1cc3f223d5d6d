"""Per-date building masks: methods, scene-wide thresholds and the registry (pure numpy/scipy).

The ``builtup`` and ``rgb-objects`` methods, their scene-wide thresholds, the building-method
registry :data:`BUILDING_METHODS` and :func:`building_mask`, which dispatches on it.

The ``UPPER_CASE`` tuning constants keep the values they had inline in the former single-file
``geo/detect.py`` (no behaviour change). They are hand-set defaults, checked against the
SYNTHETIC demo and the shared real benchmarks of docs/detection.md, not fitted values; where
more is known about a value, its docstring says so.

``contrast-objects`` lives in :mod:`geo.detect.roofs`; this module only registers it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import cast

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from geo.config import DetectParams
from geo.detect.common import (
    ALT_OUTLINE_FRAC,
    OUTLINE_FRAC,
    BuildingMask,
    BuildingMethodFn,
    BuildingThresholds,
    cleanup_mask,
    opening_radius_px,
    otsu_threshold,
    refine_edges,
)
from geo.detect.indices import VEG_EXG, builtup_index, excess_green, visible
from geo.detect.roofs import contrast_objects_mask
from geo.errors import BandError
from geo.geoarray import GeoArray
from geo.types import BuildingMethod

__all__ = [
    "AUTO_BUILDING",
    "BUILDING_METHODS",
    "CONTRAST_MIN_RES_M",
    "building_mask",
    "building_method",
    "building_radius",
    "building_score",
    "thresholds_from_scores",
]

log = logging.getLogger(__name__)

AUTO_BUILDING: dict[str, str] = {"multispectral": "builtup", "rgb": "rgb-objects",
                                 "pan": "rgb-objects"}
"""``auto`` building-mask method per imagery kind on grids finer than
:data:`CONTRAST_MIN_RES_M`."""
CONTRAST_MIN_RES_M = 2.5
"""``auto`` uses ``contrast-objects`` on grids this coarse or coarser, whatever the kind."""

BUILTUP_T_RANGE = {"swir": (-0.4, 0.2), "nir": (-0.3, 0.0)}
"""Allowed range of the automatic threshold on NDBI - NDVI (swir) or -NDVI (nir only): a scene
with no built-up land (one class only) must not get half of it called built-up."""
ALT_THRESHOLD_FRAC = 0.25
"""The stricter alternative threshold lies this fraction of the way from the threshold to the
mean score of the building class (boundary ambiguity, ``BuildingMask.alt_mask``)."""
DARK_QUANTILE = 0.5
"""``rgb-objects``: the dark class (shadow, water, canopy) is the Otsu split of the scores at or
below this quantile."""
RGB_SMOOTH_M = 1.0
"""``rgb-objects``: Gaussian smoothing of the roof score, metres ..."""
RGB_SMOOTH_MIN_PX = 0.7
"""... and at least this many pixels."""
ROAD_OPENING_M = 5.0
"""``rgb-objects`` opening radius (automatic ``opening_m``), metres: removes roads and paths up to
~10 m wide and keeps halls (>= ~15 m)."""


def _rgb_building_score(ga: GeoArray) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Roof-likeness (HSV value, i.e. the brightest channel, smoothed) and a vegetation mask.

    The brightest channel separates bright grey, blue and red roofs from roads,
    bare soil and shadow better than the mean brightness does. The dark class (shadow,
    water, dense canopy) is excluded later, below a scene-wide threshold
    (:func:`thresholds_from_scores`).
    """
    rgb = visible(ga)
    value = rgb.max(0)
    sigma = max(RGB_SMOOTH_MIN_PX, RGB_SMOOTH_M / ga.grid.res_m)
    value_s = ndimage.gaussian_filter(value, sigma)
    veg = excess_green(ndimage.gaussian_filter(rgb, (0, sigma, sigma))) > VEG_EXG
    return value_s.astype(np.float32), veg


def building_method(ga: GeoArray, params: DetectParams) -> str:
    """The building-mask method used for ``ga`` (``auto`` resolved); BandError if unusable."""
    method: str = params.method
    if method not in BUILDING_METHODS:
        method = AUTO_BUILDING.get(ga.kind, "rgb-objects")
        if ga.grid.res_m >= CONTRAST_MIN_RES_M:
            method = "contrast-objects"
        elif ga.kind == "multispectral" and not ga.has("nir", "red"):
            method = "rgb-objects"
    if method == "builtup" and not ga.has("nir", "red"):
        raise BandError(f"{ga.source_id or ga.date}: [detect] method 'builtup' needs nir and "
                        f"red bands but it has {', '.join(ga.bands)}; set [detect] method = "
                        "'rgb-objects' (or 'auto')")
    return method


def building_score(
    ga: GeoArray, method: str
) -> tuple[NDArray[np.float32], NDArray[np.bool_] | None]:
    """Per-pixel building score of ``method`` and (``rgb-objects``) the vegetation mask."""
    if method == "builtup":
        return builtup_index(ga), None
    return _rgb_building_score(ga)


def _dark_and_exclude(score: NDArray[np.float32], valid: NDArray[np.bool_],
                      veg: NDArray[np.bool_] | None, method: str
                      ) -> tuple[float, NDArray[np.bool_]]:
    """The dark-class threshold (``rgb-objects``; else -inf) and the pixels never building."""
    if method != "rgb-objects":
        return -math.inf, ~valid
    # dark class: below the Otsu split of the darkest half (shadow, water, dense canopy)
    vals = score[valid] if valid.any() else score.ravel()
    dark_t = (otsu_threshold(vals[vals <= np.quantile(vals, DARK_QUANTILE)])
              if vals.size else 0.0)
    exclude = (score <= dark_t) | ~valid
    if veg is not None:
        exclude |= veg
    return dark_t, exclude


def thresholds_from_scores(
    score: NDArray[np.float32], valid: NDArray[np.bool_], veg: NDArray[np.bool_] | None, *,
    method: str, params: DetectParams, has_swir: bool,
) -> BuildingThresholds:
    """Scene-wide thresholds from the scores of a whole scene or of a sample of its pixels.

    ``score``, ``valid`` and ``veg`` are arrays of one shape (any: a scene or a 1-D sample).
    """
    dark_t, exclude = _dark_and_exclude(score, valid, veg, method)
    vals = score[~exclude]
    if params.threshold is not None:
        t = float(params.threshold)
    else:
        t = otsu_threshold(vals) if vals.size else 0.0
        if method == "builtup":
            lo, hi = BUILTUP_T_RANGE["swir" if has_swir else "nir"]
            t = min(max(t, lo), hi)
    above = vals[vals > t]
    t_alt = t + ALT_THRESHOLD_FRAC * (float(above.mean()) - t) if above.size else t
    return BuildingThresholds(method=method, threshold=t, alt_threshold=t_alt,
                              dark_threshold=float(dark_t))


def building_radius(params: DetectParams, res_m: float, method: str) -> int:
    """Opening radius in pixels of ``method``'s masks (``rgb-objects``: :data:`ROAD_OPENING_M`)."""
    if params.opening_m > 0 or method != "rgb-objects":
        return opening_radius_px(params, res_m)
    return max(1, round(ROAD_OPENING_M / res_m))


def _score_mask(ga: GeoArray, params: DetectParams, thresholds: BuildingThresholds | None,
                method: str) -> BuildingMask:
    """A thresholded-score method (``builtup``, ``rgb-objects``), cleaned up."""
    v = ga.valid
    score, veg = building_score(ga, method)
    thr = thresholds if thresholds is not None else thresholds_from_scores(
        score, v, veg, method=method, params=params, has_swir=ga.has("swir16"))
    exclude = ~v
    if method == "rgb-objects":
        exclude = exclude | (score <= thr.dark_threshold)
        if veg is not None:
            exclude |= veg
    cand = ~exclude
    t, t_alt = thr.threshold, thr.alt_threshold
    res_m, area = ga.grid.res_m, ga.grid.pixel_area_m2
    radius = building_radius(params, res_m, method)
    mask = cleanup_mask(cand & (score > t), res_m=res_m, pixel_area_m2=area, params=params,
                        valid=v, radius_px=radius)
    alt = cleanup_mask(cand & (score > t_alt), res_m=res_m, pixel_area_m2=area, params=params,
                       valid=v, radius_px=radius)
    if method == "rgb-objects":
        edge_img = visible(ga).max(0)
        mask = refine_edges(mask, edge_img, v, frac=OUTLINE_FRAC)
        alt = refine_edges(alt, edge_img, v, frac=ALT_OUTLINE_FRAC)
    score = np.where(v, score, 0.0).astype(np.float32)
    if not mask.any():
        log.info("building mask of %s is empty (method %s, threshold %.3g)",
                 ga.source_id or ga.date, method, t)
    return BuildingMask(mask=mask, score=score, alt_mask=alt, method=method, threshold=t)


def builtup_mask(ga: GeoArray, params: DetectParams,
                 thresholds: BuildingThresholds | None = None) -> BuildingMask:
    """``builtup``: NDBI - NDVI (or -NDVI) over Otsu, kept within :data:`BUILTUP_T_RANGE`."""
    return _score_mask(ga, params, thresholds, "builtup")


def rgb_objects_mask(ga: GeoArray, params: DetectParams,
                     thresholds: BuildingThresholds | None = None) -> BuildingMask:
    """``rgb-objects``: bright, unvegetated, non-dark objects, roads opened away, edges redrawn."""
    return _score_mask(ga, params, thresholds, "rgb-objects")


BUILDING_METHODS: Mapping[BuildingMethod, BuildingMethodFn] = {
    "builtup": builtup_mask,
    "rgb-objects": rgb_objects_mask,
    "contrast-objects": contrast_objects_mask,
}
"""Building-mask method name (:data:`geo.types.BuildingMethod`) -> implementation."""


def building_mask(ga: GeoArray, params: DetectParams, *,
                  thresholds: BuildingThresholds | None = None) -> BuildingMask:
    """Per-date building (built-up) mask.

    Parameters
    ----------
    ga : GeoArray
        One date on the AOI grid. ``ga.valid`` False pixels are never building.
    params : DetectParams
        ``method`` (``auto`` or a key of :data:`BUILDING_METHODS`; change-only names
        fall back to ``auto``), ``threshold`` (None: Otsu), ``opening_m``,
        ``min_area_m2`` and ``connectivity``.
    thresholds : BuildingThresholds, optional
        Scene-wide thresholds (for a tile of a larger scene, see :mod:`geo.tiles`);
        default: computed from ``ga`` itself.

    Returns
    -------
    BuildingMask
        ``alt_mask`` uses a stricter threshold (a quarter of the distance to
        the building class mean further in), for boundary ambiguity.
    """
    method = thresholds.method if thresholds is not None else building_method(ga, params)
    fn = BUILDING_METHODS[cast(BuildingMethod, method)]
    return fn(ga, params, thresholds)
