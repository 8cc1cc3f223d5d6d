"""The pipeline's detect stage for large grids: tile by tile from the scene COG.

Glue between the run directory and :mod:`geo.tiles` (which stays pure): each tile reads its
window of ``scenes/<date>.tif`` and of the date's valid mask through
:func:`geo.reading.read_to_grid`, so no stage holds the whole scene's float pixels. The
thresholds come from a lattice sample of every tile's building score
(:func:`geo.tiles.sample_thresholds`). The mask and valid arrays of the whole grid are kept as
one byte per pixel to write ``masks/<date>.tif`` and the valid-area polygon.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
from numpy.typing import NDArray

from geo.config import RunConfig
from geo.detect import building_method
from geo.geoarray import GeoArray
from geo.grid import Grid
from geo.reading import read_to_grid
from geo.rundir import RunDir
from geo.tiles import Window, sample_thresholds, sub_grid, tile_windows, tiled_footprints

__all__ = ["detect_date_tiled", "needs_tiles"]

log = logging.getLogger(__name__)


def needs_tiles(grid: Grid, config: RunConfig) -> bool:
    """True when the grid is larger than ``detect.tile_px`` in rows or columns."""
    return 0 < config.detect.tile_px < max(grid.shape)


def _reader(scene: Path, valid: Path, meta: dict[str, Any]) -> Callable[[Grid], GeoArray]:
    def read(g: Grid) -> GeoArray:
        ga = read_to_grid(str(scene), g, date=meta["date"], source_id=meta["source_id"],
                          roles=meta["bands"])
        vm = read_to_grid(str(valid), g, date=meta["date"], roles=["b1"])
        ga = dataclasses.replace(ga, kind=meta["kind"])
        return ga.with_data(ga.data, valid=(vm.data[0] > 0) & ga.valid)

    return read


def detect_date_tiled(meta: dict[str, Any], grid: Grid, config: RunConfig, partial: RunDir,
                      aoi_name: str) -> tuple[gpd.GeoDataFrame, NDArray[np.uint8],
                                              NDArray[np.bool_], dict[str, Any]]:
    """Footprints, mask (uint8, 255 = no data) and valid mask of one date, tile by tile.

    The footprints equal those of an untiled run with the same thresholds (see
    :mod:`geo.tiles`).
    """
    d = meta["date"]
    read = _reader(partial.scene(d), partial.valid_mask(d), meta)
    params = config.detect
    tile_px = params.tile_px
    probe = read(sub_grid(grid, tile_windows(grid.shape, tile_px)[0]))
    method = building_method(probe, params)
    thr = sample_thresholds(read, grid, params, method=method, tile_px=tile_px,
                            has_swir=probe.has("swir16"))
    mask = np.full(grid.shape, 255, dtype=np.uint8)
    valid = np.zeros(grid.shape, dtype=bool)

    def keep(core: Window, m: NDArray[np.bool_], v: NDArray[np.bool_]) -> None:
        r0, r1, c0, c1 = core
        mask[r0:r1, c0:c1] = np.where(v, m.astype(np.uint8), 255)
        valid[r0:r1, c0:c1] = v

    fp = tiled_footprints(read, grid, params, thresholds=thr, date=d, aoi_name=aoi_name,
                          tile_px=tile_px, coreg_residual_m=float(meta.get("residual_m", 0.0)),
                          on_tile=keep)
    n_tiles = len(tile_windows(grid.shape, tile_px))
    log.info("detect %s: %d tiles of %d px, %d footprints", d, n_tiles, tile_px, len(fp))
    return fp, mask, valid, {"detect_method": method, "detect_threshold": thr.threshold,
                             "detect_tiles": n_tiles}
