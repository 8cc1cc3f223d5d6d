"""FROZEN COPY of geo/measure.py at commit 5674e97 (before the n log n rewrite).

Test oracle only: tests/test_scale_equivalence.py checks that the current code gives the
same sites, events and intervals as this quadratic original. Do not edit or import it
from geo/. One edit since the copy, to the error model, not the algorithm: the calibrated
small-outline term of issue 12 (:func:`geo.measure.small_outline_sd`) joins the independent
part, as in geo/measure.py, so the oracle checks the quadratic -> n log n rewrite only.

Areas with uncertainty, growth and neighbour ratios with 95% intervals.

Pure compute: ``Tracks`` in, ``Tracks`` with measurement columns out.

Uncertainty model (see docs/measurement.md for the derivation and the calibration study)
-------------------------------------------------------------------------------------
Each footprint's measured area ``A`` is the true area plus an error with two parts, both
Gaussian with zero mean, in m² (1 sigma):

* **independent** (own to that footprint)
  - outline position: each stretch of outline is off by ``boundary_sd_m`` (1 sigma),
    stretches of length ``ℓ`` independently, so the area error is
    ``boundary_sd_m * sqrt(P * ℓ)``. For pixel outlines ``ℓ = 2 * res_m`` (quantisation
    errors decorrelate along a slanted edge within a couple of pixels) and ``boundary_sd_m``
    defaults to ``res_m / (2 √3)``, the sd of a uniform ±½-pixel edge position; for digitised
    vector outlines ``ℓ = P / 4`` (each side on its own, i.e. ``boundary_sd_m * P / 2`` for a
    compact building) and ``boundary_sd_m`` is the analyst's digitising sd.
  - regularisation: ``|A - A_reg|`` when a regularised (squared-off) outline replaced the
    pixel outline.
* **date-common** (shared, with the same sign, by every footprint of the same date, because it
  comes from that date's blur, threshold and resampling)
  - boundary ambiguity: ``|A - A_alt|``, the change of area between two detection thresholds
    (the alternative threshold should sit one standard deviation of the detector's threshold
    uncertainty away);
  - blur: a point-spread function of sigma :data:`PSF_SIGMA_PX` pixels rounds each of the
    four corners off by :data:`CORNER_LOSS_SIGMA2` sigma² (imagery only);
  - co-registration: a residual shift ``s`` resampled into the image moves edges by up to
    ``s``; its area effect is ``s * P / π`` (``P / π`` is the mean width of a convex outline,
    Cauchy's formula) times :data:`COREG_AREA_FACTOR`.

Ratios of two footprints of the **same date** (neighbour ratio, site share) treat the
date-common parts as correlated (coefficient ``MeasureParams.same_date_corr``), so they partly
cancel; ratios across dates (growth) treat them as independent. Intervals are Monte Carlo
percentiles (``MeasureParams.n_draws`` draws, fixed seed): true areas are drawn as
``A - e`` with the errors above, floored at 1% of ``A``; the ratio's 2.5% and 97.5%
percentiles make the 95% interval. Every interval is widened, if needed, to contain its point
estimate (the observed ratio).
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike, NDArray

from geo.config import MeasureParams
from geo.errors import FactoryWatchError
from geo.match import Tracks

__all__ = [
    "COREG_AREA_FACTOR",
    "CORNER_LOSS_SIGMA2",
    "PSF_SIGMA_PX",
    "Z95",
    "AreaErrors",
    "area_errors",
    "area_interval",
    "area_sd_m2",
    "footprint_errors",
    "format_ratio",
    "measure_sites",
    "neighbour_of",
    "pair_seed",
    "ratio_draws",
    "ratio_interval",
]

log = logging.getLogger(__name__)

Z95 = 1.959963984540054
"""Two-sided 95% quantile of the standard normal distribution."""
COREG_AREA_FACTOR = 1.0
"""Weight of the co-registration term ``s * P / π`` (1 = edges move by the full residual)."""
PSF_SIGMA_PX = 0.75
"""Typical 1-sigma width of the imaging point-spread function, pixels (S2, PlanetScope)."""
CORNER_LOSS_SIGMA2 = 0.85
"""Area a right-angle corner loses to a Gaussian blur thresholded at half height, in σ²."""
_FLOOR_FRAC = 0.01


class AreaErrors:
    """Per-footprint area errors in m² (1 sigma): ``independent`` and ``common`` parts."""

    __slots__ = ("common", "independent")

    def __init__(self, independent: NDArray[np.float64], common: NDArray[np.float64]) -> None:
        self.independent = independent
        self.common = common

    @property
    def total(self) -> NDArray[np.float64]:
        """Total 1-sigma area error, m²."""
        return np.asarray(np.hypot(self.independent, self.common), dtype=np.float64)


def _arr(x: ArrayLike | None, n: int, fill: float = np.nan) -> NDArray[np.float64]:
    if x is None:
        return np.full(n, fill)
    a = np.asarray(x, dtype=np.float64)
    return np.broadcast_to(a, (n,)).astype(np.float64) if a.ndim == 0 else a.astype(np.float64)


def area_errors(
    area_m2: ArrayLike,
    perimeter_m: ArrayLike,
    *,
    res_m: ArrayLike,
    boundary_sd_m: ArrayLike,
    coreg_residual_m: ArrayLike,
    area_alt_m2: ArrayLike | None = None,
    area_reg_m2: ArrayLike | None = None,
    edge_corr_len_m: ArrayLike | None = None,
) -> AreaErrors:
    """Split each area's 1-sigma error into its independent and date-common parts (m²).

    Parameters are as for :func:`area_sd_m2`; all broadcast to the shape of ``area_m2``.
    ``edge_corr_len_m`` (optional, per footprint) replaces the default correlation length of
    the outline error: an edge parallel to the pixel grid quantises coherently along its
    whole length (see :func:`geo.footprints.edge_corr_len_m`).
    """
    a = np.atleast_1d(np.asarray(area_m2, dtype=np.float64))
    n = a.shape[0]
    p = _arr(perimeter_m, n)
    res = _arr(res_m, n, 0.0)
    bsd = _arr(boundary_sd_m, n)
    # a missing boundary sd falls back to the pixel-quantisation sd (0 for vector input)
    bsd = np.where(np.isfinite(bsd), bsd, res / (2.0 * math.sqrt(3.0)))
    coreg = np.nan_to_num(_arr(coreg_residual_m, n, 0.0), nan=0.0)
    alt = _arr(area_alt_m2, n)
    reg = _arr(area_reg_m2, n)
    # sides of the outline are independent over a correlation length: about two pixels for
    # pixel outlines (quantisation errors decorrelate along a slanted edge), one side (P/4)
    # for digitised vector outlines
    corr_len = np.where(res > 0, np.minimum(2.0 * res, p / 4.0), p / 4.0)
    given = _arr(edge_corr_len_m, n)
    corr_len = np.where(np.isfinite(given) & (res > 0), np.maximum(given, corr_len), corr_len)
    outline = np.abs(bsd) * np.sqrt(p * corr_len)
    regular = np.where(np.isfinite(reg), np.abs(a - reg), 0.0)
    ambiguity = np.where(np.isfinite(alt), np.abs(a - alt), 0.0)
    coreg_term = COREG_AREA_FACTOR * np.abs(coreg) * p / math.pi
    # blur rounds the four corners of a footprint off (unknown PSF: an uncertainty, not a
    # correction); matters only for buildings a few pixels across
    corners = 4.0 * CORNER_LOSS_SIGMA2 * (PSF_SIGMA_PX * res) ** 2
    common = np.sqrt(ambiguity**2 + coreg_term**2 + corners**2)
    from geo.measure import small_outline_sd  # the one edit (see the module docstring)

    small = small_outline_sd(a, res)
    return AreaErrors(
        independent=np.asarray(np.sqrt(outline**2 + regular**2 + small**2), dtype=np.float64),
        common=np.asarray(common, dtype=np.float64),
    )


def area_sd_m2(
    area_m2: ArrayLike,
    perimeter_m: ArrayLike,
    *,
    res_m: ArrayLike,
    boundary_sd_m: ArrayLike,
    coreg_residual_m: ArrayLike,
    area_alt_m2: ArrayLike | None = None,
    area_reg_m2: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """1-sigma uncertainty of measured building areas, in m² (vectorised).

    Parameters
    ----------
    area_m2 : array_like
        Measured areas (pixel count × pixel area, or polygon area in a projected CRS).
    perimeter_m : array_like
        Perimeters of the unsimplified outlines, metres.
    res_m : array_like
        Pixel size of the imagery, metres (0 for vector input).
    boundary_sd_m : array_like
        1-sigma position error of the outline, metres (NaN: ``res_m / (2√3)``).
    coreg_residual_m : array_like
        Co-registration residual of the footprint's date, metres.
    area_alt_m2 : array_like, optional
        Area at an alternative detection threshold (NaN: none).
    area_reg_m2 : array_like, optional
        Area after regularisation, if the outline was regularised (NaN: none).

    Returns
    -------
    ndarray of float64
        The total 1-sigma error: independent and date-common parts added in quadrature
        (see the module docstring).

    Examples
    --------
    A 6,000 m² hall (110 m × 55 m) at 10 m, ±½-pixel uniform edges and blur-rounded corners,
    no other source:

    >>> sd = area_sd_m2(6000.0, 330.0, res_m=10.0, boundary_sd_m=np.nan, coreg_residual_m=0.0)
    >>> round(float(sd[0]))
    303
    """
    return area_errors(
        area_m2, perimeter_m, res_m=res_m, boundary_sd_m=boundary_sd_m,
        coreg_residual_m=coreg_residual_m, area_alt_m2=area_alt_m2, area_reg_m2=area_reg_m2,
    ).total


def footprint_errors(footprints: pd.DataFrame) -> AreaErrors:
    """:func:`area_errors` for a footprints table (its schema columns; missing ones default)."""
    n = len(footprints)

    def col(name: str, fill: float) -> NDArray[np.float64]:
        if name in footprints.columns:
            return np.asarray(pd.to_numeric(footprints[name], errors="coerce"), dtype=float)
        return np.full(n, fill)

    if "perimeter_m" in footprints.columns:
        perim = col("perimeter_m", np.nan)
    elif isinstance(footprints, gpd.GeoDataFrame):
        perim = footprints.geometry.length.to_numpy(dtype=float)
    else:
        raise FactoryWatchError("footprints lack perimeter_m; build them with geo.footprints")
    return area_errors(
        col("area_m2", np.nan), perim, res_m=col("res_m", 0.0),
        boundary_sd_m=col("boundary_sd_m", np.nan),
        coreg_residual_m=col("coreg_residual_m", 0.0),
        area_alt_m2=col("area_alt_m2", np.nan), area_reg_m2=col("area_reg_m2", np.nan),
        edge_corr_len_m=col("edge_corr_len_m", np.nan),
    )


def area_interval(
    area_m2: ArrayLike, sd_m2: ArrayLike, *, z: float = Z95
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return the normal interval ``area ± z·sd``, the lower end floored at 0 (m²)."""
    a = np.asarray(area_m2, dtype=np.float64)
    s = np.asarray(sd_m2, dtype=np.float64)
    return np.maximum(a - z * s, 0.0), a + z * s


def _seed_for(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little")


def pair_seed(seed: int, numerator_id: str, denominator_id: str) -> int:
    """Random seed of one ratio's Monte Carlo draws, from the two footprint ids.

    The same pair gets the same interval in ``sites`` and from :func:`geo.claims.check_claim`.
    """
    return _seed_for(seed, f"ratio:{numerator_id}/{denominator_id}")


def ratio_draws(
    num_m2: ArrayLike,
    num_err: tuple[ArrayLike, ArrayLike],
    den_m2: ArrayLike,
    den_err: tuple[ArrayLike, ArrayLike],
    *,
    common_corr: ArrayLike,
    n_draws: int,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """Monte Carlo draws of true-area ratios, shape ``(n, n_draws)``.

    ``num_err``/``den_err`` are ``(independent_sd, common_sd)`` in m². ``common_corr`` is the
    correlation of the two common parts (1 for the same date, 0 for different dates).
    """
    an = np.atleast_1d(np.asarray(num_m2, dtype=np.float64))
    ad = np.atleast_1d(np.asarray(den_m2, dtype=np.float64))
    n = max(an.shape[0], ad.shape[0])
    an, ad = np.broadcast_to(an, (n,)), np.broadcast_to(ad, (n,))
    ni, nc = (np.broadcast_to(np.asarray(v, dtype=float), (n,)) for v in num_err)
    di, dc = (np.broadcast_to(np.asarray(v, dtype=float), (n,)) for v in den_err)
    rho = np.clip(np.broadcast_to(np.asarray(common_corr, dtype=float), (n,)), -1.0, 1.0)
    z = rng.standard_normal((4, n, n_draws))
    zc_num = z[0]
    zc_den = rho[:, None] * z[0] + np.sqrt(1.0 - rho**2)[:, None] * z[1]
    tn = an[:, None] - ni[:, None] * z[2] - nc[:, None] * zc_num
    td = ad[:, None] - di[:, None] * z[3] - dc[:, None] * zc_den
    tn = np.maximum(tn, _FLOOR_FRAC * an[:, None])
    td = np.maximum(td, _FLOOR_FRAC * ad[:, None])
    return np.asarray(tn / td, dtype=np.float64)


def ratio_interval(
    num_m2: ArrayLike,
    num_err: tuple[ArrayLike, ArrayLike],
    den_m2: ArrayLike,
    den_err: tuple[ArrayLike, ArrayLike],
    *,
    common_corr: ArrayLike = 0.0,
    level: float = 0.95,
    n_draws: int = 4000,
    seed: int | np.random.Generator = 0,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Ratio of two measured areas with a Monte Carlo interval.

    Parameters
    ----------
    num_m2, den_m2 : array_like
        Measured areas of the numerator and denominator footprints, m².
    num_err, den_err : (array_like, array_like)
        ``(independent_sd_m2, common_sd_m2)`` of each, e.g. from :func:`area_errors`.
    common_corr : array_like, optional
        Correlation of the date-common parts: 1 (or ``MeasureParams.same_date_corr``) when
        both footprints are from the same date, 0 across dates.
    level : float, optional
        Interval coverage, default 0.95.
    n_draws : int, optional
        Monte Carlo draws.
    seed : int or Generator, optional
        Random seed (intervals are reproducible).

    Returns
    -------
    (ratio, lo, hi) : tuple of ndarray
        ``ratio = num / den`` (the point estimate) and the interval, which always contains it.

    Examples
    --------
    >>> r, lo, hi = ratio_interval(12000.0, (100.0, 0.0), 6000.0, (100.0, 0.0))
    >>> float(r[0]), bool(lo[0] < 2.0 < hi[0])
    (2.0, True)
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    an = np.atleast_1d(np.asarray(num_m2, dtype=np.float64))
    ad = np.atleast_1d(np.asarray(den_m2, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        est = an / ad
    draws = ratio_draws(an, num_err, ad, den_err, common_corr=common_corr, n_draws=n_draws,
                        rng=rng)
    q = (1.0 - level) / 2.0
    lo, hi = np.quantile(draws, [q, 1.0 - q], axis=1)
    est = np.broadcast_to(est, lo.shape)
    ok = np.isfinite(est)
    lo = np.where(ok, np.minimum(lo, est), np.nan)
    hi = np.where(ok, np.maximum(hi, est), np.nan)
    return np.asarray(est, dtype=np.float64), lo, hi


def neighbour_of(
    geometry: Any,
    candidates: gpd.GeoDataFrame,
    *,
    rule: str,
    max_distance_m: float,
    id_col: str = "site_id",
    area_col: str = "area_m2",
) -> int | None:
    """Row position of a footprint's neighbour among ``candidates`` (same date, others only).

    ``rule`` ``nearest``: the smallest outline-to-outline distance (ties: larger area, then
    id); ``largest-adjacent``: the largest footprint within ``max_distance_m``.
    """
    if len(candidates) == 0:
        return None
    d = shapely.distance(np.asarray(candidates.geometry.values, dtype=object), geometry)
    d = np.round(np.asarray(d, dtype=float), 6)
    ok = d <= max_distance_m
    if not ok.any():
        return None
    areas = candidates[area_col].to_numpy(dtype=float)
    ids = candidates[id_col].astype(str).to_numpy()
    idx = np.flatnonzero(ok)
    if rule == "largest-adjacent":
        key = sorted(idx, key=lambda i: (-areas[i], ids[i]))
    else:
        key = sorted(idx, key=lambda i: (d[i], -areas[i], ids[i]))
    return int(key[0])


def format_ratio(x: float) -> str:
    """A ratio for a sentence: two decimals, or two significant digits below 0.1.

    Examples
    --------
    >>> format_ratio(2.2512), format_ratio(0.00347), format_ratio(float("nan"))
    ('2.25', '0.0035', 'n/a')
    """
    if not np.isfinite(x):
        return "n/a"
    return f"{x:.2f}" if abs(x) >= 0.1 or x == 0 else f"{x:.2g}"


_fmt_ratio = format_ratio


def _fmt_area(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:,.0f}"


def measure_sites(tracks: Tracks, params: MeasureParams) -> Tracks:
    """Add areas with 95% intervals, growth, neighbour and share ratios to tracked sites.

    Parameters
    ----------
    tracks : Tracks
        From :func:`geo.match.track_footprints`.
    params : MeasureParams
        Neighbour rule and distance, Monte Carlo draws and seed, same-date correlation.

    Returns
    -------
    Tracks
        ``footprints`` gain ``area_m2_sd``, ``area_m2_lo``, ``area_m2_hi``. ``sites`` gain
        ``area_m2`` (+ ``_sd``, ``_lo``, ``_hi``) of the last sighting, ``first_area_m2``,
        ``growth_ratio`` (+ ``_lo``, ``_hi``; last / first sighting; NaN if seen once),
        ``neighbour_id``, ``neighbour_area_ratio`` (+ ``_lo``, ``_hi``; this site / its
        neighbour on its last-sighting date), ``site_share_frac`` (+ ``_lo``, ``_hi``; share
        of the total footprint area on that date) and ``sentence``. ``events`` unchanged.
    """
    fp = tracks.footprints.copy()
    sites = tracks.sites.copy()
    if params.digitising_sd_m is not None and "res_m" in fp.columns:
        vec = fp["res_m"].fillna(0).to_numpy(dtype=float) == 0
        fp.loc[vec, "boundary_sd_m"] = float(params.digitising_sd_m)
    err = footprint_errors(fp)
    area = fp["area_m2"].to_numpy(dtype=float) if len(fp) else np.zeros(0)
    sd = err.total
    lo, hi = area_interval(area, sd)
    fp["area_m2_sd"], fp["area_m2_lo"], fp["area_m2_hi"] = sd, lo, hi

    n = len(sites)
    out: dict[str, Any] = {c: np.full(n, np.nan) for c in (
        "area_m2", "area_m2_sd", "area_m2_lo", "area_m2_hi", "first_area_m2",
        "growth_ratio", "growth_ratio_lo", "growth_ratio_hi",
        "neighbour_area_ratio", "neighbour_area_ratio_lo", "neighbour_area_ratio_hi",
        "site_share_frac", "site_share_frac_lo", "site_share_frac_hi",
    )}
    out["neighbour_id"] = np.full(n, None, dtype=object)
    out["sentence"] = np.full(n, "", dtype=object)
    if n == 0 or len(fp) == 0:
        for col, val in out.items():
            sites[col] = val
        return Tracks(footprints=fp, sites=sites, events=tracks.events)

    fp_sid = fp["site_id"].astype(str).to_numpy()
    fp_date = fp["date"].astype(str).to_numpy()
    row_of = {(s, d): i for i, (s, d) in enumerate(zip(fp_sid, fp_date, strict=True))}
    ind, com = err.independent, err.common
    last_rows = np.array([row_of[(str(s), str(d))] for s, d in
                          zip(sites["site_id"], sites["last_seen_date"], strict=True)])
    first_rows = np.array([row_of[(str(s), str(d))] for s, d in
                           zip(sites["site_id"], sites["first_seen_date"], strict=True)])
    out["area_m2"] = area[last_rows]
    out["area_m2_sd"] = sd[last_rows]
    out["area_m2_lo"], out["area_m2_hi"] = lo[last_rows], hi[last_rows]
    out["first_area_m2"] = area[first_rows]

    fid = (fp["footprint_id"].astype(str).to_numpy() if "footprint_id" in fp.columns
           else np.asarray([str(i) for i in range(len(fp))], dtype=object))

    def pairs(num: NDArray[np.intp], den: NDArray[np.intp], corr: float) -> tuple[
            NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Ratio intervals pair by pair, each seeded by its footprint ids (as in claims)."""
        res = [ratio_interval(area[a], (ind[a], com[a]), area[b], (ind[b], com[b]),
                              common_corr=corr, n_draws=params.n_draws,
                              seed=pair_seed(params.seed, str(fid[a]), str(fid[b])))
               for a, b in zip(num, den, strict=True)]
        return tuple(np.array([float(x[i][0]) for x in res]) for i in range(3))  # type: ignore[return-value]

    multi = first_rows != last_rows
    if multi.any():
        lr, fr = last_rows[multi], first_rows[multi]
        g, glo, ghi = pairs(lr, fr, 0.0)
        out["growth_ratio"][multi] = g
        out["growth_ratio_lo"][multi], out["growth_ratio_hi"][multi] = glo, ghi

    # neighbours and shares, per last-sighting date
    for day in sorted(set(sites["last_seen_date"].astype(str))):
        on_date = np.flatnonzero(fp_date == day)
        here = np.flatnonzero(sites["last_seen_date"].astype(str).to_numpy() == day)
        nb_num: list[int] = []
        nb_den: list[int] = []
        nb_site: list[int] = []
        for k in here:
            r = int(last_rows[k])
            others = on_date[on_date != r]
            j = neighbour_of(fp.geometry.iloc[r], fp.iloc[others], rule=params.neighbour,
                             max_distance_m=params.neighbour_max_distance_m)
            if j is not None:
                nb_num.append(r)
                nb_den.append(int(others[j]))
                nb_site.append(int(k))
        if nb_num:
            rn, rd = np.array(nb_num), np.array(nb_den)
            rr, rlo, rhi = pairs(rn, rd, params.same_date_corr)
            ks = np.array(nb_site)
            out["neighbour_id"][ks] = fp_sid[rd]
            out["neighbour_area_ratio"][ks] = rr
            out["neighbour_area_ratio_lo"][ks], out["neighbour_area_ratio_hi"][ks] = rlo, rhi
        sh, shlo, shhi = _share_interval(area[on_date], ind[on_date], com[on_date], params,
                                         key=f"share:{day}")
        pos = {int(r): i for i, r in enumerate(on_date)}
        for k in here:
            i = pos[int(last_rows[k])]
            out["site_share_frac"][k] = sh[i]
            out["site_share_frac_lo"][k], out["site_share_frac_hi"][k] = shlo[i], shhi[i]

    for i_site in range(n):
        out["sentence"][i_site] = _sentence(
            str(sites["site_id"].iloc[i_site]), str(sites["last_seen_date"].iloc[i_site]),
            {c: out[c][i_site] for c in out},
        )
    for c, v in out.items():
        sites[c] = v
    return Tracks(footprints=fp, sites=sites, events=tracks.events)


def _share_interval(
    a: NDArray[np.float64], ind: NDArray[np.float64], com: NDArray[np.float64],
    params: MeasureParams, *, key: str,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Share of each footprint in the date's total area, with MC intervals (chunked)."""
    total = float(a.sum())
    est = a / total if total > 0 else np.full(len(a), np.nan)
    if len(a) == 1:
        return est, est.copy(), est.copy()
    rng = np.random.default_rng(_seed_for(params.seed, key))
    rho = params.same_date_corr
    zc = rng.standard_normal(params.n_draws)
    n_chunk = max(1, 2_000_000 // params.n_draws)
    draws_sum = np.zeros(params.n_draws)
    chunks = []
    for s in range(0, len(a), n_chunk):
        sl = slice(s, s + n_chunk)
        m = a[sl].shape[0]
        zo = rng.standard_normal((m, params.n_draws))
        zi = rng.standard_normal((m, params.n_draws))
        zcom = rho * zc[None, :] + math.sqrt(max(0.0, 1 - rho**2)) * zo
        t = a[sl, None] - ind[sl, None] * zi - com[sl, None] * zcom
        t = np.maximum(t, _FLOOR_FRAC * a[sl, None])
        draws_sum += t.sum(axis=0)
        chunks.append(t)
    lo = np.empty(len(a))
    hi = np.empty(len(a))
    s = 0
    for t in chunks:
        frac = t / draws_sum[None, :]
        q = np.quantile(frac, [0.025, 0.975], axis=1)
        lo[s:s + len(t)], hi[s:s + len(t)] = q[0], q[1]
        s += len(t)
    lo = np.minimum(lo, est)
    hi = np.minimum(np.maximum(hi, est), 1.0)
    return est, lo, hi


def _sentence(site_id: str, date: str, v: dict[str, Any]) -> str:
    nid = v["neighbour_id"]
    if nid is not None and np.isfinite(v["neighbour_area_ratio"]):
        return (
            f"{site_id} is {_fmt_ratio(v['neighbour_area_ratio'])}x the area of its neighbour "
            f"{nid} (95% interval {_fmt_ratio(v['neighbour_area_ratio_lo'])}–"
            f"{_fmt_ratio(v['neighbour_area_ratio_hi'])}) on {date}"
        )
    return (
        f"{site_id} covers {_fmt_area(v['area_m2'])} m² (95% interval "
        f"{_fmt_area(v['area_m2_lo'])}–{_fmt_area(v['area_m2_hi'])}) on {date}"
    )

