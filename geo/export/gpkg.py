"""GeoPackage output: one file, layers in the AOI's UTM CRS, QGIS styles stored inside.

The styles go into the ``layer_styles`` table that QGIS reads (and writes with "Save as
default" → "Datasource database"): one row per layer, ``useAsDefault = 1``, ``styleQML``
from :func:`geo.export.qml.qml_for`, the same templates as the GeoJSON sidecars. So
``results.gpkg`` opens styled in QGIS without any sidecar. (A ``.qml`` sidecar would apply to
*every* layer of a GPKG, which is why the GPKG's base name must not match any sidecar.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
from pyproj import CRS

from geo._atomic import atomic_path
from geo.errors import CrsMismatchError
from geo.export.qml import FILE_MODE, LAYERS, qml_for

__all__ = ["GEOMETRY_COLUMN", "STYLES_TABLE", "write_gpkg"]

log = logging.getLogger(__name__)

GEOMETRY_COLUMN = "geom"
"""Name of the geometry column of every spatial layer (the GeoPackage convention)."""
STYLES_TABLE = "layer_styles"
"""The table QGIS reads stored styles from."""


def _tabular(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Make columns GPKG-friendly: scalars only, no ``fid`` column (the GPKG primary key)."""
    out = df.copy()
    if "fid" in out.columns:
        log.warning("layer %s: column 'fid' renamed to 'fid_' (fid is the GPKG key)", name)
        out = out.rename(columns={"fid": "fid_"})
    for col in out.columns:
        if col == getattr(out, "_geometry_column_name", None):
            continue
        if out[col].dtype == object:
            if out[col].map(lambda v: isinstance(v, (list, tuple, dict, set))).any():
                out[col] = out[col].map(
                    lambda v: ";".join(map(str, v)) if isinstance(v, (list, tuple, set))
                    else json.dumps(v, sort_keys=True) if isinstance(v, dict) else v
                )
    return out


def _check_crs(layers: Mapping[str, gpd.GeoDataFrame | pd.DataFrame]) -> str | None:
    crs_seen: dict[str, CRS] = {}
    for name, df in layers.items():
        if isinstance(df, gpd.GeoDataFrame) and df.geometry.name in df.columns:
            if df.crs is None:
                raise CrsMismatchError(
                    f"GPKG layer {name!r} has no CRS; set it to the AOI grid CRS before export"
                )
            if not df.crs.is_projected:
                raise CrsMismatchError(
                    f"GPKG layer {name!r} is in {df.crs.to_string()}; GPKG layers keep the AOI's "
                    "projected (UTM) CRS, reproject with gdf.to_crs(grid.crs)"
                )
            crs_seen[name] = df.crs
    if len({c.to_wkt() for c in crs_seen.values()}) > 1:
        desc = ", ".join(f"{n}: {c.to_string()}" for n, c in crs_seen.items())
        raise CrsMismatchError(f"GPKG layers are in different CRSs ({desc}); use the AOI grid CRS")
    first = next(iter(crs_seen.values()), None)
    return first.to_string() if first is not None else None


def _styles_frame(names: list[tuple[str, str]]) -> pd.DataFrame:
    now = pd.Timestamp(datetime.now(UTC)).floor("ms")
    rows: list[dict[str, Any]] = []
    for name, geom_col in names:
        rows.append(
            {
                "f_table_catalog": "",
                "f_table_schema": "",
                "f_table_name": name,
                "f_geometry_column": geom_col,
                "styleName": name,
                "styleQML": qml_for(name),
                "styleSLD": "",
                "useAsDefault": True,
                "description": "factorywatch default style (generated from geo/export/templates)",
                "owner": "",
                "ui": "",
                "update_time": now,
            }
        )
    return pd.DataFrame(rows)


def write_gpkg(
    layers: Mapping[str, gpd.GeoDataFrame | pd.DataFrame], path: str | Path
) -> Path:
    """Write layers to one GeoPackage with their QGIS styles as the layers' defaults.

    Parameters
    ----------
    layers : mapping of str to GeoDataFrame or DataFrame
        Usually ``footprints``, ``sites``, ``changes`` (GeoDataFrames in the AOI grid's
        projected CRS) and ``events`` (a DataFrame: written as a table without geometry).
        Layers named in :data:`geo.export.qml.LAYERS` get a row in ``layer_styles``.
        List-valued cells are joined with ``;``.
    path : str or Path
        The ``.gpkg`` to write. It is built under a temporary name in the same folder and
        renamed over ``path`` when complete, so a reader never sees half a file.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    CrsMismatchError
        If a spatial layer has no CRS, a geographic CRS, or the layers' CRSs differ.
    """
    path = Path(path)
    crs = _check_crs(layers)
    path.parent.mkdir(parents=True, exist_ok=True)
    styled: list[tuple[str, str]] = []
    with atomic_path(path, mode=FILE_MODE) as tmp:  # GDAL creates the database itself
        for name, df in layers.items():
            frame = _tabular(df, name)
            spatial = isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns
            kwargs: dict[str, Any] = {"layer": name, "driver": "GPKG"}
            if not tmp.exists():
                # GeoPackage 1.2: read without warnings by the GDAL builds QGIS 3.22+ ship with
                kwargs["dataset_options"] = {"VERSION": "1.2"}
            if spatial:
                kwargs["layer_options"] = {"GEOMETRY_NAME": GEOMETRY_COLUMN}
                if len(frame) == 0:
                    kwargs["geometry_type"] = "Polygon"
                else:
                    kwargs["promote_to_multi"] = None
            else:
                frame = pd.DataFrame(frame.drop(columns="geometry", errors="ignore"))
            pyogrio.write_dataframe(frame, tmp, append=tmp.exists(), **kwargs)
            if name in LAYERS:
                styled.append((name, GEOMETRY_COLUMN if spatial else ""))
        if styled:
            pyogrio.write_dataframe(_styles_frame(styled), tmp, layer=STYLES_TABLE,
                                    driver="GPKG", append=tmp.exists())
    log.info("gpkg: %s (%s) with %d stored styles in %s", path.name, ", ".join(layers),
             len(styled), crs or "no CRS")
    return path
