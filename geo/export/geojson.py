"""RFC 7946 GeoJSON: lon/lat, counter-clockwise exteriors, no ``crs`` member, string ids."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from geo._atomic import atomic_write_text

__all__ = ["atomic_write_text", "geojson_features", "write_geojson"]


def _scalar(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return None if not math.isfinite(f) else f
    if hasattr(v, "isoformat"):
        return str(v.isoformat())[:10]
    return v if isinstance(v, (str, int)) else str(v)


def geojson_features(gdf: gpd.GeoDataFrame, *, id_field: str, precision: int = 7) -> dict[str, Any]:
    """Build an RFC 7946 FeatureCollection dict from a GeoDataFrame in any CRS."""
    if gdf.crs is None:
        raise ValueError("GeoDataFrame has no CRS; set it before writing GeoJSON")
    g = gdf.to_crs("EPSG:4326") if not gdf.empty else gdf.set_crs("EPSG:4326", allow_override=True)
    geoms = shapely.orient_polygons(np.asarray(g.geometry.values), exterior_cw=False)
    geoms = shapely.set_precision(geoms, 10.0 ** -precision) if len(geoms) else geoms
    geoms = shapely.orient_polygons(geoms, exterior_cw=False)
    cols = [c for c in g.columns if c != g.geometry.name]
    feats = []
    for geom, (_, row) in zip(geoms, g[cols].iterrows(), strict=True):
        props = {c: _scalar(row[c]) for c in cols}
        fid = props.get(id_field)
        feats.append({
            "type": "Feature",
            "id": str(fid) if fid is not None else None,
            "properties": props,
            "geometry": None if geom is None or geom.is_empty else
            json.loads(shapely.to_geojson(geom)),
        })
    return {"type": "FeatureCollection", "features": feats}


def write_geojson(
    gdf: gpd.GeoDataFrame,
    path: str | Path,
    *,
    layer_name: str,
    id_field: str,
    precision: int = 7,
) -> Path:
    """Write an RFC 7946 FeatureCollection, atomically.

    Parameters
    ----------
    gdf : GeoDataFrame
        In any CRS (reprojected to EPSG:4326 here).
    path : str or Path
        Destination ``.geojson``.
    layer_name : str
        The collection's ``name`` member (GDAL uses it as the layer name).
    id_field : str
        Column copied to each feature's top-level ``id`` (kept in properties too).
    precision : int
        Decimal places of coordinates (7 ≈ 1 cm).

    Notes
    -----
    Exterior rings are counter-clockwise, holes clockwise (right-hand rule);
    there is no ``crs`` member; NaN becomes ``null``.
    """
    fc = geojson_features(gdf, id_field=id_field, precision=precision)
    fc = {"type": "FeatureCollection", "name": layer_name, "features": fc["features"]}
    return atomic_write_text(path, json.dumps(fc, ensure_ascii=False, separators=(",", ":")))
