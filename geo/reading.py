"""Read any raster onto an AOI grid: the only place that opens imagery files.

GDAL does the work: a :class:`rasterio.vrt.WarpedVRT` with the grid's CRS,
transform and shape pulls only the source blocks that the grid needs, whatever
the source's size or CRS, from local files or ``/vsicurl/`` URLs alike.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds

from geo.errors import NoImageryError, SourceError
from geo.geoarray import GeoArray, band_roles
from geo.grid import Grid

__all__ = ["GDAL_ENV", "check_overlap", "read_band_to_grid", "read_to_grid"]

log = logging.getLogger(__name__)

GDAL_ENV: dict[str, Any] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.jp2,.vrt",
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MAX_RETRY": "4",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
    "VSI_CACHE": "TRUE",
    "GDAL_CACHEMAX": 256,
}
"""GDAL settings tuned for windowed COG reads (as recommended by rio-tiler / titiler)."""


def check_overlap(src: Any, grid: Grid, name: str) -> None:
    """Raise :class:`NoImageryError` if ``src`` does not overlap ``grid``."""
    if src.crs is None:
        raise SourceError(
            f"{name}: raster has no CRS; georeference it (e.g. gdal_translate -a_srs EPSG:xxxx)"
        )
    try:
        left, b, r, t = transform_bounds(src.crs, grid.crs, *src.bounds, densify_pts=21)
    except Exception as err:
        raise SourceError(f"{name}: cannot transform its bounds to {grid.crs} ({err})") from None
    gl, gb, gr, gt = grid.bounds
    if not all(map(math.isfinite, (left, b, r, t))) or r <= gl or left >= gr or t <= gb or b >= gt:
        raise NoImageryError(
            f"{name}: image does not overlap the AOI; check its georeferencing or the AOI file"
        )


def _open(href: str) -> Any:
    try:
        return rasterio.open(href)
    except RasterioError as err:
        msg = str(err).splitlines()[0][:200]
        raise SourceError(
            f"{href}: cannot open as a raster ({msg}); replace or re-export the file"
        ) from None


def read_to_grid(
    href: str,
    grid: Grid,
    *,
    date: str,
    source_id: str = "",
    bands: Sequence[int] | None = None,
    roles: Sequence[str] | None = None,
    resampling: Resampling = Resampling.bilinear,
    scale: float = 1.0,
    offset: float = 0.0,
) -> GeoArray:
    """Read a raster onto ``grid`` and return a :class:`GeoArray`.

    Parameters
    ----------
    href : str
        A path, or a GDAL URL such as ``/vsicurl/https://...``.
    grid : Grid
        The AOI's target grid.
    date : str
        Acquisition date to attach.
    source_id : str, optional
        Id recorded with the pixels.
    bands : sequence of int, optional
        1-based band indexes; default all (minus an alpha band).
    roles : sequence of str, optional
        Band roles; default from band descriptions / colour interpretation.
    resampling : Resampling
        Bilinear by default; pass ``nearest`` for classification layers.
    scale, offset : float
        ``value * scale + offset`` is applied after reading (e.g. S2 BOA offset).

    Returns
    -------
    GeoArray
        ``valid`` is False where the source is nodata, masked (internal mask or
        alpha), NaN, or outside the source's footprint.

    Raises
    ------
    SourceError
        The file is missing, corrupt, or has no CRS.
    NoImageryError
        The raster does not overlap the grid.

    Notes
    -----
    GDAL functions used: GDALCreateWarpedVRT (WarpedVRT), GDALRasterIO. Memory
    is bounded by ``grid.shape``: the source is never read whole.
    """
    name = source_id or href
    with rasterio.Env(**GDAL_ENV):
        src = _open(href)
        with src:
            check_overlap(src, grid, name)
            ci = [c.name for c in src.colorinterp]
            if bands is None:
                bands = [i + 1 for i in range(src.count) if ci[i] != "alpha"] or [1]
            roles, guessed = _roles(src, ci, bands, roles, name)
            rows, cols = grid.shape
            try:
                with WarpedVRT(
                    src,
                    crs=grid.crs,
                    transform=grid.transform,
                    width=cols,
                    height=rows,
                    resampling=resampling,
                    add_alpha=src.nodata is None,
                ) as vrt:
                    data = vrt.read(list(bands), out_dtype="float32", masked=True)
                    if src.nodata is None:  # the warper's alpha band carries masks/footprint
                        masks = vrt.read(vrt.count)[None]
                    else:
                        masks = vrt.read_masks(list(bands))
            except RasterioError as err:
                msg = str(err).splitlines()[0][:200]
                raise SourceError(f"{name}: read failed ({msg}); the file may be corrupt") from None
    arr = np.ma.getdata(data).astype(np.float32, copy=False)
    valid = np.all(masks > 0, axis=0) & ~np.any(np.ma.getmaskarray(data), axis=0)
    valid &= np.all(np.isfinite(arr), axis=0)
    if scale != 1.0 or offset != 0.0:
        arr = arr * np.float32(scale) + np.float32(offset)
    arr[:, ~valid] = 0.0
    kind = "multispectral" if "nir" in roles else ("pan" if len(roles) == 1 else "rgb")
    return GeoArray(data=arr, valid=valid, grid=grid, date=date, bands=tuple(roles),
                    source_id=source_id or href, kind=kind, roles_guessed=guessed)


def _roles(src: Any, ci: list[str], bands: Sequence[int], roles: Sequence[str] | None,
           name: str) -> tuple[list[str], bool]:
    """Roles of the bands read: given (``other`` -> ``b<i>``), described, or guessed."""
    if roles is None:
        all_roles, guessed = band_roles(list(src.descriptions), ci)
        return [all_roles[b - 1] for b in bands], guessed
    if len(roles) != len(bands):
        raise SourceError(
            f"{name}: has {len(bands)} band(s) but {len(roles)} role(s) were given "
            f"({', '.join(roles)}); set [source] bands to one role per band, in file order")
    out = [f"b{b}" if r == "other" else r for r, b in zip(roles, bands, strict=True)]
    return out, False


def read_band_to_grid(
    href: str, grid: Grid, *, resampling: Resampling = Resampling.nearest
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Read band 1 of ``href`` onto ``grid``; returns ``(values, valid)``."""
    ga = read_to_grid(href, grid, date="", bands=[1], roles=["b1"], resampling=resampling)
    return ga.data[0], ga.valid
