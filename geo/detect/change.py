"""Pixel change methods between two dates and their shared finish (pure numpy/scikit-image).

``imad``, ``cva``, ``index-diff``, ``pcc`` and ``rgb-objects`` live here; ``learned`` in
:mod:`geo.detect.learned`. Every method ends in :func:`finish` (score over a threshold, then
:func:`ignorable` pixels dropped and the object cleanup) or in
:func:`geo.detect.common.change_map_from_probability` (a 0..1 probability over a threshold).

The ``UPPER_CASE`` tuning constants keep the values they had inline in the former single-file
``geo/detect.py`` (no behaviour change). They are hand-set defaults, checked against the
SYNTHETIC demo and the shared real benchmarks of docs/detection.md, not fitted values; where
more is known about a value, its docstring says so.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from skimage import segmentation

from geo.config import DetectParams
from geo.detect.buildings import building_mask
from geo.detect.common import (
    ChangeMap,
    change_map_from_probability,
    change_radius,
    cleanup_mask,
    otsu_threshold,
)
from geo.detect.indices import (
    VEG_EXG,
    brightness,
    excess_green,
    local_std,
    ndvi,
    normalized_difference,
    sobel_magnitude,
    visible,
)
from geo.geoarray import GeoArray
from geo.normalize import imad, normalize_to

__all__ = [
    "cva_change",
    "cva_magnitude",
    "dark_thresholds",
    "finish",
    "ignorable",
    "imad_change",
    "index_diff_change",
    "pcc_change",
    "rgb_objects_change",
]

IMAD_P = 0.99
"""iMAD: chi-square no-change probability above which a pixel changed (the classic 99 %)."""
SHADOW_MAX_RATIO = 2.5
"""A change whose brighter date is less than this many times brighter can be a cast shadow; a
bright new roof on dark ground is brighter still."""
SHADOW_MAX_CHROMA = 0.15
"""A shadow keeps the chromaticity: each channel's share of brightness moves less than this."""
SHADOW_QUANTILE = 0.5
"""A date's dark class is the Otsu split of its brightness at or below this quantile."""
CVA_SMOOTH_M = 1.5
"""``cva``: Gaussian smoothing of the change magnitude, metres (speckle into objects) ..."""
CVA_SMOOTH_MIN_PX = 0.5
"""... and at least this many pixels."""
INDEX_DIFF_SMOOTH_PX = 1.0
"""``index-diff``: Gaussian smoothing of the index-change score, pixels."""
LOG_OFFSET = 1e-3
"""``index-diff``: the heavy-tailed score is split by Otsu on ``log(score + LOG_OFFSET)``."""
MAD_TO_SD = 1.4826
"""Median absolute deviation to standard deviation of a normal distribution."""
PCC_CHANGED_P = 0.75
"""``pcc``: probability given to pixels whose building masks differ ..."""
PCC_AMBIGUOUS_P = 0.4
"""... and to pixels where only the stricter alternative masks differ (boundary ambiguity)."""
SEG_TEXTURE_SIGMA_PX = 2.0
"""``rgb-objects`` change: scale of the local-std texture feature, pixels."""
SEG_EDGE_WEIGHT = 0.5
"""``rgb-objects`` change: weight of the edge change next to colour and texture change."""
SEG_MIN_M2 = 10.0
"""``rgb-objects`` change: smallest Felzenszwalb segment, m² ..."""
SEG_MIN_PX = 8
"""... and pixels."""
SEG_SCALE = 0.5
"""Felzenszwalb ``scale`` (larger: larger segments) on the pair's brightness-scaled stack."""
SEG_SIGMA = 0.8
"""Felzenszwalb pre-smoothing, pixels."""


def _prob_from_score(score: NDArray[np.float32], t: float) -> NDArray[np.float32]:
    """Map a non-negative score to 0..1 with 0.5 at the threshold ``t``."""
    t = max(t, 1e-12)
    return np.asarray(1.0 - np.exp(-np.log(2.0) * (np.maximum(score, 0) / t) ** 2),
                      dtype=np.float32)


def _robust_z(x: NDArray[np.float32], valid: NDArray[np.bool_]) -> NDArray[np.float32]:
    v = x[valid] if valid.any() else x.ravel()
    med = float(np.median(v))
    mad = float(np.median(np.abs(v - med))) * MAD_TO_SD
    return ((x - med) / (mad if mad > 1e-9 else 1.0)).astype(np.float32)


def _dark_threshold(br: NDArray[np.float32], v: NDArray[np.bool_]) -> float | None:
    vals = br[v]
    if vals.size == 0:
        return None
    return otsu_threshold(vals[vals <= np.quantile(vals, SHADOW_QUANTILE)])


def dark_thresholds(a: GeoArray, b: GeoArray) -> tuple[float | None, float | None]:
    """Per date, the brightness below which a pixel is in that date's dark class.

    Otsu on the darker :data:`SHADOW_QUANTILE` of the pixels valid in both dates; None where
    there are none. A streamed run fits them on a pixel sample (:mod:`geo.stream`).
    """
    v = a.valid & b.valid
    return _dark_threshold(visible(a).mean(0), v), _dark_threshold(visible(b).mean(0), v)


def ignorable(a: GeoArray, b: GeoArray,
              dark_t: tuple[float | None, float | None] | None = None) -> NDArray[np.bool_]:
    """Pixels whose change looks like shadow or season, not construction.

    Shadow: the darker date is in that date's dark class (``dark_t``, default
    :func:`dark_thresholds` of ``a`` and ``b``), the chromaticity is
    unchanged and the brighter date is less than :data:`SHADOW_MAX_RATIO` times brighter (a
    cast shadow, not a bright new roof on dark ground). Season: vegetated (excess
    green) in both dates.
    """
    ra, rb = visible(a), visible(b)
    ba, bb = ra.mean(0), rb.mean(0)
    ts = dark_thresholds(a, b) if dark_t is None else dark_t
    dark = [np.zeros(ba.shape, bool) if t is None else br < t
            for br, t in zip((ba, bb), ts, strict=True)]
    ca = ra / np.maximum(ba, 1e-6)
    cb = rb / np.maximum(bb, 1e-6)
    same_chroma = np.abs(ca - cb).max(0) < SHADOW_MAX_CHROMA
    ratio = np.maximum(ba, bb) / np.maximum(np.minimum(ba, bb), 1e-6)
    darker_is_dark = np.where(ba <= bb, dark[0], dark[1])
    shadow = darker_is_dark & same_chroma & (ratio < SHADOW_MAX_RATIO)
    seasonal = (excess_green(ra) > VEG_EXG) & (excess_green(rb) > VEG_EXG)
    out: NDArray[np.bool_] = shadow | seasonal
    return out


def finish(score: NDArray[np.float32], t: float, a: GeoArray, b: GeoArray,
           params: DetectParams, method: str, *, ignore: bool = True,
           dark_t: tuple[float | None, float | None] | None = None) -> ChangeMap:
    """A non-negative change score over ``t``, less :func:`ignorable` pixels, cleaned up."""
    v = a.valid & b.valid
    prob = np.where(v, _prob_from_score(score, t), 0.0).astype(np.float32)
    raw = (score > t) & v
    if ignore:
        raw &= ~ignorable(a, b, dark_t)
    mask = cleanup_mask(raw, res_m=a.grid.res_m, pixel_area_m2=a.grid.pixel_area_m2,
                        params=params, valid=v, radius_px=change_radius(params, a.grid.res_m))
    return ChangeMap(probability=prob, mask=mask, method=method)


def _no_alpha(ga: GeoArray) -> list[int]:
    return [i for i, r in enumerate(ga.bands) if r != "alpha"]


def imad_change(a: GeoArray, b: GeoArray, params: DetectParams) -> ChangeMap:
    """``imad``: iMAD chi-square change probability over :data:`IMAD_P` (:mod:`geo.normalize`)."""
    use = _no_alpha(a)
    res = imad(a.data[use], b.data[use], a.valid & b.valid)
    return change_map_from_probability(res.change_prob, IMAD_P, a, b, params=params,
                                       method="imad", exclude=ignorable(a, b))


def cva_magnitude(a: GeoArray, bn: GeoArray) -> NDArray[np.float32]:
    """CVA score: the smoothed length of the band difference ``bn - a`` (``bn`` normalised).

    The smoothing (:data:`CVA_SMOOTH_M`, at least :data:`CVA_SMOOTH_MIN_PX`) reaches 4 sigma.
    """
    use = _no_alpha(a)
    d = bn.data[use] - a.data[use]
    mag = np.sqrt((d * d).sum(0)).astype(np.float32)
    # a light smoothing turns speckle into objects that survive the cleanup
    out: NDArray[np.float32] = ndimage.gaussian_filter(
        mag, max(CVA_SMOOTH_MIN_PX, CVA_SMOOTH_M / a.grid.res_m))
    return out


def cva_change(a: GeoArray, b: GeoArray, params: DetectParams) -> ChangeMap:
    """``cva``: change-vector magnitude after relative normalisation, plain Otsu."""
    bn, _ = normalize_to(a, b)
    mag = cva_magnitude(a, bn)
    v = a.valid & b.valid
    # plain Otsu (the classic CVA baseline), no noise floor
    t = otsu_threshold(mag[v]) if params.threshold is None else float(params.threshold)
    return finish(mag, t, a, b, params, "cva")


def _indices(ga: GeoArray) -> list[NDArray[np.float32]]:
    """Brightness, NDVI and NDBI (with NIR/SWIR), else brightness and excess green."""
    out: list[NDArray[np.float32]] = [brightness(ga)]
    if ga.has("nir", "red"):
        out.append(ndvi(ga))
        if ga.has("swir16"):
            out.append(normalized_difference(ga.band("swir16"), ga.band("nir")))
    elif ga.has("red", "green", "blue"):
        out.append(excess_green(visible(ga)))
    return out


def index_diff_change(a: GeoArray, b: GeoArray, params: DetectParams) -> ChangeMap:
    """``index-diff``: RMS of robust z-scores of the index differences, Otsu on a log scale."""
    bn, _ = normalize_to(a, b)
    v = a.valid & b.valid
    zs = [_robust_z(ib - ia, v) for ia, ib in zip(_indices(a), _indices(bn), strict=True)]
    score = np.sqrt(np.mean([z * z for z in zs], axis=0)).astype(np.float32)
    score = ndimage.gaussian_filter(score, INDEX_DIFF_SMOOTH_PX)
    if params.threshold is None:
        # the score is heavy-tailed: split it on a log scale
        t = float(np.exp(otsu_threshold(np.log(score[v] + LOG_OFFSET)))) - LOG_OFFSET
    else:
        t = float(params.threshold)
    return finish(score, t, a, b, params, "index-diff")


def pcc_change(a: GeoArray, b: GeoArray, params: DetectParams) -> ChangeMap:
    """``pcc``: post-classification comparison of the two dates' building masks."""
    p = DetectParams(method=params.method, min_area_m2=params.min_area_m2,
                     connectivity=params.connectivity, opening_m=params.opening_m)
    ma = building_mask(a, p)
    mb = building_mask(b, p)
    raw = ma.mask ^ mb.mask
    v = a.valid & b.valid
    prob = (0.5 * (ma.mask.astype(np.float32) + (ma.mask ^ mb.mask))).astype(np.float32)
    prob = np.where(raw, np.maximum(prob, PCC_CHANGED_P),
                    np.where(ma.alt_mask ^ mb.alt_mask, PCC_AMBIGUOUS_P, 0.0))
    mask = cleanup_mask(raw, res_m=a.grid.res_m, pixel_area_m2=a.grid.pixel_area_m2,
                        params=params, valid=v)
    return ChangeMap(probability=np.where(v, prob, 0).astype(np.float32), mask=mask, method="pcc")


def _segment_features(a: GeoArray, bn: GeoArray) -> NDArray[np.float32]:
    """Per-pixel change features: colour difference, texture and edge difference."""
    ra, rb = visible(a), visible(bn)
    scale = max(float(np.median(ra.mean(0)[a.valid])) if a.valid.any() else 1.0, 1e-6)
    ra, rb = ra / scale, rb / scale
    col = np.sqrt(((rb - ra) ** 2).sum(0))
    ga_, gb_ = ra.mean(0), rb.mean(0)
    tex = np.abs(local_std(gb_, SEG_TEXTURE_SIGMA_PX) - local_std(ga_, SEG_TEXTURE_SIGMA_PX))
    ed = np.abs(sobel_magnitude(gb_) - sobel_magnitude(ga_))
    return np.stack([col, tex, ed]).astype(np.float32)


def _segments(a: GeoArray, bn: GeoArray, v: NDArray[np.bool_]) -> NDArray[np.intp]:
    """Felzenszwalb segments of the pair (both dates' brightness and their colour change)."""
    ra, rb = visible(a), visible(bn)
    scale = max(float(np.median(ra.mean(0)[v])) if v.any() else 1.0, 1e-6)
    stack = np.stack([ra.mean(0), rb.mean(0), np.sqrt(((rb - ra) ** 2).sum(0))]) / scale
    stack = stack.transpose(1, 2, 0)
    min_px = max(SEG_MIN_PX, round(SEG_MIN_M2 / a.grid.pixel_area_m2))
    labels: NDArray[np.intp] = segmentation.felzenszwalb(
        stack, scale=SEG_SCALE, sigma=SEG_SIGMA, min_size=min_px, channel_axis=-1)
    return labels


def rgb_objects_change(a: GeoArray, b: GeoArray, params: DetectParams) -> ChangeMap:
    """``rgb-objects``: colour, texture and edge change averaged over segments of the pair."""
    bn, _ = normalize_to(a, b)
    v = a.valid & b.valid
    feats = _segment_features(a, bn)
    # colour change plus texture and edge change, all in units of the scene's median brightness
    pix = (feats[0] + feats[1] + SEG_EDGE_WEIGHT * feats[2]).astype(np.float32)
    labels = _segments(a, bn, v)
    nlab = int(labels.max()) + 1
    sums = np.bincount(labels.ravel(), weights=np.where(v, pix, 0).ravel(), minlength=nlab)
    cnt = np.bincount(labels.ravel(), weights=v.ravel().astype(np.float64), minlength=nlab)
    seg_score = (sums / np.maximum(cnt, 1)).astype(np.float32)
    score = seg_score[labels]
    t = otsu_threshold(pix[v]) if params.threshold is None else float(params.threshold)
    return finish(score.astype(np.float32), t, a, b, params, "rgb-objects")
