"""Per-AOI quality of a scene from its classification layer. Pure: arrays in, numbers out.

Sentinel-2 L2A ships a scene classification layer (SCL, 20 m); Landsat Collection 2 Level-2
ships a bit-packed ``QA_PIXEL`` band (30 m). Both are read onto the AOI grid (plus a buffer)
with nearest-neighbour resampling, and the functions here turn them into

- a **cloud fraction** of the data pixels inside the AOI (cloud, cirrus and cloud shadow), and
- a **valid fraction** of all AOI pixels (not cloud, shadow, saturated or nodata),

which is what decides whether a scene is usable for *this* AOI, unlike the scene-level
``eo:cloud_cover``.

The classifiers mistake bright, flat roofs (new metal or concrete roofs in particular) for
cloud or snow. :func:`bright_stable_mask` finds pixels that are masked on several otherwise
clear dates while their brightness hardly changes: a cloud moves between dates, a roof stays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "LANDSAT_QA_BITS",
    "SCL_CLASSES",
    "SceneQa",
    "bright_stable_mask",
    "landsat_qa_masks",
    "persistent_cloud_mask",
    "qa_fractions",
    "scl_masks",
]

SCL_CLASSES: dict[int, str] = {
    0: "no_data", 1: "saturated_or_defective", 2: "dark_area_pixels", 3: "cloud_shadows",
    4: "vegetation", 5: "not_vegetated", 6: "water", 7: "unclassified",
    8: "cloud_medium_probability", 9: "cloud_high_probability", 10: "thin_cirrus",
    11: "snow",
}
"""Sentinel-2 L2A scene classification values (ESA L2A product specification)."""

_SCL_CLOUD = (8, 9, 10)
_SCL_SHADOW = (3,)
_SCL_NODATA = (0,)
_SCL_BAD = (1,)
_SCL_SNOW = (11,)

LANDSAT_QA_BITS: dict[str, int] = {
    "fill": 0, "dilated_cloud": 1, "cirrus": 2, "cloud": 3, "cloud_shadow": 4, "snow": 5,
    "clear": 6, "water": 7,
}
"""Bit positions in Landsat Collection 2 ``QA_PIXEL`` (USGS LSDS-1619)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class _Masks:
    nodata: NDArray[np.bool_]
    cloud: NDArray[np.bool_]
    shadow: NDArray[np.bool_]
    bad: NDArray[np.bool_]
    snow: NDArray[np.bool_]

    @property
    def valid(self) -> NDArray[np.bool_]:
        return ~(self.nodata | self.cloud | self.shadow | self.bad)


@dataclass(frozen=True, kw_only=True, slots=True)
class SceneQa:
    """Cloud and valid-data statistics of one scene inside the AOI (+ buffer)."""

    aoi_cloud_frac: float
    """Cloud, cirrus and cloud-shadow pixels / data pixels inside the AOI (1.0 if no data)."""
    valid_frac: float
    """Usable pixels / all pixels inside the AOI."""
    nodata_frac: float
    """Pixels outside the swath or flagged nodata / all pixels inside the AOI."""
    snow_frac: float
    """Snow pixels / data pixels inside the AOI (kept valid: bright roofs are often 'snow')."""
    n_px: int
    """Pixels inside the AOI on the QA grid."""

    def to_dict(self) -> dict[str, float | int]:
        """Plain, rounded values for Scene.properties and JSON."""
        return {
            "aoi_cloud_frac": round(self.aoi_cloud_frac, 4),
            "valid_frac": round(self.valid_frac, 4),
            "nodata_frac": round(self.nodata_frac, 4),
            "aoi_snow_frac": round(self.snow_frac, 4),
            "qa_n_px": self.n_px,
        }


def scl_masks(scl: NDArray[np.integer] | NDArray[np.floating]) -> _Masks:
    """Split a Sentinel-2 SCL array into nodata / cloud / shadow / bad / snow masks.

    Examples
    --------
    >>> m = scl_masks(np.array([[0, 4, 8], [9, 3, 11]]))
    >>> m.valid.astype(int).tolist()
    [[0, 1, 0], [0, 0, 1]]
    """
    a = np.asarray(scl)
    return _Masks(nodata=np.isin(a, _SCL_NODATA), cloud=np.isin(a, _SCL_CLOUD),
                  shadow=np.isin(a, _SCL_SHADOW), bad=np.isin(a, _SCL_BAD),
                  snow=np.isin(a, _SCL_SNOW))


def landsat_qa_masks(qa: NDArray[np.integer] | NDArray[np.floating]) -> _Masks:
    """Split a Landsat C2 ``QA_PIXEL`` array into nodata / cloud / shadow / bad / snow masks.

    Cloud includes dilated cloud and cirrus.

    Examples
    --------
    >>> m = landsat_qa_masks(np.array([1, 21824, 22280, 23888]))   # fill, clear, cloud, shadow
    >>> m.valid.tolist(), m.cloud.tolist(), m.shadow.tolist()
    ([False, True, False, False], [False, False, True, False], [False, False, False, True])
    """
    a = np.asarray(qa).astype(np.int64)

    def bit(name: str) -> NDArray[np.bool_]:
        return ((a >> LANDSAT_QA_BITS[name]) & 1).astype(bool)

    nodata = bit("fill") | (a == 0)
    cloud = (bit("cloud") | bit("dilated_cloud") | bit("cirrus")) & ~nodata
    return _Masks(nodata=nodata, cloud=cloud, shadow=bit("cloud_shadow") & ~nodata,
                  bad=np.zeros(a.shape, dtype=bool), snow=bit("snow") & ~nodata)


def qa_fractions(
    qa: NDArray[np.integer] | NDArray[np.floating],
    *,
    kind: str,
    inside: NDArray[np.bool_] | None = None,
    read_valid: NDArray[np.bool_] | None = None,
    ignore_cloud: NDArray[np.bool_] | None = None,
) -> SceneQa:
    """Cloud and valid fractions of a QA layer inside the AOI.

    Parameters
    ----------
    qa : array (rows, cols)
        SCL classes (``kind="scl"``) or ``QA_PIXEL`` bits (``kind="qa_pixel"``), already on the
        AOI's QA grid (nearest-neighbour resampled).
    kind : {"scl", "qa_pixel"}
        Which encoding ``qa`` uses.
    inside : bool array (rows, cols), optional
        True inside the AOI (+ buffer); default every pixel.
    read_valid : bool array (rows, cols), optional
        False where the read found no source pixel (outside the tile); counted as nodata.
    ignore_cloud : bool array (rows, cols), optional
        Pixels whose cloud label is not believed (see :func:`persistent_cloud_mask`): counted
        as valid data, not as cloud.

    Returns
    -------
    SceneQa

    Examples
    --------
    >>> scl = np.array([[4, 4, 9, 9], [4, 5, 0, 0]])
    >>> q = qa_fractions(scl, kind="scl")
    >>> q.aoi_cloud_frac, q.valid_frac, q.nodata_frac
    (0.3333333333333333, 0.5, 0.25)
    """
    if kind == "scl":
        m = scl_masks(qa)
    elif kind == "qa_pixel":
        m = landsat_qa_masks(qa)
    else:
        raise ValueError(f"unknown QA kind {kind!r}; use 'scl' or 'qa_pixel'")
    shape = np.shape(qa)
    if ignore_cloud is not None:
        lift = np.asarray(ignore_cloud, dtype=bool) & m.cloud
        m = _Masks(nodata=m.nodata, cloud=m.cloud & ~lift, shadow=m.shadow, bad=m.bad,
                   snow=m.snow)
    ins = np.ones(shape, dtype=bool) if inside is None else np.asarray(inside, dtype=bool)
    nodata = m.nodata if read_valid is None else (m.nodata | ~read_valid)
    n_px = int(ins.sum())
    if n_px == 0:
        return SceneQa(aoi_cloud_frac=1.0, valid_frac=0.0, nodata_frac=1.0, snow_frac=0.0, n_px=0)
    data = ins & ~nodata
    n_data = int(data.sum())
    n_cloud = int((data & (m.cloud | m.shadow)).sum())
    n_valid = int((data & m.valid).sum())
    n_snow = int((data & m.snow).sum())
    return SceneQa(
        aoi_cloud_frac=n_cloud / n_data if n_data else 1.0,
        valid_frac=n_valid / n_px,
        nodata_frac=(n_px - n_data) / n_px,
        snow_frac=n_snow / n_data if n_data else 0.0,
        n_px=n_px,
    )


def bright_stable_mask(
    brightness: NDArray[np.floating],
    masked: NDArray[np.bool_],
    clear_dates: NDArray[np.bool_],
    *,
    min_dates: int = 3,
    min_brightness: float = 0.2,
    max_sd: float = 0.04,
) -> NDArray[np.bool_]:
    """Pixels masked as cloud that are really a bright, stable surface (a roof).

    A pixel is flagged where, among the *clear dates* (scenes whose AOI cloud fraction is low),
    it is masked as cloud on at least ``min_dates`` dates, and on those dates its brightness is
    at least ``min_brightness`` with a standard deviation of at most ``max_sd``. Clouds move and
    change brightness between dates; a bright new roof appears once and then stays the same.
    Only dates from the pixel's first masked date on are used, so a roof built mid-series is
    found too.

    Parameters
    ----------
    brightness : float array (dates, rows, cols)
        Mean visible reflectance (0..1) per date, on the AOI grid.
    masked : bool array (dates, rows, cols)
        True where the classification layer said cloud (not nodata) on that date.
    clear_dates : bool array (dates,)
        True for dates that are mostly clear inside the AOI.
    min_dates : int
        Masked clear dates needed, at least 2.
    min_brightness : float
        Minimum mean reflectance on the masked dates.
    max_sd : float
        Maximum standard deviation of reflectance over the masked dates.

    Returns
    -------
    bool array (rows, cols)
        True where the cloud mask should be lifted on every date the pixel was masked.

    Examples
    --------
    >>> b = np.full((4, 1, 2), 0.1); b[:, 0, 0] = 0.35; b[:, 0, 1] = [0.1, 0.5, 0.9, 0.3]
    >>> m = np.zeros((4, 1, 2), bool); m[:, 0, 0] = True; m[1:, 0, 1] = True
    >>> bright_stable_mask(b, m, np.ones(4, bool)).tolist()
    [[True, False]]
    """
    b = np.asarray(brightness, dtype=np.float64)
    m = np.asarray(masked, dtype=bool)
    clear = np.asarray(clear_dates, dtype=bool)
    if b.ndim != 3 or b.shape != m.shape or clear.shape != (b.shape[0],):
        raise ValueError("brightness and masked must be (dates, rows, cols), clear (dates,)")
    if min_dates < 2:
        raise ValueError(f"min_dates={min_dates} must be >= 2")
    use = m & clear[:, None, None] & np.isfinite(b)
    n = use.sum(axis=0)
    out = np.zeros(b.shape[1:], dtype=bool)
    if not n.max(initial=0) >= min_dates:
        return out
    bz = np.where(use, b, 0.0)
    mean = bz.sum(axis=0) / np.maximum(n, 1)
    var = np.where(use, (b - mean) ** 2, 0.0).sum(axis=0) / np.maximum(n - 1, 1)
    out = (n >= min_dates) & (mean >= min_brightness) & (np.sqrt(var) <= max_sd)
    return np.asarray(out, dtype=bool)


def persistent_cloud_mask(
    cloud: NDArray[np.bool_],
    clear_dates: NDArray[np.bool_],
    *,
    min_dates: int = 3,
    min_frac: float = 0.5,
) -> NDArray[np.bool_]:
    """Pixels labelled cloud on most otherwise-clear dates: a surface, not a cloud.

    Clouds move between acquisitions; a bright roof that the classifier calls cloud is in the
    same place every time. Counting it as cloud would make every scene of an industrial site
    look cloudy. This uses the classification layer alone (it runs before any band is read);
    :func:`bright_stable_mask` checks the brightness later, when the bands are read.

    Parameters
    ----------
    cloud : bool array (dates, rows, cols)
        Cloud label per date (not nodata) on the QA grid.
    clear_dates : bool array (dates,)
        Dates that are mostly clear (e.g. AOI cloud fraction <= 0.5).
    min_dates : int
        Minimum number of clear dates labelled cloud.
    min_frac : float
        Minimum fraction of the clear dates labelled cloud.

    Returns
    -------
    bool array (rows, cols)

    Examples
    --------
    >>> c = np.zeros((4, 1, 3), bool); c[:, 0, 0] = True; c[0, 0, 1] = True
    >>> persistent_cloud_mask(c, np.ones(4, bool)).tolist()
    [[True, False, False]]
    """
    c = np.asarray(cloud, dtype=bool)
    clear = np.asarray(clear_dates, dtype=bool)
    if c.ndim != 3 or clear.shape != (c.shape[0],):
        raise ValueError("cloud must be (dates, rows, cols) and clear_dates (dates,)")
    n_clear = int(clear.sum())
    if n_clear < min_dates:
        return np.zeros(c.shape[1:], dtype=bool)
    n = c[clear].sum(axis=0)
    return np.asarray((n >= min_dates) & (n >= min_frac * n_clear), dtype=bool)
