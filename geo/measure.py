"""Areas with uncertainty, growth and neighbour ratios with 95% intervals.

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
  - small outline: pixel outlines under :data:`SMALL_OUTLINE_PX` pixels get an empirical
    term calibrated on the pipeline's own detectors (:func:`small_outline_sd`).
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
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike, NDArray

from geo.config import MeasureParams
from geo.errors import FactoryWatchError
from geo.match import Tracks
from geo.plausibility import BUILDING, REGION, is_region

__all__ = [
    "COREG_AREA_FACTOR",
    "CORNER_LOSS_SIGMA2",
    "PSF_SIGMA_PX",
    "SMALL_OUTLINE_PX",
    "SMALL_OUTLINE_SD_PER_PX",
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
    "small_outline_sd",
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
SMALL_OUTLINE_PX = 32.0
"""Pixel outlines covering fewer pixels than this get the small-outline term (below)."""
SMALL_OUTLINE_SD_PER_PX = 0.03
"""Small-outline term: ``SMALL_OUTLINE_SD_PER_PX * (SMALL_OUTLINE_PX - n_px)`` of the area
(1 sigma, independent) for an outline of ``n_px < SMALL_OUTLINE_PX`` pixels. Empirical, like
:data:`geo.refine.VHR_SD_FRAC`: ``benchmarks/calibration_pipeline.py`` (seeds 555, 777 and
999, not the reported seed) found ``contrast-objects`` outlines of 3-30 m under about 30 px
too large by 15-40 % on average (blur lowers a small roof's peak, so its contrast is
underestimated and its fractional cover overestimated), with 78-94 % coverage; larger
outlines are covered without it. The residual depends on the pixels covered, not on the
metres: 3 m and 10 m outlines of the same pixel count err alike."""
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
    area_adj_spread_m2: ArrayLike | None = None,
) -> AreaErrors:
    """Split each area's 1-sigma error into its independent and date-common parts (m²).

    Parameters are as for :func:`area_sd_m2`; all broadcast to the shape of ``area_m2``.
    ``edge_corr_len_m`` (optional, per footprint) replaces the default correlation length of
    the outline error: an edge parallel to the pixel grid quantises coherently along its
    whole length (see :func:`geo.footprints.edge_corr_len_m`). ``area_adj_spread_m2``
    (optional) is the largest area difference to the same site on an adjacent unchanged date
    (:func:`geo.plausibility.adjacent_spread`): detection scatter between dates, counted as an
    independent error of ``spread / √2`` (the sd of one of two equally noisy areas), in
    quadrature with the rest only where it exceeds them.
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
    independent = np.sqrt(outline**2 + regular**2 + small_outline_sd(a, res) ** 2)
    adj = np.nan_to_num(_arr(area_adj_spread_m2, n, 0.0), nan=0.0) / math.sqrt(2.0)
    # the scatter between dates already contains the modelled outline error: add only the
    # excess over the modelled total
    excess = np.sqrt(np.maximum(adj**2 - independent**2 - common**2, 0.0))
    return AreaErrors(
        independent=np.asarray(np.hypot(independent, excess), dtype=np.float64),
        common=np.asarray(common, dtype=np.float64),
    )


def small_outline_sd(area_m2: ArrayLike, res_m: ArrayLike) -> NDArray[np.float64]:
    """The small-outline term (m², 1 sigma) of pixel outlines (0 for vector outlines).

    >>> [round(float(x)) for x in small_outline_sd([2000.0, 4000.0, 2000.0], [10.0, 10.0, 0.0])]
    [720, 0, 0]
    """
    a = np.asarray(area_m2, dtype=np.float64)
    res = np.broadcast_to(np.asarray(res_m, dtype=np.float64), a.shape)
    px = np.where(res > 0, a / np.where(res > 0, res, 1.0) ** 2, np.inf)
    frac = SMALL_OUTLINE_SD_PER_PX * np.clip(SMALL_OUTLINE_PX - px, 0.0, None)
    return np.asarray(frac * a, dtype=np.float64)


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
    err = area_errors(
        col("area_m2", np.nan), perim, res_m=col("res_m", 0.0),
        boundary_sd_m=col("boundary_sd_m", np.nan),
        coreg_residual_m=col("coreg_residual_m", 0.0),
        area_alt_m2=col("area_alt_m2", np.nan), area_reg_m2=col("area_reg_m2", np.nan),
        edge_corr_len_m=col("edge_corr_len_m", np.nan),
        area_adj_spread_m2=col("area_adj_spread_m2", 0.0),
    )
    # guided fits (geo.guided) carry their own area sd from the fit; blur and shifts are
    # fitted, so no date-common part is added
    fit_sd = col("area_fit_sd_m2", np.nan)
    fitted = np.isfinite(fit_sd)
    if fitted.any():
        err = AreaErrors(independent=np.where(fitted, fit_sd, err.independent),
                         common=np.where(fitted, 0.0, err.common))
    return err


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
    return _ratio_from_normals(an, (ni, nc), ad, (di, dc), rho, z)


def _ratio_from_normals(
    an: NDArray[np.float64], num_err: tuple[NDArray[np.float64], NDArray[np.float64]],
    ad: NDArray[np.float64], den_err: tuple[NDArray[np.float64], NDArray[np.float64]],
    rho: NDArray[np.float64], z: NDArray[np.float64],
) -> NDArray[np.float64]:
    """:func:`ratio_draws` from given standard normals ``z`` of shape ``(4, n, n_draws)``."""
    ni, nc = num_err
    di, dc = den_err
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


def _pair_intervals(
    area: NDArray[np.float64], err: AreaErrors, num: NDArray[np.intp], den: NDArray[np.intp],
    fid: NDArray[Any], *, corr: float, params: MeasureParams, level: float = 0.95,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """:func:`ratio_interval` of each footprint pair ``(num[i], den[i])``, batched.

    Every pair keeps its own draws, seeded by :func:`pair_seed` of its footprint ids (the same
    interval as ``ratio_interval(..., seed=pair_seed(...))`` and :func:`geo.claims.check_claim`);
    only the arithmetic and the percentiles run on many pairs at once, in chunks of bounded
    memory.
    """
    n = len(num)
    est_all, lo_all, hi_all = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    nd = params.n_draws
    step = max(1, 4_000_000 // (4 * nd))
    q = (1.0 - level) / 2.0
    ind, com = err.independent, err.common
    for s0 in range(0, n, step):
        a, b = num[s0:s0 + step], den[s0:s0 + step]
        z = np.empty((len(a), 4, nd))
        for i in range(len(a)):
            rng = np.random.default_rng(pair_seed(params.seed, str(fid[a[i]]), str(fid[b[i]])))
            rng.standard_normal(out=z[i])
        rho = np.full(len(a), float(np.clip(corr, -1.0, 1.0)))
        draws = _ratio_from_normals(area[a], (ind[a], com[a]), area[b], (ind[b], com[b]), rho,
                                    z.transpose(1, 0, 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            est = area[a] / area[b]
        lo, hi = np.quantile(draws, [q, 1.0 - q], axis=1)
        ok = np.isfinite(est)
        sl = slice(s0, s0 + len(a))
        est_all[sl] = est
        lo_all[sl] = np.where(ok, np.minimum(lo, est), np.nan)
        hi_all[sl] = np.where(ok, np.maximum(hi, est), np.nan)
    return est_all, lo_all, hi_all


def _neighbours(
    geoms: NDArray[Any], areas: NDArray[np.float64], ids: NDArray[Any],
    query: NDArray[np.intp], *, rule: str, max_distance_m: float,
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """:func:`neighbour_of` for many footprints at once, through a spatial index.

    ``geoms``/``areas``/``ids`` are the candidates (one date); ``query`` are positions among
    them. Returns ``(k, j)``: ``query[k]`` has neighbour ``j``. Same rule and ties as
    :func:`neighbour_of` (distances rounded to 1e-6 m, then larger area, then id, then
    position), at a cost of about ``n log n`` plus the pairs within the search radius:
    ``nearest`` searches within the distance to the nearest other footprint,
    ``largest-adjacent`` within ``max_distance_m``.
    """
    empty = np.zeros(0, dtype=np.intp)
    if len(query) == 0 or len(geoms) < 2:
        return empty, empty
    tree = shapely.STRtree(geoms)
    qg = geoms[query]
    if rule == "largest-adjacent":
        radius = np.full(len(query), max_distance_m)
    else:
        radius = _nearest_other_distance(tree, qg, query)
    reach = np.isfinite(radius) & (np.round(radius, 6) <= max_distance_m)
    parts: list[tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]] = []
    step = 4096
    for s0 in range(0, len(query), step):
        ks = np.flatnonzero(reach[s0:s0 + step]) + s0
        if len(ks) == 0:
            continue
        k, j = tree.query(qg[ks], predicate="dwithin", distance=radius[ks] + 1e-6)
        k = ks[k]
        keep = j != query[k]
        k, j = k[keep], j[keep]
        d = np.round(np.asarray(shapely.distance(geoms[j], qg[k]), dtype=float), 6)
        keep = d <= max_distance_m
        parts.append((k[keep], j[keep], d[keep]))
    if not parts:
        return empty, empty
    k, j, d = (np.concatenate(x) for x in zip(*parts, strict=True))
    rank = np.unique(ids.astype(str), return_inverse=True)[1]
    if rule == "largest-adjacent":
        order = np.lexsort((j, rank[j], -areas[j], k))
    else:
        order = np.lexsort((j, rank[j], -areas[j], d, k))
    first = np.ones(len(order), dtype=bool)
    first[1:] = k[order][1:] != k[order][:-1]
    return k[order][first].astype(np.intp), j[order][first].astype(np.intp)


def _nearest_other_distance(
    tree: shapely.STRtree, qg: NDArray[Any], query: NDArray[np.intp]
) -> NDArray[np.float64]:
    """Distance from each query footprint to the nearest *other* candidate (inf if none)."""
    qi, tj = tree.query_nearest(qg, all_matches=True)
    other = tj != query[qi]
    dist = np.full(len(qg), np.inf)
    dist[qi[other]] = 0.0  # a tie with itself at distance 0: touches or overlaps another
    rest = np.flatnonzero(~np.isfinite(dist))
    if len(rest):
        idx, d2 = tree.query_nearest(qg[rest], all_matches=False, exclusive=True,
                                     return_distance=True)
        dist[rest[idx[0]]] = d2
    return dist


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

    region = is_region(fp)
    multi = (first_rows != last_rows) & ~region[last_rows] & ~region[first_rows]
    if multi.any():
        lr, fr = last_rows[multi], first_rows[multi]
        g, glo, ghi = _pair_intervals(area, err, lr, fr, fid, corr=0.0, params=params)
        out["growth_ratio"][multi] = g
        out["growth_ratio_lo"][multi], out["growth_ratio_hi"][multi] = glo, ghi

    site_last = sites["last_seen_date"].astype(str).to_numpy()
    _neighbours_and_shares(out, fp, err, area, last_rows, site_last, fid, params, region)

    for i_site, label in enumerate(_site_labels(sites)):
        out["sentence"][i_site] = _sentence(
            label, str(site_last[i_site]), {c: out[c][i_site] for c in out},
        )
    for c, v in out.items():
        sites[c] = v
    return Tracks(footprints=fp, sites=_site_flags(sites, fp, last_rows), events=tracks.events)


def _neighbours_and_shares(
    out: dict[str, Any], fp: gpd.GeoDataFrame, err: AreaErrors, area: NDArray[np.float64],
    last_rows: NDArray[np.intp], site_last: NDArray[Any], fid: NDArray[Any],
    params: MeasureParams, region: NDArray[np.bool_],
) -> None:
    """Fill the neighbour and share columns of ``out``, per last-sighting date.

    Built-up regions (``region``) are neither measured against a neighbour, nor anyone's
    neighbour, nor part of the shares.
    """
    fp_sid = fp["site_id"].astype(str).to_numpy()
    fp_date = fp["date"].astype(str).to_numpy()
    ind, com = err.independent, err.common
    geoms = np.asarray(fp.geometry.values, dtype=object)
    for day in sorted(set(site_last)):
        on_date = np.flatnonzero((fp_date == day) & ~region)
        here = np.flatnonzero((site_last == day) & ~region[last_rows])
        pos = np.full(len(fp), -1, dtype=np.intp)
        pos[on_date] = np.arange(len(on_date))
        kq, jn = _neighbours(geoms[on_date], area[on_date], fp_sid[on_date],
                             pos[last_rows[here]], rule=params.neighbour,
                             max_distance_m=params.neighbour_max_distance_m)
        if len(kq):
            rn, rd, ks = last_rows[here[kq]], on_date[jn], here[kq]
            rr, rlo, rhi = _pair_intervals(area, err, rn, rd, fid, corr=params.same_date_corr,
                                           params=params)
            out["neighbour_id"][ks] = fp_sid[rd]
            out["neighbour_area_ratio"][ks] = rr
            out["neighbour_area_ratio_lo"][ks], out["neighbour_area_ratio_hi"][ks] = rlo, rhi
        sh, shlo, shhi = _share_interval(area[on_date], ind[on_date], com[on_date], params,
                                         key=f"share:{day}")
        i = pos[last_rows[here]]
        out["site_share_frac"][here] = sh[i]
        out["site_share_frac_lo"][here], out["site_share_frac_hi"][here] = shlo[i], shhi[i]


def _site_flags(sites: gpd.GeoDataFrame, fp: gpd.GeoDataFrame,
                last_rows: NDArray[np.intp]) -> gpd.GeoDataFrame:
    """Carry the last sighting's kind and outline stability to the sites; say so in words."""
    last = fp.iloc[last_rows]
    kind = (last["footprint_kind"].astype(str).to_numpy() if "footprint_kind" in last.columns
            else np.full(len(sites), BUILDING, dtype=object))
    unstable = (last["outline_unstable"].fillna(False).astype(bool).to_numpy()
                if "outline_unstable" in last.columns else np.zeros(len(sites), bool))
    sites["site_kind"] = kind
    sites["outline_unstable"] = unstable
    sentence = sites["sentence"].to_numpy(dtype=object).copy()
    reason = (last["gate_reason"].fillna("").astype(str).to_numpy()
              if "gate_reason" in last.columns else np.full(len(sites), "", dtype=object))
    for i in range(len(sites)):
        if kind[i] == REGION:
            sentence[i] = (f"{sites['site_id'].iloc[i]} is a built-up region, not a building "
                           f"({reason[i]}): no ratios")
        elif unstable[i]:
            sentence[i] += "; caution: unstable outline (claims on it are undecidable)"
    sites["sentence"] = sentence
    return sites


def _site_labels(sites: pd.DataFrame) -> list[str]:
    """Site ids, or ``"Building B (aoi:b2)"`` for named (guided-mode) buildings."""
    ids = [str(x) for x in sites["site_id"]]
    if "name" not in sites.columns:
        return ids
    return [f"{nm} ({sid})" if isinstance(nm, str) and nm else sid
            for nm, sid in zip(sites["name"], ids, strict=True)]


def _share_interval(
    a: NDArray[np.float64], ind: NDArray[np.float64], com: NDArray[np.float64],
    params: MeasureParams, *, key: str,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Share of each footprint in the date's total area, with MC intervals (chunked)."""
    total = float(a.sum())
    est = a / total if total > 0 else np.full(len(a), np.nan)
    if len(a) == 1:
        return est, est.copy(), est.copy()
    # Two passes over the same random stream: the first sums the draws of the date's total,
    # the second regenerates each chunk to take its percentiles, so memory stays one chunk
    # (not footprints × draws) while the draws are exactly those of a single pass.
    draws_sum = np.zeros(params.n_draws)
    for _, t in _share_draws(a, ind, com, params, key):
        draws_sum += t.sum(axis=0)
    lo = np.empty(len(a))
    hi = np.empty(len(a))
    for sl, t in _share_draws(a, ind, com, params, key):
        frac = t / draws_sum[None, :]
        q = np.quantile(frac, [0.025, 0.975], axis=1)
        lo[sl], hi[sl] = q[0], q[1]
    lo = np.minimum(lo, est)
    hi = np.minimum(np.maximum(hi, est), 1.0)
    return est, lo, hi


def _share_draws(
    a: NDArray[np.float64], ind: NDArray[np.float64], com: NDArray[np.float64],
    params: MeasureParams, key: str,
) -> Iterator[tuple[slice, NDArray[np.float64]]]:
    """True-area draws of a date's footprints, chunk by chunk, from the date's seed."""
    rng = np.random.default_rng(_seed_for(params.seed, key))
    rho = params.same_date_corr
    zc = rng.standard_normal(params.n_draws)
    n_chunk = max(1, 2_000_000 // params.n_draws)
    for s in range(0, len(a), n_chunk):
        sl = slice(s, s + n_chunk)
        m = a[sl].shape[0]
        zo = rng.standard_normal((m, params.n_draws))
        zi = rng.standard_normal((m, params.n_draws))
        zcom = rho * zc[None, :] + math.sqrt(max(0.0, 1 - rho**2)) * zo
        t = a[sl, None] - ind[sl, None] * zi - com[sl, None] * zcom
        yield sl, np.maximum(t, _FLOOR_FRAC * a[sl, None])


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

