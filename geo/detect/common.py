"""What every detection method shares (pure numpy/scipy).

The result types, Otsu, the object cleanup, outline redrawing and the threshold-and-clean
finish of a change map.

The ``UPPER_CASE`` tuning constants keep the values they had inline in the former single-file
``geo/detect.py`` (no behaviour change). They are hand-set defaults, checked against the
SYNTHETIC demo and the shared real benchmarks of docs/detection.md, not fitted values; where
more is known about a value, its docstring says so.

Method modules (:mod:`geo.detect.buildings`, :mod:`geo.detect.roofs`,
:mod:`geo.detect.change`, :mod:`geo.detect.learned`, ...) import from here, never from each
other's registries, so the package has no import cycle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from skimage import filters, morphology

from geo.config import DetectParams
from geo.geoarray import GeoArray

__all__ = [
    "ALT_OUTLINE_FRAC",
    "OUTLINE_FRAC",
    "BuildingMask",
    "BuildingMethodFn",
    "BuildingThresholds",
    "ChangeMap",
    "ChangeMethodFn",
    "change_map_from_probability",
    "change_radius",
    "cleanup_mask",
    "disk",
    "opening_radius_px",
    "otsu_threshold",
    "refine_edges",
]

AUTO_OPENING_M = 3.0
"""Automatic opening radius of building masks (``opening_m = 0``), metres: removes objects
narrower than about 6 m (paths, fences) on grids of this resolution or finer; no opening on
coarser grids, where one pixel is already wider than such objects."""
CHANGE_OPENING_M = 1.0
"""Automatic opening radius of change masks, metres: removes one-pixel speckle at VHR."""
CHANGE_OPENING_MAX_RES_M = 2.0
"""Change masks on grids this coarse or coarser get no automatic opening (a pixel is a hall)."""
REFINE_RING_PX = 3
"""Width in pixels of the background ring that :func:`refine_edges` samples outside an object."""
REFINE_CORE_EROSION_PX = 2
"""Pixels eroded off an object to get its roof core, and dilated to get its outline band."""
REFINE_MIN_PX = 4
"""An object whose core or ring has fewer pixels than this keeps its outline unchanged."""
OUTLINE_FRAC = 0.5
"""Outlines are redrawn at this fraction from background to roof: the midpoint gives an unbiased
area for straight edges (:func:`refine_edges`)."""
ALT_OUTLINE_FRAC = 0.7
"""The alternative outline is redrawn further in, at this fraction (boundary ambiguity)."""
OTSU_CONSTANT_EPS = 1e-12
"""A sample whose range is at most this is constant: its Otsu threshold is its mean."""


@dataclass(frozen=True, kw_only=True)
class BuildingMask:
    """A per-date building mask with its score and a stricter alternative."""

    mask: NDArray[np.bool_]
    """Building pixels (cleaned: morphology and minimum area)."""
    score: NDArray[np.float32]
    """Per-pixel building score; higher is more building-like; 0 where invalid."""
    alt_mask: NDArray[np.bool_]
    """Same method at a stricter threshold: the spread between the two is boundary ambiguity."""
    method: str
    """The method actually used (``auto`` resolved)."""
    threshold: float
    """Threshold applied to ``score``."""


@dataclass(frozen=True, kw_only=True)
class ChangeMap:
    """A pixel change map between two dates."""

    probability: NDArray[np.float32]
    """Change probability or normalised score, 0..1 (0.5 is the method's threshold)."""
    mask: NDArray[np.bool_]
    """Changed pixels after cleanup."""
    method: str
    """The method actually used (``auto`` resolved)."""


@dataclass(frozen=True, kw_only=True)
class BuildingThresholds:
    """Scene-wide thresholds of a building mask (so that tiles of one scene agree)."""

    method: str
    """The method (``auto`` resolved)."""
    threshold: float
    """Threshold on the building score."""
    alt_threshold: float
    """The stricter alternative threshold (boundary ambiguity)."""
    dark_threshold: float
    """``rgb-objects``: smoothed brightness at or below which a pixel is shadow/water."""


BuildingMethodFn = Callable[[GeoArray, DetectParams, BuildingThresholds | None], BuildingMask]
"""A building-mask method: ``(date, params, scene-wide thresholds or None) -> BuildingMask``."""
ChangeMethodFn = Callable[[GeoArray, GeoArray, DetectParams], ChangeMap]
"""A change method: ``(earlier, later, params) -> ChangeMap``; the dates are already checked to
share one grid and one band list (:func:`geo.detect.change_map`)."""


def otsu_threshold(values: NDArray[np.floating], *, nbins: int = 256) -> float:
    """Otsu threshold of a 1-D sample; the mean if the sample is constant.

    Examples
    --------
    >>> import numpy as np
    >>> t = otsu_threshold(np.r_[np.zeros(50), np.ones(50)])
    >>> 0 < t < 1
    True
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0
    if float(v.max()) - float(v.min()) <= OTSU_CONSTANT_EPS:
        return float(v.mean())
    return float(filters.threshold_otsu(v, nbins=nbins))


def opening_radius_px(params: DetectParams, res_m: float) -> int:
    """Opening radius of building masks: ``opening_m``, else :data:`AUTO_OPENING_M`."""
    if params.opening_m > 0:
        return max(0, round(params.opening_m / res_m))
    return round(AUTO_OPENING_M / res_m) if res_m <= AUTO_OPENING_M else 0


def change_radius(params: DetectParams, res_m: float) -> int:
    """Opening radius for change masks: ``opening_m`` or about 1 m (none at >= 2 m pixels)."""
    if params.opening_m > 0:
        return max(0, round(params.opening_m / res_m))
    return round(CHANGE_OPENING_M / res_m) if res_m < CHANGE_OPENING_MAX_RES_M else 0


def disk(r: int) -> NDArray[np.bool_]:
    """A disk structuring element of radius ``r`` pixels."""
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    out: NDArray[np.bool_] = (yy * yy + xx * xx) <= r * r
    return out


def _disk_rows(r: int) -> list[tuple[int, int]]:
    """``(dy, half_width)`` of each row of :func:`disk` ``(r)``."""
    return [(dy, math.isqrt(r * r - dy * dy)) for dy in range(-r, r + 1)]


def _disk_morph(mask: NDArray[np.bool_], r: int, *, erode: bool) -> NDArray[np.bool_]:
    """Binary erosion (or dilation) by ``disk(r)``, outside the array False.

    Exactly ``ndimage.binary_erosion(mask, disk(r))`` (``binary_dilation``): the disk is
    the union of its rows, so the result is the AND (OR) over rows ``dy`` of a 1-D
    min (max) filter of width ``2 w(dy) + 1`` shifted by ``dy``. The 1-D filters cost
    O(1) per pixel whatever their width, against O(r²) per pixel for the 2-D structure.
    """
    u = mask.view(np.uint8)
    flt = ndimage.minimum_filter1d if erode else ndimage.maximum_filter1d
    rows: dict[int, NDArray[np.bool_]] = {}
    out = np.full(mask.shape, erode, dtype=bool)
    for dy, w in _disk_rows(r):
        if w not in rows:
            rows[w] = flt(u, 2 * w + 1, axis=1, mode="constant", cval=0).view(bool)
        h = rows[w]
        if erode:  # out[y] &= h[y + dy]; rows beyond the edge are outside (False)
            if dy > 0:
                out[:-dy] &= h[dy:]
                out[-dy:] = False
            elif dy < 0:
                out[-dy:] &= h[:dy]
                out[:-dy] = False
            else:
                out &= h
        elif dy > 0:  # out[y] |= h[y + dy]
            out[:-dy] |= h[dy:]
        elif dy < 0:
            out[-dy:] |= h[:dy]
        else:
            out |= h
    return out


def cleanup_mask(mask: NDArray[np.bool_], *, res_m: float, pixel_area_m2: float,
                 params: DetectParams, valid: NDArray[np.bool_] | None = None,
                 radius_px: int | None = None) -> NDArray[np.bool_]:
    """Object-level cleanup: opening that keeps exact edges, then a minimum area in m².

    The opening removes objects narrower than ``2 * radius``; the surviving
    objects are then restored from the unopened mask within ``radius`` of the
    opened shape, so that rectangle corners are not rounded off.

    Parameters
    ----------
    mask : ndarray of bool
        Raw mask.
    res_m, pixel_area_m2 : float
        Grid resolution and pixel area.
    params : DetectParams
        ``opening_m``, ``min_area_m2`` and ``connectivity``.
    valid : ndarray of bool, optional
        Invalid pixels are set False.
    radius_px : int, optional
        Override the opening radius.

    Returns
    -------
    ndarray of bool
    """
    m = mask.copy() if valid is None else mask & valid
    r = opening_radius_px(params, res_m) if radius_px is None else radius_px
    if r > 0:
        opened = _disk_morph(_disk_morph(m, r, erode=True), r, erode=False)
        m = m & _disk_morph(opened, r, erode=False)
    min_px = int(np.ceil(params.min_area_m2 / pixel_area_m2)) if params.min_area_m2 > 0 else 0
    if min_px > 1:
        m = morphology.remove_small_objects(m, max_size=min_px - 1,
                                            connectivity=1 if params.connectivity == 4 else 2)
    return m


def _refine_one(obj: NDArray[np.bool_], sub: NDArray[np.float32], vs: NDArray[np.bool_],
                free: NDArray[np.bool_], frac: float, ring_px: int, *, small: bool = False,
                cover: bool = False) -> NDArray[np.bool_]:
    """One object's outline redrawn at ``frac`` between its local background and its roof."""
    se = disk(1)
    core = _roof_core(obj, vs, se, small)
    if core.sum() < REFINE_MIN_PX and not (small and core.any()):
        return obj
    near = ndimage.binary_dilation(obj, se, iterations=REFINE_CORE_EROSION_PX)
    ring = ndimage.binary_dilation(obj, se, iterations=ring_px + 1) & ~near
    ring &= vs & free
    if ring.sum() < REFINE_MIN_PX:
        return obj
    roof = float(np.median(sub[core]))
    bg = float(np.median(sub[ring]))
    # the surroundings differ along the outline (shadow on one side, soil or grass on
    # the others): take the background next to each edge pixel, not the ring's median
    bg_local = _local_background(sub, ring, 2 * ring_px + 3, bg)
    level = bg_local + frac * (roof - bg_local)
    cand = near & vs & ((sub > level) if roof >= bg else (sub < level))
    cl, _ = ndimage.label(cand)
    keep = np.unique(cl[core & cand])
    new = np.isin(cl, keep[keep > 0]) | core
    out: NDArray[np.bool_] = ndimage.binary_fill_holes(new)
    if cover:
        out = _cover_redraw(out, core, sub, roof, vs & (free | obj), se, ring_px)
    return out


def _local_background(sub: NDArray[np.float32], ring: NDArray[np.bool_], size: int,
                      fallback: float) -> NDArray[np.float64]:
    """Mean of ``ring`` pixels within a ``size`` window of each pixel (``fallback`` if none)."""
    w = ndimage.uniform_filter(ring.astype(np.float64), size=size)
    bsum = ndimage.uniform_filter(np.where(ring, sub, 0.0).astype(np.float64), size=size)
    out: NDArray[np.float64] = np.where(w > 1e-6, bsum / np.maximum(w, 1e-6), fallback)
    return out


def _cover_redraw(obj: NDArray[np.bool_], core: NDArray[np.bool_], sub: NDArray[np.float32],
                  roof: float, free: NDArray[np.bool_], se: NDArray[np.bool_], ring_px: int
                  ) -> NDArray[np.bool_]:
    """Redraw ``obj`` with as many pixels as its summed fractional roof cover.

    Each pixel's cover is (value - local background) / (roof - local background), the
    background taken on a ring 3 to ``ring_px + 3`` pixels outside ``obj`` (clear of its
    blurred edge): the fraction of the pixel the roof covers, blur included, since a
    point-spread function moves roof signal into the surroundings without changing its sum.
    Summed (clipped to [-1, 2] only, so noise averages out) over the object and two pixels
    around it, it is the roof's area in pixels; the half-covered threshold instead drops the
    corners a blurred roof rounds off. The pixels kept are those with the highest cover,
    connected to ``core``.
    """
    zone = ndimage.binary_dilation(obj, se, iterations=2) & free
    ring = ndimage.binary_dilation(obj, se, iterations=ring_px + 3) & free & \
        ~ndimage.binary_dilation(zone, se)
    if ring.sum() < REFINE_MIN_PX:
        return obj
    bg = _local_background(sub, ring, 2 * ring_px + 7, float(np.median(sub[ring])))
    cover = (sub - bg) / np.where(np.abs(roof - bg) > 1e-9, roof - bg, 1e-9)
    vals = cover[zone]
    n = round(float(np.clip(vals, -1.0, 2.0).sum()))
    if n <= int(core.sum()) or n >= vals.size:
        return obj
    level = float(np.sort(vals)[::-1][n - 1])
    cl, _ = ndimage.label(zone & (cover >= level))
    keep = np.unique(cl[core])
    out: NDArray[np.bool_] = ndimage.binary_fill_holes(np.isin(cl, keep[keep > 0]) | core)
    return out


def _roof_core(obj: NDArray[np.bool_], vs: NDArray[np.bool_], se: NDArray[np.bool_],
               small: bool) -> NDArray[np.bool_]:
    """Pixels of ``obj`` that are surely roof: two erosions in, fewer for small objects."""
    core: NDArray[np.bool_] = ndimage.binary_erosion(
        obj, se, iterations=REFINE_CORE_EROSION_PX) & vs
    if core.sum() >= REFINE_MIN_PX or not small:
        return core
    one: NDArray[np.bool_] = ndimage.binary_erosion(obj, se) & vs
    return one if one.sum() >= 2 else obj & vs


def refine_edges(mask: NDArray[np.bool_], img: NDArray[np.float32], valid: NDArray[np.bool_],
                 *, frac: float = OUTLINE_FRAC, ring_px: int = REFINE_RING_PX,
                 small: bool = False, cover: bool = False) -> NDArray[np.bool_]:
    """Re-draw each object's outline at ``frac`` of the way from its surroundings to its roof.

    For a straight edge through a pixel, the pixel's value is the coverage-weighted
    mix of roof and background, so thresholding at the midpoint (``frac=0.5``)
    keeps exactly the pixels more than half covered: the area is unbiased.

    ``small``: an object too small for a two-pixel erosion takes its roof level from a
    one-pixel erosion, or from the whole object (a dome top, all roof), instead of being left
    as it is (a 10 m dome top is often a third of the roof). ``cover``: the outline then
    keeps as many pixels as the object's summed fractional roof cover
    (:func:`_cover_redraw`).
    """
    lab, n = ndimage.label(mask)
    if n == 0:
        return mask
    out = np.zeros_like(mask)
    pad = ring_px + (8 if cover else 2)
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None:
            continue
        r0 = max(sl[0].start - pad, 0)
        r1 = min(sl[0].stop + pad, mask.shape[0])
        c0 = max(sl[1].start - pad, 0)
        c1 = min(sl[1].stop + pad, mask.shape[1])
        sub_lab = lab[r0:r1, c0:c1]
        out[r0:r1, c0:c1] |= _refine_one(sub_lab == i, img[r0:r1, c0:c1], valid[r0:r1, c0:c1],
                                         sub_lab == 0, frac, ring_px, small=small, cover=cover)
    return out & valid


def change_map_from_probability(prob: NDArray[np.float32], t: float, a: GeoArray, b: GeoArray,
                                *, params: DetectParams, method: str,
                                exclude: NDArray[np.bool_] | None = None) -> ChangeMap:
    """Threshold a 0..1 probability (``params.threshold`` overrides ``t``) and clean up.

    Parameters
    ----------
    prob : ndarray of float32
        Change probability on the grid of ``a``.
    t : float
        The method's own threshold.
    a, b : GeoArray
        The two dates (for the valid masks and the grid).
    params : DetectParams
        Cleanup parameters and an optional threshold override.
    method : str
        Name recorded in the result.
    exclude : ndarray of bool, optional
        Pixels never marked changed (e.g. shadow or seasonal change).

    Returns
    -------
    ChangeMap
    """
    v = a.valid & b.valid
    thr = t if params.threshold is None else float(params.threshold)
    raw = (prob > thr) & v
    if exclude is not None:
        raw &= ~exclude
    mask = cleanup_mask(raw, res_m=a.grid.res_m, pixel_area_m2=a.grid.pixel_area_m2,
                        params=params, valid=v, radius_px=change_radius(params, a.grid.res_m))
    return ChangeMap(probability=np.where(v, prob, 0.0).astype(np.float32), mask=mask,
                     method=method)
