"""FROZEN COPY of geo/match.py at commit 5674e97 (before the n log n rewrite).

Test oracle only: tests/test_scale_equivalence.py checks that the current code gives the
same sites, events and intervals as this quadratic original. Do not edit or import it
from geo/.

Building identity across dates: overlap matching, persistent site ids and events.

Pure compute: GeoDataFrames in (one projected CRS), GeoDataFrames out.

Algorithm (per date, in date order)
-----------------------------------
Every site keeps the outline of its **last sighting**. The footprints of the next date are
compared with those outlines:

1. one-to-one pairs are chosen by maximum total IoU (Hungarian assignment) among pairs whose
   IoU is at least ``MatchParams.iou_threshold`` (SpaceNet 7 scores with 0.25). A matched pair
   continues the site; the event is ``grown``, ``shrunk`` or ``unchanged`` by the relative area
   change against ``growth_tolerance``.
2. an unmatched footprint that lies mostly (≥ ``cover_frac``) inside a site's last outline is a
   piece of that site: ``split`` (it starts a new site; both get the event).
3. an unmatched site that lies mostly inside a footprint matched to another site was absorbed:
   ``merged`` (it ends; both get the event).
4. any other unmatched footprint starts a ``new`` site.
5. a site not seen on a date is *not* ended there: sites stay candidates for later dates, so a
   missed detection or a cloudy date is a gap that the next sighting fills. A site is
   ``demolished`` only if, after its last sighting, some date had valid data over its outline
   (``valid_by_date``; without it every date counts as valid) and it was never seen again.

Sites seen on fewer than ``MatchParams.min_dates`` dates are dropped (with their footprints
and events).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from shapely.geometry.base import BaseGeometry

from geo.config import MatchParams
from geo.errors import CrsMismatchError, FactoryWatchError

__all__ = [
    "EVENT_COLUMNS",
    "SITE_COLUMNS",
    "Tracks",
    "match_footprints",
    "track_footprints",
]

log = logging.getLogger(__name__)

SITE_COLUMNS: tuple[str, ...] = (
    "site_id", "status", "first_seen_date", "last_seen_date", "n_dates", "dates",
)
"""Columns of ``Tracks.sites`` before measurement (plus ``geometry``)."""
EVENT_COLUMNS: tuple[str, ...] = (
    "site_id", "date_from", "date_to", "event", "area_from_m2", "area_to_m2", "related_site_ids",
)
"""Columns of ``Tracks.events``."""


@dataclass(frozen=True, kw_only=True)
class Tracks:
    """Footprints with persistent site ids, one row per site, and the events table."""

    footprints: gpd.GeoDataFrame
    """Input footprints plus ``site_id`` (``"{aoi}:s{n}"``)."""
    sites: gpd.GeoDataFrame
    """One row per site; geometry = outline of the last sighting."""
    events: pd.DataFrame
    """``site_id, date_from, date_to, event, area_from_m2, area_to_m2, related_site_ids``."""


def _check_projected(gdf: gpd.GeoDataFrame, name: str) -> None:
    if gdf.crs is None or not gdf.crs.is_projected:
        raise CrsMismatchError(
            f"{name} must be in a projected metric CRS (got {gdf.crs}); reproject with "
            "gdf.to_crs(gdf.estimate_utm_crs()) first"
        )


def _pair_table(
    a: NDArray[Any], b: NDArray[Any]
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    """Index pairs of intersecting geometries and their intersection areas."""
    if len(a) == 0 or len(b) == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, np.zeros(0)
    tree = shapely.STRtree(b)
    ia, ib = tree.query(a, predicate="intersects")
    inter = shapely.area(shapely.intersection(a[ia], b[ib])) if len(ia) else np.zeros(0)
    keep = inter > 0
    return ia[keep].astype(np.intp), ib[keep].astype(np.intp), np.asarray(inter[keep], float)


def match_footprints(
    earlier: gpd.GeoDataFrame, later: gpd.GeoDataFrame, params: MatchParams
) -> pd.DataFrame:
    """One-to-one matches between two sets of footprints by IoU.

    Parameters
    ----------
    earlier, later : GeoDataFrame
        Footprints in the same projected CRS (any columns; the index labels are reported).
    params : MatchParams
        ``iou_threshold`` is the smallest IoU for a match.

    Returns
    -------
    DataFrame
        Columns ``index_a``, ``index_b``, ``iou``: the pairs chosen by maximum total IoU among
        pairs with IoU ≥ the threshold. Symmetric: swapping the inputs swaps the columns.

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely.geometry import box
    >>> from geo.config import MatchParams
    >>> a = gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10)], crs=32652)
    >>> match_footprints(a, a, MatchParams()).iou.tolist()
    [1.0]
    """
    if earlier.crs != later.crs:
        raise CrsMismatchError(
            f"footprints to match have different CRSs ({earlier.crs} vs {later.crs}); "
            "reproject one onto the other"
        )
    ga = np.asarray(earlier.geometry.values, dtype=object)
    gb = np.asarray(later.geometry.values, dtype=object)
    ia, ib, iou = _iou_pairs(ga, gb)
    ra, rb, riou = _assign(ia, ib, iou, len(ga), len(gb), params.iou_threshold)
    return pd.DataFrame({
        "index_a": earlier.index.to_numpy()[ra],
        "index_b": later.index.to_numpy()[rb],
        "iou": riou,
    })


def _iou_pairs(
    ga: NDArray[Any], gb: NDArray[Any]
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    ia, ib, inter = _pair_table(ga, gb)
    if len(ia) == 0:
        return ia, ib, inter
    union = shapely.area(ga[ia]) + shapely.area(gb[ib]) - inter
    return ia, ib, np.clip(inter / union, 0.0, 1.0)


def _assign(
    ia: NDArray[np.intp], ib: NDArray[np.intp], iou: NDArray[np.float64],
    na: int, nb: int, threshold: float,
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    """Maximum-total-IoU one-to-one assignment among pairs with IoU ≥ threshold."""
    ok = iou >= threshold - 1e-12
    ia, ib, iou = ia[ok], ib[ok], iou[ok]
    if len(ia) == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, np.zeros(0)
    ua, inv_a = np.unique(ia, return_inverse=True)
    ub, inv_b = np.unique(ib, return_inverse=True)
    # Quantise IoU so that near-ties resolve the same way whichever set comes first.
    cost = np.full((len(ua), len(ub)), 0.0)
    cost[inv_a, inv_b] = -np.round(iou, 9)
    rows, cols = linear_sum_assignment(cost)
    take = cost[rows, cols] < 0
    rows, cols = rows[take], cols[take]
    a_idx, b_idx = ua[rows], ub[cols]
    lookup = {(int(x), int(y)): float(v) for x, y, v in zip(ia, ib, iou, strict=True)}
    vals = np.array([lookup[(int(x), int(y))] for x, y in zip(a_idx, b_idx, strict=True)])
    order = np.argsort(a_idx, kind="stable")
    return a_idx[order], b_idx[order], vals[order]


@dataclass
class _Site:
    sid: str
    sightings: list[tuple[str, int]] = field(default_factory=list)  # (date, footprint row)
    geom: BaseGeometry | None = None
    area_m2: float = 0.0
    ended: bool = False  # merged into another site


def _order(gdf: gpd.GeoDataFrame) -> NDArray[np.intp]:
    """Deterministic, translation-invariant order: north to south, west to east, large first."""
    if len(gdf) == 0:
        return np.zeros(0, dtype=np.intp)
    c = gdf.geometry.centroid
    y = np.round(c.y.to_numpy(), 3)
    x = np.round(c.x.to_numpy(), 3)
    area = np.round(gdf.geometry.area.to_numpy(), 3)
    return np.lexsort((-area, x, -y)).astype(np.intp)


def _change_event(a0: float, a1: float, tol: float) -> str:
    if a0 <= 0:
        return "grown" if a1 > 0 else "unchanged"
    rel = a1 / a0 - 1.0
    if rel > tol:
        return "grown"
    if rel < -tol:
        return "shrunk"
    return "unchanged"


def track_footprints(
    footprints: gpd.GeoDataFrame,
    *,
    dates: Sequence[str],
    aoi_name: str,
    params: MatchParams,
    valid_by_date: Mapping[str, BaseGeometry] | None = None,
) -> Tracks:
    """Give each building a persistent site id through the dates, and list its events.

    Parameters
    ----------
    footprints : GeoDataFrame
        Footprints of all dates (projected CRS), with at least ``footprint_id``, ``date``
        (``YYYY-MM-DD``), ``area_m2`` and ``geometry``.
    dates : sequence of str
        All dates of the run, including dates without any footprint (they tell when a building
        disappeared). Dates of footprints missing here are added.
    aoi_name : str
        Prefix of the site ids: ``"{aoi_name}:s{n}"``, numbered in order of first sighting.
    params : MatchParams
        IoU threshold, growth tolerance and ``min_dates``.
    valid_by_date : mapping of date to geometry, optional
        Area (grid CRS) with valid data on each date. A site not seen on a date where less than
        half of its outline had valid data is a gap, not a disappearance. Dates absent from the
        mapping count as fully valid.

    Returns
    -------
    Tracks
        ``footprints`` plus ``site_id``; ``sites``; ``events``.

    Raises
    ------
    CrsMismatchError
        If the footprints are not in a projected CRS.
    FactoryWatchError
        If required columns are missing.
    """
    _check_projected(footprints, "footprints")
    missing = {"footprint_id", "date", "geometry"} - set(footprints.columns)
    if missing:
        raise FactoryWatchError(
            f"footprints lack columns {sorted(missing)}; build them with geo.footprints or "
            "geo.vector.read_footprints"
        )
    fp = footprints.reset_index(drop=True).copy()
    if "area_m2" not in fp.columns:
        fp["area_m2"] = fp.geometry.area
    all_dates = sorted(set(map(str, dates)) | set(fp["date"].astype(str)))
    thr = params.iou_threshold
    cover = params.cover_frac
    sites: list[_Site] = []
    site_of_row = np.full(len(fp), -1, dtype=np.intp)
    events: list[dict[str, Any]] = []
    geoms = np.asarray(fp.geometry.values, dtype=object)
    areas = fp["area_m2"].to_numpy(dtype=float)
    prev_date = ""

    for date in all_dates:
        rows_all = np.flatnonzero(fp["date"].astype(str).to_numpy() == date)
        rows = rows_all[_order(fp.iloc[rows_all])] if len(rows_all) else rows_all
        live = [k for k, s in enumerate(sites) if not s.ended]
        sgeo = np.asarray([sites[k].geom for k in live], dtype=object)
        fgeo = geoms[rows]
        ia, ib, iou = _iou_pairs(sgeo, fgeo)
        ra, rb, _ = _assign(ia, ib, iou, len(sgeo), len(fgeo), thr)
        f_site: dict[int, int] = {int(b): live[int(a)] for a, b in zip(ra, rb, strict=True)}
        matched_sites = set(f_site.values())
        # coverage fractions for split / merge decisions
        pa, pb, inter = _pair_table(sgeo, fgeo)
        s_area = shapely.area(sgeo[pa]) if len(pa) else np.zeros(0)
        f_area = shapely.area(fgeo[pb]) if len(pb) else np.zeros(0)
        pending_new: list[tuple[int, str, list[str]]] = []

        for j in range(len(rows)):
            r = int(rows[j])
            if j in f_site:
                continue
            sel = np.flatnonzero((pb == j) & (inter >= cover * f_area - 1e-9))
            if len(sel):
                parent = live[int(pa[sel[np.argmax(inter[sel])]])]
                pending_new.append((j, "split", [sites[parent].sid]))
            else:
                pending_new.append((j, "new", []))

        # continuations
        for j, k in sorted(f_site.items()):
            r = int(rows[j])
            s = sites[k]
            last_date = s.sightings[-1][0]
            events.append({
                "site_id": s.sid, "date_from": last_date, "date_to": date,
                "event": _change_event(s.area_m2, float(areas[r]), params.growth_tolerance),
                "area_from_m2": s.area_m2, "area_to_m2": float(areas[r]),
                "related_site_ids": "",
            })
            s.sightings.append((date, r))
            s.geom, s.area_m2 = geoms[r], float(areas[r])
            site_of_row[r] = k

        # merges: unmatched live sites lying mostly inside a footprint matched to another site
        for idx_live, k in enumerate(live):
            if k in matched_sites:
                continue
            sel = np.flatnonzero((pa == idx_live) & (inter >= cover * s_area - 1e-9))
            sel = np.asarray([x for x in sel if int(pb[x]) in f_site], dtype=np.intp)
            if len(sel) == 0:
                continue
            j = int(pb[sel[np.argmax(inter[sel])]])
            survivor = sites[f_site[j]]
            s = sites[k]
            s.ended = True
            events.append({
                "site_id": s.sid, "date_from": s.sightings[-1][0], "date_to": date,
                "event": "merged", "area_from_m2": s.area_m2,
                "area_to_m2": float(areas[int(rows[j])]), "related_site_ids": survivor.sid,
            })
            events.append({
                "site_id": survivor.sid,
                "date_from": survivor.sightings[-2][0] if len(survivor.sightings) > 1 else "",
                "date_to": date, "event": "merged", "area_from_m2": s.area_m2,
                "area_to_m2": float(areas[int(rows[j])]), "related_site_ids": s.sid,
            })

        # new sites and splits, in footprint order
        for j, kind, related in pending_new:
            r = int(rows[j])
            sid = f"{aoi_name}:s{len(sites) + 1}"
            s = _Site(sid=sid, sightings=[(date, r)], geom=geoms[r], area_m2=float(areas[r]))
            sites.append(s)
            site_of_row[r] = len(sites) - 1
            if kind == "new" and date == all_dates[0]:
                continue  # present from the start: not an event
            events.append({
                "site_id": sid, "date_from": prev_date, "date_to": date, "event": kind,
                "area_from_m2": 0.0 if kind == "new" else np.nan,
                "area_to_m2": float(areas[r]), "related_site_ids": ";".join(related),
            })
            if kind == "split":
                parent_site = next(q for q in sites if q.sid == related[0])
                events.append({
                    "site_id": parent_site.sid, "date_from": prev_date, "date_to": date,
                    "event": "split", "area_from_m2": np.nan, "area_to_m2": float(areas[r]),
                    "related_site_ids": sid,
                })
        prev_date = date

    # demolitions: not seen again although a later date had valid data over the outline
    for s in sites:
        if s.ended:
            continue
        last = s.sightings[-1][0]
        for date in all_dates[all_dates.index(last) + 1:]:
            if _is_observed(s.geom, valid_by_date, date):
                events.append({
                    "site_id": s.sid, "date_from": last, "date_to": date, "event": "demolished",
                    "area_from_m2": s.area_m2, "area_to_m2": 0.0, "related_site_ids": "",
                })
                break

    return _assemble(fp, sites, site_of_row, events, all_dates, params)


def _is_observed(
    geom: BaseGeometry | None, valid_by_date: Mapping[str, BaseGeometry] | None, date: str
) -> bool:
    if valid_by_date is None or date not in valid_by_date or geom is None:
        return True
    valid = valid_by_date[date]
    if valid is None or valid.is_empty:
        return False
    a = float(geom.area)
    return a <= 0 or float(geom.intersection(valid).area) >= 0.5 * a


def _assemble(
    fp: gpd.GeoDataFrame,
    sites: list[_Site],
    site_of_row: NDArray[np.intp],
    events: list[dict[str, Any]],
    all_dates: list[str],
    params: MatchParams,
) -> Tracks:
    ev = pd.DataFrame(events, columns=list(EVENT_COLUMNS))
    keep_sites = [s for s in sites if len(s.sightings) >= params.min_dates]
    keep_ids = {s.sid for s in keep_sites}
    dropped = len(sites) - len(keep_sites)
    if dropped:
        log.info("tracking: dropped %d site(s) seen on fewer than %d dates", dropped,
                 params.min_dates)
    sid_arr = np.array([sites[k].sid if k >= 0 else "" for k in site_of_row], dtype=object)
    out_fp = fp.copy()
    out_fp["site_id"] = sid_arr
    out_fp = out_fp[out_fp["site_id"].isin(keep_ids)].reset_index(drop=True)
    ev = ev[ev["site_id"].isin(keep_ids)].reset_index(drop=True)
    ev = ev.sort_values(["date_to", "site_id"], kind="stable").reset_index(drop=True)

    demolished = set(ev.loc[ev["event"] == "demolished", "site_id"])
    rows: list[dict[str, Any]] = []
    geoms: list[BaseGeometry | None] = []
    for s in keep_sites:
        dts = [d for d, _ in s.sightings]
        first_area = float(fp["area_m2"].iloc[s.sightings[0][1]])
        if s.sid in demolished:
            status = "demolished"
        elif dts[0] != all_dates[0]:
            status = "new"
        elif s.ended:
            status = "grown"  # absorbed into a larger building (see the ``merged`` event)
        else:
            status = _change_event(first_area, s.area_m2, params.growth_tolerance)
        rows.append({
            "site_id": s.sid, "status": status, "first_seen_date": dts[0],
            "last_seen_date": dts[-1], "n_dates": len(dts), "dates": ";".join(dts),
        })
        geoms.append(s.geom)
    sites_gdf = gpd.GeoDataFrame(
        pd.DataFrame(rows, columns=list(SITE_COLUMNS)), geometry=geoms, crs=fp.crs
    )
    log.info("tracking: %d footprints → %d sites, %d events", len(out_fp), len(sites_gdf),
             len(ev))
    return Tracks(footprints=out_fp, sites=sites_gdf, events=ev)
