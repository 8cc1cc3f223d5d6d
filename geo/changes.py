"""Outlines of change events: what was built, added, removed between two sightings of a site.

Pure geometry on the tracked footprints and events of :func:`geo.match.track_footprints`;
:mod:`geo.pipeline` writes the result as ``changes.geojson``.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

__all__ = ["CHANGE_COLUMNS", "change_geometry", "changes_from_events"]

CHANGE_COLUMNS = ["change_id", "site_id", "event", "date_from", "date_to", "area_from_m2",
                  "area_to_m2", "change_area_m2", "related_site_ids"]


def change_geometry(kind: str, before: BaseGeometry | None,
                    after: BaseGeometry | None) -> BaseGeometry | None:
    """The outline of one event: the new building, the added or removed part, what went."""
    if kind == "new" or (kind in ("merged", "split") and after is not None):
        return after
    if kind == "demolished":
        return before
    if kind == "grown" and after is not None:
        return after.difference(before) if before is not None else after
    if kind == "shrunk" and before is not None:
        return before.difference(after) if after is not None else before
    return after if after is not None else before


def _polygonal(geom: BaseGeometry | None) -> BaseGeometry | None:
    """``geom`` made valid and kept to its polygons; ``None`` when nothing areal is left."""
    if geom is None or geom.is_empty:
        return None
    geom = shapely.make_valid(geom)
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    polys = [g for g in getattr(geom, "geoms", []) if g.geom_type == "Polygon"]
    return shapely.MultiPolygon(polys) if polys else None


def changes_from_events(events: pd.DataFrame, footprints: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Geometries of change events: new / grown (added part) / shrunk / demolished / merged / split.

    ``unchanged`` events are left out. Geometry is in the footprints' CRS.
    """
    crs = footprints.crs
    rows: list[dict[str, Any]] = []
    if len(events) and len(footprints):
        by = {(s, d): g for s, d, g in zip(footprints["site_id"], footprints["date"],
                                           footprints.geometry, strict=True)}
        made: dict[int, tuple[BaseGeometry | None, BaseGeometry | None]] = {}
        for i, ev in enumerate(events.itertuples(index=False), 1):
            kind = str(ev.event)
            if kind == "unchanged":
                continue
            raw = change_geometry(kind, by.get((ev.site_id, ev.date_from)),
                                  by.get((ev.site_id, ev.date_to)))
            # a footprint on several rows (a merged site's outline on each of its merged
            # events) is made valid once: by object, kept alive in ``made`` so ids stay unique
            if id(raw) not in made:
                made[id(raw)] = (raw, _polygonal(raw))
            geom = made[id(raw)][1]
            if geom is None:
                continue
            when = str(ev.date_to or ev.date_from)
            rows.append({"change_id": f"{ev.site_id!s}:{kind}:{when}:{i}",
                         "site_id": ev.site_id, "event": kind, "date_from": ev.date_from,
                         "date_to": ev.date_to, "area_from_m2": ev.area_from_m2,
                         "area_to_m2": ev.area_to_m2, "change_area_m2": float(geom.area),
                         "related_site_ids": getattr(ev, "related_site_ids", ""),
                         "geometry": geom})
    if not rows:
        df = pd.DataFrame({c: pd.Series(dtype="object") for c in CHANGE_COLUMNS})
        return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)
