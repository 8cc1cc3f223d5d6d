"""Read the analyst's named building priors (GeoJSON / GPKG, any CRS) for guided mode.

Each feature is one building: a rough polygon (traced on any basemap, an OSM/Overture
outline), a box, or a point with an approximate size (``size_m2``, or ``width_m`` and
``length_m``). Every feature needs a unique ``name``. Short ids ``b1``, ``b2``, ... follow
the file order (or an ``id`` property when every feature has a unique one).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely

from geo.errors import ConfigError
from geo.guided import Prior

__all__ = ["read_priors"]


def _num(props: dict[str, Any], key: str) -> float:
    v = props.get(key)
    try:
        return float(v) if v is not None and v == v else math.nan
    except (TypeError, ValueError):
        return math.nan


def read_priors(path: str | Path, crs: str) -> list[Prior]:
    """Read priors and reproject them to ``crs`` (the run's grid CRS).

    Raises
    ------
    ConfigError
        One line naming the file, the feature or key, and the fix.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such priors file; set [buildings] priors or --priors to a "
                          "GeoJSON/GPKG of named buildings")
    try:
        gdf = gpd.read_file(p)
    except Exception as err:  # pyogrio raises several types for unreadable files
        raise ConfigError(f"{p}: not a readable GeoJSON/GPKG ({type(err).__name__}); export "
                          "the priors as GeoJSON") from None
    if len(gdf) == 0:
        raise ConfigError(f"{p}: no features; add one feature per building with a 'name'")
    if gdf.crs is None:
        raise ConfigError(f"{p}: no CRS; save the priors with a CRS (GeoJSON is WGS84)")
    if "name" not in gdf.columns:
        raise ConfigError(f"{p}: key 'name' missing; give every prior a 'name' property")
    names = [str(n).strip() if n is not None and n == n else "" for n in gdf["name"]]
    for i, n in enumerate(names, 1):
        if not n:
            raise ConfigError(f"{p}: feature {i} has an empty 'name'; name every prior")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{p}: name {dup[0]!r} is used twice; names must be unique")
    gdf = gdf.to_crs(crs)
    ids = [f"b{i}" for i in range(1, len(gdf) + 1)]
    if "id" in gdf.columns:
        given = [str(v) for v in gdf["id"]]
        if all(given) and len(set(given)) == len(given) and "None" not in given:
            ids = given
    out: list[Prior] = []
    for i, (geom, props) in enumerate(zip(gdf.geometry, gdf.drop(columns="geometry")
                                          .to_dict("records"), strict=True)):
        out.append(_prior(p, i, ids[i], names[i], geom, props))
    return out


def _prior(p: Path, i: int, pid: str, name: str, geom: Any, props: dict[str, Any]) -> Prior:
    if geom is None or geom.is_empty:
        raise ConfigError(f"{p}: prior {name!r} has no geometry; draw a polygon or a point")
    kind = geom.geom_type
    if kind == "MultiPoint" and len(geom.geoms) == 1:
        geom, kind = geom.geoms[0], "Point"
    size, w, ln = _num(props, "size_m2"), _num(props, "width_m"), _num(props, "length_m")
    if kind == "Point":
        if not (size > 0 or (w > 0 and ln > 0)):
            raise ConfigError(f"{p}: point prior {name!r} needs key 'size_m2' (or 'width_m' "
                              "and 'length_m'); add its approximate size in metres")
    elif kind in ("Polygon", "MultiPolygon"):
        geom = shapely.make_valid(geom)
    else:
        raise ConfigError(f"{p}: prior {name!r} is a {kind}; use a polygon, a box or a point")
    return Prior(prior_id=pid, name=name, geometry=geom, size_m2=size, width_m=w, length_m=ln)
