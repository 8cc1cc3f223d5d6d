"""Areas of interest: read an AOI GeoJSON and validate it.

An AOI file is an RFC 7946 FeatureCollection in EPSG:4326 with one or more
polygons and properties that say where the coordinates came from
(``coord_source``, ``coord_confidence``, ``point_kind``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geo.errors import AoiError
from geo.grid import to_crs, utm_epsg_for

__all__ = ["Aoi", "read_aoi", "validate_aoi"]

MAX_AOI_KM2 = 400.0


@dataclass(frozen=True, kw_only=True)
class Aoi:
    """An area of interest in EPSG:4326."""

    name: str
    """Short name used in ids (``kanggye_tractor_plant``)."""
    geometry: BaseGeometry
    """(Multi)polygon in EPSG:4326, lon/lat."""
    properties: dict[str, Any] = field(default_factory=dict)
    """Provenance of the AOI: coord_source, coord_confidence, point_kind, ..."""
    path: str = ""
    """The file it was read from."""

    @property
    def is_measuring(self) -> bool:
        """False where the AOI is only a search window around an approximate point."""
        return str(self.properties.get("point_kind", "")) != "town_centre"


def read_aoi(path: str | Path, *, name: str = "") -> Aoi:
    """Read an AOI GeoJSON file.

    Raises
    ------
    AoiError
        If the file is missing, not GeoJSON, has no polygon, or the geometry is
        empty. Invalid geometry is reported by :func:`validate_aoi`, not here.
    """
    p = Path(path)
    if not p.is_file():
        raise AoiError(f"{p}: AOI file not found; set [aoi] geometry in the config")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AoiError(f"{p}: not valid GeoJSON ({err}); fix or redraw the AOI") from None
    feats: list[dict[str, Any]]
    if data.get("type") == "FeatureCollection":
        feats = list(data.get("features") or [])
    elif data.get("type") == "Feature":
        feats = [data]
    elif data.get("type") in ("Polygon", "MultiPolygon"):
        feats = [{"type": "Feature", "geometry": data, "properties": {}}]
    else:
        raise AoiError(f"{p}: expected a GeoJSON FeatureCollection of polygons")
    if "crs" in data:
        crs_name = str(data["crs"].get("properties", {}).get("name", ""))
        if crs_name and not crs_name.endswith(("CRS84", "4326")):
            raise AoiError(f"{p}: AOI is in {crs_name}; save it as EPSG:4326 lon/lat (RFC 7946)")
    geoms: list[BaseGeometry] = []
    props: dict[str, Any] = {}
    for f in feats:
        if not f.get("geometry"):
            continue
        try:
            geoms.append(shape(f["geometry"]))
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise AoiError(f"{p}: unreadable geometry ({err}); redraw the AOI") from None
        props = {**f.get("properties", {}), **props} if not props else props
    polys = [g for g in geoms if g.geom_type in ("Polygon", "MultiPolygon")]
    if not polys:
        raise AoiError(f"{p}: AOI has no polygon; draw a polygon around the site")
    geom = polys[0] if len(polys) == 1 else shapely.union_all(polys)
    if geom.is_empty:
        raise AoiError(f"{p}: AOI geometry is empty; draw a polygon around the site")
    nm = name or str(props.get("site_id") or p.stem)
    return Aoi(name=nm, geometry=geom, properties=props, path=str(p))


def validate_aoi(aoi: Aoi) -> list[str]:
    """List the problems of an AOI (empty when it is fine).

    Examples
    --------
    >>> from shapely.geometry import box, Polygon
    >>> validate_aoi(Aoi(name="x", geometry=box(126.5, 40.9, 126.6, 41.0),
    ...                  properties={"coord_confidence": "high", "coord_source": "CNS"}))
    []
    >>> bow = Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    >>> validate_aoi(Aoi(name="x", geometry=bow))[0][:30]
    'AOI geometry is invalid (Self-'
    """
    problems: list[str] = []
    g = aoi.geometry
    if g.is_empty:
        return ["AOI geometry is empty; draw a polygon around the site"]
    if not g.is_valid:
        problems.append(
            f"AOI geometry is invalid ({shapely.is_valid_reason(g)}); fix it in QGIS "
            "(Vector ▸ Geometry Tools ▸ Fix Geometries)"
        )
    minx, miny, maxx, maxy = g.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        problems.append("AOI coordinates are outside lon/lat range; write lon, lat in EPSG:4326")
        return problems
    if g.is_valid:
        c = g.centroid
        area_km2 = to_crs(g, "EPSG:4326", f"EPSG:{utm_epsg_for(c.x, c.y)}").area / 1e6
        if area_km2 > MAX_AOI_KM2:
            problems.append(
                f"AOI area is {area_km2:.0f} km², above {MAX_AOI_KM2:.0f} km²; split the AOI"
            )
        if area_km2 <= 0:
            problems.append("AOI has zero area; draw a polygon, not a line or point")
    for key in ("coord_source", "coord_confidence"):
        if key not in aoi.properties:
            problems.append(
                f"AOI property {key!r} is missing; record where the coordinates came from"
            )
    conf = aoi.properties.get("coord_confidence")
    if conf is not None and conf not in ("high", "medium", "low"):
        problems.append(f"coord_confidence={conf!r} must be high, medium or low")
    return problems
