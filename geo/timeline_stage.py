"""Pipeline stage: the construction timeline of every tracked site (I/O around geo.timeline).

For each co-registered scene of the run (``RunDir.scenes()``) masked by its own valid mask
(``RunDir.valid_mask(date)``), the statistics of every site's outline (the outline of its last
sighting, from ``Tracks.sites``) are taken; :func:`geo.timeline.fit_timeline` then gives each
site ``cleared_date``, ``roofed_date`` (with ``_lo``/``_hi`` and ``_confidence``),
``phase`` (at the last scene) and ``timeline_scenes``; each footprint gets the ``phase`` of its
date; ``timeline.csv`` holds the series (one row per site and scene) for the report.
Scenes misaligned by more than a pixel (``residual_m`` of co-registration) are left out.
Without scenes with red and NIR bands (RGB imagery, the demo) the stage adds nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from geo.aoi import Aoi
from geo.geoarray import GeoArray
from geo.grid import Grid
from geo.reading import GDAL_ENV
from geo.records import DateRecord
from geo.rundir import RunDir
from geo.timeline import (
    EVENTS,
    FEATURES,
    MaskCache,
    SceneStats,
    Timeline,
    building_window,
    event_from_record,
    fit_timeline,
    outline_shapes,
    scene_stats,
    timeline_record,
    window_grid,
)
from geo.timeline_extra import extra_series

__all__ = ["series_table", "timeline_json", "with_timeline"]

log = logging.getLogger(__name__)


def _usable_meta(run: RunDir, date: str, res_m: float) -> DateRecord | None:
    """A scene's record, or ``None`` when it is skipped or misaligned by more than a pixel."""
    meta_path = run.scene_meta(date)
    if not meta_path.is_file():
        return None
    meta = DateRecord.from_json(json.loads(meta_path.read_text()))
    if meta.skipped or meta.residual > res_m:
        return None  # misaligned by more than a pixel: the outline would sample the ring
    bands = set(meta.bands)
    ok = {"red", "nir"} <= bands or {"red", "green", "blue"} <= bands
    return meta if ok else None


MAX_BOX_FACTOR = 4.0
"""One read of a group's bounding box is used while that box is at most this many times the
group's summed window area (the demo: one small cluster of halls); beyond, each window is read
on its own."""
READ_BLOCK_PX = 2048
"""Windows are grouped by the ``READ_BLOCK_PX``² block of the grid holding their first pixel,
and each group is read, measured and dropped before the next: memory follows one block and its
buildings' windows, never the AOI (at 10,000² the windows of 3,868 buildings add up to more
than the grid, so one box read of them all was the whole grid, 3 GB)."""


def _boxes(wins: dict[str, tuple[slice, slice]]) -> list[tuple[Window, list[str]]]:
    """The reads to make for one group: its bounding box, or one read per window."""
    r0 = min(w[0].start for w in wins.values())
    r1 = max(w[0].stop for w in wins.values())
    c0 = min(w[1].start for w in wins.values())
    c1 = max(w[1].stop for w in wins.values())
    summed = sum((rr.stop - rr.start) * (cc.stop - cc.start) for rr, cc in wins.values())
    if (r1 - r0) * (c1 - c0) <= MAX_BOX_FACTOR * summed:
        return [(Window.from_slices(slice(r0, r1), slice(c0, c1)), list(wins))]
    return [(Window.from_slices(*w), [sid]) for sid, w in wins.items()]


def _blocks(wins: dict[str, tuple[slice, slice]]) -> list[list[tuple[Window, list[str]]]]:
    """Per :data:`READ_BLOCK_PX` block (row-major), the reads of its windows (:func:`_boxes`)."""
    blocks: dict[tuple[int, int], dict[str, tuple[slice, slice]]] = {}
    for sid, (rr, cc) in wins.items():
        key = (rr.start // READ_BLOCK_PX, cc.start // READ_BLOCK_PX)
        blocks.setdefault(key, {})[sid] = (rr, cc)
    return [_boxes(blocks[key]) for key in sorted(blocks)]


def _reads(wins: dict[str, tuple[slice, slice]]) -> list[tuple[Window, list[str]]]:
    """Every read of a scene: per :data:`READ_BLOCK_PX` block, :func:`_boxes` of its windows."""
    return [read for block in _blocks(wins) for read in block]


def _read_boxes(path: Path, mask_path: Path, meta: DateRecord, grid: Grid,
                wins: dict[str, tuple[slice, slice]], reads: list[tuple[Window, list[str]]]
                ) -> Iterator[tuple[str, GeoArray]]:
    """``(site id, window)`` of one run scene for ``reads``, the files opened once.

    Each read is the scene, its nodata mask and the valid mask of the checkpoint (clouds) over
    its box, cut into its windows; a read's pixels are released before the next read.
    """
    with rasterio.Env(**GDAL_ENV), rasterio.open(path) as src, contextlib.ExitStack() as stack:
        vm = stack.enter_context(rasterio.open(mask_path)) if mask_path.is_file() else None
        for box, sids in reads:
            arr = src.read(window=box, out_dtype="float32")
            valid = (np.all(src.read_masks(window=box) > 0, axis=0)
                     & np.all(np.isfinite(arr), axis=0))
            if vm is not None:
                valid &= vm.read(1, window=box) > 0
            r0, c0 = int(box.row_off), int(box.col_off)
            for sid in sids:
                rr, cc = wins[sid]
                r, c = slice(rr.start - r0, rr.stop - r0), slice(cc.start - c0, cc.stop - c0)
                yield sid, GeoArray(data=np.ascontiguousarray(arr[:, r, c]),
                                    valid=valid[r, c], grid=window_grid(grid, (rr, cc)),
                                    date=meta.date, bands=tuple(meta.bands),
                                    source_id=meta.source_id, kind=meta.kind)
            del arr, valid


def _read_windows(path: Path, mask_path: Path, meta: DateRecord, grid: Grid,
                  wins: dict[str, tuple[slice, slice]]) -> Iterator[tuple[str, GeoArray]]:
    """Each window of a run scene (on ``grid`` already: plain windowed reads, no warp).

    Yields ``(site id, window)`` read by :func:`_reads`; nothing outside the windows' boxes is
    read.
    """
    if wins:
        yield from _read_boxes(path, mask_path, meta, grid, wins, _reads(wins))


def _series(run: RunDir, grid: Grid, outlines: dict[str, BaseGeometry]
            ) -> dict[str, list[SceneStats]]:
    """Per site, the statistics of every usable scene, read window by window.

    Only each building's window (outline, ring and margin: :func:`building_window`) of the
    scene and of its valid mask is read, block by block (:func:`_blocks`): all dates of one
    block before the next, so each site's inside and ring masks are computed once for all
    its scenes, and memory follows one block.
    """
    shapes = {sid: outline_shapes(g, grid.res_m) for sid, g in outlines.items()}
    wins = {sid: w for sid, sh in shapes.items()
            if 0 not in window_grid(grid, w := building_window(grid, sh)).shape}
    out: dict[str, list[SceneStats]] = {sid: [] for sid in outlines}
    dates = [(path, run.valid_mask(date), meta) for date, path in run.scenes().items()
             if (meta := _usable_meta(run, date, grid.res_m)) is not None]
    for reads in _blocks(wins):
        caches: dict[str, MaskCache] = {sid: {} for _, sids in reads for sid in sids}
        for path, mask_path, meta in dates:
            for sid, ga in _read_boxes(path, mask_path, meta, grid, wins, reads):
                st = scene_stats(ga, shapes[sid], mask_cache=caches[sid])
                if st is not None:
                    out[sid].append(st)
    return out


def series_table(fits: dict[str, Timeline]) -> pd.DataFrame:
    """One row per site and scene: date, resolution, RGB or not, phase, inside and contrast indices.

    On RGB rows ``ndvi_*`` is excess green and ``bsi_*`` the red-blue index
    (:func:`geo.timeline._rgb_indices`).
    """
    rows = [{"site_id": sid, "date": st.date, "res_m": st.res_m, "rgb": st.rgb, "phase": ph,
             **{f"{f}_in": round(float(v), 4) for f, v in zip(FEATURES, st.inside, strict=True)},
             **{f"{f}_contrast": round(float(v), 4)
                for f, v in zip(FEATURES, st.contrast, strict=True)}}
            for sid, t in fits.items() for st, ph in zip(t.series, t.phases, strict=True)]
    return pd.DataFrame(rows)


def _write_series(run: RunDir, fits: dict[str, Timeline]) -> None:
    from geo.export.tables import write_csv

    write_csv(series_table(fits), run.timeline_csv)


def _multispectral(run: RunDir) -> list[bool]:
    """Per scene with metadata, whether it has red and NIR bands."""
    out = []
    for date in run.scenes():
        meta_path = run.scene_meta(date)
        if meta_path.is_file():
            bands = DateRecord.from_json(json.loads(meta_path.read_text())).bands
            out.append("red" in bands and "nir" in bands)
    return out


def with_timeline(tracks: Any, run: RunDir, grid: Grid | None, warnings: list[str], *,
                  source: Any = None, aoi: Aoi | None = None,
                  span: tuple[str | None, str | None] = (None, None)) -> Any:
    """``tracks`` with the timeline columns on sites and ``phase`` on footprints.

    Parameters
    ----------
    tracks
        :class:`geo.match.Tracks` after measuring (sites in the grid CRS).
    run
        The run directory being written (its scenes, valid masks and scene metadata).
    grid
        The AOI grid; ``None`` (a ``measure`` run from footprints) adds nothing.
    warnings
        The run's warnings, appended to when multispectral scenes gave no usable series.
    source, aoi, span
        The run's imagery source, AOI and ``(start, end)``: from a STAC source, the scenes it
        did not choose are added, read by building window (:mod:`geo.timeline_extra`).
    """
    if grid is None or not len(tracks.sites):
        return tracks
    outlines = dict(zip(tracks.sites["site_id"], tracks.sites.geometry, strict=True))
    series = _series(run, grid, outlines)
    if source is not None and aoi is not None:
        more, warn = extra_series(source, aoi, grid, set(run.scenes()), outlines,
                                  start=span[0], end=span[1])
        warnings.extend([warn] if warn else [])
        for sid, extra in more.items():
            series[sid] += extra
    if not any(series.values()):
        if any(_multispectral(run)):
            warnings.append("construction timeline: no scene clear enough over any site "
                            "(>= 60 % valid inside and around); no cleared/roofed dates")
        else:  # RGB imagery (the demo, most VHR): no timeline, no columns, nothing to warn
            log.info("timeline: no scene with red and NIR bands; skipped")
        return tracks
    fits: dict[str, Timeline] = {sid: fit_timeline(sorted(s, key=lambda x: x.date))
                                 for sid, s in series.items()}
    recs = pd.DataFrame([{"site_id": sid, **timeline_record(t)} for sid, t in fits.items()])
    sites = tracks.sites.merge(recs, on="site_id", how="left")
    phase_of = {(sid, d): p for sid, t in fits.items()
                for d, p in zip(t.dates, t.phases, strict=True)}
    fp = tracks.footprints.assign(phase=[phase_of.get((s, str(d))) for s, d in
                                         zip(tracks.footprints["site_id"],
                                             tracks.footprints["date"], strict=True)])
    _write_series(run, fits)
    log.info("timeline: %d sites over %d scenes", len(fits),
             max((len(t.dates) for t in fits.values()), default=0))
    return dataclasses.replace(tracks, sites=sites, footprints=fp)


def timeline_json(sites: pd.DataFrame) -> dict[str, dict[str, Any]] | None:
    """The ``timeline`` key of ``run.json``: per site, its phase, scenes and event dates.

    ``{site_id: {"phase", "scenes", "cleared": {"date", "lo", "hi", "confidence"},
    "roofed": {...}}}`` (schema: :class:`geo.export.run_schema.SiteTimeline`); ``None`` when
    the run has no timeline columns (no usable series).
    """
    if "timeline_scenes" not in sites.columns:
        return None
    out: dict[str, dict[str, Any]] = {}
    for rec in sites.drop(columns="geometry", errors="ignore").to_dict("records"):
        n = rec.get("timeline_scenes")
        entry: dict[str, Any] = {
            "phase": rec["phase"] if isinstance(rec.get("phase"), str) else None,
            "scenes": int(n) if isinstance(n, int | float) and n == n else 0}
        for name in EVENTS:
            ev = event_from_record({str(k): v for k, v in rec.items()}, name)
            entry[name] = {"date": ev.estimate, "lo": ev.lo, "hi": ev.hi,
                           "confidence": round(ev.confidence, 4)}
        out[str(rec["site_id"])] = entry
    return out
