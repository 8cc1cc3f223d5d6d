"""A folder of GeoTIFFs/COGs, one file per date."""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime
from pathlib import Path

import rasterio
from rasterio.errors import RasterioError

from geo.aoi import Aoi
from geo.errors import NoImageryError, SourceError
from geo.geoarray import GeoArray
from geo.grid import Grid
from geo.reading import GDAL_ENV, read_to_grid
from geo.sources.base import Scene

__all__ = ["LocalGeoTiffSource", "date_from_name", "date_from_tags", "file_sha256"]

log = logging.getLogger(__name__)

_EXTS = (".tif", ".tiff", ".TIF", ".TIFF")
_DATE_TAGS = ("ACQUISITIONDATETIME", "ACQUISITION_DATETIME", "DATE_ACQUIRED", "datetime",
              "DATETIME", "TIFFTAG_DATETIME", "acquisition_date", "ACQUISITION_DATE")
_NAME_RE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")


def date_from_tags(tags: dict[str, str]) -> str | None:
    """Acquisition date from GeoTIFF tags, or None.

    Examples
    --------
    >>> date_from_tags({"TIFFTAG_DATETIME": "2021:06:03 10:20:00"})
    '2021-06-03'
    >>> date_from_tags({"ACQUISITIONDATETIME": "2020-07-14T02:11:09Z"})
    '2020-07-14'
    >>> date_from_tags({}) is None
    True
    """
    for key in _DATE_TAGS:
        v = tags.get(key)
        if not v:
            continue
        m = re.match(r"\s*(\d{4})[-:/](\d{2})[-:/](\d{2})", v)
        if m:
            return _valid_date(*m.groups())
    return None


def _valid_date(y: str, m: str, d: str) -> str | None:
    try:
        return datetime(int(y), int(m), int(d)).strftime("%Y-%m-%d")
    except ValueError:
        return None


def date_from_name(name: str) -> str | None:
    """Date ``YYYY-MM-DD`` (or ``YYYYMMDD``) found in a file name, or None.

    Examples
    --------
    >>> date_from_name("kanggye_2021-06-03_rgb.tif")
    '2021-06-03'
    >>> date_from_name("S2A_52TBL_20230914_0_L2A.tif")
    '2023-09-14'
    >>> date_from_name("scene.tif") is None
    True
    """
    for m in _NAME_RE.finditer(name):
        d = _valid_date(*m.groups())
        if d:
            return d
    return None


def file_sha256(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks (bounded memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class LocalGeoTiffSource:
    """Imagery from a folder of GeoTIFFs/COGs, one file per date.

    The date comes from a tag (``TIFFTAG_DATETIME``, ``ACQUISITIONDATETIME``,
    ...) or from ``YYYY-MM-DD`` / ``YYYYMMDD`` in the file name.
    """

    def __init__(self, folder: str | Path, *, bands: tuple[str, ...] = ()) -> None:
        self.folder = Path(folder)
        self.bands = tuple(bands)
        """Band roles from ``[source] bands`` (empty: from the files, or guessed)."""

    def search(self, aoi: Aoi, start: str | None = None, end: str | None = None) -> list[Scene]:
        """List the GeoTIFFs in the folder, dated, sorted by date.

        Raises
        ------
        SourceError
            The folder is missing, or a file is unreadable or undated.
        NoImageryError
            The folder holds no GeoTIFF in the date range.
        """
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder}: imagery folder not found; set [source] path")
        files = sorted(p for p in self.folder.iterdir() if p.suffix in _EXTS and p.is_file())
        if not files:
            raise NoImageryError(
                f"{self.folder}: no GeoTIFF (*.tif) in the imagery folder; add one file per date"
            )
        scenes: list[Scene] = []
        seen: dict[str, str] = {}
        for p in files:
            try:
                with rasterio.Env(**GDAL_ENV), rasterio.open(p) as src:
                    tags = src.tags()
                    crs = src.crs
                    meta = {"crs": str(crs) if crs else None, "width": src.width,
                            "height": src.height, "count": src.count,
                            "res": list(src.res), "dtype": src.dtypes[0]}
            except RasterioError as err:
                msg = str(err).splitlines()[0][:160]
                raise SourceError(
                    f"{p}: cannot open as a GeoTIFF ({msg}); replace or re-export the file"
                ) from None
            if crs is None:
                raise SourceError(
                    f"{p}: raster has no CRS; georeference it "
                    "(e.g. gdal_translate -a_srs EPSG:xxxx)"
                )
            date = date_from_tags(tags) or date_from_name(p.name)
            if date is None:
                raise SourceError(
                    f"{p}: no acquisition date; put YYYY-MM-DD in the file name or set "
                    "TIFFTAG_DATETIME"
                )
            if date in seen:
                raise SourceError(
                    f"{p}: same date {date} as {seen[date]}; keep one file per date"
                )
            seen[date] = p.name
            if (start and date < start) or (end and date > end):
                continue
            scenes.append(Scene(id=p.name, date=date, href=str(p.resolve()),
                                properties={**meta, "sha256": file_sha256(p)}))
        if not scenes:
            raise NoImageryError(f"{self.folder}: no GeoTIFF between {start} and {end}")
        return sorted(scenes, key=lambda s: s.date)

    def read(self, scene: Scene, grid: Grid) -> GeoArray:
        """Read one scene onto the AOI grid (windowed, any CRS)."""
        return read_to_grid(scene.href, grid, date=scene.date, source_id=scene.id,
                            roles=self.bands or None)
