"""Streamed runs: memory bounded by the block, for grids above the memory budget.

A grid whose in-memory run would not fit ``[grid] memory_budget_mb`` (default: half the
memory available, :mod:`geo.preflight`; the need is the measured :data:`IN_MEMORY_MB`) is
never held whole. Every stage works on blocks of
``detect.tile_px`` pixels (2,048 by default):

- **read**: each block of a date is read and warped onto its sub-grid
  (``source.read(scene, sub_grid)``, a windowed :class:`rasterio.vrt.WarpedVRT`) and written
  window by window into the run's scene COG (:func:`geo.export.rasters.cog_blocks`: a tiled
  staging GeoTIFF, then GDAL's COG copy), the valid mask likewise;
- **co-registration** is estimated by :func:`geo.coreg.coregister` on one window of at most
  ``COREG_PX``² (the most textured one of the reference, from a decimated read of its COG)
  and applied per block with a halo, so every pixel moves as in an in-memory run;
- **normalisation** (iMAD + orthogonal fits, :func:`geo.normalize.normalize_to`) is fitted
  on a sample of at most ``SAMPLE_PX`` pixels (whole windows spread over the grid) and its
  gains applied per block;
- **change maps** (``cva``, the RGB and pan default) take their normalisation, Otsu
  threshold and shadow classes from the same kind of sample and are computed per block with
  a halo: a changed object that comes within the filter reach of its window's edge makes the
  block run again with a doubled halo (the seam rule of :mod:`geo.tiles`), so masks are those
  of an in-memory run with the same statistics. Other change methods run per block with
  block-local thresholds, and ``run.json`` says so.

Where the grid holds at most ``SAMPLE_PX`` pixels the samples are the whole grid and a
streamed run gives the in-memory result (``tests/test_stream.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.windows import Window as RioWindow
from scipy import ndimage
from skimage.measure import label

from geo.config import RunConfig
from geo.geoarray import GeoArray
from geo.grid import Grid
from geo.records import ChangePair, DateRecord
from geo.tiles import Window, _expand, _near_edge, sub_grid, tile_windows

__all__ = ["CACHE_MB", "COREG_PX", "IN_MEMORY_MB", "SAMPLE_PX", "block_px", "bounded_cache",
           "change_pair_streamed",
           "fixed_budget", "in_memory_mb", "mosaic", "prepare_date_streamed", "read_window",
           "sample_windows", "streams", "window_of"]

log = logging.getLogger(__name__)

SAMPLE_PX = 1_048_576
"""Pixels in the samples that fit normalisation and change thresholds (iMAD needs about 170
bytes per sample pixel: a 4 Mpx sample set the peak of a streamed run)."""
COREG_PX = 2048
"""Side of the window that co-registration is estimated on."""
_SAMPLE_WIN = 256


IN_MEMORY_MB = (230.0, 194.0)
"""Peak RSS of an in-memory run: MiB, plus MiB per megapixel of grid (/work/shared/PERF-NOTES.md,
measured on 1-25 Mpx runs)."""


CACHE_MB = 256
"""GDAL block cache of a streamed stage, MiB. GDAL's default (5 % of the RAM) grows with the
rasters read and written, which made the peak RSS grow with the grid (39 B/px)."""


def bounded_cache() -> Any:
    """``rasterio.Env`` with the GDAL block cache capped at :data:`CACHE_MB`."""
    return rasterio.Env(GDAL_CACHEMAX=CACHE_MB)


def in_memory_mb(grid: Grid) -> float:
    """Peak memory an in-memory run of ``grid`` is measured to need, in MiB."""
    return IN_MEMORY_MB[0] + IN_MEMORY_MB[1] * grid.shape[0] * grid.shape[1] / 1e6


def streams(grid: Grid, config: RunConfig) -> bool:
    """True when an in-memory run of the grid would exceed the run's memory budget."""
    from geo.preflight import memory_budget_mb

    return in_memory_mb(grid) > memory_budget_mb(config)


def fixed_budget(config: RunConfig) -> RunConfig:
    """``config`` with the memory budget resolved now, so every worker takes the same path."""
    from geo.preflight import memory_budget_mb

    grid = dataclasses.replace(config.grid, memory_budget_mb=memory_budget_mb(config))
    return dataclasses.replace(config, grid=grid)


def block_px(config: RunConfig) -> int:
    """Block side in pixels: ``detect.tile_px`` (2,048 when tiling is off)."""
    from geo.preflight import STREAM_BLOCK_PX

    return config.detect.tile_px or STREAM_BLOCK_PX


def window_of(grid: Grid, sub: Grid) -> Window:
    """The window of ``grid`` that the sub-grid ``sub`` (same pixel edges) covers."""
    t, s = grid.transform, sub.transform
    c0 = round((s.c - t.c) / t.a)
    r0 = round((s.f - t.f) / t.e)
    return (r0, r0 + sub.shape[0], c0, c0 + sub.shape[1])


def read_window(path: str | Path, grid: Grid, win: Window, *, date: str, bands: list[str],
                kind: str, source_id: str = "", valid_path: str | Path | None = None
                ) -> GeoArray:
    """Pixels of ``win`` from a raster written on ``grid`` by the run (no warping).

    Invalid where any band is NaN or, with ``valid_path``, where that mask is 0.
    """
    r0, r1, c0, c1 = win
    rw = RioWindow(c0, r0, c1 - c0, r1 - r0)
    with rasterio.open(path) as src:
        data = src.read(window=rw, out_dtype="float32")
    valid = np.all(np.isfinite(data), axis=0)
    if valid_path is not None:
        with rasterio.open(valid_path) as src:
            valid &= src.read(1, window=rw) > 0
    data[:, ~valid] = 0.0
    return GeoArray(data=data, valid=valid, grid=sub_grid(grid, win), date=date,
                    bands=tuple(bands), source_id=source_id, kind=kind)


def sample_windows(shape: tuple[int, int], max_px: int = SAMPLE_PX,
                   win_px: int = _SAMPLE_WIN) -> list[Window]:
    """Windows for a statistics sample, spread over the grid.

    The whole grid if it holds at most ``max_px`` pixels, else up to ``max_px / win_px²``
    windows of ``win_px`` on a regular lattice.
    """
    rows, cols = shape
    if rows * cols <= max_px or rows < win_px or cols < win_px:
        return [(0, rows, 0, cols)]
    n = max(1, max_px // (win_px * win_px))
    ny = max(1, min(round(math.sqrt(n * rows / cols)), rows // win_px))
    nx = max(1, min(n // ny, cols // win_px))
    r0s = np.linspace(0, rows - win_px, ny).round().astype(int)
    c0s = np.linspace(0, cols - win_px, nx).round().astype(int)
    return [(int(r), int(r) + win_px, int(c), int(c) + win_px) for r in r0s for c in c0s]


def mosaic(parts: list[GeoArray]) -> GeoArray:
    """Windows of equal height side by side, as one GeoArray (for pixel statistics only)."""
    if len(parts) == 1:
        return parts[0]
    g = parts[0].grid
    cols = sum(p.grid.shape[1] for p in parts)
    grid = Grid(crs=g.crs, transform=g.transform, shape=(g.shape[0], cols))
    return dataclasses.replace(parts[0], grid=grid,
                               data=np.concatenate([p.data for p in parts], axis=2),
                               valid=np.concatenate([p.valid for p in parts], axis=1))


def apply_gains(ga: GeoArray, norm: dict[str, Any]) -> GeoArray:
    """``gain * band + offset`` per band (the fit of :func:`geo.normalize.normalize_to`)."""
    out = ga.data.copy()
    for i, role in enumerate(ga.bands):
        if role != "alpha":
            out[i] = (ga.data[i] * norm["gains"][i] + norm["offsets"][i]).astype(np.float32)
    return ga.with_data(out)


Reader = Callable[[Window], GeoArray]


def crop(ga: GeoArray, ext: Window, core: Window) -> GeoArray:
    """The ``core`` part of ``ga`` read on window ``ext``."""
    sl = (slice(core[0] - ext[0], core[1] - ext[0]), slice(core[2] - ext[2], core[3] - ext[2]))
    return dataclasses.replace(ga, data=ga.data[:, sl[0], sl[1]], valid=ga.valid[sl],
                               grid=sub_grid(ga.grid, (sl[0].start, sl[0].stop,
                                                       sl[1].start, sl[1].stop)))


def exact_core(mask: NDArray[np.bool_], core: Window, ext: Window, grid_shape: tuple[int, int],
               reach: int, connectivity: int) -> bool:
    """True when per-object steps on ``mask`` (read on ``ext``) are exact in ``core``.

    That is when no object touching the core comes within ``reach`` of a window edge that
    is not the grid's edge.
    """
    lab, n = label(mask, connectivity=1 if connectivity == 4 else 2, return_num=True)
    if n == 0:
        return True
    inner = lab[core[0] - ext[0]:core[1] - ext[0], core[2] - ext[2]:core[3] - ext[2]]
    ids = np.unique(inner[inner > 0])
    boxes = ndimage.find_objects(lab, max_label=n)
    return not any(_near_edge(boxes[i - 1], mask.shape, ext, grid_shape, reach)
                   for i in ids)


def halo_blocks(grid: Grid, block: int, halo: int) -> Iterator[tuple[Window, Window]]:
    """``(core, window)`` per block, row-major: the window is the core plus ``halo``."""
    for core in tile_windows(grid.shape, block):
        yield core, _expand(core, halo, grid.shape)


def _staging_profile(grid: Grid, count: int) -> dict[str, Any]:
    """A tiled float32 GeoTIFF on ``grid`` (NaN = invalid) for a run's own intermediates."""
    return {"driver": "GTiff", "width": grid.shape[1], "height": grid.shape[0],
            "count": count, "dtype": "float32", "crs": grid.crs, "transform": grid.transform,
            "nodata": float("nan"), "tiled": True, "blockxsize": 256, "blockysize": 256,
            "compress": "ZSTD", "zstd_level": 1, "predictor": 3, "bigtiff": "IF_SAFER"}


def _nan_where_invalid(ga: GeoArray) -> NDArray[np.float32]:
    return np.where(ga.valid, ga.data, np.float32(np.nan)).astype(np.float32)


# --- read, co-register, normalise -----------------------------------------------------------

def _source_reader(scene: Any, source: Any, grid: Grid) -> Reader:
    def read(win: Window) -> GeoArray:
        ga: GeoArray = source.read(scene, sub_grid(grid, win))
        return ga

    return read


def _file_reader(path: Path, grid: Grid, rec: DateRecord,
                 valid_path: Path | None = None) -> Reader:
    def read(win: Window) -> GeoArray:
        return read_window(path, grid, win, date=rec.date, bands=list(rec.bands),
                           kind=rec.kind, source_id=rec.source_id, valid_path=valid_path)

    return read


def textured_window(scene_path: Path, grid: Grid, side: int = COREG_PX) -> Window:
    """The ``side``² window (on a half-window lattice) whose reference pixels vary most.

    Scored on a decimated read of the reference COG (its overviews): the mean gradient of
    the brightness times the valid share. The whole grid when it is no larger.
    """
    rows, cols = grid.shape
    if rows <= side and cols <= side:
        return (0, rows, 0, cols)
    f = max(1, side // 64)
    with rasterio.open(scene_path) as src:
        small = src.read(out_shape=(src.count, max(1, rows // f), max(1, cols // f)),
                         out_dtype="float32")
    br = np.nanmean(small, axis=0) if small.size else small
    ok = np.isfinite(br)
    grad = np.hypot(*np.gradient(np.where(ok, br, np.nanmean(br) if ok.any() else 0.0)))
    best, win = -1.0, (0, min(rows, side), 0, min(cols, side))
    step = side // 2
    for r in [*range(0, max(rows - side, 0) + 1, step), max(rows - side, 0)]:
        for c in [*range(0, max(cols - side, 0) + 1, step), max(cols - side, 0)]:
            sl = (slice(r // f, (r + side) // f), slice(c // f, (c + side) // f))
            score = float(np.mean(grad[sl] * ok[sl])) if ok[sl].size else 0.0
            if score > best:
                best, win = score, (r, min(r + side, rows), c, min(c + side, cols))
    return win


def _shifted(read: Reader, grid: Grid, core: Window, *, dy: float, dx: float) -> GeoArray:
    """The core of a date moved by ``(dy, dx)`` px, read with a halo: as in a whole-grid shift."""
    from geo.coreg import apply_shift

    if dy == 0 and dx == 0:
        return read(core)
    ext = _expand(core, math.ceil(max(abs(dy), abs(dx))) + 2, grid.shape)
    return crop(apply_shift(read(ext), dy, dx), ext, core)


def _pass_one(read: Reader, grid: Grid, blocks: list[Window], out: Any) -> int:
    """Read every block from the source into ``out`` (NaN = invalid); the valid pixel count."""
    n_valid = 0
    for win in blocks:
        ga = read(win)
        n_valid += int(ga.valid.sum())
        out.write(_nan_where_invalid(ga), window=RioWindow(win[2], win[0], win[3] - win[2],
                                                           win[1] - win[0]))
    return n_valid


def _write_date(read: Reader, grid: Grid, blocks: list[Window], partial: Any,
                rec: DateRecord) -> None:
    """Write a date's scene COG and valid mask block by block from ``read``."""
    from geo.export.rasters import cog_blocks

    d = rec.date
    with cog_blocks(grid, partial.scene(d), kind="scene", count=len(rec.bands),
                    dtype="float32", nodata=float("nan"), band_names=list(rec.bands),
                    tags={"DATE": d, "SOURCE_ID": rec.source_id}) as scene, \
            cog_blocks(grid, partial.valid_mask(d), kind="mask", count=1,
                       dtype="uint8") as valid:
        for win in blocks:
            ga = read(win)
            scene.write(win, _nan_where_invalid(ga))
            valid.write(win, ga.valid.astype("uint8"))


def _align(scene: Any, grid: Grid, config: RunConfig, ref: Reader, mov: Reader,
           ref_path: Path, rec: DateRecord, notes: list[str]
           ) -> tuple[DateRecord, float, float]:
    """Estimate the shift on the most textured window; record it; the shift to apply."""
    from geo.coreg import coregister
    from geo.stage_steps import record_shift

    if not config.coreg.enabled:
        return rec, 0.0, 0.0
    win = textured_window(ref_path, grid)
    _, shift = coregister(ref(win), mov(win), max_shift_px=config.coreg.max_shift_m / grid.res_m)
    rec = record_shift(rec, shift, scene, grid, config, notes)
    log.info("co-registration of %s estimated on window %s", rec.date, win)
    return (rec, shift.dy_px, shift.dx_px) if shift.ok else (rec, 0.0, 0.0)


def _fit_norm(ref: Reader, mov: Reader, grid: Grid) -> dict[str, Any]:
    """Normalisation of ``mov`` to ``ref`` fitted on the sample windows."""
    from geo.normalize import normalize_to

    wins = sample_windows(grid.shape)
    a = mosaic([ref(w) for w in wins])
    b = mosaic([mov(w) for w in wins])
    b = dataclasses.replace(b, grid=a.grid)
    _, norm = normalize_to(a, b)
    norm["sample_px"] = int(a.valid.size)
    return norm


def prepare_date_streamed(scene: Any, source: Any, grid: Grid, config: RunConfig,
                          partial: Any, ref_rec: DateRecord | None) -> DateRecord:
    """:func:`geo.stages.prepare_date` for a grid above the memory budget, block by block.

    The date is first read from the source into a staging file beside its checkpoint
    (a temporary name, removed afterwards), aligned and normalised from bounded samples, then
    written block by block into its scene COG and valid mask.
    """
    from geo.stage_steps import new_record, record_norm, write_json

    blocks = tile_windows(grid.shape, block_px(config))
    src = _source_reader(scene, source, grid)
    probe = src(blocks[0])
    meta_path = partial.scene_meta(scene.date)
    raw = partial.scene(scene.date).with_name(f".{scene.date}.fwtmp.stage.tif")
    raw.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    try:
        with rasterio.open(raw, "w", **_staging_profile(grid, probe.data.shape[0])) as ds:
            n_valid = _pass_one(src, grid, blocks, ds)
        rec = new_record(scene, probe, n_valid / (grid.shape[0] * grid.shape[1]), meta_path,
                         notes)
        if rec.skipped:
            return rec
        log.info("%s: streamed in %d blocks of %d px", rec.date, len(blocks), block_px(config))
        out = mov = _file_reader(raw, grid, rec)
        if ref_rec is None:
            rec = dataclasses.replace(rec, shift_dy_px=0.0, shift_dx_px=0.0, shift_m=0.0,
                                      residual_m=0.0, reference=True)
        else:
            ref_path = partial.scene(ref_rec.date)
            ref = _file_reader(ref_path, grid, ref_rec)
            rec, dy, dx = _align(scene, grid, config, ref, mov, ref_path, rec, notes)
            out = functools.partial(_shifted, mov, grid, dy=dy, dx=dx)
            if rec.kind == ref_rec.kind and rec.bands == ref_rec.bands:
                norm = _fit_norm(ref, out, grid)
                rec = record_norm(rec, norm, scene, notes)
                out = functools.partial(_normalised, out, norm)
        _write_date(out, grid, blocks, partial, rec)
    finally:
        raw.unlink(missing_ok=True)
    rec = dataclasses.replace(rec, warnings=tuple(notes))
    write_json(meta_path, rec.to_json())
    return rec


def _normalised(read: Reader, norm: dict[str, Any], win: Window) -> GeoArray:
    return apply_gains(read(win), norm)


# --- change maps ------------------------------------------------------------------------------

def _cva_stats(a: Reader, b: Reader, grid: Grid, config: RunConfig) -> dict[str, Any]:
    """CVA's scene-wide statistics from the sample windows: normalisation, Otsu, dark classes."""
    from geo.detect.change import cva_magnitude, dark_thresholds
    from geo.detect.common import otsu_threshold
    from geo.normalize import normalize_to

    wins = sample_windows(grid.shape)
    sa = mosaic([a(w) for w in wins])
    sb = dataclasses.replace(mosaic([b(w) for w in wins]), grid=sa.grid)
    bn, norm = normalize_to(sa, sb)
    mag = cva_magnitude(sa, bn)
    v = sa.valid & sb.valid
    t = otsu_threshold(mag[v]) if config.detect.threshold is None else \
        float(config.detect.threshold)
    return {"norm": norm, "t": t, "dark": dark_thresholds(sa, sb), "sample_px": int(v.size)}


def _cva_reach(config: RunConfig, res_m: float) -> int:
    """How far (pixels) a streamed CVA mask pixel depends on its surroundings."""
    from geo.detect.change import CVA_SMOOTH_M, CVA_SMOOTH_MIN_PX
    from geo.detect.common import change_radius

    sigma = max(CVA_SMOOTH_MIN_PX, CVA_SMOOTH_M / res_m)
    return math.ceil(4 * sigma) + 3 * change_radius(config.detect, res_m) + 2


def _cva_block(a: Reader, b: Reader, grid: Grid, core: Window, config: RunConfig,
               stats: dict[str, Any]) -> tuple[NDArray[np.float32], NDArray[np.bool_],
                                               NDArray[np.bool_]]:
    """Probability, mask and both-valid of one core, exact for the given statistics."""
    from geo.detect.change import cva_magnitude, finish
    from geo.detect.common import cleanup_mask

    params = config.detect
    reach = _cva_reach(config, grid.res_m)
    opening_only = dataclasses.replace(params, min_area_m2=0.0)
    halo = 2 * reach + 64
    while True:
        ext = _expand(core, halo, grid.shape)
        wa, wb = a(ext), b(ext)
        mag = cva_magnitude(wa, apply_gains(wb, stats["norm"]))
        cm = finish(mag, stats["t"], wa, wb, opening_only, "cva", dark_t=stats["dark"])
        if ext == (0, grid.shape[0], 0, grid.shape[1]) or exact_core(
                cm.mask, core, ext, grid.shape, reach, params.connectivity):
            break
        halo *= 2
    mask = cleanup_mask(cm.mask, res_m=grid.res_m, pixel_area_m2=grid.pixel_area_m2,
                        params=params, radius_px=0)
    sl = (slice(core[0] - ext[0], core[1] - ext[0]), slice(core[2] - ext[2], core[3] - ext[2]))
    return cm.probability[sl], mask[sl], (wa.valid & wb.valid)[sl]


def _local_block(a: Reader, b: Reader, grid: Grid, core: Window, config: RunConfig
                 ) -> tuple[NDArray[np.float32], NDArray[np.bool_], NDArray[np.bool_]]:
    """Any other method on the core plus a 64-px halo, with block-local statistics."""
    from geo.detect import change_map

    ext = _expand(core, 64, grid.shape)
    wa, wb = a(ext), b(ext)
    cm = change_map(wa, wb, params=config.detect)
    sl = (slice(core[0] - ext[0], core[1] - ext[0]), slice(core[2] - ext[2], core[3] - ext[2]))
    return cm.probability[sl], cm.mask[sl], (wa.valid & wb.valid)[sl]


def change_pair_streamed(pair: tuple[DateRecord, DateRecord], grid: Grid,
                         config: RunConfig, partial: Any) -> ChangePair:
    """:func:`geo.pipeline.change_pair` block by block, writing the rasters window by window."""
    from geo.detect import AUTO_CHANGE
    from geo.export.rasters import cog_blocks

    m0, m1 = pair
    a = _file_reader(partial.scene(m0.date), grid, m0)
    b = _file_reader(partial.scene(m1.date), grid, m1)
    method: str = config.detect.change_method
    if method in ("auto", "builtup", "contrast-objects"):
        method = AUTO_CHANGE.get(m0.kind, "cva")
    stats = _cva_stats(a, b, grid, config) if method == "cva" else None
    n_changed = 0
    with contextlib.ExitStack() as stack:
        prob_out = mask_out = None
        if config.output.rasters:
            d0, d1 = m0.date, m1.date
            prob_out = stack.enter_context(cog_blocks(
                grid, partial.change_prob(d0, d1), kind="probability", count=1,
                dtype="float32", nodata=float("nan")))
            mask_out = stack.enter_context(cog_blocks(
                grid, partial.change_mask(d0, d1), kind="change_mask", count=1,
                dtype="uint8", nodata=255))
        for core in tile_windows(grid.shape, block_px(config)):
            prob, mask, both = (_cva_block(a, b, grid, core, config, stats) if stats is not None
                                else _local_block(a, b, grid, core, config))
            n_changed += int(mask.sum())
            if prob_out is not None and mask_out is not None:
                prob_out.write(core, np.where(both, prob, np.nan).astype("float32"))
                mask_out.write(core, np.where(both, mask.astype("uint8"), 255).astype("uint8"))
    log.info("change %s -> %s: %s, streamed in blocks of %d px, %s", m0.date, m1.date, method,
             block_px(config), f"scene-wide statistics from {stats['sample_px']} px"
             if stats is not None else "block-local statistics (not scene-wide)")
    return ChangePair(date_from=m0.date, date_to=m1.date, method=method,
                      changed_frac=round(n_changed / (grid.shape[0] * grid.shape[1]), 5))
