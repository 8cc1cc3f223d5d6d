"""Guided mode: fit each named prior building to every date's pixels (pure compute).

The analyst names the buildings (:class:`Prior`: a rough polygon, a box, or a point with an
approximate size). On every date each prior is fitted to that date's pixels:

* at 10–30 m (``res_m > 2``) by the PSF-convolved rectangle of :mod:`geo.fit`: first on each
  date alone (presence state and a single-date area), then **jointly over every run of
  consecutive roofed dates whose single-date areas agree** (an *epoch*: the building did not
  change), so that many clear dates narrow the interval;
* at VHR (``res_m <= 2``) by the edge/region refinement of :mod:`geo.refine`, per date.

Per date and building the result is a presence state (:data:`PRESENCE`) with a confidence,
the area with its 95% interval and the fit quality, or ``not observed`` with the reason
(cloud, nodata, no edges, no convergence). The prior's own area is never returned as a
measurement: a date whose pixels do not support a fit has no area.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import Point, Polygon
from shapely.geometry.base import BaseGeometry

from geo.config import MatchParams
from geo.detect.indices import normalized_difference
from geo.fit import Rect, RectFit, fit_rectangle, rect_corners
from geo.footprints import FOOTPRINT_COLUMNS
from geo.geoarray import GeoArray
from geo.grid import Grid
from geo.match import EVENT_COLUMNS, SITE_COLUMNS, Tracks
from geo.measure import Z95
from geo.refine import rectangularity

__all__ = [
    "GUIDED_COLUMNS",
    "MODEL_SD_FRAC",
    "PRESENCE",
    "GuidedResult",
    "Prior",
    "guided_measure",
    "resolve_site",
    "track_guided",
]

log = logging.getLogger(__name__)

PRESENCE = ("absent", "cleared ground", "under construction", "roofed")
"""Presence states; ``not observed`` is used where the imagery does not support a fit."""
NOT_OBSERVED = "not observed"
GUIDED_COLUMNS = (
    "prior_id", "name", "date", "state", "state_confidence", "area_m2", "area_sd_m2",
    "area_lo_m2", "area_hi_m2", "fit_quality", "contrast_t", "n_dates_joint", "epoch",
    "method", "note",
)
"""Columns of the per-date, per-building table (``buildings.csv``)."""
T_PRESENT = 6.0
"""Roof contrast (in standard errors) above which a rectangle is taken as present."""
MIN_VALID = 0.9
"""Share of the prior's search area that must be valid (not cloud/nodata) on a date."""
MAX_REL_SD = 0.25
"""A single-date fit with a relative area sd above this does not support a measurement."""
MIN_COS = 0.8
"""Smallest cosine between a date's band contrasts and the building's usual roof contrast."""
SHAPE_SD_FACTOR = 0.5
"""Area sd added for a polygon prior that is not a rectangle: this factor times one minus its
rectangularity (IoU with its minimum rotated rectangle), as a fraction of the area."""
MODEL_SD_FRAC = 0.015
"""Model-error floor on the 10 m area sd, as a fraction of the area (see the benchmark)."""


@dataclass(frozen=True, kw_only=True)
class Prior:
    """One named building the analyst asks about, in the grid CRS."""

    prior_id: str
    """Short id (``b1``, ``b2``, ...), shown on the maps; site ids are ``{aoi}:{prior_id}``."""
    name: str
    geometry: BaseGeometry
    """A polygon (rough outline or box) or a point."""
    size_m2: float = math.nan
    """Approximate area for point priors."""
    width_m: float = math.nan
    length_m: float = math.nan


@dataclass(frozen=True, kw_only=True)
class GuidedResult:
    """Footprint rows for measured (roofed) dates and the full per-date table."""

    footprints: gpd.GeoDataFrame
    table: pd.DataFrame


def prior_outline(prior: Prior) -> Polygon:
    """The prior as a polygon: its own outline, or a box of its size around a point."""
    g = prior.geometry
    if isinstance(g, Point):
        if math.isfinite(prior.width_m) and math.isfinite(prior.length_m):
            w, h = prior.width_m, prior.length_m
        elif math.isfinite(prior.size_m2) and prior.size_m2 > 0:
            w = h = math.sqrt(prior.size_m2)
        else:
            raise ValueError(f"prior {prior.name!r} is a point without size_m2 or "
                             "width_m/length_m")
        return shapely.box(g.x - w / 2, g.y - h / 2, g.x + w / 2, g.y + h / 2)
    hull = shapely.convex_hull(g) if g.geom_type == "MultiPolygon" else g
    return Polygon(hull.exterior) if isinstance(hull, Polygon) else shapely.box(*g.bounds)


def _rect_from_polygon(poly: BaseGeometry, grid: Grid, c0: int, r0: int) -> Rect:
    """The minimum rotated rectangle of ``poly`` in window pixel coordinates."""
    inv = ~grid.transform
    mrr = shapely.minimum_rotated_rectangle(poly)
    xy = np.array([inv * p for p in np.asarray(mrr.exterior.coords)[:4]])
    xy -= (c0, r0)
    d1, d2 = xy[1] - xy[0], xy[2] - xy[1]
    c = xy.mean(axis=0)
    return Rect(cx=float(c[0]), cy=float(c[1]), w=float(np.hypot(*d1)),
                length=float(np.hypot(*d2)), angle=float(math.atan2(d1[1], d1[0])))


def _rect_polygon(rect: Rect, grid: Grid, c0: int, r0: int) -> Polygon:
    pts = rect_corners(rect) + np.array([c0, r0], dtype=float)
    return Polygon([grid.transform * (float(x), float(y)) for x, y in pts])


@dataclass(frozen=True, kw_only=True)
class _Window:
    r0: int
    r1: int
    c0: int
    c1: int
    use: np.ndarray
    """Pixels of the search area (near the prior, away from other priors)."""
    core: np.ndarray
    """Pixels inside the prior outline."""
    init: Rect


def _window(prior: Prior, others: Sequence[Prior], grid: Grid, margin_m: float) -> _Window:
    from rasterio import features

    outline = prior_outline(prior)
    area = outline.buffer(margin_m)
    inv = ~grid.transform
    xs, ys = zip(*[inv * p for p in np.asarray(area.envelope.exterior.coords)], strict=True)
    c0, c1 = max(math.floor(min(xs)), 0), min(math.ceil(max(xs)), grid.shape[1])
    r0, r1 = max(math.floor(min(ys)), 0), min(math.ceil(max(ys)), grid.shape[0])
    if c1 - c0 < 3 or r1 - r0 < 3:
        raise ValueError(f"prior {prior.name!r} lies outside the imagery grid")
    t = grid.transform * grid.transform.translation(c0, r0)
    shape = (r1 - r0, c1 - c0)
    use = features.rasterize([(area, 1)], out_shape=shape, transform=t, dtype="uint8") > 0
    core = features.rasterize([(outline, 1)], out_shape=shape, transform=t, dtype="uint8") > 0
    near = [prior_outline(o).buffer(grid.res_m) for o in others]
    near = [n.difference(outline) for n in near if n.intersects(area)]
    if near:
        use &= ~(features.rasterize([(g, 1) for g in near if not g.is_empty], out_shape=shape,
                                    transform=t, dtype="uint8") > 0)
    return _Window(r0=r0, r1=r1, c0=c0, c1=c1, use=use, core=core,
                   init=_rect_from_polygon(outline, grid, c0, r0))


def _state_without_roof(ga: GeoArray, win: _Window) -> tuple[str, str]:
    """Absent (vegetation) or cleared ground (bare, low NDVI) inside the prior."""
    if ga.has("red", "nir"):
        red = ga.band("red")[win.r0:win.r1, win.c0:win.c1][win.core]
        nir = ga.band("nir")[win.r0:win.r1, win.c0:win.c1][win.core]
        ndvi = float(np.nanmedian(normalized_difference(nir, red, eps=None)))
        if np.isfinite(ndvi) and ndvi < 0.25:
            return ("cleared ground",
                    f"no roof edges; bare ground inside the prior (NDVI {ndvi:.2f})")
        return "absent", f"no roof edges; vegetation inside the prior (NDVI {ndvi:.2f})"
    return "absent", "no roof edges inside the search area (no nir band to tell bare ground)"


def _confidence(t: float) -> float:
    """A 0–1 confidence from a contrast t-value (logistic around :data:`T_PRESENT`)."""
    return round(1.0 / (1.0 + math.exp(-(abs(t) - T_PRESENT) / 1.5)), 3)


def _single_fits(scenes: Sequence[GeoArray], win: _Window, psf_px: float
                 ) -> list[tuple[RectFit | None, str]]:
    out: list[tuple[RectFit | None, str]] = []
    for ga in scenes:
        valid = ga.valid[win.r0:win.r1, win.c0:win.c1]
        share = float(valid[win.use].mean()) if win.use.any() else 0.0
        if share < MIN_VALID:
            out.append((None, f"cloud or nodata over {1 - share:.0%} of the search area"))
            continue
        img = np.nan_to_num(ga.data[:, win.r0:win.r1, win.c0:win.c1].astype(np.float64))
        try:
            fit = fit_rectangle([img], [win.use & valid], win.init, psf_px=psf_px,
                                fit_psf=False, fit_shifts=False)
        except (ValueError, np.linalg.LinAlgError) as err:
            out.append((None, f"fit failed ({err})"))
            continue
        out.append((fit, ""))
    return out


def _epochs(areas: Sequence[float], sds: Sequence[float]) -> list[list[int]]:
    """Group consecutive dates whose areas agree within 3 sigma into epochs (indices)."""
    groups: list[list[int]] = []
    mean = var = math.nan
    for i, (a, s) in enumerate(zip(areas, sds, strict=True)):
        if groups and abs(a - mean) <= 3.0 * math.sqrt(s**2 + var):
            w0, w1 = 1.0 / var, 1.0 / s**2
            mean, var = (mean * w0 + a * w1) / (w0 + w1), 1.0 / (w0 + w1)
            groups[-1].append(i)
        else:
            groups.append([i])
            mean, var = a, s**2
    return groups


MIN_PRIOR_PX = 16.0
"""A prior smaller than this many pixels is not fitted at 10–30 m (``plan`` uses the same
limit): the calibration study (benchmarks/calibration_pipeline.py) found such fits 5–16x too
large with intervals that missed the truth."""
def _measure_prior(prior: Prior, others: Sequence[Prior], scenes: Sequence[GeoArray],
                   grid: Grid, psf_px: float, margin_m: float) -> list[dict[str, Any]]:
    """Per-date rows for one prior at 10–30 m (see the module docstring)."""
    px_area = grid.pixel_area_m2
    prior_m2 = float(prior_outline(prior).area)
    if prior_m2 < MIN_PRIOR_PX * px_area:
        why = (f"too small for {grid.res_m:g} m pixels ({prior_m2 / px_area:.0f} px; guided "
               f"fits need at least {MIN_PRIOR_PX:g}): use finer imagery")
        return [{"prior_id": prior.prior_id, "name": prior.name, "date": ga.date,
                 "method": "psf-rectangle", "epoch": "", "n_dates_joint": 0,
                 "area_m2": math.nan, "area_sd_m2": math.nan, "note": why,
                 "fit_quality": math.nan, "contrast_t": math.nan, "state": NOT_OBSERVED,
                 "state_confidence": math.nan, "geometry": None} for ga in scenes]
    win = _window(prior, others, grid, margin_m)
    singles = _single_fits(scenes, win, psf_px)
    rows: list[dict[str, Any]] = []
    for ga, (fit, why) in zip(scenes, singles, strict=True):
        row: dict[str, Any] = {"prior_id": prior.prior_id, "name": prior.name, "date": ga.date,
                               "method": "psf-rectangle", "epoch": "", "n_dates_joint": 0,
                               "area_m2": math.nan, "area_sd_m2": math.nan, "note": why,
                               "fit_quality": math.nan, "contrast_t": math.nan,
                               "state": NOT_OBSERVED, "state_confidence": math.nan,
                               "geometry": None}
        if fit is not None:
            t = float(fit.contrast_t[0])
            row.update(contrast_t=round(t, 2), fit_quality=round(fit.chi2_dof, 3))
            rel = fit.area_sd_px / fit.area_px if fit.area_px > 0 else math.inf
            if t < T_PRESENT:
                row["state"], row["note"] = _state_without_roof(ga, win)
                row["state_confidence"] = round(1.0 - _confidence(t), 3)
            elif not fit.success or fit.at_bound or rel > MAX_REL_SD:
                row["note"] = ("the fit does not converge on the prior (no clear edges, "
                               "occlusion or a shape the rectangle model cannot follow)")
            else:
                row.update(state="roofed", state_confidence=_confidence(t),
                           area_m2=fit.area_px * px_area, area_sd_m2=fit.area_sd_px * px_area)
                row["_fit"] = fit
        rows.append(row)
    _check_contrast(rows, scenes, win)
    # a non-rectangular prior (an L-shaped hall) is fitted by one rectangle: widen, don't bias
    shape_frac = (0.0 if isinstance(prior.geometry, Point)
                  else SHAPE_SD_FACTOR * (1.0 - rectangularity(prior_outline(prior))))
    _joint(rows, scenes, win, grid, psf_px, shape_frac)
    return rows


def _check_contrast(rows: list[dict[str, Any]], scenes: Sequence[GeoArray],
                    win: _Window) -> None:
    """Compare each roofed-looking date's roof contrast with the building's usual one.

    A contrast of another colour (cosine < :data:`MIN_COS` across the bands, e.g. dark bare
    soil of a cleared plot where the roof is bright) is not this roof: the date gets a
    no-roof state. Less than half the usual contrast is ``under construction``. Needs three
    roofed-looking dates.
    """
    roofed = [i for i, r in enumerate(rows) if r["state"] == "roofed"]
    if len(roofed) < 3:
        return
    vecs = np.array([rows[i]["_fit"].contrast[0] for i in roofed])
    ref = np.median(vecs, axis=0)
    ref_mag = float(np.linalg.norm(ref))
    for i, v in zip(roofed, vecs, strict=True):
        r = rows[i]
        mag = float(np.linalg.norm(v))
        cos = float(v @ ref) / max(mag * ref_mag, 1e-12)
        if cos < MIN_COS:
            state, note = _state_without_roof(scenes[i], win)
            r.update(state=state, state_confidence=round((1.0 - cos) / 2.0, 3), area_m2=math.nan,
                     area_sd_m2=math.nan, note=f"the object has another colour than the roof on "
                                               f"other dates (cosine {cos:.2f}); {note}")
            r.pop("_fit")
        elif mag < 0.5 * ref_mag:
            r.update(state="under construction", state_confidence=round(1 - mag / ref_mag, 3),
                     note=f"roof contrast {mag / ref_mag:.0%} of the building's usual contrast")
            r.pop("_fit")


def _joint(rows: list[dict[str, Any]], scenes: Sequence[GeoArray], win: _Window, grid: Grid,
           psf_px: float, shape_frac: float) -> None:
    """Refit each epoch of agreeing roofed dates jointly; set areas, intervals, outlines."""
    idx = [i for i, r in enumerate(rows) if "_fit" in r]
    groups = _epochs([rows[i]["area_m2"] for i in idx], [rows[i]["area_sd_m2"] for i in idx])
    px_area = grid.pixel_area_m2
    for k, g in enumerate(groups, 1):
        members = [idx[j] for j in g]
        fits = [rows[i]["_fit"] for i in members]
        per_date: list[RectFit] = fits
        n_joint = 1
        if len(members) > 1:
            imgs = [np.nan_to_num(scenes[i].data[:, win.r0:win.r1, win.c0:win.c1]
                                  .astype(np.float64)) for i in members]
            masks = [win.use & scenes[i].valid[win.r0:win.r1, win.c0:win.c1] for i in members]
            best = fits[int(np.argsort([f.area_px for f in fits])[len(fits) // 2])]
            joint = fit_rectangle(imgs, masks, best.rect, psf_px=psf_px)
            if joint.success and math.isfinite(joint.area_sd_px) and not joint.at_bound:
                per_date, n_joint = [joint] * len(members), len(members)
        for i, fit in zip(members, per_date, strict=True):
            area = fit.area_px * px_area
            r = rows[i]
            r.pop("_fit")
            sd = math.hypot(fit.area_sd_px * px_area, MODEL_SD_FRAC * area, shape_frac * area)
            r.update(area_m2=area, area_sd_m2=sd,
                     geometry=_rect_polygon(fit.rect, grid, win.c0, win.r0), epoch=f"e{k}",
                     n_dates_joint=n_joint, fit_quality=round(fit.chi2_dof, 3))


def guided_measure(
    scenes: Sequence[GeoArray],
    priors: Sequence[Prior],
    *,
    aoi_name: str,
    psf_px: float = 0.5,
    search_m: float = 0.0,
    coreg_residual_m: Mapping[str, float] | None = None,
) -> GuidedResult:
    """Fit every prior on every date; footprints for measured dates and the per-date table.

    Parameters
    ----------
    scenes : sequence of GeoArray
        Co-registered dates on one grid.
    priors : sequence of Prior
        In the grid CRS; ``prior_id`` values unique.
    aoi_name : str
        Prefix of footprint ids ``{aoi}:{date}:{prior_id}``.
    psf_px : float
        Starting PSF sigma in pixels (10 m); the joint fit refines it.
    search_m : float
        How far the building may extend beyond the prior, metres (0: 3 pixels, at least 10 m).
    coreg_residual_m : mapping, optional
        Co-registration residual per date, recorded per footprint.

    Returns
    -------
    GuidedResult
    """
    if not scenes:
        raise ValueError("guided mode needs at least one date")
    grid = scenes[0].grid
    margin = search_m if search_m > 0 else max(3.0 * grid.res_m, 10.0)
    rows: list[dict[str, Any]] = []
    for p in priors:
        others = [o for o in priors if o.prior_id != p.prior_id]
        if grid.res_m <= 2.0:
            from geo.refine import refine_prior

            rows += refine_prior(p, prior_outline(p), others, scenes, grid, search_m)
        else:
            rows += _measure_prior(p, others, scenes, grid, psf_px, margin)
    table = pd.DataFrame(rows)
    table["area_lo_m2"] = np.maximum(table["area_m2"] - Z95 * table["area_sd_m2"], 0.0)
    table["area_hi_m2"] = table["area_m2"] + Z95 * table["area_sd_m2"]
    fps = _footprint_rows(table, grid, aoi_name, coreg_residual_m or {})
    return GuidedResult(footprints=fps, table=pd.DataFrame(table[list(GUIDED_COLUMNS)]))


def _footprint_rows(table: pd.DataFrame, grid: Grid, aoi_name: str,
                    coreg: Mapping[str, float]) -> gpd.GeoDataFrame:
    from geo.footprints import edge_corr_len_m, empty_footprints

    ok = table[(table["state"] == "roofed") & table["area_m2"].notna()]
    if ok.empty:
        fp = empty_footprints(grid.crs)
        for c in ("prior_id", "name", "state", "state_confidence", "fit_quality",
                  "area_fit_sd_m2", "n_dates_joint", "area_reg_m2"):
            fp[c] = pd.Series(dtype="object")
        return fp
    out = []
    recs: list[dict[str, Any]] = [{str(k): v for k, v in r.items()}
                                  for r in ok.to_dict("records")]
    for r in recs:
        geom = r["geometry"]
        d = str(r["date"])
        out.append({
            "footprint_id": f"{aoi_name}:{d}:{r['prior_id']}", "date": d,
            "area_m2": float(r["area_m2"]), "perimeter_m": float(geom.length),
            "n_px": round(float(r["area_m2"]) / grid.pixel_area_m2), "res_m": grid.res_m,
            "boundary_sd_m": math.nan, "coreg_residual_m": float(coreg.get(d, 0.0)),
            "area_alt_m2": math.nan, "occluded": False, "alt_parts": 1,
            "edge_corr_len_m": edge_corr_len_m(geom, grid.res_m),
            "prior_id": r["prior_id"], "name": r["name"], "state": r["state"],
            "state_confidence": r["state_confidence"], "fit_quality": r["fit_quality"],
            "area_fit_sd_m2": float(r["area_sd_m2"]), "n_dates_joint": int(r["n_dates_joint"]),
            "area_reg_m2": float(r.get("area_reg_m2", math.nan)),
            "geometry": geom,
        })
    cols = [*FOOTPRINT_COLUMNS, "prior_id", "name", "state", "state_confidence", "fit_quality",
            "area_fit_sd_m2", "n_dates_joint", "area_reg_m2", "geometry"]
    return gpd.GeoDataFrame(pd.DataFrame(out)[cols], geometry="geometry", crs=grid.crs)


def _event(a0: float, a1: float, tol: float) -> str:
    rel = a1 / a0 - 1.0 if a0 > 0 else math.inf
    return "grown" if rel > tol else "shrunk" if rel < -tol else "unchanged"


def track_guided(footprints: gpd.GeoDataFrame, *, dates: Sequence[str], aoi_name: str,
                 params: MatchParams, table: pd.DataFrame | None = None) -> Tracks:
    """Sites keyed by prior (``{aoi}:{prior_id}``), not by overlap tracking.

    ``table`` (the per-date states) lets a building roofed earlier and later seen as
    absent or cleared ground be ``demolished``.
    """
    fp = footprints.reset_index(drop=True).copy()
    fp["site_id"] = [f"{aoi_name}:{p}" for p in fp["prior_id"]]
    all_dates = sorted(set(map(str, dates)) | set(fp["date"].astype(str)))
    sites, geoms, events = [], [], []
    for pid, g in fp.groupby("prior_id", sort=False):
        g = g.sort_values("date")
        sid, seen = f"{aoi_name}:{pid}", g["date"].astype(str).tolist()
        areas = g["area_m2"].to_numpy(float)
        for k in range(1, len(g)):
            events.append({"site_id": sid, "date_from": seen[k - 1], "date_to": seen[k],
                           "event": _event(areas[k - 1], areas[k], params.growth_tolerance),
                           "area_from_m2": areas[k - 1], "area_to_m2": areas[k],
                           "related_site_ids": ""})
        status = "new" if seen[0] != all_dates[0] else _event(areas[0], areas[-1],
                                                                params.growth_tolerance)
        if table is not None:
            later = table[(table["prior_id"] == pid) & (table["date"].astype(str) > seen[-1])]
            gone = later[later["state"].isin(["absent", "cleared ground"])]
            if len(gone):
                status = "demolished"
                events.append({"site_id": sid, "date_from": seen[-1],
                               "date_to": str(gone["date"].iloc[0]), "event": "demolished",
                               "area_from_m2": areas[-1], "area_to_m2": 0.0,
                               "related_site_ids": ""})
        sites.append({"site_id": sid, "name": g["name"].iloc[0], "prior_id": pid,
                      "status": status, "first_seen_date": seen[0], "last_seen_date": seen[-1],
                      "n_dates": len(seen), "dates": ";".join(seen)})
        geoms.append(g.geometry.iloc[-1])
    cols = [*SITE_COLUMNS[:1], "name", "prior_id", *SITE_COLUMNS[1:]]
    site_gdf = gpd.GeoDataFrame(pd.DataFrame(sites, columns=cols), geometry=geoms, crs=fp.crs)
    ev = pd.DataFrame(events, columns=list(EVENT_COLUMNS))
    return Tracks(footprints=fp, sites=site_gdf, events=ev)


def resolve_site(sites: pd.DataFrame, key: str) -> str:
    """A site id from a site id, a building name, or a short id (``b2``); else ``key``.

    The table form of :func:`geo.names.resolve_site` (the one rule, shared with ``claim``).

    Examples
    --------
    >>> s = pd.DataFrame({"site_id": ["x:b1", "x:b2"], "name": ["Building A", "Building B"]})
    >>> resolve_site(s, "Building B"), resolve_site(s, "b1"), resolve_site(s, "neighbour")
    ('x:b2', 'x:b1', 'neighbour')
    """
    from geo.names import resolve_site as resolve

    ids = [str(x) for x in sites["site_id"]]
    names = ({sid: str(n) for sid, n in zip(ids, sites["name"], strict=True)
              if isinstance(n, str) and n} if "name" in sites.columns else {})
    return resolve(key, ids, names)
