"""Read building footprints digitised by an analyst (or from OSM / Overture) as footprints.

I/O layer: reads GeoJSON, GeoPackage, Shapefile (anything pyogrio opens), in any CRS, and
returns the footprints schema of DESIGN.md in a local projected CRS, so that vector input goes
through the same tracking, measurement, outputs and claims as an imagery run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date as _date
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from geo.errors import CrsMismatchError, SourceError, one_line
from geo.footprints import FOOTPRINT_COLUMNS
from geo.grid import utm_epsg_for_bounds
from geo.names import detect_name_field
from geo.rundir import RunDir
from geo.sources.local import date_from_name

__all__ = ["read_footprints", "read_run_tables"]

log = logging.getLogger(__name__)

def _normalise_date(value: Any, where: str) -> str:
    if isinstance(value, datetime | _date | pd.Timestamp):
        return pd.Timestamp(value).date().isoformat()
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise SourceError(f"{where}: empty date; fill the date field or pass --date-field")
    text = str(value).strip()
    try:
        return pd.Timestamp(text).date().isoformat()
    except (ValueError, TypeError):
        raise SourceError(
            f"{where}: cannot read {text!r} as a date; use YYYY-MM-DD values"
        ) from None


def _read_one(path: Path) -> gpd.GeoDataFrame:
    if not path.exists():
        raise SourceError(f"{path}: no such footprint file; pass GeoJSON, GPKG or Shapefile paths")
    try:
        gdf = gpd.read_file(path)
    except Exception as err:  # pyogrio/GDAL raise several types
        raise SourceError(
            f"{path}: cannot read as vector data ({one_line(err, 200)}); pass a "
            "GeoJSON, GPKG or Shapefile"
        ) from None
    if gdf.empty:
        raise SourceError(
            f"{path}: holds no features (an empty FeatureCollection or layer); pass a file "
            "with footprint polygons or leave it out"
        )
    if gdf.crs is None:
        raise CrsMismatchError(
            f"{path}: has no CRS; add a .prj (Shapefile) or re-save it with its CRS "
            "(ogr2ogr -a_srs EPSG:XXXX)"
        )
    return gdf


def read_footprints(
    paths: Sequence[str | Path],
    *,
    aoi_name: str,
    date_field: str | None = None,
    dates: Sequence[str] | None = None,
    digitising_sd_m: float = 1.0,
    epsg: int | None = None,
    name_field: str | None = None,
) -> gpd.GeoDataFrame:
    """Read footprint polygons from vector files into the footprints schema.

    Parameters
    ----------
    paths : sequence of path
        GeoJSON, GPKG (first layer) or Shapefile files, any CRS.
    aoi_name : str
        Prefix of the footprint ids ``"{aoi_name}:{date}:{n}"``.
    date_field : str, optional
        Attribute holding each footprint's date. Without it each file is one date: from
        ``dates`` if given (one per file), else from the file name (``YYYY-MM-DD`` or
        ``YYYYMMDD``).
    dates : sequence of str, optional
        One date per file, when neither a date field nor dated file names exist.
    digitising_sd_m : float, optional
        1-sigma outline position error of the digitising, metres (``boundary_sd_m``).
    epsg : int, optional
        Projected CRS to measure in; default the UTM zone of the footprints' centre
        (:func:`geo.grid.utm_epsg_for_bounds`, the zone an AOI grid there would use).
    name_field : str, optional
        Attribute with each building's name (``--name-field``); default the first of
        :data:`geo.names.NAME_FIELDS` present (``name``, ``Name``, ``uid``, ...). The names
        go into a ``name`` column, which tracking carries to the sites.

    Returns
    -------
    GeoDataFrame
        :data:`FOOTPRINT_COLUMNS` + ``geometry`` in the projected CRS: ``area_m2`` and
        ``perimeter_m`` from the polygons, ``n_px = 0``, ``res_m = 0``, ``boundary_sd_m =
        digitising_sd_m``, ``coreg_residual_m = 0``, ``area_alt_m2 = NaN``, ``occluded =
        False``, ``edge_corr_len_m = perimeter / 4``, ``alt_parts = 0``, and ``name`` when
        a name field was found. Non-polygon and empty geometries are dropped (logged);
        invalid polygons are repaired with ``shapely.make_valid``.

    Raises
    ------
    SourceError
        A file is missing or unreadable, a date is missing or unreadable.
    CrsMismatchError
        A file has no CRS, or ``epsg`` is not a projected CRS.
    """
    if not paths:
        raise SourceError("no footprint files given; pass one or more GeoJSON/GPKG/Shapefile")
    if digitising_sd_m < 0 or not np.isfinite(digitising_sd_m):
        raise SourceError(f"digitising_sd_m={digitising_sd_m} must be >= 0 metres")
    if dates is not None and len(dates) != len(paths):
        raise SourceError(f"{len(dates)} dates for {len(paths)} files; give one date per file")
    parts = [_read_part(p, dates[i] if dates is not None else None, date_field, name_field)
             for i, p in enumerate(map(Path, paths))]
    allg = _polygons_only(gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=4326))
    if len(allg) == 0:
        raise SourceError(f"{', '.join(map(str, paths))}: no polygon footprints found")
    crs = CRS.from_epsg(epsg) if epsg is not None else utm_crs_of(allg)
    if not crs.is_projected:
        raise CrsMismatchError(f"EPSG:{epsg} is not a projected CRS; pass a UTM EPSG code")
    return _to_schema(allg.to_crs(crs), aoi_name, digitising_sd_m)


def utm_crs_of(gdf: gpd.GeoDataFrame) -> CRS:
    """The WGS 84 UTM zone of the centre of ``gdf``'s bounds, ``gdf`` in any CRS, not empty.

    The zone an AOI grid there uses (:func:`geo.grid.utm_epsg_for_bounds`).
    """
    return CRS.from_epsg(utm_epsg_for_bounds(gdf.to_crs(4326).total_bounds))


def _read_part(p: Path, date: str | None, date_field: str | None,
               name_field: str | None) -> gpd.GeoDataFrame:
    """One file as ``date``, ``name`` and ``geometry`` in WGS 84 (dates checked)."""
    gdf = _read_one(p)
    if date_field is not None:
        if date_field not in gdf.columns:
            raise SourceError(
                f"{p}: no field {date_field!r}; fields are {', '.join(map(str, gdf.columns))}"
            )
        d = [_normalise_date(v, f"{p} ({date_field})") for v in gdf[date_field]]
    else:
        one = date if date is not None else date_from_name(p)
        if one is None:
            raise SourceError(
                f"{p}: no date; name the file YYYY-MM-DD.geojson, or pass --date-field or "
                "--date"
            )
        d = [_normalise_date(one, str(p))] * len(gdf)
    nf = detect_name_field(gdf.columns, name_field)
    nm = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
          for v in gdf[nf]] if nf is not None else [None] * len(gdf)
    part = gpd.GeoDataFrame({"date": d, "name": nm, "_src": str(p)},
                            geometry=gdf.geometry.values, crs=gdf.crs)
    return part.to_crs(4326) if part.crs != CRS.from_epsg(4326) else part


def _polygons_only(allg: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """2-D valid polygonal geometries; empty and non-polygon features dropped (logged)."""
    geoms = shapely.force_2d(np.asarray(allg.geometry.values, dtype=object))
    geoms = np.asarray([shapely.make_valid(g) if g is not None and not g.is_valid else g
                        for g in geoms], dtype=object)
    geoms = np.asarray([_polygonal(g) for g in geoms], dtype=object)
    keep = np.asarray([g is not None and not g.is_empty for g in geoms])
    if (~keep).sum():
        log.warning("vector: dropped %d empty or non-polygon feature(s)", int((~keep).sum()))
    return gpd.GeoDataFrame(allg.loc[keep, ["date", "name"]].reset_index(drop=True),
                            geometry=list(geoms[keep]), crs=4326)


def _to_schema(out: gpd.GeoDataFrame, aoi_name: str, digitising_sd_m: float
               ) -> gpd.GeoDataFrame:
    """Projected digitised outlines as a footprints table (:data:`FOOTPRINT_COLUMNS`)."""
    out = out.sort_values("date", kind="stable").reset_index(drop=True)
    n = out.groupby("date").cumcount() + 1
    out["footprint_id"] = [f"{aoi_name}:{d}:{k}" for d, k in zip(out["date"], n, strict=True)]
    out["area_m2"] = out.geometry.area.to_numpy(dtype=float)
    out["perimeter_m"] = out.geometry.length.to_numpy(dtype=float)
    out["n_px"] = 0
    out["res_m"] = 0.0
    out["boundary_sd_m"] = float(digitising_sd_m)
    out["coreg_residual_m"] = 0.0
    out["area_alt_m2"] = np.nan
    out["occluded"] = False
    out["edge_corr_len_m"] = out["perimeter_m"] / 4.0  # = edge_corr_len_m(g, 0): one side
    out["alt_parts"] = 0  # a digitised outline has no stricter alternative
    log.info("vector: %d footprints on %d date(s) → %s", len(out), out["date"].nunique(),
             out.crs.to_string())
    cols = [*FOOTPRINT_COLUMNS, *(["name"] if out["name"].notna().any() else [])]
    return gpd.GeoDataFrame(out[[*cols, "geometry"]], geometry="geometry", crs=out.crs)


def _polygonal(g: Any) -> Any:
    """Keep the polygonal part of a geometry (make_valid may return collections)."""
    if g is None:
        return None
    if g.geom_type in ("Polygon", "MultiPolygon"):
        return g
    if g.geom_type == "GeometryCollection":
        polys = [p for p in g.geoms if p.geom_type in ("Polygon", "MultiPolygon")]
        return shapely.union_all(polys) if polys else None
    return None


def read_run_tables(
    run_dir: str | Path,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, dict[str, Any]]:
    """Read a run directory's sites and footprints in a projected CRS, and its measure config.

    Prefers ``results.gpkg`` (layers ``sites`` and ``footprints``, already in the grid CRS);
    otherwise reads ``sites.geojson`` and ``footprints.geojson`` (EPSG:4326) and reprojects
    them to ``grid.json``'s ``crs`` or, without it, to the local UTM zone.

    Returns
    -------
    (sites, footprints, measure) : tuple
        ``measure`` is the ``[measure]`` section of ``run.json``'s config (``{}`` if absent).
    """
    import json

    d = Path(run_dir)
    rd = RunDir(d)
    if not d.is_dir():
        raise SourceError(f"{d}: no such run directory; pass the folder that "
                          "`factorywatch run` or `factorywatch measure` wrote")
    gpkg = rd.gpkg
    sites: gpd.GeoDataFrame | None = None
    fps: gpd.GeoDataFrame | None = None
    if gpkg.is_file():
        try:
            import pyogrio

            names = {str(n) for n in pyogrio.list_layers(gpkg)[:, 0]}
            if {"sites", "footprints"} <= names:
                sites = gpd.read_file(gpkg, layer="sites")
                fps = gpd.read_file(gpkg, layer="footprints")
        except Exception as err:  # a damaged GPKG: fall back to the GeoJSON files
            log.warning("%s: cannot read (%s); using the GeoJSON files", gpkg, err)
            sites = fps = None
    if sites is None or fps is None:
        s_path, f_path = rd.layer("sites"), rd.layer("footprints")
        for p in (s_path, f_path):
            if not p.is_file():
                raise SourceError(f"{d}: lacks {p.name} and results.gpkg; is this a complete "
                                  "run directory?")
        sites = _read_one(s_path)
        fps = _read_one(f_path)
        target: CRS | None = None
        grid_json = rd.grid_json
        if grid_json.is_file():
            try:
                target = CRS.from_user_input(json.loads(grid_json.read_text())["crs"])
            except (KeyError, ValueError, TypeError):
                target = None
        if target is None:
            target = utm_crs_of(fps) if len(fps) else CRS.from_epsg(4326)
        sites, fps = sites.to_crs(target), fps.to_crs(target)
    for name, gdf in (("sites", sites), ("footprints", fps)):
        if "site_id" not in gdf.columns:
            raise SourceError(f"{d}: the {name} layer has no site_id column; rerun the run")
    measure: dict[str, Any] = {}
    run_json = rd.run_json
    if run_json.is_file():
        try:
            cfg = json.loads(run_json.read_text()).get("config", {})
            measure = dict(cfg.get("measure", {})) if isinstance(cfg, dict) else {}
        except (ValueError, AttributeError):
            measure = {}
    return sites, fps, measure
