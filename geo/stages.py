"""Per-item stage functions of a run: read+align one date, detect one date, change of one pair.

Each runs in the main process or on a Dask worker (:class:`geo.runner.StageRunner`), so they
are top-level functions taking picklable values only; the reference date is re-read from its
checkpoint file. They pass :mod:`geo.records` records; JSON exists only in the checkpoint
files they write.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from geo.config import RunConfig
from geo.export.qml import RasterKind
from geo.footprints import polygonize, valid_geometry
from geo.geoarray import GeoArray
from geo.grid import Grid
from geo.plausibility import gate_footprints
from geo.reading import read_to_grid
from geo.records import ChangePair, DateRecord, DetectResult
from geo.rundir import RunDir
from geo.sources import Scene
from geo.stage_steps import new_record, record_norm, record_shift, write_json

__all__ = ["change_pair", "detect_date", "load_scene", "prepare_date"]

log = logging.getLogger(__name__)


def load_scene(path: Path, grid: Grid, rec: DateRecord) -> GeoArray:
    """A date's co-registered scene COG on the grid, with its record's bands and kind."""
    ga = read_to_grid(str(path), grid, date=rec.date, source_id=rec.source_id,
                      roles=list(rec.bands))
    return dataclasses.replace(ga, kind=rec.kind)


def _write_raster(data: np.ndarray, grid: Grid, path: Path, *, kind: RasterKind,
                  nodata: float | None = None, band_names: list[str] | None = None,
                  tags: dict[str, str] | None = None) -> Path:
    from geo.export.rasters import write_cog

    out: Path = write_cog(data, grid, path, kind=kind, nodata=nodata,
                          band_names=band_names, tags=tags)
    return out


def detect_date(rec: DateRecord, grid: Grid, config: RunConfig, partial: RunDir,
                aoi_name: str) -> DetectResult:
    """Building mask and footprints of one co-registered date (main process or Dask worker).

    Writes ``masks/<date>.tif``.
    """
    from geo.detect import building_mask
    from geo.detect.tiled import detect_date_tiled, needs_tiles

    d = rec.date
    if needs_tiles(grid, config):  # large grid: tile by tile, from windows of the scene COG
        from geo.stream import bounded_cache

        with bounded_cache():  # writes the mask
            n_valid, det = detect_date_tiled(rec, grid, config, partial, aoi_name)
        fp = gate_footprints(det.footprints, valid_area_m2=float(n_valid) * grid.pixel_area_m2,
                             params=config.detect)  # the same plausibility gates as untiled
        return dataclasses.replace(det, footprints=fp)
    ga = load_scene(partial.scene(d), grid, rec)
    vmask = read_to_grid(str(partial.valid_mask(d)), grid, date=d,
                         roles=["b1"])
    ga = ga.with_data(ga.data, valid=(vmask.data[0] > 0) & ga.valid)
    bm = building_mask(ga, config.detect)
    mask_u8 = np.where(ga.valid, bm.mask.astype("uint8"), 255).astype("uint8")
    _write_raster(mask_u8[None], grid, partial.mask(d), kind="mask", nodata=255)
    fp = polygonize(bm.mask, grid, date=d, aoi_name=aoi_name,
                    min_area_m2=config.detect.min_area_m2,
                    connectivity=config.detect.connectivity, alt_mask=bm.alt_mask,
                    invalid=~ga.valid, coreg_residual_m=rec.residual)
    fp = gate_footprints(fp, valid_area_m2=float(ga.valid.sum()) * grid.pixel_area_m2,
                         params=config.detect)
    return DetectResult(footprints=fp, valid=valid_geometry(ga.valid, grid),
                        method=bm.method, threshold=float(bm.threshold))


def change_pair(pair: tuple[DateRecord, DateRecord], grid: Grid, config: RunConfig,
                partial: RunDir) -> ChangePair:
    """Change map between two consecutive dates (main process or Dask worker).

    A grid above the memory budget is streamed block by block (:mod:`geo.stream`).
    """
    from geo.detect import change_map
    from geo.stream import bounded_cache, change_pair_streamed, streams

    if streams(grid, config):
        with bounded_cache():
            return change_pair_streamed(pair, grid, config, partial)
    m0, m1 = pair
    a = load_scene(partial.scene(m0.date), grid, m0)
    b = load_scene(partial.scene(m1.date), grid, m1)
    cm = change_map(a, b, params=config.detect)
    if config.output.rasters:
        both = a.valid & b.valid
        prob = np.where(both, cm.probability, np.nan).astype("float32")
        _write_raster(prob[None], grid, partial.change_prob(m0.date, m1.date),
                      kind="probability", nodata=float("nan"))
        _write_raster(np.where(both, cm.mask.astype("uint8"), 255).astype("uint8")[None],
                      grid, partial.change_mask(m0.date, m1.date), kind="change_mask",
                      nodata=255)
    return ChangePair(date_from=m0.date, date_to=m1.date, method=cm.method,
                      changed_frac=round(float(cm.mask.mean()), 5))


def _coregister_step(rec: DateRecord, ga: GeoArray, ref: GeoArray, scene: Scene,
                     grid: Grid, config: RunConfig, notes: list[str]
                     ) -> tuple[DateRecord, GeoArray]:
    """Align ``ga`` to the reference; the record gains the shift; a bad fit warns or fails."""
    from geo.coreg import coregister

    aligned, shift = coregister(ref, ga, max_shift_px=config.coreg.max_shift_m / grid.res_m)
    rec = record_shift(rec, shift, scene, grid, config, notes)
    return rec, aligned if shift.ok else ga


def _align_step(rec: DateRecord, ga: GeoArray, scene: Scene, grid: Grid, config: RunConfig,
                partial: RunDir, ref_rec: DateRecord, notes: list[str]
                ) -> tuple[DateRecord, GeoArray]:
    """Co-register and radiometrically normalise ``ga`` to the reference date."""
    from geo.normalize import normalize_to

    ref = load_scene(partial.scene(ref_rec.date), grid, ref_rec)
    if config.coreg.enabled:
        rec, ga = _coregister_step(rec, ga, ref, scene, grid, config, notes)
    if ga.kind == ref.kind and ga.bands == ref.bands:
        ga, norm = normalize_to(ref, ga)
        rec = record_norm(rec, norm, scene, notes)
    return rec, ga


def prepare_date(scene: Scene, source: Any, grid: Grid, config: RunConfig, partial: RunDir,
                 ref_rec: DateRecord | None) -> DateRecord:
    """Read one date onto the grid, align and normalise it to the reference, checkpoint it.

    Runs in the main process or in a Dask worker: everything it needs comes in as
    picklable values and the reference is re-read from its checkpoint file.
    Returns the date's record (also written to ``.checkpoints/scene_<date>.json``).
    A grid above the memory budget is streamed block by block (:mod:`geo.stream`).
    """
    from geo.stream import bounded_cache, prepare_date_streamed, streams

    if streams(grid, config):
        with bounded_cache():
            return prepare_date_streamed(scene, source, grid, config, partial, ref_rec)
    meta_path = partial.scene_meta(scene.date)
    tif = partial.scene(scene.date)
    ga = source.read(scene, grid)
    notes: list[str] = []
    rec = new_record(scene, ga, ga.valid_frac, meta_path, notes)
    if rec.skipped:
        return rec
    if ref_rec is None:
        rec = dataclasses.replace(rec, shift_dy_px=0.0, shift_dx_px=0.0, shift_m=0.0,
                                  residual_m=0.0, reference=True)
    else:
        rec, ga = _align_step(rec, ga, scene, grid, config, partial, ref_rec, notes)
    _write_raster(np.where(ga.valid, ga.data, np.float32(np.nan)), grid, tif, kind="scene",
                  nodata=float("nan"), band_names=list(ga.bands),
                  tags={"DATE": ga.date, "SOURCE_ID": ga.source_id})
    _write_raster(np.where(ga.valid, 1, 0).astype("uint8")[None], grid,
                  partial.valid_mask(scene.date), kind="mask")
    rec = dataclasses.replace(rec, warnings=tuple(notes))
    write_json(meta_path, rec.to_json())
    return rec
