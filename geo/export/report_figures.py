"""The report's PNG figures: date pairs, area series, neighbour ratios, locator map.

matplotlib's Agg canvas is used directly (no pyplot state). Every function takes the loaded
run (:class:`geo.export.report_data._Run`) and the output folder and returns the figure's
file name (or None) and its caption.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import PlaceHolderLayoutEngine
from pyproj import Transformer
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from geo.export.furniture import (
    PNG_OPTIONS,
    attributions,
    decorate_panel,
    legend_handles,
)
from geo.export.qml import category_colour
from geo.export.report_data import (
    _MAX_PX,
    _aoi_geometry,
    _aoi_meta,
    _claim_list,
    _e,
    _isnum,
    _on_date,
    _present,
    _read_small,
    _rgb_bands,
    _Run,
    _stretch,
    _to_rgba,
)
from geo.export.timeline_figure import TIMELINE_PNG, timeline_figure_html

__all__: list[str] = []

log = logging.getLogger(__name__)
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


def _save(fig: Figure, path: Path) -> str:
    if not isinstance(fig.canvas, FigureCanvasAgg):  # a reused pair figure keeps its canvas
        FigureCanvasAgg(fig)
    if isinstance(fig.get_layout_engine(), PlaceHolderLayoutEngine):
        # left by tight_layout(): savefig would draw the figure once more, without rendering,
        # to run a layout engine that does nothing; the layout is done
        fig.set_layout_engine(None)
    fig.savefig(path, dpi=_DPI, facecolor="white", pil_kwargs=PNG_OPTIONS)
    return path.name


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


def _prob_image(r: _Run, d0: str, d1: str) -> tuple[Any, tuple[float, ...]] | None:
    """The pair's change probability (masked below 0.1) and its extent; None: no map."""
    prob_path = r.probs.get((d0, d1))
    if prob_path is None:
        return None
    p, pv, _n, pext = _read_small(prob_path)
    return np.ma.masked_where(~pv | ~np.isfinite(p[0]) | (p[0] < 0.1), p[0]), pext


def _change_outlines(r: _Run, ax: Any, d0: str, d1: str) -> None:
    ch = r.changes
    if ch is not None and {"date_from", "date_to"} <= set(ch.columns):
        sel = ch[(ch["date_from"].astype(str) == d0) & (ch["date_to"].astype(str) == d1)]
        _draw_outlines(ax, sel, colour_by="event" if "event" in sel else None, label=True,
                       lw=1.8)


_SUBPLOT_KEYS = ("left", "right", "top", "bottom", "wspace", "hspace")


class _Frame:
    """A pair figure's figure, canvas, panels, base images and colour bar.

    The next pair of the same run with the same extent and colour bar redraws this figure:
    :meth:`reuse` swaps the images' data and removes everything else drawn on the panels
    (outlines, labels, furniture, legend), which :func:`_pair_figure` draws again in the same
    order as on a new figure, so the result is the same as on a new figure. The axes, their
    ticks, the colour bar, the layout and the renderer (and its text metrics) are kept.
    """

    def __init__(self, crs: str | None, extent: tuple[float, ...], images: list[Any]) -> None:
        self.extent = extent
        self.fig = Figure(figsize=(15, 6.4))
        FigureCanvasAgg(self.fig)
        self.axes = list(self.fig.subplots(1, 3, sharex=True, sharey=True))
        self.images = [self.axes[0].imshow(images[0], extent=extent, interpolation="nearest"),
                       self.axes[1].imshow(images[1], extent=extent, interpolation="nearest"),
                       self.axes[2].imshow(images[2], extent=extent, cmap="gray", vmin=0,
                                           vmax=1.6, interpolation="nearest")]
        if len(images) > 3:
            prob, pext = images[3]
            self.images.append(self.axes[2].imshow(prob, extent=pext, cmap="YlOrRd", vmin=0,
                                                   vmax=1, alpha=0.85,
                                                   interpolation="nearest"))
            cb = self.fig.colorbar(self.images[3], ax=self.axes[2], fraction=0.046, pad=0.02)
            cb.set_label("change probability")
        for ax in self.axes:
            ax.set_xlim(extent[0], extent[1])
            ax.set_ylim(extent[2], extent[3])
            ax.set_aspect("equal")
            ax.tick_params(labelsize=7)
            ax.ticklabel_format(useOffset=False, style="plain")
            ax.set_xlabel("easting (m)", fontsize=8)
        self.axes[0].set_ylabel(f"northing (m, {crs})", fontsize=8)

    def reuse(self, images: list[Any]) -> None:
        """New data in the base images; every other artist of the panels and the legend go."""
        for im, data in zip(self.images, images, strict=True):
            if isinstance(data, tuple):  # the probability map and its extent
                im.set_data(data[0])
                im.set_extent(data[1])
            else:
                im.set_data(data)
        for ax in self.axes:
            for group in (ax.lines, ax.collections, ax.texts, ax.patches, ax.images):
                for artist in list(group):
                    if artist not in self.images:
                        artist.remove()
        for legend in list(self.fig.legends):
            legend.remove()


class PairFigures:
    """What the pair figures of one report share.

    ``layouts`` holds the tight layout of the first pair drawn, one per "has a change
    probability colour bar": the later pairs of the same run share the extent, CRS and so the
    tick labels, and ``tight_layout`` is half the drawing time. ``frames`` holds, per colour
    bar or not, the last figure drawn (:class:`_Frame`), redrawn by the next pair of the same
    extent instead of building a new figure, its axes, ticks and colour bar (about 0.6 -> 0.4
    CPU-s per later pair on the demo). :meth:`scene` reads a date once for its two pairs.
    """

    def __init__(self) -> None:
        self.layouts: dict[bool, dict[str, float]] = {}
        self.frames: dict[bool, _Frame] = {}
        self._last: tuple[Path, Any] | None = None

    def scene(self, path: Path) -> Any:
        """:func:`_read_small` of ``path``, its arrays read-only.

        The scene last read (the previous pair's later date, this pair's earlier one) is not
        read again.
        """
        if self._last is not None and self._last[0] == path:
            return self._last[1]
        read = _read_small(path)
        for arr in read[:2]:
            arr.setflags(write=False)
        self._last = (path, read)
        return read

    def frame(self, key: bool, crs: str | None, extent: tuple[float, ...],
              images: list[Any]) -> _Frame:
        """The figure to draw a pair on: the last one of ``key`` reused, or a new one."""
        old = self.frames.get(key)
        if old is not None and old.extent == extent and len(old.images) == len(images):
            old.reuse(images)
            return old
        frame = _Frame(crs, extent, images)
        if key in self.layouts:
            frame.fig.subplots_adjust(**self.layouts[key])
        self.frames[key] = frame
        return frame

    def layout(self, key: bool, frame: _Frame) -> None:
        """Lay a new figure out (tight layout, once per ``key``); a reused one is laid out."""
        if key in self.layouts:
            return
        frame.fig.tight_layout(rect=(0, 0.1, 1, 1))
        self.layouts[key] = {k: float(getattr(frame.fig.subplotpars, k))
                             for k in _SUBPLOT_KEYS}


def _pair_figure(r: _Run, d0: str, d1: str, out: Path,
                 shared: PairFigures | None = None) -> tuple[str | None, dict[str, float]]:
    """Before / after / change panels with map furniture; returns (png, masked fraction).

    ``shared`` carries the layout and the last figure of the pairs of one report (see
    :class:`PairFigures`); without it the figure is drawn on its own.
    """
    if d0 not in r.scenes or d1 not in r.scenes:
        return None, {}
    shared = shared if shared is not None else PairFigures()
    a0, v0, names, extent = shared.scene(r.scenes[d0])
    a1, v1, _n, _e1 = shared.scene(r.scenes[d1])
    bands = _rgb_bands(names, a0.shape[0])
    rgb0, rgb1 = a0[bands], a1[bands]
    ranges = _stretch([np.where(v0, rgb0, np.nan), np.where(v1, rgb1, np.nan)])
    rgba1 = _to_rgba(rgb1, v1, ranges)
    images: list[Any] = [_to_rgba(rgb0, v0, ranges), rgba1, np.nanmean(rgba1[..., :3], axis=2)]
    prob = _prob_image(r, d0, d1)
    if prob is not None:
        images.append(prob)
    key = prob is not None
    frame = shared.frame(key, r.crs, extent, images)
    axes = frame.axes
    credits = attributions(r.run, [d0, d1])
    masked: dict[str, float] = {}
    for ax, d, v, when in ((axes[0], d0, v0, "before"), (axes[1], d1, v1, "after")):
        fp = _on_date(r.footprints, d)
        _draw_outlines(ax, fp, colour_by="status" if fp is not None and "status" in fp
                       else None, label=True)
        ax.set_title(f"{when}: {d}  ({0 if fp is None else len(fp)} footprints)")
        masked[d] = decorate_panel(ax, extent, r.crs, credits[d], v)
    axes[2].set_title(f"change {d0} → {d1}" if key else
                      f"change {d0} → {d1} (no probability map)")
    _change_outlines(r, axes[2], d0, d1)
    decorate_panel(axes[2], extent, r.crs, credits[d1], None)
    handles = legend_handles(_present(r.footprints, "status"), _present(r.changes, "event"),
                             masked=any(m > 0 for m in masked.values()),
                             change_ramp=(d0, d1) in r.probs)
    frame.fig.legend(handles=handles, loc="lower center", ncol=min(6, max(1, len(handles))),
                     fontsize=8, frameon=True, title="Legend", title_fontsize=8)
    shared.layout(key, frame)
    return _save(frame.fig, out / f"pair_{d0}_{d1}.png"), masked


FIGURE_INDEX = "figures.json"
"""In ``report/``: per pair figure, the digest of what it draws and its masked fractions, so a
rebuilt report (a claim saved, a watch run with one new date) copies the figures whose inputs
did not change instead of drawing them again."""
_FIGURE_DIGEST_VERSION = "1"
"""Bump when :func:`_pair_figure` draws differently from the same inputs."""


def load_figure_index(report_dir: Path) -> dict[str, Any]:
    """The figures of a report's :data:`FIGURE_INDEX` by file name.

    ``{}`` when the index is missing, unreadable or of another digest version.
    """
    try:
        data = json.loads((report_dir / FIGURE_INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != _FIGURE_DIGEST_VERSION:
        return {}
    figures = data.get("figures")
    return figures if isinstance(figures, dict) else {}


def _drawn_digest(h: Any, gdf: gpd.GeoDataFrame | None) -> None:
    """Feed ``h`` what a panel draws of ``gdf``: outlines, their colour columns and labels."""
    if gdf is None:
        h.update(b"\x00none")
        return
    for col in ("site_id", "status", "event"):
        if col in gdf.columns:
            h.update(col.encode() + b"\x1f" + "\x1e".join(map(str, gdf[col].tolist())).encode())
    for wkb in shapely.to_wkb(np.asarray(gdf.geometry.values, dtype=object)):
        h.update(b"\x1d" + (wkb if wkb is not None else b"-"))


def _pair_digest(r: _Run, d0: str, d1: str) -> str:
    """Everything :func:`_pair_figure` draws for ``(d0, d1)``, digested."""
    h = hashlib.sha256(f"{_FIGURE_DIGEST_VERSION}|{d0}|{d1}|{r.crs}".encode())
    for path in (r.scenes.get(d0), r.scenes.get(d1), r.probs.get((d0, d1))):
        if path is not None and path.is_file():
            st = path.stat()
            h.update(f"|{path.name}|{st.st_size}|{st.st_mtime_ns}".encode())
        else:
            h.update(b"|-")
    _drawn_digest(h, _on_date(r.footprints, d0))
    _drawn_digest(h, _on_date(r.footprints, d1))
    ch = r.changes
    if ch is not None and {"date_from", "date_to"} <= set(ch.columns):
        ch = ch[(ch["date_from"].astype(str) == d0) & (ch["date_to"].astype(str) == d1)]
    _drawn_digest(h, ch)
    credits = attributions(r.run, [d0, d1])
    h.update(json.dumps([credits.get(d0), credits.get(d1), _present(r.footprints, "status"),
                         _present(r.changes, "event")]).encode())
    return h.hexdigest()


class FigureCache:
    """The figures of the report being replaced, reused when nothing they draw has changed.

    ``previous_dir`` is the report folder being replaced (its :data:`FIGURE_INDEX`), ``out``
    the folder being built. :meth:`reuse` copies a figure's files when the digest of what it
    draws matches the old one; :meth:`record` notes a figure just drawn; :meth:`write` writes
    the new index. Each entry is ``{"digest", "files"?, ...}`` plus what the figure's HTML
    needs (masked fractions, caption); without ``files`` the entry's key is its one file.
    """

    def __init__(self, previous_dir: Path, out: Path) -> None:
        self.previous_dir, self.out = previous_dir, out
        self.previous = load_figure_index(previous_dir)
        self.index: dict[str, Any] = {}

    def reuse(self, key: str, digest: str) -> dict[str, Any] | None:
        """The old entry of ``key`` (its files copied into ``out``), or None: draw it."""
        old = self.previous.get(key)
        if not isinstance(old, Mapping) or old.get("digest") != digest:
            return None
        files = old.get("files", [key])
        if not isinstance(files, list) or not all(
                isinstance(f, str) and f and Path(f).name == f
                and (self.previous_dir / f).is_file() for f in files):
            return None
        for f in files:
            shutil.copyfile(self.previous_dir / f, self.out / f)
        entry = dict(old)
        self.index[key] = entry
        return entry

    def record(self, key: str, digest: str, **meta: Any) -> None:
        """Note the figure ``key`` just drawn, with what a later rebuild needs to reuse it."""
        self.index[key] = {"digest": digest, **meta}

    def write(self) -> None:
        """Write :data:`FIGURE_INDEX` into the report folder being built."""
        write_figure_index(self.out, self.index)


def pair_figure(r: _Run, d0: str, d1: str, cache: FigureCache,
                shared: PairFigures | None = None) -> tuple[str | None, dict[str, float]]:
    """:func:`_pair_figure`, or the previous report's copy when nothing it draws has changed.

    The figure's digest and masked fractions go into ``cache``; ``shared`` is shared by the
    pairs of one report (see :class:`PairFigures`).
    """
    digest = _pair_digest(r, d0, d1)
    name = f"pair_{d0}_{d1}.png"
    old = cache.reuse(name, digest)
    if old is not None:
        masked = {str(k): float(v) for k, v in dict(old.get("masked", {})).items()}
        return name, masked
    drawn, masked = _pair_figure(r, d0, d1, cache.out, shared)
    if drawn is not None:
        cache.record(drawn, digest, masked=masked)
    return drawn, masked


def write_figure_index(out: Path, index: Mapping[str, Any]) -> None:
    """Write :data:`FIGURE_INDEX` into the report folder being built."""
    (out / FIGURE_INDEX).write_text(json.dumps(
        {"version": _FIGURE_DIGEST_VERSION, "figures": dict(index)}, indent=1), encoding="utf-8")


_KIND_VERSION = {"locator": "1", "areas": "1", "neighbours": "1", "timeline": "1", "view": "1"}
"""Per figure kind: bump when it draws differently from the same inputs (as
:data:`_FIGURE_DIGEST_VERSION` for the pair figures)."""


def _kind_hash(kind: str) -> Any:
    return hashlib.sha256(f"{kind}|{_KIND_VERSION[kind]}|{_DPI}".encode())


def _columns_digest(h: Any, df: pd.DataFrame | None, cols: tuple[str, ...]) -> None:
    """Feed ``h`` the values of those of ``cols`` that ``df`` has, in row order."""
    if df is None:
        h.update(b"\x00none")
        return
    present = [c for c in cols if c in df.columns]
    h.update(json.dumps([present, len(df)]).encode())
    if present:
        plain = pd.DataFrame({c: df[c].to_numpy() for c in present})
        h.update(pd.util.hash_pandas_object(plain, index=False).to_numpy().tobytes())


def _file_digest(h: Any, path: Path | None) -> None:
    """Feed ``h`` a file's name, size and modification time (as the pair figures' rasters)."""
    if path is not None and path.is_file():
        st = path.stat()
        h.update(f"|{path.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        h.update(b"|-")


def _cached(cache: FigureCache, name: str, digest: str, draw: Any,
            field: str = "caption") -> tuple[str | None, str]:
    """``draw(out)``, or the previous report's copy of ``name`` when its digest matches.

    ``draw`` returns the figure's file name (None: nothing drawn) and its caption, or other
    HTML kept in the index as ``field``.
    """
    old = cache.reuse(name, digest)
    if old is not None:
        return name, str(old.get(field, ""))
    drawn, text = draw(cache.out)
    if drawn is not None:
        cache.record(drawn, digest, **{field: text})
    return drawn, text


def locator_figure(r: _Run, cache: FigureCache) -> tuple[str | None, str]:
    """:func:`_locator_figure`, reused when the AOI, grid and sites are unchanged."""
    h = _kind_hash("locator")
    aoi = _aoi_geometry(r)
    h.update(b"-" if aoi is None else shapely.to_wkb(aoi))
    h.update(json.dumps(_aoi_meta(r.run), sort_keys=True, default=str).encode())
    _file_digest(h, _WORLD)
    h.update(json.dumps(None if r.grid is None else [r.grid.crs, list(r.grid.bounds)]).encode())
    h.update(str(None if r.sites is None else r.sites.crs).encode())
    _drawn_digest(h, r.sites)
    return _cached(cache, "locator.png", h.hexdigest(), lambda out: _locator_figure(r, out))


_AREA_COLS = ("site_id", "date", "area_m2", "area_m2_lo", "area_m2_hi", "area_m2_sd",
              "perimeter_m", "boundary_sd_m", "occluded")


def areas_figure(r: _Run, cache: FigureCache) -> tuple[str | None, str]:
    """:func:`_areas_figure`, reused when the footprints' areas and site statuses are unchanged."""
    h = _kind_hash("areas")
    _columns_digest(h, r.footprints, _AREA_COLS)
    _columns_digest(h, r.sites, ("site_id", "status"))
    return _cached(cache, "areas.png", h.hexdigest(), lambda out: _areas_figure(r, out))


def neighbour_figure(r: _Run, cache: FigureCache) -> tuple[str | None, str]:
    """:func:`_neighbour_figure`, reused when the ratios and the claims' factors are unchanged."""
    h = _kind_hash("neighbours")
    _columns_digest(h, r.sites, ("site_id", "neighbour_id", "area_m2", "neighbour_area_ratio",
                                 "neighbour_area_ratio_lo", "neighbour_area_ratio_hi"))
    h.update(json.dumps(_claim_factors(r.run)).encode())
    return _cached(cache, "neighbours.png", h.hexdigest(), lambda out: _neighbour_figure(r, out))


_TIMELINE_SITE_COLS = ("site_id", *(f"{ev}_{k}" for ev in ("cleared", "roofed")
                                    for k in ("date_lo", "date_hi", "confidence")))


def timeline_figure(r: _Run, timeline_csv: Path, cache: FigureCache) -> str:
    """:func:`timeline_figure_html`, reused when the series and the dated events are unchanged.

    ``""`` without ``timeline.csv``.
    """
    if not timeline_csv.is_file():
        return ""
    h = _kind_hash("timeline")
    h.update(hashlib.sha256(timeline_csv.read_bytes()).digest())
    _columns_digest(h, r.sites, _TIMELINE_SITE_COLS)

    def draw(out: Path) -> tuple[str | None, str]:
        text: str = timeline_figure_html(timeline_csv, r.sites, out, dpi=_DPI)
        return (TIMELINE_PNG if text else None), text

    return _cached(cache, TIMELINE_PNG, h.hexdigest(), draw, field="html")[1]


def view_digest(r: _Run) -> str:
    """What the map viewer's scene previews (``view_<date>.png``) are made of, digested."""
    h = _kind_hash("view")
    h.update(f"|{_MAX_PX}".encode())
    for d, path in sorted(r.scenes.items()):
        h.update(d.encode())
        _file_digest(h, path)
    return str(h.hexdigest())


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


_WORLD = Path(__file__).resolve().parent / "data" / "world_110m.geojson"
"""Natural Earth 1:110m country outlines (public domain), shipped with factorywatch
(made by ``tools/make_world_outline.py``)."""


def _world() -> gpd.GeoDataFrame | None:
    """The shipped country outlines; None (the map is drawn without them) if unreadable."""
    try:
        return gpd.read_file(_WORLD, engine="pyogrio")
    except Exception as err:  # optional background only
        log.warning("report: no country outlines for the locator map (%s)", err)
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
