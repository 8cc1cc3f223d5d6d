"""SYNTHETIC construction stacks for :mod:`geo.timeline` tests and benchmarks.

Pure compute. One industrial hall (an axis-aligned rectangle) on a cropland patch; each scene
is drawn at 10 m and, for Landsat, block-averaged to 30 m. The hall goes vegetated → cleared
(bare soil) → construction (soil, concrete and steel, concrete share growing) → roofed on the
dates of a :class:`History`. Every scene has per-band haze and gain (scene-wide), pixel noise,
seasonal cropland greenness and cloud: opaque blobs in the ``valid`` mask, and now and then
a thin veil that the mask misses. SYNTHETIC: not real imagery.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from affine import Affine
from numpy.typing import NDArray
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from geo.geoarray import GeoArray
from geo.grid import Grid

__all__ = ["BANDS", "SPECTRA", "History", "draw_history", "outline", "scene", "stack"]

BANDS = ("blue", "green", "red", "nir", "swir16")
SPECTRA: dict[str, tuple[float, ...]] = {
    "veg": (0.04, 0.08, 0.05, 0.38, 0.18),
    "crop_bare": (0.08, 0.11, 0.14, 0.20, 0.26),
    "soil": (0.10, 0.14, 0.19, 0.25, 0.33),
    "concrete": (0.20, 0.22, 0.24, 0.27, 0.30),
    "steel": (0.12, 0.12, 0.12, 0.13, 0.13),
    "metal_roof": (0.28, 0.29, 0.29, 0.30, 0.28),
    "dark_roof": (0.10, 0.10, 0.10, 0.11, 0.10),
    "white_roof": (0.45, 0.46, 0.46, 0.45, 0.40),
    "soil_roof": (0.11, 0.14, 0.20, 0.25, 0.32),
}
"""Reflectance (blue, green, red, nir, swir16) of the cover types, typical library values."""
_ORIGIN = (500_000.0, 5_000_000.0)
_PATCH_M = 300.0
_CRS = "EPSG:32633"


@dataclass(frozen=True)
class History:
    """Dates the hall changed (ISO); ``roof`` is the roof material (a key of SPECTRA)."""

    cleared: str
    construction: str
    roofed: str
    roof: str = "metal_roof"


def outline() -> BaseGeometry:
    """The hall: 120 m × 80 m in the middle of the patch."""
    x0, y0 = _ORIGIN
    return box(x0 + 90, y0 - 190, x0 + 210, y0 - 110)


def draw_history(rng: np.random.Generator, start: str, years: float,
                 roofs: tuple[str, ...] = ("metal_roof", "dark_roof", "white_roof")) -> History:
    """Random history inside ``[start, start + years]``.

    Clearing in the first half, then 1–6 months of bare soil and 3–12 of construction.
    """
    s = dt.date.fromisoformat(start)
    c = s + dt.timedelta(days=float(rng.uniform(0.15, 0.5) * years * 365))
    k = c + dt.timedelta(days=float(rng.uniform(30, 180)))
    r = k + dt.timedelta(days=float(rng.uniform(90, 365)))
    return History(c.isoformat(), k.isoformat(), r.isoformat(), str(rng.choice(roofs)))


def _greenness(date: str, phase: float) -> float:
    doy = dt.date.fromisoformat(date).timetuple().tm_yday
    return float(0.55 + 0.45 * np.cos(2 * np.pi * (doy - 190 - phase) / 365.25))


def _inside_spectrum(h: History | None, date: str, g: float) -> np.ndarray:
    veg = g * np.array(SPECTRA["veg"]) + (1 - g) * np.array(SPECTRA["crop_bare"])
    if h is None or date < h.cleared:
        return veg
    if date < h.construction:
        return np.array(SPECTRA["soil"])
    if date < h.roofed:
        total = (dt.date.fromisoformat(h.roofed) - dt.date.fromisoformat(h.construction)).days
        f = (dt.date.fromisoformat(date) - dt.date.fromisoformat(h.construction)).days / total
        conc = 0.2 + 0.4 * f
        return ((0.8 - conc) * np.array(SPECTRA["soil"]) + conc * np.array(SPECTRA["concrete"])
                + 0.2 * np.array(SPECTRA["steel"]))
    return np.array(SPECTRA[h.roof])


def _clouds(rng: np.random.Generator, n: int, cover: float) -> NDArray[np.bool_]:
    """Cloud mask (True = cloud) of a few round blobs covering about ``cover``."""
    yy, xx = np.mgrid[0:n, 0:n]
    cloud = np.zeros((n, n), bool)
    if cover <= 0:
        return cloud
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(-0.2, 1.2, 2) * n
        r = n * np.sqrt(cover / np.pi) * rng.uniform(0.7, 1.4)
        cloud |= np.asarray((yy - cy) ** 2 + (xx - cx) ** 2 < r * r)
    return cloud


def scene(rng: np.random.Generator, h: History | None, date: str, *, sensor: str = "s2",
          cloud_cover: float = 0.0, veil: bool = False, crop_phase: float = 0.0) -> GeoArray:
    """One SYNTHETIC scene of the patch on ``date``.

    ``sensor`` ``s2``: 10 m; ``landsat``: 30 m with its own gain.
    """
    n = int(_PATCH_M / 10)
    g = _greenness(date, crop_phase)
    veg = g * np.array(SPECTRA["veg"]) + (1 - g) * np.array(SPECTRA["crop_bare"])
    img = np.broadcast_to(veg[:, None, None], (5, n, n)).copy()
    img[:, 11:19, 9:21] = _inside_spectrum(h, date, g)[:, None, None]
    gain = 1.0 + (0.04 if sensor == "landsat" else 0.0) + rng.normal(0, 0.02, 5)
    haze = np.abs(rng.normal(0, 0.015, 5)) * np.array([2.0, 1.5, 1.2, 0.8, 0.5])
    img = img * gain[:, None, None] + haze[:, None, None] + rng.normal(0, 0.012, img.shape)
    cloud = _clouds(rng, n, cloud_cover)
    img[:, cloud] = 0.6
    if veil:  # thin cloud the mask misses
        img += (0.04 * _clouds(rng, n, 0.5))[None]
    res = 10.0
    if sensor == "landsat":
        img = img.reshape(5, n // 3, 3, n // 3, 3).mean(axis=(2, 4))
        cloud = np.asarray(cloud.reshape(n // 3, 3, n // 3, 3).any(axis=(1, 3)), bool)
        res = 30.0
    grid = Grid(crs=_CRS, transform=Affine(res, 0, _ORIGIN[0], 0, -res, _ORIGIN[1]),
                shape=(img.shape[1], img.shape[2]))
    return GeoArray(data=img.astype(np.float32), valid=~cloud, grid=grid, date=date,
                    bands=BANDS, source_id=sensor)


def _acquisitions(start: str, years: float, s2_days: float, landsat: bool
                  ) -> list[tuple[str, str]]:
    s = dt.date.fromisoformat(start)
    days = int(years * 365.25)
    out = ([((s + dt.timedelta(days=int(d))).isoformat(), "s2")
            for d in np.arange(0, days, s2_days)] if s2_days > 0 else [])
    if landsat:
        out += [((s + dt.timedelta(days=int(d) + 3)).isoformat(), "landsat")
                for d in np.arange(0, days, 16)]
    return sorted(out)


def stack(rng: np.random.Generator, h: History | None, *, start: str = "2020-01-01",
          years: float = 3.0, s2_days: float = 5.0, landsat: bool = True,
          cloudiness: float = 0.5, winter_cloud: float = 0.25) -> list[GeoArray]:
    """A SYNTHETIC stack of ``years`` from ``start``.

    Sentinel-2 every ``s2_days`` (none when ≤ 0) and (when ``landsat``) Landsat every 16 days; each
    acquisition is cloud-free, partly cloudy or fully overcast, more often overcast in winter
    (``winter_cloud`` extra probability); fully overcast ones are dropped as an archive's
    cloud filter would. ~3 % carry an unmasked veil.
    """
    out: list[GeoArray] = []
    for date, sensor in _acquisitions(start, years, s2_days, landsat):
        doy = dt.date.fromisoformat(date).timetuple().tm_yday
        p_cloud = min(0.95, cloudiness + winter_cloud * np.cos(2 * np.pi * doy / 365.25))
        if rng.random() < p_cloud * 0.7:
            continue  # overcast: no usable scene
        cover = float(rng.uniform(0.05, 0.6)) if rng.random() < p_cloud else 0.0
        out.append(scene(rng, h, date, sensor=sensor, cloud_cover=cover,
                         veil=bool(rng.random() < 0.03)))
    return out
