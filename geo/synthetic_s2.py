"""SYNTHETIC Sentinel-2-like 10 m scenes of known buildings on yards and fields (pure).

Everything made here is SYNTHETIC. Scenes are rendered at 1 m from exact polygons (each
1 m cell gets its polygon coverage from a 4x4 sub-sampling), blurred by a Gaussian
point-spread function, shifted by a per-date sub-pixel offset (whole 1 m steps = 0.1 px), and
averaged over 10x10 blocks, so edge pixels are area-weighted; then each date gets its own
gain/offset per band (radiometry) and sensor noise. Ground classes: bare fields (soil),
vegetation, gravel yards around the halls, roofs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from affine import Affine
from numpy.typing import NDArray
from rasterio import features
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

__all__ = ["BANDS", "REFLECTANCE", "S2Scene", "S2Spec", "coverage", "factory_layout", "render_s2"]

BANDS = ("blue", "green", "red", "nir")
REFLECTANCE: dict[str, tuple[float, float, float, float]] = {
    "roof": (0.20, 0.22, 0.25, 0.29),
    "gravel": (0.13, 0.15, 0.18, 0.23),
    "soil": (0.08, 0.11, 0.15, 0.23),
    "vegetation": (0.04, 0.07, 0.05, 0.33),
}
"""Surface reflectance per class and band (blue, green, red, nir); SYNTHETIC, typical values."""


@dataclass(frozen=True, kw_only=True)
class S2Spec:
    """How to render one SYNTHETIC date."""

    size_m: tuple[int, int] = (600, 600)
    """``(width, height)`` in metres (multiples of ``res_m``)."""
    res_m: int = 10
    psf_sigma_px: float = 0.5
    noise: float = 0.006
    """Sensor noise, reflectance units (1 sigma per 10 m pixel and band)."""
    shift_sd_px: float = 0.2
    gain_sd: float = 0.05
    offset_sd: float = 0.005
    texture: float = 0.02
    """Sd of the 1 m ground texture (spatially correlated over ~5 m)."""


@dataclass(frozen=True, kw_only=True)
class S2Scene:
    """One SYNTHETIC date: ``data`` is ``(4, rows, cols)`` float32 on ``transform``."""

    data: NDArray[np.float32]
    transform: Affine
    shift_px: tuple[float, float]


def coverage(geoms: Sequence[BaseGeometry], shape: tuple[int, int], transform: Affine,
             sub: int = 4) -> NDArray[np.float64]:
    """Fraction of each cell covered by the union of ``geoms`` (``sub``x``sub`` sampling)."""
    if not geoms:
        return np.zeros(shape)
    fine = transform * Affine.scale(1.0 / sub)
    r = features.rasterize([(g, 1) for g in geoms if not g.is_empty],
                           out_shape=(shape[0] * sub, shape[1] * sub), transform=fine,
                           dtype="uint8")
    out = r.reshape(shape[0], sub, shape[1], sub).mean(axis=(1, 3))
    return np.asarray(out, dtype=np.float64)


def render_s2(
    layers: Sequence[tuple[str, Sequence[BaseGeometry]]],
    *,
    origin: tuple[float, float],
    spec: S2Spec,
    rng: np.random.Generator,
    cache: dict[int, NDArray[np.float64]] | None = None,
) -> S2Scene:
    """Render one SYNTHETIC Sentinel-2-like date.

    Parameters
    ----------
    layers : sequence of (class, geometries)
        Painted in order on a vegetation background; classes are keys of :data:`REFLECTANCE`.
    origin : (x, y)
        Map coordinates of the top-left corner (metres, y up).
    spec : S2Spec
    rng : Generator
    cache : dict, optional
        Coverage rasters by ``id`` of the geometry sequence, reused across dates.
    """
    w, h = spec.size_m
    pad = 4 * spec.res_m
    fine_shape = (h + 2 * pad, w + 2 * pad)
    fine_t = Affine(1.0, 0, origin[0] - pad, 0, -1.0, origin[1] + pad)
    refl = np.empty((4, *fine_shape))
    refl[:] = np.array(REFLECTANCE["vegetation"])[:, None, None]
    for cls, geoms in layers:
        key = id(geoms)
        cov = cache.get(key) if cache is not None else None
        if cov is None:
            cov = coverage(list(geoms), fine_shape, fine_t)
            if cache is not None:
                cache[key] = cov
        val = np.array(REFLECTANCE[cls])[:, None, None]
        refl = refl * (1.0 - cov) + val * cov
    tex = ndimage.gaussian_filter(rng.standard_normal(fine_shape), 5.0) * spec.texture * 5.0
    refl = refl * (1.0 + tex[None])
    sigma_m = spec.psf_sigma_px * spec.res_m
    blurred = np.stack([ndimage.gaussian_filter(b, sigma_m, mode="nearest") for b in refl])
    sy, sx = (round(float(v)) for v in rng.normal(0.0, spec.shift_sd_px * spec.res_m, 2))
    sy, sx = int(np.clip(sy, -pad, pad)), int(np.clip(sx, -pad, pad))
    win = blurred[:, pad + sy: pad + sy + h, pad + sx: pad + sx + w]
    r = spec.res_m
    coarse = win.reshape(4, h // r, r, w // r, r).mean(axis=(2, 4))
    gain = rng.normal(1.0, spec.gain_sd, (4, 1, 1))
    offset = rng.normal(0.0, spec.offset_sd, (4, 1, 1))
    data = coarse * gain + offset + rng.normal(0.0, spec.noise, coarse.shape)
    transform = Affine(float(r), 0, origin[0], 0, -float(r), origin[1])
    return S2Scene(data=data.astype(np.float32), transform=transform,
                   shift_px=(sx / r, sy / r))


def factory_layout(origin: tuple[float, float], stages: Sequence[tuple[float, float] | None]
                   ) -> tuple[list[list[tuple[str, list[BaseGeometry]]]],
                              list[dict[str, BaseGeometry | None]]]:
    """SYNTHETIC plant: a 120x80 m neighbour "A" and a new hall "B" growing beside it.

    ``stages`` gives hall B's ``(width, depth)`` in metres on each date (None: not built;
    B's site is then bare cleared ground on the dates just before it appears). Both halls stand
    on a gravel yard 50 m apart, with bare fields and vegetation around. Returns the layers of
    every date (for :func:`render_s2`) and the truth polygons (``{"A": ..., "B": ...}``).
    """
    from shapely.geometry import box

    x0, y0 = origin
    a = box(x0 + 150, y0 - 330, x0 + 270, y0 - 250)
    yard = box(x0 + 100, y0 - 420, x0 + 590, y0 - 190)
    fields = [box(x0, y0 - 600, x0 + 600, y0 - 440), box(x0, y0 - 170, x0 + 260, y0)]
    layers, truth = [], []
    first = next((i for i, s in enumerate(stages) if s is not None), len(stages))
    for i, st in enumerate(stages):
        b = None if st is None else box(x0 + 320, y0 - 250 - st[1], x0 + 320 + st[0], y0 - 250)
        lay: list[tuple[str, list[BaseGeometry]]] = [("soil", fields), ("gravel", [yard])]
        if b is None and i >= first - 1 >= 0:
            lay.append(("soil", [box(x0 + 310, y0 - 370, x0 + 530, y0 - 240)]))
        lay.append(("roof", [a] if b is None else [a, b]))
        layers.append(lay)
        truth.append({"A": a, "B": b})
    return layers, truth
