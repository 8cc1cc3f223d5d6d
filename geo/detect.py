"""Building masks per date and pixel change maps between dates (pure numpy/scikit-image).

Per-date building masks (:func:`building_mask`):

- ``builtup`` (multispectral with NIR): a built-up index (NDBI - NDVI when
  SWIR is present, else brightness-weighted -NDVI), Otsu threshold.
- ``contrast-objects`` (any imagery at 2.5 m and coarser, the 3-30 m default): roofs that rise
  above their immediate surroundings with a sharp, rectangular edge (:mod:`geo.roofs`), so
  that halls separate from the yards, gravel, fields and clearings around them; outlines
  redrawn at the roof/background midpoint.
- ``rgb-objects`` (RGB or panchromatic VHR, 0.3-2 m): bright, homogeneous,
  non-vegetated, non-shadow objects; narrow objects (roads) are removed with an
  opening whose radius follows the grid resolution, and edges are then restored
  from the unopened mask so that corners and areas stay exact.

Change maps (:func:`change_map`), ``METHODS``:

- ``imad``: iMAD chi-square change probability (see :mod:`geo.normalize`);
- ``cva``: change-vector magnitude after relative normalisation, Otsu;
- ``index-diff``: differences of built-up/vegetation/brightness indices;
- ``pcc``: post-classification comparison of the two building masks;
- ``rgb-objects``: object-based change on a segmentation of the pair with
  colour, texture and edge features per segment;
- ``learned``: a small per-pixel MLP on colour/texture/edge features of the
  pair, trained only on the shared LEVIR-CD samples
  (``benchmarks/train_change_mlp.py``, weights in ``geo/models/``);
- ``auto``: the best measured method for the imagery kind (``AUTO_CHANGE``).

Every change mask then gets the same object-level cleanup: pixels that look
like shadow in one date or vegetation in both (seasonal change) are dropped,
then a morphological opening and a minimum area in m² (``DetectParams``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from skimage import filters, morphology, segmentation

from geo.config import DetectParams
from geo.coreg import brightness
from geo.errors import BandError, ConfigError
from geo.geoarray import GeoArray
from geo.grid import check_same_grid
from geo.normalize import imad, normalize_to
from geo.types import BUILDING_METHODS, CHANGE_METHODS

__all__ = [
    "AUTO_BUILDING",
    "AUTO_CHANGE",
    "METHODS",
    "BuildingMask",
    "ChangeMap",
    "building_mask",
    "change_map",
    "change_map_from_probability",
    "cleanup_mask",
    "cva_magnitude",
    "dark_thresholds",
    "otsu_threshold",
]

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = CHANGE_METHODS
"""Change-map methods accepted by :func:`change_map` (:data:`geo.types.CHANGE_METHODS`)."""

AUTO_CHANGE: dict[str, str] = {"multispectral": "rgb-objects", "rgb": "cva", "pan": "cva"}
"""``auto`` change method per imagery kind, as chosen by the benchmark (docs/detection.md).

Rule: the highest mean F1 over the four real RGB change sets (LEVIR crops, LEVIR 1024²,
WHU-CD, DSIFN) among methods that reach F1 >= 0.8 on every SYNTHETIC demo pair. RGB VHR:
``cva`` (mean 0.32, WHU-CD industrial halls 0.57); ``learned`` is best on LEVIR-CD itself
but does not transfer (WHU-CD 0.02, demo 0.00). 10 m multispectral: ``rgb-objects``
(object-based CVA) is best on OSCD Paris-Bercy (F1 0.20 vs iMAD 0.09), the only labelled
10 m pair we have.
"""

AUTO_BUILDING: dict[str, str] = {"multispectral": "builtup", "rgb": "rgb-objects",
                                 "pan": "rgb-objects"}
"""``auto`` building-mask method per imagery kind on grids finer than
:data:`CONTRAST_MIN_RES_M`."""
CONTRAST_MIN_RES_M = 2.5
"""``auto`` uses ``contrast-objects`` on grids this coarse or coarser, whatever the kind."""

_BUILDING_METHODS = BUILDING_METHODS
_BUILTUP_T_RANGE = {"swir": (-0.4, 0.2), "nir": (-0.3, 0.0)}
"""Allowed range of the automatic threshold on NDBI - NDVI (swir) or -NDVI (nir only)."""


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


# ---------------------------------------------------------------- helpers


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
    if float(v.max()) - float(v.min()) <= 1e-12:
        return float(v.mean())
    return float(filters.threshold_otsu(v, nbins=nbins))


def _opening_radius_px(params: DetectParams, res_m: float) -> int:
    if params.opening_m > 0:
        return max(0, round(params.opening_m / res_m))
    return round(3.0 / res_m) if res_m <= 3.0 else 0


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
    r = _opening_radius_px(params, res_m) if radius_px is None else radius_px
    if r > 0:
        fp = _disk(r)
        opened = ndimage.binary_opening(m, structure=fp)
        m = m & ndimage.binary_dilation(opened, structure=fp)
    min_px = int(np.ceil(params.min_area_m2 / pixel_area_m2)) if params.min_area_m2 > 0 else 0
    if min_px > 1:
        m = morphology.remove_small_objects(m, max_size=min_px - 1,
                                            connectivity=1 if params.connectivity == 4 else 2)
    return m


def _disk(r: int) -> NDArray[np.bool_]:
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    out: NDArray[np.bool_] = (yy * yy + xx * xx) <= r * r
    return out


def _f32(x: object) -> NDArray[np.float32]:
    return np.asarray(x, dtype=np.float32)


def _visible(ga: GeoArray) -> NDArray[np.float32]:
    """``(3, rows, cols)`` red, green, blue (pan repeated when there is no colour)."""
    if ga.has("red", "green", "blue"):
        return np.stack([ga.band("red"), ga.band("green"), ga.band("blue")]).astype(np.float32)
    b = brightness(ga)
    return np.stack([b, b, b])


def _exg(rgb: NDArray[np.float32]) -> NDArray[np.float32]:
    """Excess-green chromaticity index ``(2g - r - b) / (r + g + b)``."""
    r, g, b = rgb
    s = r + g + b
    return np.where(s > 1e-6, (2 * g - r - b) / np.maximum(s, 1e-6), 0.0).astype(np.float32)


def _local_std(img: NDArray[np.float32], sigma: float) -> NDArray[np.float32]:
    m = ndimage.gaussian_filter(img, sigma)
    m2 = ndimage.gaussian_filter(img * img, sigma)
    return _f32(np.sqrt(np.maximum(m2 - m * m, 0.0)))


def _sobel(img: NDArray[np.float32]) -> NDArray[np.float32]:
    return _f32(np.hypot(ndimage.sobel(img, 0), ndimage.sobel(img, 1)) / 8.0)


# ---------------------------------------------------------------- building masks


def _builtup_score(ga: GeoArray) -> NDArray[np.float32]:
    nir = ga.band("nir").astype(np.float32)
    red = ga.band("red").astype(np.float32)
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    if ga.has("swir16"):
        sw = ga.band("swir16").astype(np.float32)
        ndbi = (sw - nir) / np.maximum(sw + nir, 1e-6)
        return _f32(ndbi - ndvi)
    return _f32(-ndvi)


def _rgb_building_score(ga: GeoArray) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Roof-likeness (HSV value, i.e. the brightest channel, smoothed) and a vegetation mask.

    The brightest channel separates bright grey, blue and red roofs from roads,
    bare soil and shadow better than the mean brightness does. The dark class (shadow,
    water, dense canopy) is excluded later, below a scene-wide threshold
    (:func:`building_thresholds`).
    """
    rgb = _visible(ga)
    value = rgb.max(0)
    sigma = max(0.7, 1.0 / ga.grid.res_m)
    value_s = ndimage.gaussian_filter(value, sigma)
    veg = _exg(ndimage.gaussian_filter(rgb, (0, sigma, sigma))) > 0.08
    return value_s.astype(np.float32), veg


def _refine_edges(mask: NDArray[np.bool_], img: NDArray[np.float32], valid: NDArray[np.bool_],
                  *, frac: float = 0.5, ring_px: int = 3) -> NDArray[np.bool_]:
    """Re-draw each object's outline at ``frac`` of the way from its surroundings to its roof.

    For a straight edge through a pixel, the pixel's value is the coverage-weighted
    mix of roof and background, so thresholding at the midpoint (``frac=0.5``)
    keeps exactly the pixels more than half covered: the area is unbiased.
    """
    lab, n = ndimage.label(mask)
    if n == 0:
        return mask
    out = np.zeros_like(mask)
    pad = ring_px + 2
    se = _disk(1)
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None:
            continue
        r0 = max(sl[0].start - pad, 0)
        r1 = min(sl[0].stop + pad, mask.shape[0])
        c0 = max(sl[1].start - pad, 0)
        c1 = min(sl[1].stop + pad, mask.shape[1])
        obj = lab[r0:r1, c0:c1] == i
        sub = img[r0:r1, c0:c1]
        vs = valid[r0:r1, c0:c1]
        core = ndimage.binary_erosion(obj, se, iterations=2) & vs
        if core.sum() < 4:
            out[r0:r1, c0:c1] |= obj
            continue
        near = ndimage.binary_dilation(obj, se, iterations=2)
        ring = ndimage.binary_dilation(obj, se, iterations=ring_px + 1) & ~near
        ring &= vs & (lab[r0:r1, c0:c1] == 0)
        if ring.sum() < 4:
            out[r0:r1, c0:c1] |= obj
            continue
        roof = float(np.median(sub[core]))
        bg = float(np.median(sub[ring]))
        # the surroundings differ along the outline (shadow on one side, soil or grass on
        # the others): take the background next to each edge pixel, not the ring's median
        size = 2 * ring_px + 3
        w = ndimage.uniform_filter(ring.astype(np.float64), size=size)
        bsum = ndimage.uniform_filter(np.where(ring, sub, 0.0).astype(np.float64), size=size)
        bg_local = np.where(w > 1e-6, bsum / np.maximum(w, 1e-6), bg)
        level = bg_local + frac * (roof - bg_local)
        cand = near & vs & ((sub > level) if roof >= bg else (sub < level))
        cl, _ = ndimage.label(cand)
        keep = np.unique(cl[core & cand])
        new = np.isin(cl, keep[keep > 0]) | core
        new = ndimage.binary_fill_holes(new)
        out[r0:r1, c0:c1] |= new
    return out & valid


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


def building_method(ga: GeoArray, params: DetectParams) -> str:
    """The building-mask method used for ``ga`` (``auto`` resolved); BandError if unusable."""
    method: str = params.method
    if method not in _BUILDING_METHODS:
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
        return _builtup_score(ga), None
    return _rgb_building_score(ga)


def thresholds_from_scores(
    score: NDArray[np.float32], valid: NDArray[np.bool_], veg: NDArray[np.bool_] | None, *,
    method: str, params: DetectParams, has_swir: bool,
) -> BuildingThresholds:
    """Scene-wide thresholds from the scores of a whole scene or of a sample of its pixels.

    ``score``, ``valid`` and ``veg`` are arrays of one shape (any: a scene or a 1-D sample).
    """
    if method == "rgb-objects":
        # dark class: below the Otsu split of the darkest half (shadow, water, dense canopy)
        vals = score[valid] if valid.any() else score.ravel()
        dark_t = otsu_threshold(vals[vals <= np.quantile(vals, 0.5)]) if vals.size else 0.0
        exclude = (score <= dark_t) | ~valid
        if veg is not None:
            exclude |= veg
    else:
        dark_t = -math.inf
        exclude = ~valid
    vals = score[~exclude]
    if params.threshold is not None:
        t = float(params.threshold)
    else:
        t = otsu_threshold(vals) if vals.size else 0.0
        if method == "builtup":
            # keep Otsu within physically sensible bounds, so that a scene with no
            # built-up land (one class only) does not get half of it called built-up
            lo, hi = _BUILTUP_T_RANGE["swir" if has_swir else "nir"]
            t = min(max(t, lo), hi)
    above = vals[vals > t]
    t_alt = t + 0.25 * (float(above.mean()) - t) if above.size else t
    return BuildingThresholds(method=method, threshold=t, alt_threshold=t_alt,
                              dark_threshold=float(dark_t))


def building_mask(ga: GeoArray, params: DetectParams, *,
                  thresholds: BuildingThresholds | None = None) -> BuildingMask:
    """Per-date building (built-up) mask.

    Parameters
    ----------
    ga : GeoArray
        One date on the AOI grid. ``ga.valid`` False pixels are never building.
    params : DetectParams
        ``method`` (``auto``, ``builtup`` or ``rgb-objects``; change-only names
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
    if method == "contrast-objects":
        return _contrast_objects_mask(ga, params)
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
    radius = _building_radius(params, res_m, method)
    mask = cleanup_mask(cand & (score > t), res_m=res_m, pixel_area_m2=area, params=params,
                        valid=v, radius_px=radius)
    alt = cleanup_mask(cand & (score > t_alt), res_m=res_m, pixel_area_m2=area, params=params,
                       valid=v, radius_px=radius)
    if method == "rgb-objects":
        edge_img = _visible(ga).max(0)
        mask = _refine_edges(mask, edge_img, v, frac=0.5)
        alt = _refine_edges(alt, edge_img, v, frac=0.7)
    score = np.where(v, score, 0.0).astype(np.float32)
    if not mask.any():
        log.info("building mask of %s is empty (method %s, threshold %.3g)",
                 ga.source_id or ga.date, method, t)
    return BuildingMask(mask=mask, score=score, alt_mask=alt, method=method, threshold=t)


def _contrast_objects_mask(ga: GeoArray, params: DetectParams) -> BuildingMask:
    """Local-contrast roofs (:func:`geo.roofs.roof_candidates`), outlines at the midpoint.

    ``alt_mask`` redraws the same objects at 70% of the way from background to roof.
    """
    from geo.roofs import RoofParams, roof_candidates

    v = ga.valid
    rgb = _visible(ga)
    bright = rgb.mean(0).astype(np.float32)
    if ga.has("nir", "red"):
        nir, red = ga.band("nir"), ga.band("red")
        green = ((nir - red) / np.maximum(nir + red, 1e-6)).astype(np.float32)
        rp = RoofParams()
    else:
        green = _exg(rgb)
        rp = RoofParams(max_ndvi=0.08)
    cand, score = roof_candidates(bright, green, v, rp)
    res_m, area = ga.grid.res_m, ga.grid.pixel_area_m2
    mask = _refine_edges(cand, bright, v, frac=0.5)
    alt = _refine_edges(cand, bright, v, frac=0.7)
    mask = cleanup_mask(mask, res_m=res_m, pixel_area_m2=area, params=params, valid=v,
                        radius_px=0)
    alt = cleanup_mask(alt, res_m=res_m, pixel_area_m2=area, params=params, valid=v,
                       radius_px=0)
    if not mask.any():
        log.info("building mask of %s is empty (method contrast-objects)",
                 ga.source_id or ga.date)
    return BuildingMask(mask=mask, score=np.where(v, score, 0.0).astype(np.float32),
                        alt_mask=alt, method="contrast-objects", threshold=rp.h)


def _building_radius(params: DetectParams, res_m: float, method: str) -> int:
    if params.opening_m > 0 or method != "rgb-objects":
        return _opening_radius_px(params, res_m)
    # VHR: remove roads and paths up to ~10 m wide, keep halls (>= ~15 m)
    return max(1, round(5.0 / res_m))


# ---------------------------------------------------------------- change maps


def _prob_from_score(score: NDArray[np.float32], t: float) -> NDArray[np.float32]:
    """Map a non-negative score to 0..1 with 0.5 at the threshold ``t``."""
    t = max(t, 1e-12)
    return _f32(1.0 - np.exp(-np.log(2.0) * (np.maximum(score, 0) / t) ** 2))


def _robust_z(x: NDArray[np.float32], valid: NDArray[np.bool_]) -> NDArray[np.float32]:
    v = x[valid] if valid.any() else x.ravel()
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med))) * 1.4826
    return ((x - med) / (mad if mad > 1e-9 else 1.0)).astype(np.float32)


def dark_thresholds(a: GeoArray, b: GeoArray) -> tuple[float | None, float | None]:
    """Per date, the brightness below which a pixel is in that date's dark class.

    Otsu on the darker half of the pixels valid in both dates; None where there are none.
    A streamed run fits them on a pixel sample (:mod:`geo.stream`).
    """
    v = a.valid & b.valid
    out: list[float | None] = []
    for br in (_visible(a).mean(0), _visible(b).mean(0)):
        vals = br[v]
        out.append(None if vals.size == 0 else
                   otsu_threshold(vals[vals <= np.quantile(vals, 0.5)]))
    return out[0], out[1]


def _ignorable(a: GeoArray, b: GeoArray, dark_t: tuple[float | None, float | None] | None = None
               ) -> NDArray[np.bool_]:
    """Pixels whose change looks like shadow or season, not construction.

    Shadow: the darker date is in that date's dark class (``dark_t``, default
    :func:`dark_thresholds` of ``a`` and ``b``), the chromaticity is
    unchanged and the brighter date is less than 2.5 times brighter (a cast
    shadow, not a bright new roof on dark ground). Season: vegetated (excess
    green) in both dates.
    """
    ra, rb = _visible(a), _visible(b)
    ba, bb = ra.mean(0), rb.mean(0)
    ts = dark_thresholds(a, b) if dark_t is None else dark_t
    dark = [np.zeros(ba.shape, bool) if t is None else br < t
            for br, t in zip((ba, bb), ts, strict=True)]
    ca = ra / np.maximum(ba, 1e-6)
    cb = rb / np.maximum(bb, 1e-6)
    same_chroma = np.abs(ca - cb).max(0) < 0.15
    ratio = np.maximum(ba, bb) / np.maximum(np.minimum(ba, bb), 1e-6)
    darker_is_dark = np.where(ba <= bb, dark[0], dark[1])
    shadow = darker_is_dark & same_chroma & (ratio < 2.5)
    seasonal = (_exg(ra) > 0.08) & (_exg(rb) > 0.08)
    out2: NDArray[np.bool_] = shadow | seasonal
    return out2


def _finish(score: NDArray[np.float32], t: float, a: GeoArray, b: GeoArray,
            params: DetectParams, method: str, *, ignore: bool = True,
            dark_t: tuple[float | None, float | None] | None = None) -> ChangeMap:
    v = a.valid & b.valid
    prob = np.where(v, _prob_from_score(score, t), 0.0).astype(np.float32)
    raw = (score > t) & v
    if ignore:
        raw &= ~_ignorable(a, b, dark_t)
    mask = cleanup_mask(raw, res_m=a.grid.res_m, pixel_area_m2=a.grid.pixel_area_m2,
                        params=params, valid=v, radius_px=_change_radius(params, a.grid.res_m))
    return ChangeMap(probability=prob, mask=mask, method=method)


def change_map_from_probability(prob: NDArray[np.float32], t: float, a: GeoArray, b: GeoArray,
                                *, params: DetectParams, method: str) -> ChangeMap:
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

    Returns
    -------
    ChangeMap
    """
    v = a.valid & b.valid
    thr = t if params.threshold is None else float(params.threshold)
    raw = (prob > thr) & v
    mask = cleanup_mask(raw, res_m=a.grid.res_m, pixel_area_m2=a.grid.pixel_area_m2,
                        params=params, valid=v, radius_px=_change_radius(params, a.grid.res_m))
    return ChangeMap(probability=np.where(v, prob, 0.0).astype(np.float32), mask=mask,
                     method=method)


def _change_radius(params: DetectParams, res_m: float) -> int:
    """Opening radius for change masks: ``opening_m`` or about 1 m (none at >= 2 m pixels)."""
    if params.opening_m > 0:
        return max(0, round(params.opening_m / res_m))
    return round(1.0 / res_m) if res_m < 2.0 else 0


def _imad_change(a: GeoArray, b: GeoArray, params: DetectParams) -> ChangeMap:
    use = [i for i, r in enumerate(a.bands) if r != "alpha"]
    v = a.valid & b.valid
    res = imad(a.data[use], b.data[use], v)
    prob = res.change_prob
    t = 0.99 if params.threshold is None else float(params.threshold)
    raw = (prob > t) & v & ~_ignorable(a, b)
    mask = cleanup_mask(raw, res_m=a.grid.res_m, pixel_area_m2=a.grid.pixel_area_m2,
                        params=params, valid=v, radius_px=_change_radius(params, a.grid.res_m))
    return ChangeMap(probability=np.where(v, prob, 0.0).astype(np.float32), mask=mask,
                     method="imad")


def cva_magnitude(a: GeoArray, bn: GeoArray) -> NDArray[np.float32]:
    """CVA score: the smoothed length of the band difference ``bn - a`` (``bn`` normalised).

    The smoothing (a Gaussian of 1.5 m, at least 0.5 px) reaches 4 sigma.
    """
    use = [i for i, r in enumerate(a.bands) if r != "alpha"]
    d = bn.data[use] - a.data[use]
    mag = np.sqrt((d * d).sum(0)).astype(np.float32)
    # a light smoothing (1.5 m) turns speckle into objects that survive the cleanup
    out: NDArray[np.float32] = ndimage.gaussian_filter(mag, max(0.5, 1.5 / a.grid.res_m))
    return out


def _cva_change(a: GeoArray, b: GeoArray, params: DetectParams) -> ChangeMap:
    bn, _ = normalize_to(a, b)
    mag = cva_magnitude(a, bn)
    v = a.valid & b.valid
    # plain Otsu (the classic CVA baseline), no noise floor
    t = otsu_threshold(mag[v]) if params.threshold is None else float(params.threshold)
    return _finish(mag, t, a, b, params, "cva")


def _indices(ga: GeoArray) -> list[NDArray[np.float32]]:
    out: list[NDArray[np.float32]] = [brightness(ga)]
    if ga.has("nir", "red"):
        nir, red = ga.band("nir"), ga.band("red")
        out.append(((nir - red) / np.maximum(nir + red, 1e-6)).astype(np.float32))
        if ga.has("swir16"):
            sw = ga.band("swir16")
            out.append(((sw - nir) / np.maximum(sw + nir, 1e-6)).astype(np.float32))
    elif ga.has("red", "green", "blue"):
        out.append(_exg(_visible(ga)))
    return out


def _index_diff_change(a: GeoArray, b: GeoArray, params: DetectParams) -> ChangeMap:
    bn, _ = normalize_to(a, b)
    v = a.valid & b.valid
    zs = [_robust_z(ib - ia, v) for ia, ib in zip(_indices(a), _indices(bn), strict=True)]
    score = np.sqrt(np.mean([z * z for z in zs], axis=0)).astype(np.float32)
    score = ndimage.gaussian_filter(score, 1.0)
    if params.threshold is None:
        # the score is heavy-tailed: split it on a log scale
        t = float(np.exp(otsu_threshold(np.log(score[v] + 1e-3)))) - 1e-3
    else:
        t = float(params.threshold)
    return _finish(score, t, a, b, params, "index-diff")


def _pcc_change(a: GeoArray, b: GeoArray, params: DetectParams) -> ChangeMap:
    p = DetectParams(method=params.method, min_area_m2=params.min_area_m2,
                     connectivity=params.connectivity, opening_m=params.opening_m)
    ma = building_mask(a, p)
    mb = building_mask(b, p)
    raw = ma.mask ^ mb.mask
    v = a.valid & b.valid
    prob = (0.5 * (ma.mask.astype(np.float32) + (ma.mask ^ mb.mask))).astype(np.float32)
    prob = np.where(raw, np.maximum(prob, 0.75), np.where(ma.alt_mask ^ mb.alt_mask, 0.4, 0.0))
    mask = cleanup_mask(raw, res_m=a.grid.res_m, pixel_area_m2=a.grid.pixel_area_m2,
                        params=params, valid=v)
    return ChangeMap(probability=np.where(v, prob, 0).astype(np.float32), mask=mask, method="pcc")


def _segment_features(a: GeoArray, bn: GeoArray) -> NDArray[np.float32]:
    """Per-pixel change features: colour difference, texture and edge difference."""
    ra, rb = _visible(a), _visible(bn)
    scale = max(float(np.median(ra.mean(0)[a.valid])) if a.valid.any() else 1.0, 1e-6)
    ra, rb = ra / scale, rb / scale
    col = np.sqrt(((rb - ra) ** 2).sum(0))
    ga_, gb_ = ra.mean(0), rb.mean(0)
    tex = np.abs(_local_std(gb_, 2.0) - _local_std(ga_, 2.0))
    ed = np.abs(_sobel(gb_) - _sobel(ga_))
    return np.stack([col, tex, ed]).astype(np.float32)


def _rgb_objects_change(a: GeoArray, b: GeoArray, params: DetectParams) -> ChangeMap:
    bn, _ = normalize_to(a, b)
    v = a.valid & b.valid
    feats = _segment_features(a, bn)
    # colour change plus texture and edge change, all in units of the scene's median brightness
    pix = (feats[0] + feats[1] + 0.5 * feats[2]).astype(np.float32)
    # segment the pair jointly (both dates' colours), then average the score per segment
    ra, rb = _visible(a), _visible(bn)
    scale = max(float(np.median(ra.mean(0)[v])) if v.any() else 1.0, 1e-6)
    stack = np.stack([ra.mean(0), rb.mean(0), np.sqrt(((rb - ra) ** 2).sum(0))]) / scale
    stack = stack.transpose(1, 2, 0)
    min_px = max(8, round(10.0 / a.grid.pixel_area_m2))
    labels = segmentation.felzenszwalb(stack, scale=0.5, sigma=0.8, min_size=min_px,
                                       channel_axis=-1)
    nlab = int(labels.max()) + 1
    sums = np.bincount(labels.ravel(), weights=np.where(v, pix, 0).ravel(), minlength=nlab)
    cnt = np.bincount(labels.ravel(), weights=v.ravel().astype(np.float64), minlength=nlab)
    seg_score = (sums / np.maximum(cnt, 1)).astype(np.float32)
    score = seg_score[labels]
    t = otsu_threshold(pix[v]) if params.threshold is None else float(params.threshold)
    return _finish(score.astype(np.float32), t, a, b, params, "rgb-objects")


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
    m = method or params.change_method
    if m in ("auto", "builtup", "contrast-objects"):
        m = AUTO_CHANGE.get(a.kind, "cva")
    if m not in METHODS:
        raise ConfigError(f"[detect] change_method: unknown method {m!r}; use one of "
                          f"{', '.join(METHODS)}")
    check_same_grid(a.grid, b.grid, what=f"{b.source_id or b.date} vs {a.source_id or a.date}")
    if a.bands != b.bands:
        raise BandError(f"{b.source_id or b.date}: bands {', '.join(b.bands)} differ from "
                        f"{a.source_id or a.date}'s ({', '.join(a.bands)}); set [source] bands "
                        "so that every date has the same ones")
    if m == "imad":
        return _imad_change(a, b, params)
    if m == "cva":
        return _cva_change(a, b, params)
    if m == "index-diff":
        return _index_diff_change(a, b, params)
    if m == "pcc":
        return _pcc_change(a, b, params)
    if m == "learned":
        from geo.models import learned_change

        prob, t = learned_change(a, b)
        return change_map_from_probability(prob, t, a, b, params=params, method="learned")
    return _rgb_objects_change(a, b, params)
