"""SYNTHETIC Sentinel-2-like factory scenes with known hall areas (pure numpy/shapely).

Everything made here is SYNTHETIC and must be labelled so by whoever writes it out.

A layout is a set of land-cover rectangles in local metres (``x`` east, ``y`` south from the
top-left corner), painted in order over a vegetated background: fields, a gravel yard, roads,
then the halls. Each class has a Sentinel-2-like reflectance in the bands
``blue, green, red, nir, swir16``. A date is rendered at a fine step (1 m), block-averaged to
the sensor pixel (area-weighted edge pixels), blurred with a Gaussian point-spread function,
shifted by a per-date sub-pixel misregistration, scaled by a per-date radiometric gain and
given Gaussian noise. The truth area of each hall is the area of its rectangles.

:func:`issue12_factory` is the layout of issue 12: a 120 x 80 m neighbour and a new hall of
90 x 60 -> 150 x 90 -> 200 x 110 m on a gravel yard among bare fields, 50 m apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = ["BANDS", "SPECTRA", "FactoryLayout", "issue12_factory", "render_factory"]

Rect = tuple[float, float, float, float]  # x0, y0, x1, y1 in metres (local, y down)

BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir16")
"""Band roles of the rendered images, in order."""

SPECTRA: dict[str, tuple[float, float, float, float, float]] = {
    "vegetation": (0.035, 0.065, 0.045, 0.34, 0.19),
    "bare_field": (0.075, 0.105, 0.145, 0.22, 0.30),
    "gravel": (0.130, 0.150, 0.175, 0.23, 0.29),
    "road": (0.080, 0.090, 0.100, 0.12, 0.15),
    "roof_grey": (0.200, 0.215, 0.230, 0.27, 0.29),
    "roof_blue": (0.150, 0.170, 0.160, 0.21, 0.23),
}
"""Reflectance per land-cover class (blue, green, red, nir, swir16), typical S2 L2A values."""


@dataclass(frozen=True, kw_only=True)
class FactoryLayout:
    """A SYNTHETIC multi-date factory site."""

    size_m: tuple[float, float] = (1000.0, 800.0)
    """Scene ``(width, height)`` in metres."""
    dates: tuple[str, ...] = ()
    ground: tuple[tuple[str, Rect], ...] = ()
    """Static land cover ``(class, rect)``, painted in order over vegetation."""
    halls: dict[str, dict[str, tuple[Rect, ...]]] = field(default_factory=dict)
    """Hall name -> date -> rectangles (absent dates: no hall)."""
    roof: dict[str, str] = field(default_factory=dict)
    """Hall name -> spectral class of its roof (default ``roof_grey``)."""

    def truth_area_m2(self, hall: str, date: str) -> float:
        """True roof area of ``hall`` on ``date`` (rectangles assumed disjoint), m²."""
        return float(sum((x1 - x0) * (y1 - y0)
                         for x0, y0, x1, y1 in self.halls[hall].get(date, ())))

    def centre(self, hall: str, date: str) -> tuple[float, float]:
        """Centre ``(x, y)`` of the hall's first rectangle on ``date``, local metres."""
        x0, y0, x1, y1 = self.halls[hall][date][0]
        return (x0 + x1) / 2.0, (y0 + y1) / 2.0


def issue12_factory(dates: tuple[str, ...] = ("2021-04-10", "2022-04-15", "2023-04-12"),
                    *, new_hall_roof: str = "roof_grey") -> FactoryLayout:
    """The factory of issue 12 (SYNTHETIC): new hall / neighbour = 0.56, 1.41, 2.29.

    The neighbour ``A`` is 120 x 80 m (9,600 m²); the new hall ``B`` 50 m east of it grows
    90 x 60 (5,400 m²) -> 150 x 90 (13,500 m²) -> 200 x 110 m (22,000 m²). Both stand on a
    gravel yard, with bare fields north and south and a road along the yard.
    """
    a = ((250.0, 300.0, 370.0, 380.0),)
    sizes = ((90.0, 60.0), (150.0, 90.0), (200.0, 110.0))
    halls: dict[str, dict[str, tuple[Rect, ...]]] = {"A": dict.fromkeys(dates, a), "B": {}}
    for i, d in enumerate(dates):
        w, h = sizes[min(i, len(sizes) - 1)]
        halls["B"][d] = ((420.0, 300.0, 420.0 + w, 300.0 + h),)
    ground = (
        ("bare_field", (80.0, 60.0, 920.0, 230.0)),
        ("bare_field", (80.0, 520.0, 920.0, 740.0)),
        ("gravel", (190.0, 250.0, 690.0, 470.0)),
        ("road", (60.0, 480.0, 940.0, 492.0)),
    )
    return FactoryLayout(dates=dates, ground=ground, halls=halls,
                         roof={"A": "roof_grey", "B": new_hall_roof})


def _cover_1d(lo: float, hi: float, n: int, step: float) -> NDArray[np.float64]:
    edges = np.arange(n + 1) * step
    cov: NDArray[np.float64] = np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo),
                                       0, None) / step
    return cov


def _cover(rect: Rect, shape: tuple[int, int], step: float) -> NDArray[np.float64]:
    x0, y0, x1, y1 = rect
    return np.outer(_cover_1d(y0, y1, shape[0], step), _cover_1d(x0, x1, shape[1], step))


def render_factory(layout: FactoryLayout, *, res_m: float = 10.0, psf_sigma_px: float = 0.5,
                   noise_sd: float = 0.004, max_shift_px: float = 0.3, gain_sd: float = 0.04,
                   seed: int = 0, fine_m: float = 1.0) -> list[NDArray[np.float32]]:
    """Render every date of ``layout`` as a ``(5, rows, cols)`` float32 reflectance array.

    Parameters
    ----------
    layout : FactoryLayout
        What stands where, per date.
    res_m : float
        Sensor pixel size (10 m: Sentinel-2).
    psf_sigma_px : float
        1-sigma width of the Gaussian point-spread function, in sensor pixels.
    noise_sd : float
        Gaussian noise, reflectance units.
    max_shift_px : float
        Per-date misregistration, uniform in ``±max_shift_px`` sensor pixels on each axis.
    gain_sd : float
        Per-date radiometric gain, 1-sigma around 1.
    seed : int
        Random seed (textures, shifts, gains, noise).
    fine_m : float
        Rendering step before block-averaging to ``res_m`` (must divide it).

    Returns
    -------
    list of ndarray
        One image per date of ``layout.dates``, bands :data:`BANDS`. SYNTHETIC.
    """
    k = round(res_m / fine_m)
    w, h = layout.size_m
    rows, cols = round(h / res_m), round(w / res_m)
    fine = (rows * k, cols * k)
    rng = np.random.default_rng(seed)
    tex = ndimage.gaussian_filter(rng.standard_normal(fine), 25.0 / fine_m)
    tex = tex / (tex.std() + 1e-9)
    base = np.asarray(SPECTRA["vegetation"])[:, None, None] * (1 + 0.08 * tex)
    for cls, rect in layout.ground:
        c = _cover(rect, fine, fine_m)
        base = base * (1 - c) + c * np.asarray(SPECTRA[cls])[:, None, None] * (1 + 0.04 * tex)
    out: list[NDArray[np.float32]] = []
    for date in layout.dates:
        img = base.copy()
        for name, by_date in layout.halls.items():
            spec = np.asarray(SPECTRA[layout.roof.get(name, "roof_grey")])[:, None, None]
            for rect in by_date.get(date, ()):
                c = _cover(rect, fine, fine_m)
                img = img * (1 - c) + c * spec
        dy, dx = rng.uniform(-max_shift_px, max_shift_px, 2) * k
        img = ndimage.shift(img, (0, dy, dx), order=1, mode="nearest")
        coarse = img.reshape(5, rows, k, cols, k).mean((2, 4))
        coarse = ndimage.gaussian_filter(coarse, (0, psf_sigma_px, psf_sigma_px), mode="nearest")
        gain = 1.0 + gain_sd * rng.standard_normal()
        coarse = coarse * gain + rng.normal(0.0, noise_sd, coarse.shape)
        out.append(np.clip(coarse, 0, 1).astype(np.float32))
    return out
