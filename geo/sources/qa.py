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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "LANDSAT_QA_BITS",
    "SCL_CLASSES",
    "SceneQa",
    "boa_offset_evidence",
    "bright_stable_mask",
    "false_cloud_roof_mask",
    "footprint_cloud_share",
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


def false_cloud_roof_mask(
    refl: NDArray[np.floating],
    masked: NDArray[np.bool_],
    refl_other: NDArray[np.floating],
    clear_other: NDArray[np.bool_],
    *,
    footprint: NDArray[np.bool_] | None = None,
    min_brightness: float = 0.2,
    max_band_diff: float = 0.05,
    min_region_share: float = 0.8,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Pixels masked as cloud on *one* date that are a bright roof seen clear on other dates.

    A pixel has roof evidence when, on at least one other date (before or after), it is clear,
    bright (mean visible reflectance >= ``min_brightness``) and spectrally like this date (every
    band within ``max_band_diff``), and it sits on ``footprint`` (default: the evidence itself,
    i.e. a surface seen bright and clear elsewhere in time). A cloud is brighter and flatter
    than the roof under it and moves between dates; a false cloud on a roof looks exactly like
    the roof on its clear dates. Connected masked regions (8-connected) are rescued only when at
    least ``min_region_share`` of their pixels have roof evidence, and then only those pixels:
    a real cloud that also covers a roof keeps the rest of its region masked.

    Parameters
    ----------
    refl : array (bands, rows, cols)
        Visible reflectance of this date.
    masked : bool array (rows, cols)
        Masked as cloud on this date (with data present).
    refl_other : array (dates, bands, rows, cols)
        The same bands on the other dates.
    clear_other : bool array (dates, rows, cols)
        Clear (valid) on each other date.

    Returns
    -------
    (rescue, evidence_dates)
        ``rescue`` (rows, cols) and, per other date, whether it gave evidence for a rescued
        pixel (dates,).

    Examples
    --------
    >>> r = np.full((3, 4, 4), 0.05); r[:, :2, :2] = 0.34
    >>> m = np.zeros((4, 4), bool); m[:2, :2] = True
    >>> rescue, used = false_cloud_roof_mask(r, m, r[None], np.ones((1, 4, 4), bool))
    >>> int(rescue.sum()), used.tolist()
    (4, [True])
    >>> cloud = r.copy(); cloud[:, :2, :2] = 0.7     # a real cloud over the same roof
    >>> int(false_cloud_roof_mask(cloud, m, r[None], np.ones((1, 4, 4), bool))[0].sum())
    0
    """
    from scipy import ndimage

    here = np.asarray(refl, dtype=np.float64)
    other = np.asarray(refl_other, dtype=np.float64)
    clear = np.asarray(clear_other, dtype=bool)
    m = np.asarray(masked, dtype=bool)
    bright_here = np.nanmean(here, axis=0) >= min_brightness
    alike = np.all(np.abs(other - here[None]) <= max_band_diff, axis=1)
    bright_other = np.nanmean(other, axis=1) >= min_brightness
    per_date = clear & bright_other & alike & (m & bright_here)[None]
    evidence = per_date.any(axis=0)
    if footprint is not None:
        evidence &= np.asarray(footprint, dtype=bool)
    labels, n = ndimage.label(m, structure=np.ones((3, 3), dtype=bool))
    rescue = np.zeros(m.shape, dtype=bool)
    if n:
        size = np.bincount(labels.ravel(), minlength=n + 1)
        good = np.bincount(labels.ravel(), weights=evidence.ravel(), minlength=n + 1)
        ok = good >= min_region_share * np.maximum(size, 1)
        ok[0] = False
        rescue = ok[labels] & evidence
    used = (per_date & rescue[None]).reshape(per_date.shape[0], -1).any(axis=1)
    return rescue, used


_DN_OFFSET = 1000.0


def boa_offset_evidence(
    visible_dn: Sequence[NDArray[np.floating]], valid: NDArray[np.bool_], *,
    min_px: int = 100,
) -> dict[str, float | int | str | None]:
    """What the pixels say about Sentinel-2's +1000 DN offset (``BOA_ADD_OFFSET``), both ways.

    With the offset in the data, ``DN = 10000 * reflectance + 1000``: no valid visible DN is
    below 1000, and the darkest surfaces (vegetation in red, water) sit just above 1000. With the
    offset removed, dark surfaces give DNs below 1000. The verdict:

    - ``"removed"``: more than 1 % of valid visible DNs are below 1000;
    - ``"present"``: none is below 1000, and the darkest 1 % (per-pixel minimum over the visible
      bands) is below 1600: the darkest surfaces would be darker than 0.06 once the offset is
      subtracted, as blue or red over vegetation, water and roads are in almost every scene;
      were the offset gone, 1 % of the pixels would sit in 0.10..0.16 with none below 0.10;
    - ``"undecidable"``: fewer than ``min_px`` valid pixels, or too bright to tell.

    Returns
    -------
    dict
        ``verdict``, ``frac_below_1000``, ``dark_p01_dn`` and ``n_px`` (the evidence).

    Examples
    --------
    >>> dn = [np.full((20, 20), v) for v in (1400.0, 1600.0, 1300.0)]
    >>> boa_offset_evidence(dn, np.ones((20, 20), bool))["verdict"]
    'present'
    >>> boa_offset_evidence([d - 1000 for d in dn], np.ones((20, 20), bool))["verdict"]
    'removed'
    """
    ok = np.asarray(valid, dtype=bool)
    stack = np.stack([np.asarray(d, dtype=np.float64) for d in visible_dn])
    ok = ok & np.all(stack > 0, axis=0)
    n = int(ok.sum())
    if n < min_px:
        return {"verdict": "undecidable", "frac_below_1000": None, "dark_p01_dn": None,
                "n_px": n}
    low = np.any(stack < _DN_OFFSET, axis=0) & ok
    frac = float(low.sum() / n)
    p01 = float(np.percentile(stack.min(axis=0)[ok], 1))
    if frac > 0.01:
        verdict = "removed"
    elif frac == 0.0 and p01 < _DN_OFFSET + 600:
        verdict = "present"
    else:
        verdict = "undecidable"
    return {"verdict": verdict, "frac_below_1000": round(frac, 4), "dark_p01_dn": round(p01, 1),
            "n_px": n}


def footprint_cloud_share(
    site_ids: Sequence[str], dates: Sequence[str], geoms: Sequence[Any],
    valid_by_date: Mapping[str, Any],
) -> NDArray[np.float64]:
    """Per footprint row: the share of its building that is masked (cloud, shadow, no data).

    The building is the union of every footprint of its site (all dates), so a hall half under
    a cloud on one date shows that half as masked although its detected footprint stops at the
    cloud edge. NaN where the date has no valid-area geometry.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> footprint_cloud_share(["a", "a"], ["d1", "d2"], [box(0, 0, 10, 10), box(0, 0, 5, 10)],
    ...                       {"d1": box(0, 0, 100, 100), "d2": box(0, 0, 5, 100)}).tolist()
    [0.0, 0.5]
    """
    import shapely

    by_site: dict[str, list[Any]] = {}
    for sid, g in zip(site_ids, geoms, strict=True):
        by_site.setdefault(str(sid), []).append(g)
    union = {k: shapely.union_all(v) for k, v in by_site.items()}
    out = np.full(len(site_ids), np.nan)
    for i, (sid, d) in enumerate(zip(site_ids, dates, strict=True)):
        u, v = union[str(sid)], valid_by_date.get(str(d))
        if v is None or u.area <= 0:
            continue
        out[i] = round(1.0 - float(shapely.intersection(u, v).area) / float(u.area), 4)
    return out
