"""Areas of interest: read an AOI GeoJSON and validate it.

An AOI file is an RFC 7946 FeatureCollection in EPSG:4326 with one or more
polygons and properties that say where the coordinates came from
(``coord_source``, ``coord_confidence``, ``point_kind``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.errors import ShapelyError
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


def _features(data: object, p: Path) -> list[dict[str, Any]]:
    """The features of a parsed GeoJSON document, each checked to be a JSON object."""
    if not isinstance(data, dict):
        raise AoiError(f"{p}: top level is a JSON {_json_type(data)}, not a GeoJSON object; "
                       "save the AOI as a FeatureCollection of polygons")
    kind = data.get("type")
    if kind == "FeatureCollection":
        feats = data.get("features")
        feats = [] if feats is None else feats
        if not isinstance(feats, list):
            raise AoiError(f"{p}: 'features' is a JSON {_json_type(feats)}, not an array; "
                           "fix or redraw the AOI")
    elif kind == "Feature":
        feats = [data]
    elif kind in ("Polygon", "MultiPolygon"):
        feats = [{"type": "Feature", "geometry": data, "properties": {}}]
    else:
        raise AoiError(f"{p}: expected a GeoJSON FeatureCollection of polygons")
    for i, f in enumerate(feats):
        if not isinstance(f, dict):
            raise AoiError(f"{p}: feature {i} is a JSON {_json_type(f)}, not an object")
        for key, want in (("properties", dict), ("geometry", dict)):
            if f.get(key) is not None and not isinstance(f[key], want):
                raise AoiError(f"{p}: feature {i} '{key}' is a JSON {_json_type(f[key])}, "
                               "not an object; fix or redraw the AOI")
    return feats


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
             float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _check_crs(data: dict[str, Any], p: Path) -> None:
    if "crs" not in data:
        return
    crs = data["crs"]
    props = crs.get("properties") if isinstance(crs, dict) else None
    if not isinstance(props, dict):
        raise AoiError(f"{p}: 'crs' is not a GeoJSON 2008 crs object; remove it "
                       "(RFC 7946 GeoJSON is always EPSG:4326 lon/lat)")
    crs_name = str(props.get("name", ""))
    if crs_name and not crs_name.endswith(("CRS84", "4326")):
        raise AoiError(f"{p}: AOI is in {crs_name}; save it as EPSG:4326 lon/lat (RFC 7946)")


def read_aoi(path: str | Path, *, name: str = "") -> Aoi:
    """Read an AOI GeoJSON file.

    Raises
    ------
    AoiError
        If the file is missing, not GeoJSON (or not a GeoJSON object), has no polygon,
        or the geometry is empty or unreadable (GEOS errors on odd rings included).
        Invalid geometry is reported by :func:`validate_aoi`, not here.
    """
    p = Path(path)
    if not p.is_file():
        raise AoiError(f"{p}: AOI file not found; set [aoi] geometry in the config")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise AoiError(f"{p}: not valid GeoJSON ({err}); fix or redraw the AOI") from None
    feats = _features(data, p)
    _check_crs(data, p)
    geoms: list[BaseGeometry] = []
    props: dict[str, Any] = {}
    for f in feats:
        if not f.get("geometry"):
            continue
        try:
            geoms.append(shape(f["geometry"]))
        except (ValueError, TypeError, KeyError, AttributeError, IndexError,
                ShapelyError) as err:
            raise AoiError(f"{p}: unreadable geometry ({err}); redraw the AOI") from None
        props = {**(f.get("properties") or {}), **props} if not props else props
    polys = [g for g in geoms if g.geom_type in ("Polygon", "MultiPolygon")]
    if not polys:
        raise AoiError(f"{p}: AOI has no polygon; draw a polygon around the site")
    try:
        geom = polys[0] if len(polys) == 1 else shapely.union_all(polys)
    except ShapelyError as err:
        raise AoiError(f"{p}: the AOI polygons cannot be combined ({err}); fix them in QGIS "
                       "(Vector > Geometry Tools > Fix Geometries)") from None
    if geom.is_empty:
        raise AoiError(f"{p}: AOI geometry is empty; draw a polygon around the site")
    nm = name or str(props.get("site_id") or p.stem)
    return Aoi(name=nm, geometry=geom, properties=props, path=str(p))


def validate_aoi(aoi: Aoi, *, measure_epsg: int | None = None) -> list[str]:
    """List the problems of an AOI (empty when it is fine).

    Parameters
    ----------
    aoi : Aoi
        The AOI (EPSG:4326).
    measure_epsg : int, optional
        The config's ``[aoi] measure_epsg``; without one a polar AOI is refused (UTM
        zones end at 84° N / 80° S).

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
    if not all(map(math.isfinite, g.bounds)):
        return [*problems, "AOI coordinates are not finite numbers; redraw the AOI"]
    if maxx - minx > 180:
        problems.append(
            f"AOI spans {maxx - minx:.0f}° of longitude, so it crosses the antimeridian "
            "(180°); split it into one AOI on each side of 180°"
        )
        return problems
    if measure_epsg is None and (maxy > 84 or miny < -80):
        problems.append(
            "AOI is polar (beyond UTM's 84° N / 80° S); set [aoi] measure_epsg = "
            f"{3413 if maxy > 84 else 3031} (polar stereographic) in the config"
        )
        return problems
    if g.is_valid:
        c = g.centroid
        epsg = measure_epsg or utm_epsg_for(c.x, c.y)
        area_km2 = to_crs(g, "EPSG:4326", f"EPSG:{epsg}").area / 1e6
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
