"""Checks that run before any pixel is read, shared by ``validate`` and ``run``.

``factorywatch validate`` lists every problem that :func:`preflight_problems` finds;
``run`` calls :func:`preflight`, which raises the first of the same problems. Because
both go through this one function, no config passes ``validate`` and then fails in
``run`` on a config, AOI or grid-size error.

The size check multiplies the AOI grid's pixels by the bytes a run holds per pixel (two
dates of ``bands`` float32 values, see DESIGN.md "Parallelism and memory", plus the
detection and change working arrays) and compares that with a memory budget:
``[grid] memory_budget_mb``, or by default half the memory available when the check runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from geo.aoi import Aoi, read_aoi, validate_aoi
from geo.config import RunConfig
from geo.errors import AoiError, ConfigError, FactoryWatchError
from geo.grid import Grid, grid_for_aoi

__all__ = [
    "ASSUMED_BANDS",
    "available_memory_mb",
    "grid_memory_mb",
    "memory_budget_mb",
    "preflight",
    "preflight_problems",
]

ASSUMED_BANDS: dict[str, int] = {"local": 4, "synthetic": 3, "stac": 7}
"""Bands held per date, by source kind (STAC: the six reflectance bands + QA)."""
DATES_IN_MEMORY = 2
"""A run holds at most two dates' pixels at once (the pair being compared)."""
WORK_BYTES_PER_PX = 40
"""Detection/change working arrays per pixel: float64 features, labels, masks."""
FALLBACK_BUDGET_MB = 4096.0
"""Budget where the available memory cannot be read (non-POSIX systems)."""


def available_memory_mb() -> float | None:
    """Physical memory available now, in MiB, or None where the OS does not say."""
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size / 2**20 if pages > 0 and size > 0 else None


def memory_budget_mb(config: RunConfig) -> float:
    """The configured ``[grid] memory_budget_mb``, else half the available memory."""
    if config.grid.memory_budget_mb is not None:
        return float(config.grid.memory_budget_mb)
    avail = available_memory_mb()
    return avail / 2 if avail else FALLBACK_BUDGET_MB


def grid_memory_mb(grid: Grid, n_bands: int) -> float:
    """Peak memory a run needs for ``grid`` with ``n_bands`` per date, in MiB.

    Examples
    --------
    >>> from affine import Affine
    >>> g = Grid(crs="EPSG:32652", transform=Affine(10, 0, 0, 0, -10, 0), shape=(1024, 1024))
    >>> grid_memory_mb(g, 4)
    72.0
    """
    rows, cols = grid.shape
    per_px = DATES_IN_MEMORY * n_bands * 4 + WORK_BYTES_PER_PX
    return rows * cols * per_px / 2**20


STREAM_BLOCK_PX = 2048
"""Block side of a streamed run when ``[detect] tile_px = 0`` (:func:`geo.stream.block_px`)."""
MAX_STREAM_PX = 1_000_000_000
"""Largest grid (pixels) a run accepts even streamed (about 31,600²): beyond it a run would take
days and fill the disk; split the AOI."""


def _size_problem(config: RunConfig, grid: Grid) -> str | None:
    """Refuse a grid that fits the memory budget neither whole nor streamed block by block.

    A grid above the budget streams (:mod:`geo.stream`): it then needs one block's memory,
    up to :data:`MAX_STREAM_PX` pixels.
    """
    bands = ASSUMED_BANDS.get(config.source.kind, 4)
    need, budget = grid_memory_mb(grid, bands), memory_budget_mb(config)
    rows, cols = grid.shape
    if need <= budget:
        return None
    side = min(config.detect.tile_px or STREAM_BLOCK_PX, rows, cols)
    need = grid_memory_mb(Grid(crs=grid.crs, transform=grid.transform, shape=(side, side)),
                          bands)
    if need <= budget and rows * cols <= MAX_STREAM_PX:
        return None
    g = config.grid
    fix = ("lower [grid] buffer_m" if g.buffer_m > 1000 else
           "raise [grid] resolution_m or split the AOI")
    what = (f"~{need:,.0f} MiB per streamed block of {side:,} px for {bands} bands x "
            f"{DATES_IN_MEMORY} dates + working arrays, above the memory budget of "
            f"{budget:,.0f} MiB" if need > budget else
            f"above the {MAX_STREAM_PX:,} px a run streams within the memory budget")
    return (f"the AOI grid would be {rows:,} x {cols:,} px at {g.resolution_m:g} m ({what}); "
            f"{fix}, or set [grid] memory_budget_mb")


def _source_problems(config: RunConfig) -> list[str]:
    src, where = config.source, config.config_path or "config"
    problems: list[str] = []
    if src.kind in ("local", "synthetic"):
        if not src.path:
            problems.append(f"{where}: [source] path is required for kind = '{src.kind}'")
        elif not Path(src.path).is_dir():
            problems.append(f"{src.path}: imagery folder not found; fix [source] path")
        elif not any(Path(src.path).glob("*.tif*")):
            problems.append(f"{src.path}: no GeoTIFF (*.tif) in the imagery folder")
    if src.start and src.end and src.start > src.end:
        problems.append(f"{where}: [source] start {src.start} is after end {src.end}; swap them")
    return problems


def preflight_problems(config: RunConfig) -> tuple[list[str], Aoi | None, Grid | None]:
    """Every problem found before reading pixels, with the AOI and grid where they exist.

    Parameters
    ----------
    config : RunConfig
        A loaded config (:func:`geo.config.load_config` has checked its values).

    Returns
    -------
    problems : list of str
        One line each, naming the file (and key) and the fix; empty when all is well.
    aoi : Aoi or None
        The AOI, when its file could be read.
    grid : Grid or None
        The AOI grid, when the AOI is valid.
    """
    try:
        aoi = read_aoi(config.aoi.geometry, name=config.aoi.name)
    except FactoryWatchError as err:
        return [str(err), *_source_problems(config)], None, None
    problems = [f"{aoi.path}: {p}"
                for p in validate_aoi(aoi, measure_epsg=config.aoi.measure_epsg)]
    grid: Grid | None = None
    if not problems:
        try:
            grid = grid_for_aoi(aoi.geometry, config.grid.resolution_m,
                                buffer_m=config.grid.buffer_m, epsg=config.aoi.measure_epsg)
        except FactoryWatchError as err:
            problems.append(f"{config.config_path or aoi.path}: {err}")
        else:
            size = _size_problem(config, grid)
            if size:
                problems.append(f"{config.config_path or aoi.path}: {size}")
    return problems + _source_problems(config), aoi, grid


def preflight(config: RunConfig) -> tuple[Aoi, Grid]:
    """Run :func:`preflight_problems` and raise the first problem, as ``run`` does.

    Raises
    ------
    AoiError
        The AOI file is missing, unreadable or invalid.
    ConfigError
        The grid would not fit in the memory budget, or the source is misconfigured.
    """
    problems, aoi, grid = preflight_problems(config)
    if problems:
        first = problems[0]
        cls = AoiError if aoi is None or (aoi.path and first.startswith(aoi.path)) else ConfigError
        raise cls(first)
    assert aoi is not None and grid is not None
    return aoi, grid
