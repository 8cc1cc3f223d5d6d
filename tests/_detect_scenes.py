"""SYNTHETIC scenes for the detection tests (small, fast, exact truth)."""

from __future__ import annotations

import numpy as np
from affine import Affine
from numpy.typing import NDArray
from scipy import ndimage

from geo.geoarray import GeoArray
from geo.grid import Grid


def grid(shape: tuple[int, int] = (160, 160), res_m: float = 1.0) -> Grid:
    return Grid(crs="EPSG:32633", transform=Affine(res_m, 0, 400000, 0, -res_m, 5000000),
                shape=shape)


def rgb_pair(
    *, shape: tuple[int, int] = (160, 160), seed: int = 0, gain: float = 1.15,
    offset: float = 0.02, noise: float = 0.01,
) -> tuple[GeoArray, GeoArray, NDArray[np.bool_]]:
    """Two RGB dates: vegetation + road + one old hall; a new hall and a demolition in B.

    Returns (a, b, truth_change).
    """
    rng = np.random.default_rng(seed)
    tex = ndimage.gaussian_filter(rng.standard_normal(shape), 4.0)
    tex /= tex.std()
    base = np.stack([0.07 + 0.01 * tex, 0.13 + 0.015 * tex, 0.05 + 0.008 * tex])
    base[:, 100:107, :] = np.array([0.33, 0.33, 0.34])[:, None, None]  # road, 7 m wide
    old = np.zeros(shape, bool)
    old[20:60, 20:70] = True
    gone = np.zeros(shape, bool)
    gone[20:50, 100:140] = True
    new = np.zeros(shape, bool)
    new[115:150, 30:110] = True
    a = base.copy()
    b = base.copy()
    for img, m, rgb in ((a, old, (0.58, 0.58, 0.6)), (b, old, (0.58, 0.58, 0.6)),
                        (a, gone, (0.6, 0.32, 0.28)), (b, new, (0.5, 0.55, 0.62))):
        img[:, m] = np.array(rgb)[:, None]
    a = a + rng.normal(0, noise, a.shape)
    b = b * gain + offset + rng.normal(0, noise, b.shape)
    g = grid(shape)
    valid = np.ones(shape, bool)
    ga = GeoArray(data=a.astype(np.float32), valid=valid, grid=g, date="2020-01-01",
                  bands=("red", "green", "blue"), kind="rgb")
    gb = GeoArray(data=b.astype(np.float32), valid=valid.copy(), grid=g, date="2021-01-01",
                  bands=("red", "green", "blue"), kind="rgb")
    return ga, gb, gone | new


def ms_pair(shape: tuple[int, int] = (96, 96), seed: int = 1) -> tuple[
        GeoArray, GeoArray, NDArray[np.bool_]]:
    """Two 10 m multispectral dates (blue, green, red, nir, swir16); a new built-up block in B."""
    rng = np.random.default_rng(seed)
    veg = np.array([0.04, 0.07, 0.05, 0.35, 0.18])
    built = np.array([0.12, 0.13, 0.15, 0.22, 0.28])
    tex = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    tex /= tex.std()
    a = veg[:, None, None] * (1 + 0.05 * tex)
    b = a.copy()
    new = np.zeros(shape, bool)
    new[30:60, 40:80] = True
    b[:, new] = built[:, None]
    a = a + rng.normal(0, 0.005, a.shape)
    b = b * 1.1 + rng.normal(0, 0.005, b.shape)
    g = grid(shape, 10.0)
    valid = np.ones(shape, bool)
    bands = ("blue", "green", "red", "nir", "swir16")
    ga = GeoArray(data=a.astype(np.float32), valid=valid, grid=g, date="2020-06-01",
                  bands=bands, kind="multispectral")
    gb = GeoArray(data=b.astype(np.float32), valid=valid.copy(), grid=g, date="2021-06-01",
                  bands=bands, kind="multispectral")
    return ga, gb, new


def f1(pred: NDArray[np.bool_], truth: NDArray[np.bool_]) -> float:
    tp = int((pred & truth).sum())
    fp = int((pred & ~truth).sum())
    fn = int((~pred & truth).sum())
    return 2 * tp / max(2 * tp + fp + fn, 1)
