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
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from geo.errors import NoImageryError, SourceError, one_line
from geo.geoarray import GeoArray, band_roles
from geo.grid import Grid
from geo.http import http_status, redact

__all__ = ["GDAL_ENV", "check_overlap", "read_to_grid", "remote_error"]

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


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(map(math.isfinite, a)) and a[2] > b[0] and a[0] < b[2] and a[3] > b[1] \
        and a[1] < b[3]


def _bounds_in(src_crs: Any, dst_crs: Any, bounds: tuple[float, ...]) -> tuple[float, ...]:
    try:
        return tuple(transform_bounds(src_crs, dst_crs, *bounds, densify_pts=21))
    except Exception:
        return (math.nan,) * 4


def check_overlap(src: Any, grid: Grid, name: str) -> None:
    """Raise :class:`NoImageryError` if ``src`` does not overlap ``grid``.

    The bounds are compared both in the grid's CRS and in the source's: a source larger
    than the grid's CRS can express (a whole-world EPSG:4326 raster seen from a UTM
    zone) transforms to meaningless bounds, while the small grid transforms cleanly
    into the source's CRS.
    """
    if src.crs is None:
        raise SourceError(
            f"{name}: raster has no CRS; georeference it (e.g. gdal_translate -a_srs EPSG:xxxx)"
        )
    src_bounds = tuple(src.bounds)
    if _overlaps(_bounds_in(src.crs, grid.crs, src_bounds), grid.bounds):
        return
    if _overlaps(_bounds_in(grid.crs, src.crs, tuple(grid.bounds)), src_bounds):
        return
    raise NoImageryError(
        f"{name}: image does not overlap the AOI; check its georeferencing or the AOI file"
    )


_REMOTE_PREFIXES = ("/vsicurl/", "/vsis3/", "/vsigs/", "/vsiaz/", "/vsiadls/", "/vsioss/",
                    "/vsiswift/", "/vsiwebhdfs/")
_HTTP_FIX = {
    401: "the server wants credentials; set them or configure [source] sign",
    403: "access denied: the signature or token may have expired, or the bucket needs "
         "credentials; check [source] sign",
    404: "the asset is gone from the server; search again (the cached search may be stale)",
    409: "the storage refuses unsigned reads; set [source] sign = \"sas-token\" with "
         "sign_token_url, or sign = \"planetary-computer\"",
    429: "rate limited; retry later or lower the request rate",
}


def _is_remote(href: str) -> bool:
    return href.startswith(_REMOTE_PREFIXES)


def remote_error(href: str, err: BaseException, *, stage: str) -> SourceError:
    """A one-line error for a failed remote read: the URL (redacted), the HTTP status, the fix.

    ``stage`` is ``open`` or ``read``. Without an HTTP status the connection failed or the
    answer was cut off, which is worth retrying (the message says so, never "corrupt").
    """
    url = redact(href.split("/", 2)[2] if href.startswith("/vsicurl/") else href)
    detail = one_line(redact(str(err)), 200)
    code = http_status(err)
    if code is None:
        return SourceError(f"{url}: {stage}: the connection failed or the answer was cut off "
                           f"({detail}); check the network and retry")
    fix = _HTTP_FIX.get(code) or ("a server error; retry later" if code >= 500
                                  else "check the URL and [source] settings")
    return SourceError(f"{url}: {stage}: HTTP {code}; {fix}")


def _open(href: str) -> Any:
    try:
        return rasterio.open(href)
    except RasterioError as err:
        if _is_remote(href):
            raise remote_error(href, err, stage="open") from None
        msg = one_line(str(err).splitlines()[0], 200)
        raise SourceError(
            f"{href}: cannot open as a raster ({msg}); replace or re-export the file"
        ) from None


def _read_error(href: str, name: str, err: RasterioError) -> SourceError:
    """A one-line error for a failed read: HTTP status and fix for remote files."""
    if _is_remote(href):
        return remote_error(href, err, stage="read")
    msg = one_line(str(err).splitlines()[0], 200)
    return SourceError(f"{name}: read failed ({msg}); the file may be corrupt")


def _aligned_window(src: Any, grid: Grid) -> Window | None:
    """The window of ``src`` that is exactly ``grid``, or None.

    Only when the file has the grid's CRS, pixel size and pixel edges (to 1e-6 px) and holds
    the whole grid: then its pixels *are* the grid's, and a plain windowed read gives what
    the bilinear warp gives at pixel centres, at a fraction of its cost.
    """
    st, gt = src.transform, grid.transform
    if src.crs is None or st.b or st.d or gt.b or gt.d or not src.crs == CRS.from_user_input(
            grid.crs):
        return None
    if not (math.isclose(st.a, gt.a, rel_tol=1e-9) and math.isclose(st.e, gt.e, rel_tol=1e-9)):
        return None
    col, row = (gt.c - st.c) / st.a, (gt.f - st.f) / st.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    c0, r0 = round(col), round(row)
    rows, cols = grid.shape
    if c0 < 0 or r0 < 0 or c0 + cols > src.width or r0 + rows > src.height:
        return None
    return Window(c0, r0, cols, rows)


def _plain_read(src: Any, bands: list[int], win: Window, href: str, name: str
                ) -> tuple[Any, NDArray[np.uint8]]:
    """Bands and masks of ``win`` of ``src`` (nodata, internal mask or alpha), unwarped."""
    try:
        data = src.read(bands, window=win, out_dtype="float32", masked=True)
        masks = src.read_masks(bands, window=win)
    except RasterioError as err:
        raise _read_error(href, name, err) from None
    return data, np.asarray(masks)


def _warp_scale(src: Any, grid: Grid) -> dict[str, str]:
    """GDAL's ``XSCALE``/``YSCALE`` (grid pixels per source pixel), fixed for the whole read.

    GDAL otherwise computes the resampling scale per warp chunk, so a window of the grid (a
    streamed block) and a whole-grid read would resample with slightly different kernels.
    Rounded to 1 %, so every window of one grid gets the same value.
    """
    b = _bounds_in(grid.crs, src.crs, tuple(grid.bounds))
    if not all(map(math.isfinite, b)) or b[2] <= b[0] or b[3] <= b[1]:
        return {}
    xs = grid.shape[1] * abs(src.res[0]) / (b[2] - b[0])
    ys = grid.shape[0] * abs(src.res[1]) / (b[3] - b[1])
    return {"XSCALE": f"{xs:.2f}", "YSCALE": f"{ys:.2f}"}


def _warp_read(src: Any, grid: Grid, bands: list[int], resampling: Resampling, href: str,
               name: str) -> tuple[Any, NDArray[np.uint8]]:
    """Read ``bands`` of the open ``src`` through one WarpedVRT onto ``grid``: data and masks."""
    rows, cols = grid.shape
    try:
        # an (almost) exact transformer, so a window of the grid (a streamed block) gets the
        # very pixels of a whole-grid read (GDAL's default approximates to 0.125 px; 0 fails)
        with WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=cols, height=rows,
                       resampling=resampling, add_alpha=src.nodata is None,
                       tolerance=1e-9, **_warp_scale(src, grid)) as vrt:
            data = vrt.read(bands, out_dtype="float32", masked=True)
            if src.nodata is None:  # the warper's alpha band carries masks/footprint
                masks = vrt.read(vrt.count)[None]
            else:
                masks = vrt.read_masks(bands)
    except RasterioError as err:
        raise _read_error(href, name, err) from None
    return data, np.asarray(masks)


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
    env: dict[str, Any] | None = None,
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
    env : dict, optional
        GDAL config options that override :data:`GDAL_ENV` (e.g. HTTP retries).

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
    with rasterio.Env(**{**GDAL_ENV, **(env or {})}):
        src = _open(href)
        with src:
            check_overlap(src, grid, name)
            ci = [c.name for c in src.colorinterp]
            if bands is None:
                bands = [i + 1 for i in range(src.count) if ci[i] != "alpha"] or [1]
            roles, guessed = _roles(src, ci, bands, roles, name)
            win = _aligned_window(src, grid)
            if win is not None:  # same CRS and pixel grid, inside the file: no warping
                data, masks = _plain_read(src, list(bands), win, href, name)
            else:
                data, masks = _warp_read(src, grid, list(bands), resampling, href, name)
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

