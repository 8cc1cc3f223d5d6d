"""The HTML report of a run: one offline folder, figures as PNG beside ``index.html``.

Built only from the files of a run directory (DESIGN.md "Run directory"), so
``factorywatch report RUN_DIR`` can rebuild it at any time: ``run.json``, ``grid.json``,
``footprints.geojson``, ``sites.geojson``, ``changes.geojson``, ``scenes/<date>.tif``,
``masks/<date>.tif`` and ``change/<d0>_<d1>_prob.tif``. Anything missing is left out of the
report with a note, never invented. No JavaScript, no CDN, no web fonts: the folder works
from a USB stick. Figures use matplotlib's Agg canvas directly (no pyplot state).
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import NDArray
from pyproj import Transformer
from rasterio.errors import RasterioError
from shapely.geometry import Polygon, box, shape
from shapely.geometry.base import BaseGeometry

from geo import __version__
from geo._atomic import atomic_dir
from geo.errors import SourceError
from geo.export.furniture import (
    attributions,
    decorate_panel,
    legend_handles,
    mask_overlay,
    north_angle_deg,
)
from geo.export.qml import category_colour
from geo.export.run_schema import check_run_json
from geo.export.timeline_figure import timeline_figure_html
from geo.export.webmap import viewer_data, write_viewer
from geo.grid import Grid
from geo.rundir import RunDir

__all__ = ["REPORT_DIR", "write_report"]

log = logging.getLogger(__name__)
MAX_FINDINGS = 20
"""At most this many finding sentences in the summary; the sites table has them all."""

REPORT_DIR = RunDir(Path()).report_dir.name
"""Folder of the report inside a run directory."""

Progress = Callable[[Sequence[Any], str], Iterator[Any]]
_TEMPLATE = Path(__file__).resolve().parent / "templates" / "report.html"
_MAX_PX = 900  # longest side of a raster read for a figure (decimated read from overviews)
_MAX_AREA_SERIES = 12
_MAX_LABELS = 60
"""Site labels drawn on a map: the largest buildings only (a run may hold 100,000 sites)."""
_MAX_NEIGHBOUR_ROWS = 40
"""Rows of the neighbour-ratio figure: the largest sites; every ratio is in the sites table."""
_MAX_OUTLINE_ARTISTS = 300
"""Above this many outlines, each colour is drawn as one line collection (same look)."""
_DPI = 110
_HALO = [patheffects.withStroke(linewidth=3.2, foreground="black", alpha=0.8)]
"""A dark edge under every outline, so pale categories stay visible on bright roofs."""


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
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


def _save(fig: Figure, path: Path) -> str:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=_DPI, facecolor="white")
    return path.name


def _table(rows: Sequence[Mapping[str, Any]], cols: Sequence[tuple[str, str]],
           num_cols: Iterable[str] = (), cls: Mapping[str, str] | None = None) -> str:
    nums = set(num_cols)
    head = "".join(f"<th>{_e(label)}</th>" for _k, label in cols)
    body = []
    for r in rows:
        cells = []
        for k, _label in cols:
            v = r.get(k)
            attrs = ' class="num"' if k in nums else ""
            if cls and k in cls and v:
                attrs = f' class="{cls[k]}-{_e(str(v).lower())}"'
            cells.append(f"<td{attrs}>{_e(v if isinstance(v, str) else _fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _figure(src: str, caption: str, alt: str) -> str:
    return (f'<figure><img src="{_e(src)}" alt="{_e(alt)}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _records(df: pd.DataFrame | None) -> list[dict[str, Any]]:
    if df is None or len(df) == 0:
        return []
    plain = pd.DataFrame(df.drop(columns=[c for c in ("geometry",) if c in df.columns]))
    recs = plain.astype(object).where(plain.notna(), None).to_dict("records")
    return [{str(k): v for k, v in rec.items()} for rec in recs]


# --------------------------------------------------------------------------------------------
# rasters
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------
def _draw_outlines(ax: Any, gdf: gpd.GeoDataFrame | None, *, colour_by: str | None,
                   label: bool = False, lw: float = 1.4) -> None:
    if gdf is None or len(gdf) == 0:
        return
    if len(gdf) > _MAX_OUTLINE_ARTISTS:
        _draw_outline_collections(ax, gdf, colour_by=colour_by, lw=lw)
    else:
        for _i, row in gdf.iterrows():
            geom = row.geometry
            if geom is None or geom.is_empty:
                continue
            colour = category_colour(row.get(colour_by) if colour_by else None) if colour_by \
                else "#00e5ff"
            for ring in _rings(geom):
                x, y = ring.xy
                ax.plot(x, y, color=colour, lw=lw, path_effects=_HALO)
    if not label or "site_id" not in gdf.columns:
        return
    ok = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    if len(ok) > _MAX_LABELS:
        area = shapely.area(np.asarray(ok.geometry.values, dtype=object))  # ranking only: any CRS
        ok = ok.iloc[np.argsort(-area, kind="stable")[:_MAX_LABELS]]
    for sid, geom in zip(ok["site_id"], ok.geometry, strict=True):
        if isinstance(sid, str):
            p = geom.representative_point()
            ax.annotate(sid.split(":")[-1], (p.x, p.y), fontsize=7,
                        ha="center", va="center", color="black",
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                              "alpha": 0.75})


def _rings(geom: BaseGeometry) -> list[Any]:
    return [r for poly in getattr(geom, "geoms", [geom]) for r in [poly.exterior,
                                                                  *poly.interiors]]


def _draw_outline_collections(ax: Any, gdf: gpd.GeoDataFrame, *, colour_by: str | None,
                              lw: float) -> None:
    """Many outlines: one ``LineCollection`` per colour instead of one artist per ring."""
    from matplotlib.collections import LineCollection

    keys = (gdf[colour_by] if colour_by and colour_by in gdf.columns
            else pd.Series([None] * len(gdf), index=gdf.index))
    by_colour: dict[str, list[Any]] = {}
    for key, geom in zip(keys, gdf.geometry, strict=True):
        if geom is None or geom.is_empty:
            continue
        colour = category_colour(key) if colour_by else "#00e5ff"
        by_colour.setdefault(colour, []).extend(np.asarray(r.coords)[:, :2] for r in _rings(geom))
    for colour, segs in by_colour.items():
        ax.add_collection(LineCollection(segs, colors=colour, linewidths=lw, path_effects=_HALO))
    ax.autoscale_view()


def _on_date(gdf: gpd.GeoDataFrame | None, date: str) -> gpd.GeoDataFrame | None:
    if gdf is None or "date" not in gdf.columns:
        return None
    return gdf[gdf["date"].astype(str) == date]


def _present(gdf: gpd.GeoDataFrame | None, col: str) -> list[str]:
    if gdf is None or col not in gdf.columns:
        return []
    return sorted({str(v) for v in gdf[col].dropna()})


def _change_panel(r: _Run, ax: Any, fig: Figure, d0: str, d1: str) -> None:
    prob_path = r.probs.get((d0, d1))
    if prob_path is not None:
        p, pv, _n, pext = _read_small(prob_path)
        pm = np.ma.masked_where(~pv | ~np.isfinite(p[0]) | (p[0] < 0.1), p[0])
        im = ax.imshow(pm, extent=pext, cmap="YlOrRd", vmin=0, vmax=1, alpha=0.85,
                       interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        cb.set_label("change probability")
        ax.set_title(f"change {d0} → {d1}")
    else:
        ax.set_title(f"change {d0} → {d1} (no probability map)")
    ch = r.changes
    if ch is not None and {"date_from", "date_to"} <= set(ch.columns):
        sel = ch[(ch["date_from"].astype(str) == d0) & (ch["date_to"].astype(str) == d1)]
        _draw_outlines(ax, sel, colour_by="event" if "event" in sel else None, label=True,
                       lw=1.8)


def _pair_figure(r: _Run, d0: str, d1: str, out: Path) -> tuple[str | None, dict[str, float]]:
    """Before / after / change panels with map furniture; returns (png, masked fraction)."""
    if d0 not in r.scenes or d1 not in r.scenes:
        return None, {}
    a0, v0, names, extent = _read_small(r.scenes[d0])
    a1, v1, _n, _e1 = _read_small(r.scenes[d1])
    bands = _rgb_bands(names, a0.shape[0])
    rgb0, rgb1 = a0[bands], a1[bands]
    ranges = _stretch([np.where(v0, rgb0, np.nan), np.where(v1, rgb1, np.nan)])
    fig = Figure(figsize=(15, 6.4))
    axes = fig.subplots(1, 3, sharex=True, sharey=True)
    credits = attributions(r.run, [d0, d1])
    masked: dict[str, float] = {}
    for ax, d, rgb, v, when in ((axes[0], d0, rgb0, v0, "before"),
                                (axes[1], d1, rgb1, v1, "after")):
        fp = _on_date(r.footprints, d)
        ax.imshow(_to_rgba(rgb, v, ranges), extent=extent, interpolation="nearest")
        _draw_outlines(ax, fp, colour_by="status" if fp is not None and "status" in fp
                       else None, label=True)
        ax.set_title(f"{when}: {d}  ({0 if fp is None else len(fp)} footprints)")
        masked[d] = decorate_panel(ax, extent, r.crs, credits[d], v)
    grey = np.nanmean(_to_rgba(rgb1, v1, ranges)[..., :3], axis=2)
    axes[2].imshow(grey, extent=extent, cmap="gray", vmin=0, vmax=1.6, interpolation="nearest")
    _change_panel(r, axes[2], fig, d0, d1)
    decorate_panel(axes[2], extent, r.crs, credits[d1], None)
    for ax in axes:
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(useOffset=False, style="plain")
        ax.set_xlabel("easting (m)", fontsize=8)
    axes[0].set_ylabel(f"northing (m, {r.crs})", fontsize=8)
    handles = legend_handles(_present(r.footprints, "status"), _present(r.changes, "event"),
                             masked=any(m > 0 for m in masked.values()),
                             change_ramp=(d0, d1) in r.probs)
    fig.legend(handles=handles, loc="lower center", ncol=min(6, max(1, len(handles))),
               fontsize=8, frameon=True, title="Legend", title_fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return _save(fig, out / f"pair_{d0}_{d1}.png"), masked


def _area_columns(fp: pd.DataFrame) -> tuple[pd.Series, pd.Series, str] | None:
    """Lower and upper area bounds, and a sentence saying where they come from."""
    if {"area_m2_lo", "area_m2_hi"} <= set(fp.columns):
        return fp["area_m2_lo"], fp["area_m2_hi"], "95% interval (area_m2_lo–area_m2_hi)"
    if "area_m2_sd" in fp.columns:
        return (fp["area_m2"] - 1.96 * fp["area_m2_sd"], fp["area_m2"] + 1.96 * fp["area_m2_sd"],
                "±1.96 × area_m2_sd")
    if {"perimeter_m", "boundary_sd_m"} <= set(fp.columns):
        sd = fp["perimeter_m"] * fp["boundary_sd_m"]
        return (fp["area_m2"] - 1.96 * sd, fp["area_m2"] + 1.96 * sd,
                "±1.96 × perimeter_m × boundary_sd_m (outline uncertainty only)")
    return None


def _areas_figure(r: _Run, out: Path) -> tuple[str | None, str]:
    fp = r.footprints
    if fp is None or len(fp) == 0 or not {"site_id", "date", "area_m2"} <= set(fp.columns):
        return None, "No tracked footprints with site_id, date and area_m2 in this run."
    fp = pd.DataFrame(fp.drop(columns="geometry"))
    fp = fp[fp["site_id"].notna()]
    bounds = _area_columns(fp)
    per_site_max = fp.groupby("site_id")["area_m2"].max().sort_values(ascending=False)
    shown = list(per_site_max.index[:_MAX_AREA_SERIES])
    status = {}
    if r.sites is not None and {"site_id", "status"} <= set(r.sites.columns):
        status = dict(zip(r.sites["site_id"], r.sites["status"], strict=False))
    fig = Figure(figsize=(11, 5.5))
    ax = fig.subplots()
    palette = [f"C{i}" for i in range(10)]
    markers = {"new": "^", "grown": "s", "unchanged": "o", "shrunk": "v", "demolished": "X"}
    for n, sid in enumerate(shown):
        g = fp[fp["site_id"] == sid].sort_values("date")
        x = pd.to_datetime(g["date"])
        y = g["area_m2"].to_numpy(dtype="float64")
        colour = palette[n % len(palette)]
        marker = markers.get(str(status.get(sid)), "o")
        if bounds is not None:
            lo = bounds[0].loc[g.index].to_numpy(dtype="float64")
            hi = bounds[1].loc[g.index].to_numpy(dtype="float64")
            yerr = np.vstack([np.maximum(y - lo, 0), np.maximum(hi - y, 0)])
            ax.errorbar(x, y, yerr=yerr, marker=marker, ms=7, capsize=4, lw=1.6, color=colour,
                        label=f"{sid} ({status.get(sid, '?')})")
        else:
            ax.plot(x, y, marker=marker, ms=7, lw=1.6, color=colour, label=str(sid))
        if "occluded" in g.columns:
            occ = g["occluded"].fillna(False).astype(bool).to_numpy()
            if occ.any():
                ax.scatter(x[occ], y[occ], s=120, facecolors="none", edgecolors="black",
                           zorder=5)
    ax.set_ylabel("area (m²)")
    ax.set_xlabel("acquisition date")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("Footprint area per tracked building")
    fig.tight_layout()
    name = _save(fig, out / "areas.png")
    how = bounds[2] if bounds is not None else "no uncertainty columns in footprints.geojson"
    extra = "" if len(per_site_max) <= _MAX_AREA_SERIES else (
        f" Showing the {_MAX_AREA_SERIES} largest of {len(per_site_max)} buildings.")
    caption = (f"Area of each tracked building on each date; bars: {_e(how)}. A black ring marks "
               f"an occluded outline (cloud, nodata or image edge): that area is a lower "
               f"bound.{extra}")
    return name, caption


def _claim_factors(run: Mapping[str, Any]) -> list[float]:
    out = []
    for c in _claim_list(run):
        if _isnum(c.get("factor")):
            out.append(float(c["factor"]))
    return sorted(set(out))


def _neighbour_figure(r: _Run, out: Path) -> tuple[str | None, str]:
    s = r.sites
    if s is None or "neighbour_area_ratio" not in s.columns:
        return None, "No neighbour ratios in this run."
    s = s[s["neighbour_area_ratio"].notna()]
    if len(s) == 0:
        return None, "No site has a neighbour ratio in this run."
    n_all = len(s)
    if n_all > _MAX_NEIGHBOUR_ROWS and "area_m2" in s.columns:
        s = s.iloc[np.argsort(-s["area_m2"].to_numpy(dtype="float64"),
                              kind="stable")[:_MAX_NEIGHBOUR_ROWS]]
    s = s.sort_values("neighbour_area_ratio")
    fig = Figure(figsize=(10, 1.2 + 0.45 * len(s)))
    ax = fig.subplots()
    y = np.arange(len(s))
    v = s["neighbour_area_ratio"].to_numpy(dtype="float64")
    if {"neighbour_area_ratio_lo", "neighbour_area_ratio_hi"} <= set(s.columns):
        lo = s["neighbour_area_ratio_lo"].to_numpy(dtype="float64")
        hi = s["neighbour_area_ratio_hi"].to_numpy(dtype="float64")
        err = np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)])
        ax.errorbar(v, y, xerr=err, fmt="o", capsize=5, color="#b3261e", lw=2)
    else:
        ax.plot(v, y, "o", color="#b3261e")
    ax.axvline(1.0, color="grey", ls="--", lw=1)
    for f in _claim_factors(r.run):
        ax.axvline(f, color="#1b7f3b", ls=":", lw=1.5)
        ax.text(f, len(s) - 0.4, f" claim: {f:g}x", color="#1b7f3b", fontsize=8, va="bottom")
    labels = [f"{a} vs {b}" for a, b in zip(s["site_id"], s.get("neighbour_id", [""] * len(s)),
                                             strict=False)]
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_ylim(-0.7, len(s) - 0.1 + 0.6)
    ax.set_xlabel("area ratio to nearest neighbouring building (×), 95% interval")
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    name = _save(fig, out / "neighbours.png")
    shown = "" if len(s) == n_all else (
        f" Showing the {len(s)} largest of {n_all} buildings; every ratio is in the sites table "
        "and measurements.csv.")
    return name, ("Each building's area divided by its nearest neighbour's, with its 95% interval. "
                  f"Dashed line: equal size; dotted: the factor of a checked claim.{shown}")


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


def _world() -> gpd.GeoDataFrame | None:
    """Natural Earth 1:110m countries (public domain) as shipped inside pyogrio, if present."""
    try:
        import pyogrio
    except ImportError:  # pragma: no cover
        return None
    path = (Path(pyogrio.__file__).parent / "tests" / "fixtures" / "naturalearth_lowres"
            / "naturalearth_lowres.shp")
    if not path.exists():
        return None
    try:
        return gpd.read_file(path, engine="pyogrio")
    except Exception:  # optional background only
        return None


def _locator_figure(r: _Run, out: Path) -> tuple[str | None, str]:
    aoi = _aoi_geometry(r)
    if aoi is None:
        return None, "No AOI geometry in run.json and no grid.json: no locator map."
    c = aoi.centroid
    fig = Figure(figsize=(13, 5.8))
    ax0, ax1 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.25]})
    world = _world()
    span = 6.0
    if world is not None:
        world.boundary.plot(ax=ax0, color="#777777", lw=0.7)
        for _i, row in world.iterrows():
            rp = row.geometry.representative_point()
            if abs(rp.x - c.x) < span * 0.9 and abs(rp.y - c.y) < span * 0.9:
                ax0.text(rp.x, rp.y, str(row.get("name", "")), fontsize=8, color="#555555",
                         ha="center")
    ax0.plot([c.x], [c.y], marker="s", ms=12, mfc="none", mec="#b3261e", mew=2.5)
    ax0.plot([c.x], [c.y], marker=".", color="#b3261e")
    ax0.set_xlim(c.x - span, c.x + span)
    ax0.set_ylim(c.y - span * 0.8, c.y + span * 0.8)
    ax0.set_aspect(1 / math.cos(math.radians(c.y)))
    ax0.grid(alpha=0.4)
    ax0.set_xlabel("longitude (°E)")
    ax0.set_ylabel("latitude (°N)")
    ax0.set_title(f"AOI centre {c.y:.4f}° N, {c.x:.4f}° E")
    # right: the AOI with the latest footprints, in lon/lat
    outline = aoi if isinstance(aoi, Polygon) else aoi.envelope
    x, y = outline.exterior.xy if isinstance(outline, Polygon) else ([c.x], [c.y])
    ax1.plot(x, y, color="#b3261e", lw=2, label="AOI")
    if r.sites is not None and len(r.sites):
        s4326 = r.sites.to_crs("EPSG:4326")
        _draw_outlines(ax1, s4326, colour_by="status" if "status" in s4326 else None,
                       label=True)
    if r.grid is not None:
        tr = Transformer.from_crs(r.grid.crs, "EPSG:4326", always_xy=True)
        left, bottom, right, top = r.grid.bounds
        gx, gy = tr.transform([left, right, right, left, left], [bottom, bottom, top, top, bottom])
        ax1.plot(gx, gy, color="#555555", lw=1, ls="--", label=f"grid ({r.grid.crs})")
    ax1.set_aspect(1 / math.cos(math.radians(c.y)))
    ax1.ticklabel_format(useOffset=False, style="plain")
    ax1.tick_params(labelsize=7)
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8, loc="lower right")
    ax1.set_title("AOI and tracked buildings (last sighting), lon/lat")
    fig.tight_layout()
    name = _save(fig, out / "locator.png")
    src = ("country outlines: Natural Earth 1:110m (public domain)" if world is not None
           else "no country outlines available offline")
    meta = _aoi_meta(r.run)
    confidence = meta.get("coord_confidence") or meta.get("confidence")
    source = meta.get("coord_source") or meta.get("source")
    conf = ""
    if confidence or source:
        conf = (f" AOI location confidence: <b>{_e(confidence or 'not given')}</b>; "
                f"source: {_e(source or '?')}.")
    return name, f"Left: where the AOI is ({_e(src)}). Right: the AOI outline.{conf}"


# --------------------------------------------------------------------------------------------
# HTML sections
# --------------------------------------------------------------------------------------------
def _pairs(r: _Run) -> list[tuple[str, str]]:
    if r.probs:
        return sorted(r.probs)
    dates = sorted(r.scenes)
    return list(itertools.pairwise(dates))


def _summary(r: _Run) -> str:
    run = r.run
    aoi_name = _aoi_label(run)
    dates = sorted(set(r.scenes) | set(run.get("dates") or []))
    rows: list[tuple[str, str]] = [
        ("AOI", _e(aoi_name or "?")),
        ("Dates", _e(", ".join(dates) or "none")),
        ("Grid", _e(f"{r.grid.crs}, {r.grid.res_m:g} m pixels, {r.grid.shape[1]}×"
                    f"{r.grid.shape[0]} px") if r.grid else "–"),
        ("Run status", _e(run.get("status", "?"))),
        ("Created", _e(run.get("created") or run.get("created_utc") or run.get("finished") or "?")),
    ]
    if r.sites is not None and "status" in r.sites.columns:
        counts = r.sites["status"].value_counts()
        rows.append(("Tracked buildings", _e(f"{len(r.sites)} (" + ", ".join(
            f"{n} {k}" for k, n in counts.items()) + ")")))
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    sentences: list[str] = []
    n_more = 0
    if r.sites is not None and "sentence" in r.sites.columns:
        # the story is in what was built or extended: new and grown sites first, largest first
        s = r.sites[r.sites["sentence"].notna()]
        if "status" in s.columns:
            changed = s[s["status"].isin(["new", "grown"])]
            s = changed if len(changed) else s
        if "area_m2" in s.columns:
            s = s.sort_values("area_m2", ascending=False)
        all_sent = [t for t in s["sentence"].astype(str) if t.strip()]
        sentences, n_more = all_sent[:MAX_FINDINGS], max(0, len(all_sent) - MAX_FINDINGS)
    more = (f"<p class='note'>{n_more} more in the sites table below.</p>" if n_more else "")
    sent = ("<h3>Findings (new and grown buildings, largest first)</h3><ul class='sentences'>"
            + "".join(f"<li>{_e(t)}</li>" for t in sentences) + "</ul>" + more
            ) if sentences else ""
    return f"<table>{body}</table>{sent}"


_SITE_COLS: list[tuple[str, str]] = [
    ("site_id", "site"), ("name", "name"), ("status", "status"), ("first_seen_date", "first seen"),
    ("last_seen_date", "last seen"), ("n_dates", "dates"), ("area", "area m² (95% CI)"),
    ("growth", "growth × (95% CI)"), ("neighbour_id", "neighbour"),
    ("neighbour", "neighbour ratio × (95% CI)"), ("verdict", "claim verdict"),
]


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


def _claims_by_subject(run: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in _claim_list(run):
        if c.get("subject") and c.get("verdict"):
            out[str(c["subject"])] = str(c["verdict"])
    return out


def _sites_table(r: _Run) -> str:
    recs = _records(r.sites)
    if not recs:
        return "<p>No sites in this run.</p>"
    verdicts = _claims_by_subject(r.run)
    rows = []
    for rec in sorted(recs, key=lambda x: str(x.get("site_id"))):
        rows.append({
            **rec,
            "area": _interval(rec, "area_m2", 0) if _isnum(rec.get("area_m2_lo"))
            else _fmt(rec.get("area_m2"), 0),
            "growth": _interval(rec, "growth_ratio"),
            "neighbour": _interval(rec, "neighbour_area_ratio"),
            "verdict": verdicts.get(str(rec.get("site_id")), ""),
        })
    named = any(isinstance(rec.get("name"), str) and rec["name"] for rec in recs)
    cols = [c for c in _SITE_COLS if (c[0] != "verdict" or verdicts) and (c[0] != "name" or named)]
    return _table(rows, cols, num_cols=("n_dates", "area", "growth", "neighbour"),
                  cls={"verdict": "verdict"})


def _claims(run: Mapping[str, Any]) -> str:
    claims = _claim_list(run)
    if not claims:
        return ("<p>No claims checked for this run yet. Check one with <code>factorywatch claim "
                "RUN_DIR --subject s5 --reference neighbour --relation '&gt;' --factor 2</code>; "
                "its verdict is saved here.</p>")
    rows = []
    for c in claims:
        rec = dict(c)
        rec["interval"] = (f"{_fmt(c.get('ratio_lo'))}–{_fmt(c.get('ratio_hi'))}"
                           if _isnum(c.get("ratio_lo")) and _isnum(c.get("ratio_hi")) else "–")
        rec["claim"] = c.get("text") or c.get("sentence") or (
            f"{c.get('subject', '?')} {c.get('relation', '?')} {_fmt(c.get('factor'))} × "
            f"{c.get('reference', '?')}")
        rows.append(rec)
    cols = [("claim", "claim"), ("subject", "subject"), ("reference", "reference"),
            ("relation", "relation"), ("factor", "factor"), ("ratio", "measured ratio"),
            ("interval", "95% interval"), ("verdict", "verdict")]
    extra = [(k, k) for k in ("probability", "p_value", "reason", "explanation")
             if any(k in c for c in claims)]
    return "<h3>Claims checked</h3>" + _table(rows, [*cols, ("sentence", "sentence"), *extra],
                                               num_cols=("factor", "ratio", "interval"),
                                               cls={"verdict": "verdict"})


def _dict_table(d: Mapping[str, Any]) -> str:
    return "<table>" + "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(v if isinstance(v, str) else json.dumps(v))}</td></tr>"
        for k, v in d.items()) + "</table>"


def _flatten(rec: Mapping[str, Any]) -> dict[str, Any]:
    """One level of nesting flattened (``properties.crs``), dropping exact duplicates."""
    out: dict[str, Any] = {}
    for k, v in rec.items():
        if isinstance(v, Mapping):
            for k2, v2 in v.items():
                if rec.get(k2) != v2:
                    out[f"{k}.{k2}"] = v2
        else:
            out[k] = v
    return out


def _list_table(items: Sequence[Any]) -> str:
    recs = [_flatten(i) for i in items if isinstance(i, Mapping)]
    if not recs:
        return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"
    keys: list[str] = []
    for rec in recs:
        keys += [k for k in rec if k not in keys]
    first = ("stage", "date", "date_from", "date_to", "id", "seconds")
    keys = [k for k in first if k in keys] + [k for k in keys if k not in first]
    rows = []
    for rec in recs:
        row = {}
        for k in keys:
            v = rec.get(k)
            if isinstance(v, str) and k.startswith("sha") and len(v) > 16:
                v = v[:12] + "…"
            if isinstance(v, (list, tuple)) and all(_isnum(x) for x in v):
                v = _fmt(v)
            row[k] = v if isinstance(v, (str, int, float)) or v is None else json.dumps(v)
        rows.append(row)
    return _table(rows, [(k, k) for k in keys])


_SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "local": ("kind", "path", "min_valid_frac"),
    "vector": (),
}
"""``[source]`` settings that matter per source kind; the rest (STAC settings for a local run)
are defaults that were never used, and the report does not list them."""


def _used_config(run: Mapping[str, Any]) -> dict[str, Any]:
    """``run.json``'s config with only the settings of the source actually used."""
    cfg = dict(run.get("config") or {})
    src = cfg.get("source")
    if not isinstance(src, Mapping):
        return cfg
    kind = "vector" if run.get("mode") == "vector" else str(src.get("kind", ""))
    keep = _SOURCE_KEYS.get(kind)
    if keep is not None:
        cfg["source"] = ({k: v for k, v in src.items() if k in keep} if keep else
                         {"kind": "vector files (no imagery)"})
    else:  # stac: everything but the local folder
        cfg["source"] = {k: v for k, v in src.items() if k != "path"}
    return cfg


def _provenance(r: _Run) -> str:
    run = r.run
    parts: list[str] = []
    scenes = run.get("scenes") or run.get("inputs")
    if isinstance(scenes, Mapping):
        scenes = [{"name": k, **v} if isinstance(v, Mapping) else {"name": k, "value": v}
                  for k, v in scenes.items()]
    parts.append("<h3>Scenes and inputs</h3>")
    parts.append(_list_table(scenes) if scenes else "<p>run.json lists no scenes.</p>")
    files = [f"{p.parent.name}/{p.name}" for p in [*r.scenes.values(), *r.masks.values(),
                                                      *r.probs.values()]]
    if files:
        parts.append("<p>Rasters in this run: " + _e(", ".join(files)) + "</p>")
    for key, title in (("coregistration", "Co-registration and detection per date"),
                       ("change_maps", "Change maps")):
        val = run.get(key)
        if isinstance(val, list) and val:
            parts.append(f"<h3>{_e(title)}</h3>" + _list_table(val))
    parts.append("<h3>Processing</h3>")
    cfg = _used_config(run)
    if cfg:
        parts.append("<pre>" + _e(json.dumps(cfg, indent=2, sort_keys=True, default=str))
                     + "</pre>")
    stages = run.get("stages") or run.get("timings")
    if isinstance(stages, Mapping):
        parts.append(_dict_table(stages))
    elif isinstance(stages, list) and stages:
        parts.append(_list_table(stages))
    if run.get("warnings"):
        parts.append("<h3>Warnings</h3>" + _list_table(list(run["warnings"])))
    versions = run.get("versions")
    parts.append("<h3>Versions</h3>")
    parts.append(_dict_table(versions) if isinstance(versions, Mapping)
                 else "<p>run.json records no versions.</p>")
    parts.append("<details><summary>run.json (complete)</summary><pre>"
                 + _e(json.dumps(run, indent=2, sort_keys=True, default=str))
                 + "</pre></details>")
    return "\n".join(parts)


def _viewer_html(r: _Run, tmp: Path) -> str:
    """The interactive map (footprints over the scenes, date slider), written into ``tmp``."""
    fp = r.footprints
    if fp is not None and fp.crs is not None and not fp.crs.is_projected and len(fp):
        fp = fp.to_crs(fp.estimate_utm_crs())
    dates = sorted(set(r.scenes) | set(_present(fp, "date")))
    if not dates:
        return "<p>No dates in this run: no map.</p>"
    previews: dict[str, NDArray[np.float64]] = {}
    masked: dict[str, float] = {}
    extent: tuple[float, float, float, float] | None = None
    read = {d: _read_small(p) for d, p in r.scenes.items()}
    if read:
        first = next(iter(read.values()))
        extent = first[3]
        bands = _rgb_bands(first[2], first[0].shape[0])
        ranges = _stretch([np.where(v, a[bands], np.nan) for a, v, _n, _x in read.values()])
        for d, (a, v, _n, _x) in read.items():
            rgba = _to_rgba(a[bands], v, ranges)
            rgba[~v] = mask_overlay(v)[~v]
            previews[d] = rgba
            masked[d] = float((~v).mean())
    crs = r.crs or (str(fp.crs) if fp is not None and fp.crs is not None else None)
    data = viewer_data(fp, dates, extent=extent,
                       scenes={d: f"view_{d}.png" for d in previews},
                       credits=attributions(r.run, dates) if r.scenes else
                       {d: "Footprints as digitised in the input files (no imagery)"
                        for d in dates}, masked=masked,
                       north_deg=north_angle_deg(crs, extent) if extent else 0.0)
    return write_viewer(tmp, data, previews)


def _legend_html(r: _Run) -> str:
    """The outline colours and overlays of the figures, as an HTML legend (screen readers too)."""
    items = [(category_colour(v), f"footprint: {v}", "solid")
             for v in _present(r.footprints, "status")]
    items += [(category_colour(v), f"change event: {v}", "dashed")
              for v in _present(r.changes, "event")]
    items.append(("#8c33bf", "masked: cloud / nodata (tinted)", "fill"))
    if r.probs:
        items.append(("#f03b20", "change probability ≥ 0.1 (colour bar)", "fill"))
    li = "".join(
        f'<li><span class="swatch {kind}" style="border-color:{c};'
        f'{"background:" + c if kind == "fill" else ""}"></span>{_e(label)}</li>'
        for c, label, kind in items)
    return (f'<div class="legend" id="legend"><b>Legend</b><ul>{li}</ul>'
            "<p>Each image panel has a scale bar (lower left), a north arrow (true north, upper "
            "right) and the imagery credit (lower right).</p></div>")


def _pairs_html(r: _Run, tmp: Path, progress: Progress | None) -> list[str]:
    out: list[str] = []
    pairs = _pairs(r)
    credits = attributions(r.run, sorted(r.scenes))
    for d0, d1 in (progress(pairs, "report figures") if progress else pairs):
        t0 = time.perf_counter()
        name, masked = _pair_figure(r, d0, d1, tmp)
        log.debug("report: figure %s → %s in %.1f s (masked %s)", d0, d1,
                  time.perf_counter() - t0, {d: round(m, 3) for d, m in masked.items()})
        if name is None:
            r.notes.append(f"scene missing for {d0} or {d1}: no before/after figure.")
            continue
        missing = "" if (d0, d1) in r.probs else (
            f" There is no change probability map change/{_e(d0)}_{_e(d1)}_prob.tif in this "
            "run (no probability map), so the third panel shows the later scene only.")
        mask_note = "".join(
            f" <b>{_e(d)}: {m:.0%} of the scene is masked by cloud or nodata</b> (tinted "
            "purple); outlines touching it are lower bounds." for d, m in masked.items() if m)
        credit = "; ".join(f"{_e(d)}: {_e(credits.get(d, '?'))}" for d in (d0, d1))
        out.append(f"<h3>{_e(d0)} → {_e(d1)}</h3>" + _figure(
            name, f"Before ({_e(d0)}), after ({_e(d1)}) and change probability. Outline "
                  f"colours: footprint status / change event as in the QGIS styles (legend "
                  f"below the panels).{mask_note}{missing} "
                  f'<span class="attribution">{credit}</span>',
            f"before/after/change {d0} to {d1}"))
    if out:
        out.insert(0, _legend_html(r))
    else:
        out.append(
            "<p>This run has no imagery: its footprints were read from a file "
            "(digitised outlines), so there is nothing to show here.</p>"
            if r.run.get("mode") == "vector" or not r.scenes else
            "<p>Fewer than two scenes in this run: nothing to compare.</p>")
    return out


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
def write_report(run_dir: str | Path, *,
                 progress: Progress | None = None) -> Path:
    """Build ``run_dir/report/index.html`` and its PNG figures from the run's files.

    Parameters
    ----------
    run_dir : str or Path
        A run directory (DESIGN.md "Run directory"). Only ``run.json`` is required; the
        report leaves out, with a note, every part whose input file is missing.

    Returns
    -------
    Path
        ``run_dir/report/index.html``. The folder is built under a temporary name inside
        ``run_dir`` and moved into place when complete, replacing an older report.
    progress : callable, optional
        ``progress(items, label)`` wraps the figure loop (a progress bar in the CLI).

    Raises
    ------
    SourceError
        If ``run_dir`` or its ``run.json`` is missing or unreadable.

    Notes
    -----
    The report shows a locator map, before/after/change images per date pair with the
    footprints drawn, the area of each tracked building over time with its interval, the
    neighbour ratios with their 95% intervals, a table of sites (with claim verdicts when
    ``run.json`` has ``claims``) and the provenance (scenes, processing, versions). A run
    with ``"synthetic": true`` in ``run.json`` says SYNTHETIC at the top of the page.
    """
    run_dir = Path(run_dir)
    rd = RunDir(run_dir)
    r = _load(run_dir)
    with atomic_dir(rd.report_dir) as tmp:
        pairs_html = _pairs_html(r, tmp, progress)
        loc, loc_cap = _locator_figure(r, tmp)
        areas, areas_cap = _areas_figure(r, tmp)
        nb, nb_cap = _neighbour_figure(r, tmp)
        timeline = timeline_figure_html(rd.timeline_csv, r.sites, tmp)  # issue 16
        aoi_name = _aoi_label(r.run)
        synthetic = r.synthetic
        title = f"factorywatch report: {aoi_name or _display_name(run_dir)}"
        banner = ('<div class="synthetic">SYNTHETIC DATA: this run uses generated imagery, '
                  "not real observations. Numbers below describe the simulation only.</div>"
                  ) if synthetic else ""
        notes = "".join(f'<div class="warn">{_e(n)}</div>' for n in r.notes)
        html_text = Template(_TEMPLATE.read_text(encoding="utf-8")).substitute(
            version=_e(__version__),
            title=_e(("[SYNTHETIC] " if synthetic else "") + title),
            subtitle=_e(f"Run directory: {_display_name(run_dir)} · "
                        f"{len(r.scenes)} scenes · report built "
                        f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}"),
            synthetic_banner=banner,
            warnings=notes,
            summary=_summary(r),
            locator=_figure(loc, loc_cap, "locator map") if loc else f"<p>{loc_cap}</p>",
            pairs="\n".join(pairs_html),
            viewer=_viewer_html(r, tmp),
            areas=(_figure(areas, areas_cap, "area over time") if areas
                   else f"<p>{areas_cap}</p>") + timeline,
            neighbours=(_figure(nb, nb_cap, "neighbour ratios") if nb else f"<p>{nb_cap}</p>"),
            sites_table=_sites_table(r),
            claims=_claims(r.run),
            provenance=_provenance(r),
            footer=_e(f"factorywatch {__version__}. Areas are measured on the AOI's UTM grid; "
                      "intervals are 95% unless stated. Rebuild with: factorywatch report "
                      f"{_display_name(run_dir)}")
            + (" · <b>SYNTHETIC</b>" if synthetic else ""),
        )
        (tmp / rd.report_index.name).write_text(html_text, encoding="utf-8")
    out = rd.report_index
    log.info("report: %s (%d figures)", out, len(list(rd.report_dir.glob("*.png"))))
    return out
