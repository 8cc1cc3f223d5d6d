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

import dataclasses
import json
import logging
from typing import Any

import pandas as pd
from shapely.geometry.base import BaseGeometry

from geo.grid import Grid
from geo.rundir import RunDir
from geo.timeline import FEATURES, SceneStats, Timeline, fit_timeline, scene_stats, timeline_record

__all__ = ["series_table", "with_timeline"]

log = logging.getLogger(__name__)


def _series(run: RunDir, grid: Grid, outlines: dict[str, BaseGeometry]
            ) -> dict[str, list[SceneStats]]:
    """Per site, the statistics of every usable scene (each scene read once)."""
    from geo.reading import read_to_grid
    from geo.records import DateRecord
    from geo.stages import load_scene

    out: dict[str, list[SceneStats]] = {sid: [] for sid in outlines}
    for date, path in run.scenes().items():
        meta_path = run.scene_meta(date)
        if not meta_path.is_file():
            continue
        meta = DateRecord.from_json(json.loads(meta_path.read_text()))
        if meta.skipped or meta.residual > grid.res_m:
            continue  # misaligned by more than a pixel: the outline would sample the ring
        if not {"red", "nir"} <= set(meta.bands):
            continue  # no red/nir: never read the scene (a streamed grid would not fit)
        ga = load_scene(path, grid, meta)
        if run.valid_mask(date).is_file():
            vm = read_to_grid(str(run.valid_mask(date)), grid, date=date, roles=["b1"])
            ga = ga.with_data(ga.data, valid=(vm.data[0] > 0) & ga.valid)
        for sid, geom in outlines.items():
            st = scene_stats(ga, geom)
            if st is not None:
                out[sid].append(st)
    return out


def series_table(fits: dict[str, Timeline]) -> pd.DataFrame:
    """One row per site and scene: date, sensor resolution, phase, inside and contrast indices."""
    rows = [{"site_id": sid, "date": st.date, "res_m": st.res_m, "phase": ph,
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
            bands = json.loads(meta_path.read_text()).get("bands", [])
            out.append("red" in bands and "nir" in bands)
    return out


def with_timeline(tracks: Any, run: RunDir, grid: Grid | None, warnings: list[str]) -> Any:
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
    """
    if grid is None or not len(tracks.sites):
        return tracks
    outlines = dict(zip(tracks.sites["site_id"], tracks.sites.geometry, strict=True))
    series = _series(run, grid, outlines)
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
