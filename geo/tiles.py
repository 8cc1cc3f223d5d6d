"""Tiled building detection: memory bounded by the tile, footprints exact across seams.

Pure compute: a window reader (a callable from a sub-grid to a :class:`GeoArray`) in,
footprints out. The pipeline passes a reader of the scene COG, so no tile reads more than its
window plus a halo.

How seams stay exact
--------------------
The grid is cut into cores of ``tile_px`` × ``tile_px``; each core is read with a halo of
``halo_px`` on every side (clipped at the grid edge) and detected with **scene-wide**
thresholds (:class:`geo.detect.BuildingThresholds`), so every pixel farther than the filter
reach (:func:`filter_reach_px`) from the window's edge gets the value it has in an untiled run.
A connected component of the mask belongs to the tile whose core holds its first pixel (row-
major); it is kept only if it lies, with the alternative-threshold components that overlap it,
at least the filter reach inside the window (or touches the grid edge itself). Such a component
is exactly the untiled one: same pixels, same outline, same area. A component that comes
closer to the window's edge (a building larger than the halo) makes the tile run again with a
doubled halo, up to the whole grid. Ids are renumbered in row-major order of the first pixel,
as :func:`geo.footprints.polygonize` numbers an untiled mask.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from numpy.typing import NDArray
from scipy import ndimage
from skimage.measure import label

from geo.config import DetectParams
from geo.detect import (
    BuildingThresholds,
    building_mask,
    building_score,
    thresholds_from_scores,
)
from geo.detect.buildings import building_radius
from geo.footprints import empty_footprints, polygonize
from geo.geoarray import GeoArray
from geo.grid import Grid

__all__ = [
    "Window",
    "filter_reach_px",
    "halo_px_for",
    "sample_thresholds",
    "sub_grid",
    "tile_windows",
    "tiled_footprints",
]

Window = tuple[int, int, int, int]
"""``(row0, row1, col0, col1)``, half-open, in grid pixels."""
Reader = Callable[[Grid], GeoArray]
"""Reads the scene (pixels and valid mask) onto a sub-grid of the AOI grid."""


def sub_grid(grid: Grid, win: Window) -> Grid:
    """The grid of window ``win`` of ``grid`` (same CRS, resolution and pixel edges)."""
    r0, r1, c0, c1 = win
    return Grid(crs=grid.crs, transform=grid.transform * Affine.translation(c0, r0),
                shape=(r1 - r0, c1 - c0))


def tile_windows(shape: tuple[int, int], tile_px: int) -> list[Window]:
    """Cores of at most ``tile_px`` × ``tile_px`` covering ``shape``, row-major."""
    rows, cols = shape
    return [(r, min(r + tile_px, rows), c, min(c + tile_px, cols))
            for r in range(0, rows, tile_px) for c in range(0, cols, tile_px)]


def _expand(win: Window, halo: int, shape: tuple[int, int]) -> Window:
    r0, r1, c0, c1 = win
    return (max(r0 - halo, 0), min(r1 + halo, shape[0]), max(c0 - halo, 0),
            min(c1 + halo, shape[1]))


def filter_reach_px(params: DetectParams, res_m: float, method: str) -> int:
    """How far (pixels) the building mask of a pixel depends on its surroundings.

    Smoothing (4 sigma), the opening and its edge restore (3 × radius) and the edge
    refinement (a ring of 3 px, a 2-px band and a 9-px mean filter), with a margin.
    """
    sigma = max(0.7, 1.0 / res_m)
    return 3 * building_radius(params, res_m, method) + math.ceil(4 * sigma) + 16


def halo_px_for(params: DetectParams, res_m: float, method: str) -> int:
    """Halo wide enough for the largest expected building plus the filter reach."""
    return math.ceil(params.tile_max_building_m / res_m) + filter_reach_px(params, res_m,
                                                                           method)


@dataclass(frozen=True, kw_only=True)
class _TileResult:
    footprints: gpd.GeoDataFrame
    keys: NDArray[np.int64]
    """Row-major index (in the whole grid) of each footprint's first pixel."""


def sample_thresholds(read: Reader, grid: Grid, params: DetectParams, *, method: str,
                      tile_px: int, has_swir: bool, max_samples: int = 4_000_000
                      ) -> BuildingThresholds:
    """Scene-wide thresholds from the building scores of every tile, sampled on a lattice.

    Each tile's score is computed with the filter halo (so sampled values are the untiled
    ones); every ``k``-th row and column is kept so that at most about ``max_samples`` pixels
    enter the statistics. With ``k = 1`` (grids up to ``max_samples`` pixels) the thresholds
    equal those of an untiled run; above, they are those of a regular 1-in-k² sample.
    """
    rows, cols = grid.shape
    k = max(1, math.ceil(math.sqrt(rows * cols / max_samples)))
    reach = filter_reach_px(params, grid.res_m, method)
    parts: list[tuple[NDArray[np.float32], NDArray[np.bool_], NDArray[np.bool_] | None]] = []
    for core in tile_windows(grid.shape, tile_px):
        ext = _expand(core, reach, grid.shape)
        ga = read(sub_grid(grid, ext))
        score, veg = building_score(ga, method)
        # lattice in whole-grid coordinates, so samples do not depend on the tiling
        r_first = -(-core[0] // k) * k
        c_first = -(-core[2] // k) * k
        sl = (slice(r_first - ext[0], core[1] - ext[0], k),
              slice(c_first - ext[2], core[3] - ext[2], k))
        parts.append((score[sl].ravel(), ga.valid[sl].ravel(),
                      None if veg is None else veg[sl].ravel()))
    score = np.concatenate([p[0] for p in parts])
    valid = np.concatenate([p[1] for p in parts])
    vegs = [p[2] for p in parts]
    veg_all = None if any(v is None for v in vegs) else np.concatenate(
        [v for v in vegs if v is not None])
    return thresholds_from_scores(score, valid, veg_all, method=method, params=params,
                                  has_swir=has_swir)


def _first_pixels(lab: NDArray[np.int32], n: int) -> tuple[NDArray[np.int64], list[
        tuple[slice, slice] | None]]:
    """Row-major flat index (in ``lab``) of each label's first pixel, and its bounding box."""
    objs = ndimage.find_objects(lab, max_label=n)
    first = np.full(n + 1, -1, dtype=np.int64)
    for i, sl in enumerate(objs, start=1):
        if sl is None:
            continue
        r = sl[0].start
        row = lab[r, sl[1]]
        first[i] = r * lab.shape[1] + sl[1].start + int(np.argmax(row == i))
    return first, [None, *objs]


def _near_edge(sl: tuple[slice, slice], shape: tuple[int, int], ext: Window,
               grid_shape: tuple[int, int], reach: int) -> bool:
    """A box closer than ``reach`` to a window edge that is not the grid's edge."""
    r0, r1, c0, c1 = ext
    return bool((r0 > 0 and sl[0].start < reach)
                or (r1 < grid_shape[0] and sl[0].stop > shape[0] - reach)
                or (c0 > 0 and sl[1].start < reach)
                or (c1 < grid_shape[1] and sl[1].stop > shape[1] - reach))


def _owned_mask(bm_mask: NDArray[np.bool_], alt: NDArray[np.bool_], core: Window,
                ext: Window, grid_shape: tuple[int, int], reach: int, conn: int
                ) -> tuple[NDArray[np.bool_], NDArray[np.int64], bool]:
    """Components of this tile (first pixel in the core): mask, keys, and whether all exact."""
    lab, n = label(bm_mask, connectivity=conn, return_num=True)
    first, boxes = _first_pixels(lab, n)
    w = bm_mask.shape[1]
    fr, fc = first // w + ext[0], first % w + ext[2]
    own = (first >= 0) & (fr >= core[0]) & (fr < core[1]) & (fc >= core[2]) & (fc < core[3])
    own[0] = False
    ids = np.flatnonzero(own)
    exact = not any(_near_edge(boxes[i], bm_mask.shape, ext, grid_shape, reach)  # type: ignore[arg-type]
                    for i in ids)
    owned = own[lab]
    if exact and ids.size:
        alab, an = label(alt, connectivity=conn, return_num=True)
        touching = np.unique(alab[owned & (alab > 0)])
        aboxes = ndimage.find_objects(alab, max_label=an)
        exact = not any(_near_edge(aboxes[a - 1], alt.shape, ext, grid_shape, reach)
                        for a in touching)
    keys = (fr[ids] * grid_shape[1] + fc[ids]).astype(np.int64)
    return owned, keys, exact


def _one_tile(read: Reader, grid: Grid, core: Window, params: DetectParams, *,
              thresholds: BuildingThresholds, halo: int, date: str,
              coreg_residual_m: float) -> tuple[_TileResult, GeoArray, NDArray[np.bool_],
                                                Window]:
    conn = 1 if params.connectivity == 4 else 2
    reach = filter_reach_px(params, grid.res_m, thresholds.method)
    while True:
        ext = _expand(core, halo, grid.shape)
        g = sub_grid(grid, ext)
        ga = read(g)
        bm = building_mask(ga, params, thresholds=thresholds)
        owned, keys, exact = _owned_mask(bm.mask, bm.alt_mask, core, ext, grid.shape, reach,
                                         conn)
        if exact or ext == (0, grid.shape[0], 0, grid.shape[1]):
            break
        halo *= 2
    fp = polygonize(owned, g, date=date, aoi_name="tile", min_area_m2=params.min_area_m2,
                    connectivity=params.connectivity, alt_mask=bm.alt_mask,
                    invalid=~ga.valid, coreg_residual_m=coreg_residual_m)
    # polygonize keeps components of at least min_area_m2, numbered in first-pixel order
    order = np.argsort(keys, kind="stable")
    counts = np.bincount(label(owned, connectivity=conn).ravel())[1:]
    kept = keys[order][counts * g.pixel_area_m2 >= params.min_area_m2]
    if len(kept) != len(fp):  # pragma: no cover - guards the numbering contract
        raise RuntimeError(f"tile {core}: {len(kept)} components but {len(fp)} footprints")
    return _TileResult(footprints=fp, keys=kept), ga, bm.mask, ext


def tiled_footprints(
    read: Reader,
    grid: Grid,
    params: DetectParams,
    *,
    thresholds: BuildingThresholds,
    date: str,
    aoi_name: str,
    tile_px: int,
    halo_px: int | None = None,
    coreg_residual_m: float = 0.0,
    on_tile: Callable[[Window, NDArray[np.bool_], NDArray[np.bool_]], None] | None = None,
) -> gpd.GeoDataFrame:
    """Detect building footprints tile by tile; the same footprints as an untiled run.

    Parameters
    ----------
    read : callable
        ``read(sub_grid) -> GeoArray``: the date's pixels and valid mask on a window of
        ``grid`` (for example a windowed read of the scene COG).
    grid : Grid
        The AOI grid.
    params : DetectParams
        Detection parameters (``tile_max_building_m`` sets the default halo).
    thresholds : BuildingThresholds
        Scene-wide thresholds (:func:`sample_thresholds` or
        :func:`geo.detect.thresholds_from_scores` on the whole scene).
    date, aoi_name : str
        For the footprint ids ``"{aoi}:{date}:{n}"``.
    tile_px : int
        Core size in pixels.
    halo_px : int, optional
        Halo on each side; default :func:`halo_px_for`. A tile whose buildings come closer
        than the filter reach to its window's edge is redone with a doubled halo.
    coreg_residual_m : float, optional
        Recorded per footprint.
    on_tile : callable, optional
        Called as ``on_tile(core, mask_core, valid_core)`` after each tile, in row-major
        order (for example to write the mask COG window by window).

    Returns
    -------
    GeoDataFrame
        :data:`geo.footprints.FOOTPRINT_COLUMNS` + ``geometry``, as
        :func:`geo.footprints.polygonize` gives for the whole mask.
    """
    halo = halo_px if halo_px is not None else halo_px_for(params, grid.res_m,
                                                           thresholds.method)
    results: list[_TileResult] = []
    for core in tile_windows(grid.shape, tile_px):
        res, ga, mask, ext = _one_tile(read, grid, core, params, thresholds=thresholds,
                                       halo=halo, date=date, coreg_residual_m=coreg_residual_m)
        results.append(res)
        if on_tile is not None:
            inner = (slice(core[0] - ext[0], core[1] - ext[0]),
                     slice(core[2] - ext[2], core[3] - ext[2]))
            on_tile(core, mask[inner], ga.valid[inner])
    return _merge(results, grid.crs, date=date, aoi_name=aoi_name)


def _merge(results: list[_TileResult], crs: str, *, date: str,
           aoi_name: str) -> gpd.GeoDataFrame:
    parts = [r.footprints for r in results if len(r.footprints)]
    if not parts:
        return empty_footprints(crs)
    fp = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs=crs)
    keys = np.concatenate([r.keys for r in results if len(r.footprints)])
    fp = fp.iloc[np.argsort(keys, kind="stable")].reset_index(drop=True)
    fp["footprint_id"] = [f"{aoi_name}:{date}:{i}" for i in range(1, len(fp) + 1)]
    return fp
