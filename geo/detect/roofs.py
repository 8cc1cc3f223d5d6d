"""Roofs that stand out from their immediate surroundings: the 10 m building candidates (pure).

A scene-wide built-up threshold cannot tell a hall from the gravel yard, the bare fields or
the clearing around it: all are bright, unvegetated and high in SWIR. What does tell them
apart is local: a roof is brighter than the ground right around it, with a sharp step at its
edge, and it is roughly rectangular. :func:`roof_candidates` keeps exactly such objects:

1. brightness ``s`` = mean visible reflectance over its scene median (scale-free), 3 x 3
   median-filtered; ``h`` is raised to six times its noise where the image is noisy;
2. h-domes (grey-level reconstruction by dilation of ``s - h`` under ``s``): regions that
   rise at least ``h`` above everything they are connected to; a yard that touches a
   brighter roof is not a dome, the roof on it is;
3. each dome object must show a step of at least ``step_frac * h`` between its core and a
   ring just outside it (texture bumps in a field rise gradually and fail), be
   unvegetated (NDVI or excess green) and fill at least ``min_rectangularity`` of its
   minimum rotated rectangle.

The outline of each kept object is then redrawn at the midpoint between roof and local
background by :func:`contrast_objects_mask`, the ``contrast-objects`` building method
(unbiased area for straight edges).

The ``UPPER_CASE`` constants and :class:`RoofParams` were set on SYNTHETIC scenes only (they
keep the values they had inline before the package split).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy import ndimage
from skimage import morphology

from geo.config import DetectParams
from geo.detect import common
from geo.detect.common import BuildingMask, BuildingThresholds
from geo.detect.indices import VEG_EXG, excess_green, ndvi, visible
from geo.geoarray import GeoArray

__all__ = ["RoofParams", "contrast_objects_mask", "dome_score", "roof_candidates"]

log = logging.getLogger(__name__)

NOISE_H_FACTOR = 6.0
"""The dome height ``h`` is raised to this many times the brightness noise (noisy images)."""
MAD_TO_SD = 1.4826
"""Median absolute deviation to standard deviation of a normal distribution."""
MEDIAN_NOISE_FACTOR = 0.5
"""The 3 x 3 median residual overstates the smoothed image's noise about twofold."""
CANDIDATE_FRAC = 0.2
"""Pixels rising more than this fraction of ``h`` are dome candidates."""
PEAK_FRAC = 0.9
"""A candidate object must peak at this fraction of ``h`` (a full dome, not a bump)."""
RING_PAD_PX = 4
"""Pixels around each object's bounding box that its step test looks at."""
RING_PX = 3
"""Outer edge of the background ring, pixels outside the object (its inner edge is 1 px)."""
MIN_RING_PX = 3
"""An object with fewer valid ring pixels than this is not tested (dropped)."""


@dataclass(frozen=True, kw_only=True)
class RoofParams:
    """Tuning of :func:`roof_candidates` (defaults chosen on SYNTHETIC scenes only)."""

    h: float = 0.25
    """Dome height: contrast over the surroundings, as a fraction of the scene's median
    brightness."""
    step_frac: float = 0.8
    """Core-minus-ring step an object needs, as a fraction of ``h``."""
    min_rectangularity: float = 0.6
    """Object area over the area of its minimum rotated rectangle."""
    max_ndvi: float = 0.3
    """Pixels greener than this are never roof (NDVI; RGB imagery uses excess green at
    :data:`geo.detect.indices.VEG_EXG` instead)."""


def dome_score(bright: NDArray[np.float32], valid: NDArray[np.bool_], h: float
               ) -> NDArray[np.float32]:
    """Height of each pixel above its surroundings, capped at ``h`` (the h-dome transform).

    Parameters
    ----------
    bright : ndarray of float32
        Brightness, already scaled (e.g. divided by the scene median).
    valid : ndarray of bool
        Invalid pixels are filled with the valid minimum first (no dome there).
    h : float
        Dome height.

    Returns
    -------
    ndarray of float32
        ``bright - reconstruction(bright - h, bright)``, in ``[0, h]``.
    """
    fill = float(bright[valid].min()) if valid.any() else 0.0
    s = np.where(valid, bright, fill).astype(np.float64)
    rec = np.asarray(morphology.reconstruction(s - h, s, method="dilation"), dtype=np.float64)
    out: NDArray[np.float32] = np.clip(s - rec, 0.0, h).astype(np.float32)
    return out


def _rectangularity(obj: NDArray[np.bool_]) -> float:
    ys, xs = np.nonzero(obj)
    if len(ys) < 3:
        return 1.0
    pts = shapely.MultiPoint(np.c_[xs, ys].astype(float))
    rect = shapely.minimum_rotated_rectangle(pts)
    if rect.geom_type != "Polygon":
        return 1.0
    xy = np.asarray(rect.exterior.coords)
    sides = np.hypot(*np.diff(xy[:3], axis=0).T)
    # pixel centres span one pixel less than the pixels do
    return float(len(ys) / ((sides[0] + 1.0) * (sides[1] + 1.0)))


def roof_candidates(bright: NDArray[np.float32], greenness: NDArray[np.float32],
                    valid: NDArray[np.bool_], params: RoofParams
                    ) -> tuple[NDArray[np.bool_], NDArray[np.float32]]:
    """Objects that rise above their immediate surroundings with a sharp, rectangular edge.

    Parameters
    ----------
    bright : ndarray of float32
        Mean visible reflectance (any scale).
    greenness : ndarray of float32
        NDVI (or excess green); pixels above ``params.max_ndvi`` are excluded.
    valid : ndarray of bool
        Valid pixels.
    params : RoofParams
        Dome height, step, rectangularity, vegetation limit.

    Returns
    -------
    (mask, score) : (ndarray of bool, ndarray of float32)
        Candidate roof pixels (before edge refinement) and the dome height over ``h``
        (0..1) as the per-pixel score.

    Examples
    --------
    A 6 x 8 px roof on a yard that is itself brighter than the fields around it: the roof is
    found (less its four corner pixels, which the 3 x 3 median rounds off and the edge
    refinement in :func:`contrast_objects_mask` restores), the yard is not:

    >>> import numpy as np
    >>> b = np.full((30, 30), 0.08, np.float32); b[5:25, 5:25] = 0.15; b[10:16, 10:18] = 0.22
    >>> m, _ = roof_candidates(b, np.zeros_like(b), np.ones(b.shape, bool), RoofParams())
    >>> int(m.sum()), int(m[10:16, 10:18].sum())
    (44, 44)
    """
    med = float(np.median(bright[valid])) if valid.any() else 1.0
    raw = (bright / max(med, 1e-6)).astype(np.float32)
    s = ndimage.median_filter(raw, size=3).astype(np.float32)
    # noise of the smoothed brightness (robust sd of the residual to a 3x3 median, halved for
    # the median's own smoothing): domes must rise well above it
    resid = (raw - s)[valid]
    noise = MEDIAN_NOISE_FACTOR * MAD_TO_SD * float(np.median(np.abs(resid))) if resid.size else 0.0
    h = max(params.h, NOISE_H_FACTOR * noise)
    dome = dome_score(s, valid, h)
    cand = (dome > CANDIDATE_FRAC * h) & valid & (greenness <= params.max_ndvi)
    lab, n = ndimage.label(cand)
    keep = np.zeros(cand.shape, dtype=bool)
    if n == 0:
        return keep, (dome / h).astype(np.float32)
    peak = ndimage.maximum(dome, lab, np.arange(1, n + 1))
    se = np.ones((3, 3), dtype=bool)
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None or peak[i - 1] < PEAK_FRAC * h:
            continue
        pad = RING_PAD_PX
        r0, r1 = max(sl[0].start - pad, 0), min(sl[0].stop + pad, cand.shape[0])
        c0, c1 = max(sl[1].start - pad, 0), min(sl[1].stop + pad, cand.shape[1])
        obj = lab[r0:r1, c0:c1] == i
        sub, vs = s[r0:r1, c0:c1], valid[r0:r1, c0:c1]
        core = ndimage.binary_erosion(obj, se)
        core = core if core.sum() >= 2 else obj
        ring = (ndimage.binary_dilation(obj, se, iterations=RING_PX)
                & ~ndimage.binary_dilation(obj, se, iterations=1) & vs)
        if ring.sum() < MIN_RING_PX:
            continue
        step = float(np.median(sub[core])) - float(np.median(sub[ring]))
        if step >= params.step_frac * h and _rectangularity(obj) >= params.min_rectangularity:
            keep[r0:r1, c0:c1] |= obj
    return keep, (dome / h).astype(np.float32)


def contrast_objects_mask(ga: GeoArray, params: DetectParams,
                          thresholds: BuildingThresholds | None = None) -> BuildingMask:
    """``contrast-objects``: :func:`roof_candidates`, outlines redrawn at the midpoint.

    ``alt_mask`` redraws the same objects at 70% of the way from background to roof.
    ``thresholds`` is ignored: the dome test is local, so tiles of a scene agree anyway.
    """
    v = ga.valid
    rgb = visible(ga)
    bright = rgb.mean(0).astype(np.float32)
    if ga.has("nir", "red"):
        green = ndvi(ga)
        rp = RoofParams()
    else:
        green = excess_green(rgb)
        rp = RoofParams(max_ndvi=VEG_EXG)
    cand, score = roof_candidates(bright, green, v, rp)
    res_m, area = ga.grid.res_m, ga.grid.pixel_area_m2
    mask = common.refine_edges(cand, bright, v, frac=common.OUTLINE_FRAC)
    alt = common.refine_edges(cand, bright, v, frac=common.ALT_OUTLINE_FRAC)
    mask = common.cleanup_mask(mask, res_m=res_m, pixel_area_m2=area, params=params, valid=v,
                               radius_px=0)
    alt = common.cleanup_mask(alt, res_m=res_m, pixel_area_m2=area, params=params, valid=v,
                              radius_px=0)
    if not mask.any():
        log.info("building mask of %s is empty (method contrast-objects)",
                 ga.source_id or ga.date)
    return BuildingMask(mask=mask, score=np.where(v, score, 0.0).astype(np.float32),
                        alt_mask=alt, method="contrast-objects", threshold=rp.h)
