"""Band math in one place: spectral indices, brightness, colour, texture and edges (pure numpy).

Every module that needs NDVI, a normalised difference, brightness, the visible bands, excess
green or an edge/texture image calls these (detection, roofs, the learned model's features,
the timeline statistics, the guided absence test, co-registration), so that one formula has one
implementation.

Examples
--------
>>> import numpy as np
>>> nir, red = np.array([0.4, 0.1], np.float32), np.array([0.1, 0.1], np.float32)
>>> [round(float(x), 2) for x in normalized_difference(nir, red)]
[0.6, 0.0]
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from geo.geoarray import GeoArray

__all__ = [
    "ND_EPS",
    "VEG_EXG",
    "brightness",
    "builtup_index",
    "excess_green",
    "excess_green_soft",
    "local_std",
    "ndvi",
    "normalized_difference",
    "sobel_magnitude",
    "visible",
]

ND_EPS = 1e-6
"""Floor of the denominator of a normalised difference (reflectance units): no 0/0 on nodata."""
VEG_EXG = 0.08
"""Excess green above which an RGB pixel is vegetation (building masks, seasonal change, and the
``max_ndvi`` of ``contrast-objects`` without NIR); chosen on the SYNTHETIC demo and LEVIR-CD."""
EXG_SOFT_EPS = 1e-3
"""Offset added to ``r + g + b`` by :func:`excess_green_soft` (the learned model's features)."""


def _f32(x: object) -> NDArray[np.float32]:
    return np.asarray(x, dtype=np.float32)


def normalized_difference(a: NDArray[np.floating], b: NDArray[np.floating], *,
                          eps: float | None = ND_EPS) -> NDArray[np.float32]:
    """``(a - b) / (a + b)``, the denominator floored at ``eps`` (``None``: NaN/inf at 0)."""
    if eps is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            return _f32((a - b) / (a + b))
    return _f32((a - b) / np.maximum(a + b, eps))


def ndvi(ga: GeoArray, *, eps: float | None = ND_EPS) -> NDArray[np.float32]:
    """NDVI ``(nir - red) / (nir + red)`` of a date with ``nir`` and ``red`` bands."""
    return normalized_difference(ga.band("nir"), ga.band("red"), eps=eps)


def builtup_index(ga: GeoArray) -> NDArray[np.float32]:
    """NDBI - NDVI with ``swir16``, else -NDVI: higher is more built-up (``builtup`` score)."""
    nir = ga.band("nir").astype(np.float32)
    red = ga.band("red").astype(np.float32)
    veg = normalized_difference(nir, red)
    if ga.has("swir16"):
        ndbi = normalized_difference(ga.band("swir16").astype(np.float32), nir)
        return _f32(ndbi - veg)
    return _f32(-veg)


def brightness(ga: GeoArray) -> NDArray[np.float32]:
    """Single brightness band: pan, else the mean of the visible bands (else of the first three).

    Parameters
    ----------
    ga : GeoArray
        Any imagery kind.

    Returns
    -------
    ndarray of float32, shape (rows, cols)
    """
    if ga.has("pan"):
        return ga.band("pan").astype(np.float32)
    vis: list[str] = [r for r in ("red", "green", "blue") if r in ga.bands]
    if not vis:
        vis = [b for b in ga.bands if b != "alpha"][:3]
    out: NDArray[np.float32] = np.mean([ga.band(r) for r in vis], axis=0).astype(np.float32)
    return out


def visible(ga: GeoArray) -> NDArray[np.float32]:
    """``(3, rows, cols)`` red, green, blue (the brightness repeated when there is no colour)."""
    if ga.has("red", "green", "blue"):
        return np.stack([ga.band("red"), ga.band("green"), ga.band("blue")]).astype(np.float32)
    b = brightness(ga)
    return np.stack([b, b, b])


def excess_green(rgb: NDArray[np.float32]) -> NDArray[np.float32]:
    """Excess-green chromaticity index ``(2g - r - b) / (r + g + b)`` (0 where the sum is 0)."""
    r, g, b = rgb
    s = r + g + b
    return np.where(s > ND_EPS, (2 * g - r - b) / np.maximum(s, ND_EPS), 0.0).astype(np.float32)


def excess_green_soft(rgb: NDArray[np.float32]) -> NDArray[np.float32]:
    """``(2g - r - b) / (r + g + b + 0.001)``, the learned model's excess green.

    Kept bit-identical to the features the model was trained on.
    """
    t = rgb.sum(0) + EXG_SOFT_EPS
    out: NDArray[np.float32] = (2 * rgb[1] - rgb[0] - rgb[2]) / t
    return out


def local_std(img: NDArray[np.float32], sigma: float) -> NDArray[np.float32]:
    """Gaussian-weighted local standard deviation (texture) at scale ``sigma`` pixels."""
    m = ndimage.gaussian_filter(img, sigma)
    m2 = ndimage.gaussian_filter(img * img, sigma)
    return _f32(np.sqrt(np.maximum(m2 - m * m, 0.0)))


def sobel_magnitude(img: NDArray[np.float32]) -> NDArray[np.float32]:
    """Sobel gradient magnitude over 8 (a unit step gives about 0.5)."""
    return _f32(np.hypot(ndimage.sobel(img, 0), ndimage.sobel(img, 1)) / 8.0)
