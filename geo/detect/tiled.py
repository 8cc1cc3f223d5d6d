"""The pipeline's detect stage for large grids: tile by tile from the scene COG.

Glue between the run directory and :mod:`geo.tiles` (which stays pure): each tile reads its
window of ``scenes/<date>.tif`` and of the date's valid mask through
:func:`geo.reading.read_to_grid`, so no stage holds the whole scene's float pixels. The
thresholds come from a lattice sample of every tile's building score
(:func:`geo.tiles.sample_thresholds`). ``masks/<date>.tif`` is written window by window and the
valid-area polygon is the union of the tiles' polygons, so no array of the whole grid is held.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from geo.config import RunConfig
from geo.detect import building_method
from geo.footprints import valid_geometry
from geo.geoarray import GeoArray
from geo.grid import Grid
from geo.reading import read_to_grid
from geo.records import DateRecord, DetectResult
from geo.rundir import RunDir
from geo.tiles import Window, sample_thresholds, sub_grid, tile_windows, tiled_footprints

__all__ = ["detect_date_tiled", "needs_tiles"]

log = logging.getLogger(__name__)


def needs_tiles(grid: Grid, config: RunConfig) -> bool:
    """True when the grid is larger than ``detect.tile_px`` in rows or columns, or streams.

    A streamed grid (above the memory budget, :func:`geo.stream.streams`) is always tiled.
    """
    from geo.stream import streams

    return 0 < config.detect.tile_px < max(grid.shape) or streams(grid, config)


def _reader(scene: Path, valid: Path, meta: DateRecord) -> Callable[[Grid], GeoArray]:
    def read(g: Grid) -> GeoArray:
        ga = read_to_grid(str(scene), g, date=meta.date, source_id=meta.source_id,
                          roles=list(meta.bands))
        vm = read_to_grid(str(valid), g, date=meta.date, roles=["b1"])
        ga = dataclasses.replace(ga, kind=meta.kind)
        return ga.with_data(ga.data, valid=(vm.data[0] > 0) & ga.valid)

    return read


def _window_reader(grid: Grid, partial: RunDir, rec: DateRecord) -> Callable[[Grid], GeoArray]:
    """Plain windowed reads of the run's own scene COG and valid mask (already on the grid)."""
    from geo.stream import read_window, window_of

    d = rec.date

    def read(g: Grid) -> GeoArray:
        return read_window(partial.scene(d), grid, window_of(grid, g), date=d,
                           bands=list(rec.bands), kind=rec.kind, source_id=rec.source_id,
                           valid_path=partial.valid_mask(d))

    return read


def detect_date_tiled(meta: DateRecord, grid: Grid, config: RunConfig, partial: RunDir,
                      aoi_name: str) -> tuple[int, DetectResult]:
    """Valid pixel count and detection of one date, tile by tile.

    Writes ``masks/<date>.tif`` (uint8, 255 = no data) window by window. The detection's
    footprints are not yet through the plausibility gates; they equal those of an untiled run
    with the same thresholds (see :mod:`geo.tiles`).
    """
    from geo.export.rasters import cog_blocks
    from geo.stream import block_px, streams

    d = meta.date
    read = (_window_reader(grid, partial, meta) if streams(grid, config)
            else _reader(partial.scene(d), partial.valid_mask(d), meta))
    params = config.detect
    tile_px = block_px(config)
    probe = read(sub_grid(grid, tile_windows(grid.shape, tile_px)[0]))
    method = building_method(probe, params)
    thr = sample_thresholds(read, grid, params, method=method, tile_px=tile_px,
                            has_swir=probe.has("swir16"))
    valid_parts: list[BaseGeometry] = []
    n_valid = 0
    with cog_blocks(grid, partial.mask(d), kind="mask", count=1, dtype="uint8",
                    nodata=255) as out:

        def keep(core: Window, m: NDArray[np.bool_], v: NDArray[np.bool_]) -> None:
            nonlocal n_valid
            out.write(core, np.where(v, m.astype(np.uint8), 255).astype(np.uint8))
            n_valid += int(v.sum())
            valid_parts.append(valid_geometry(v, sub_grid(grid, core)))

        fp = tiled_footprints(read, grid, params, thresholds=thr, date=d, aoi_name=aoi_name,
                              tile_px=tile_px, coreg_residual_m=meta.residual, on_tile=keep)
    n_tiles = len(tile_windows(grid.shape, tile_px))
    log.info("detect %s: %d tiles of %d px, %d footprints", d, n_tiles, tile_px, len(fp))
    parts = [g for g in valid_parts if not g.is_empty]
    valid = shapely.union_all(parts) if parts else shapely.Polygon()
    return n_valid, DetectResult(footprints=fp, valid=valid, method=method,
                                 threshold=thr.threshold, tiles=n_tiles)
