"""Loading a run directory for the report, and the helpers its figures and HTML share.

Reads only the run's files (``run.json``, ``grid.json``, the GeoJSON layers, decimated reads
of the rasters); what is missing becomes a note, never an invented value. Text helpers
(escaping, number formatting) live here so that :mod:`geo.export.report_figures` and
:mod:`geo.export.report` format numbers the same way.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from numpy.typing import NDArray
from pyproj import Transformer
from rasterio.errors import RasterioError
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from geo.errors import SourceError
from geo.export.run_schema import check_run_json
from geo.grid import Grid
from geo.rundir import RunDir

__all__: list[str] = []
_MAX_PX = 900  # longest side of a raster read for a figure (decimated read from overviews)


@dataclass(slots=True)
class _Run:
    run_dir: Path
    run: dict[str, Any]
    grid: Grid | None
    footprints: gpd.GeoDataFrame | None
    sites: gpd.GeoDataFrame | None
    changes: gpd.GeoDataFrame | None
    scenes: dict[str, Path]
    masks: dict[str, Path]
    probs: dict[tuple[str, str], Path]
    notes: list[str] = field(default_factory=list)

    @property
    def synthetic(self) -> bool:
        v = self.run.get("synthetic", False)
        return bool(v) and str(v).lower() not in ("false", "0", "no")

    @property
    def crs(self) -> str | None:
        if self.grid is not None:
            return self.grid.crs
        for gdf in (self.sites, self.footprints, self.changes):
            if gdf is not None and gdf.crs is not None and gdf.crs.is_projected:
                return str(gdf.crs.to_string())
        return None


def _read_vector(path: Path, crs: str | None, notes: list[str]) -> gpd.GeoDataFrame | None:
    if not path.exists():
        notes.append(f"{path.name} is missing; its parts of the report are left out.")
        return None
    try:
        gdf = gpd.read_file(path, engine="pyogrio")
    except Exception as err:  # a corrupt file must not stop the rest of the report
        notes.append(f"{path.name} could not be read ({type(err).__name__}: {err}).")
        return None
    if gdf.crs is None:
        gdf = gdf.set_crs("EPSG:4326")  # RFC 7946: lon/lat
    if crs is not None and len(gdf):
        gdf = gdf.to_crs(crs)
    for col in gdf.columns:  # GDAL parses ISO dates; the report shows them as written
        if col != gdf.geometry.name and pd.api.types.is_datetime64_any_dtype(gdf[col]):
            gdf[col] = gdf[col].dt.strftime("%Y-%m-%d")
    return gdf


def _load(run_dir: Path) -> _Run:
    rd = RunDir(run_dir)
    run_json = rd.run_json
    if not run_dir.is_dir():
        raise SourceError(f"run directory {run_dir} does not exist; pass a folder written by "
                          "'factorywatch run' or 'factorywatch demo'")
    if not run_json.exists():
        raise SourceError(f"{run_dir} has no run.json; pass a folder written by "
                          "'factorywatch run' or 'factorywatch demo'")
    try:
        run = json.loads(run_json.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SourceError(f"{run_json} is not valid JSON ({err}); rerun the pipeline") from None
    if not isinstance(run, dict):
        raise SourceError(f"{run_json} is not a JSON object; rerun the pipeline")
    check_run_json(run, run_json)
    notes: list[str] = []
    grid: Grid | None = None
    if rd.grid_json.exists():
        try:
            grid = Grid.from_dict(json.loads(rd.grid_json.read_text()))
        except (KeyError, ValueError, TypeError) as err:
            notes.append(f"grid.json could not be read ({err}).")
    scenes, masks = rd.scenes(), rd.masks()
    if grid is None and scenes:
        first = next(iter(scenes.values()))
        try:
            with rasterio.open(first) as ds:
                if ds.crs is not None:
                    grid = Grid(crs=f"EPSG:{ds.crs.to_epsg()}", transform=ds.transform,
                                shape=(ds.height, ds.width))
        except RasterioError as err:
            raise SourceError(f"{first}: cannot open this raster of the run ({err}); rerun "
                              "the pipeline into a new -o") from None
    probs = rd.change_probs()
    crs = grid.crs if grid is not None else None
    footprints = _read_vector(rd.layer("footprints"), crs, notes)
    sites = _read_vector(rd.layer("sites"), crs, notes)
    if (footprints is not None and sites is not None and "status" not in footprints.columns
            and {"site_id", "status"} <= set(sites.columns) and "site_id" in footprints.columns):
        status = dict(zip(sites["site_id"], sites["status"], strict=False))
        footprints["status"] = footprints["site_id"].map(status)  # for colours only
    return _Run(
        run_dir=run_dir, run=run, grid=grid,
        footprints=footprints,
        sites=sites,
        changes=_read_vector(rd.layer("changes"), crs, notes),
        scenes=scenes, masks=masks, probs=probs, notes=notes,
    )


def _aoi_meta(run: Mapping[str, Any]) -> dict[str, Any]:
    """``run.json``'s ``aoi`` object merged with its ``properties`` (the AOI file's own)."""
    aoi = run.get("aoi")
    if not isinstance(aoi, Mapping):
        return {"name": aoi} if aoi else {}
    props = aoi.get("properties")
    return {**(dict(props) if isinstance(props, Mapping) else {}),
            **{k: v for k, v in aoi.items() if k != "properties"}}


def _aoi_label(run: Mapping[str, Any]) -> str | None:
    meta = _aoi_meta(run)
    props = run.get("aoi", {}).get("properties") if isinstance(run.get("aoi"), Mapping) else None
    for cand in ((props or {}).get("label"), (props or {}).get("name"), meta.get("label"),
                 meta.get("name")):
        if cand:
            return str(cand)
    return None


def _display_name(run_dir: Path) -> str:
    """The run directory's name as the user will see it (the pipeline builds in ``.partial``)."""
    return RunDir(run_dir.resolve()).name

def _e(x: object) -> str:
    return html.escape("" if x is None else str(x))


def _isnum(x: object) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and math.isfinite(float(x))


def _fmt(x: object, places: int = 2) -> str:
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (list, tuple)) and all(_isnum(v) for v in x):
        return ", ".join(f"{float(v):.4g}" for v in x)
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return f"{int(x):,}"
    if _isnum(x):
        v = float(x)  # type: ignore[arg-type]
        if places == 0 or (abs(v) >= 1000 and places <= 2):
            return f"{v:,.0f}"
        return f"{v:.{places}f}"
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return str(x)


def _interval(row: Mapping[str, Any], col: str, places: int = 2) -> str:
    v, lo, hi = row.get(col), row.get(f"{col}_lo"), row.get(f"{col}_hi")
    if not _isnum(v):
        return "–"
    if _isnum(lo) and _isnum(hi):
        return f"{_fmt(v, places)} ({_fmt(lo, places)}–{_fmt(hi, places)})"
    return _fmt(v, places)


def _records(df: pd.DataFrame | None) -> list[dict[str, Any]]:
    if df is None or len(df) == 0:
        return []
    plain = pd.DataFrame(df.drop(columns=[c for c in ("geometry",) if c in df.columns]))
    recs = plain.astype(object).where(plain.notna(), None).to_dict("records")
    return [{str(k): v for k, v in rec.items()} for rec in recs]


def _read_small(path: Path) -> tuple[NDArray[np.float64], NDArray[np.bool_], list[str],
                                      tuple[float, float, float, float]]:
    """Bands (float64), valid mask, band names and extent (left, right, bottom, top)."""
    try:
        with rasterio.open(path) as ds:
            scale = max(1, math.ceil(max(ds.height, ds.width) / _MAX_PX))
            shape = (max(1, ds.height // scale), max(1, ds.width // scale))
            data = ds.read(out_shape=(ds.count, *shape), masked=True).astype("float64")
            names = [str(d or "").lower() for d in ds.descriptions]
            b = ds.bounds
    except RasterioError as err:
        raise SourceError(f"{path}: cannot read this raster of the run "
                          f"({' '.join(str(err).split())}); it may be truncated: rerun the "
                          "pipeline into a new -o") from None
    valid: NDArray[np.bool_] = np.asarray(~np.ma.getmaskarray(data).any(axis=0))
    arr: NDArray[np.float64] = np.asarray(np.ma.filled(data, np.nan), dtype="float64")
    return arr, valid, names, (float(b.left), float(b.right), float(b.bottom), float(b.top))


def _rgb_bands(names: list[str], count: int) -> list[int]:
    if all(c in names for c in ("red", "green", "blue")):
        return [names.index(c) for c in ("red", "green", "blue")]
    if count >= 3:
        return [2, 1, 0]
    return [0, 0, 0]


def _stretch(arrays: Sequence[NDArray[np.float64]]) -> list[tuple[float, float]]:
    """2–98 % stretch per channel over all given images together (same look for both dates)."""
    out = []
    for c in range(arrays[0].shape[0]):
        vals = np.concatenate([a[c][np.isfinite(a[c])] for a in arrays])
        if vals.size == 0:
            out.append((0.0, 1.0))
            continue
        lo, hi = np.percentile(vals, (2, 98))
        out.append((float(lo), float(hi) if hi > lo else float(lo) + 1.0))
    return out


def _to_rgba(rgb: NDArray[np.float64], valid: NDArray[np.bool_],
             ranges: Sequence[tuple[float, float]]) -> NDArray[np.float64]:
    img = np.empty((*rgb.shape[1:], 4))
    for c in range(3):
        lo, hi = ranges[c]
        img[..., c] = np.clip((rgb[c] - lo) / (hi - lo), 0, 1)
    img[..., 3] = valid.astype("float64")
    return np.nan_to_num(img, nan=0.0)


def _on_date(gdf: gpd.GeoDataFrame | None, date: str) -> gpd.GeoDataFrame | None:
    if gdf is None or "date" not in gdf.columns:
        return None
    return gdf[gdf["date"].astype(str) == date]


def _present(gdf: gpd.GeoDataFrame | None, col: str) -> list[str]:
    if gdf is None or col not in gdf.columns:
        return []
    return sorted({str(v) for v in gdf[col].dropna()})


def _aoi_geometry(r: _Run) -> BaseGeometry | None:
    aoi = r.run.get("aoi")
    cands: list[Any] = []
    if isinstance(aoi, Mapping):
        cands += [aoi.get("geometry"), aoi.get("geometry_4326")]
    cands += [r.run.get("aoi_geometry")]
    for c in cands:
        if isinstance(c, Mapping) and "type" in c:
            try:
                return shape(dict(c))
            except (ValueError, TypeError, AttributeError):
                continue
    bounds = aoi.get("bounds_4326") if isinstance(aoi, Mapping) else None
    if isinstance(bounds, Sequence) and len(bounds) == 4 and all(_isnum(b) for b in bounds):
        minx, miny, maxx, maxy = (float(b) for b in bounds)
        return box(minx, miny, maxx, maxy)
    if r.grid is not None:
        tr = Transformer.from_crs(r.grid.crs, "EPSG:4326", always_xy=True)
        left, bottom, right, top = r.grid.bounds
        xs, ys = tr.transform([left, right, right, left], [bottom, bottom, top, top])
        return box(min(xs), min(ys), max(xs), max(ys))
    return None


def _claim_record(c: Mapping[str, Any]) -> dict[str, Any]:
    """A claim from run.json in one vocabulary (``ClaimResult`` fields or the short names)."""
    rec = dict(c)
    for short, long_ in (("subject", "subject_id"), ("reference", "reference_id"),
                         ("ratio", "estimate"), ("ratio_lo", "lo"), ("ratio_hi", "hi")):
        if rec.get(short) is None and rec.get(long_) is not None:
            rec[short] = rec[long_]
    return rec


def _claim_list(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    claims = run.get("claims") or []
    if isinstance(claims, Mapping):
        claims = [claims]
    return [_claim_record(c) for c in claims if isinstance(c, Mapping)]
