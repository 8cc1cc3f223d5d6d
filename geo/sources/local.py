"""A folder of GeoTIFFs/COGs, one file per date."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import rasterio
from rasterio.errors import RasterioError

from geo.aoi import Aoi
from geo.errors import NoImageryError, SourceError, one_line
from geo.geoarray import GeoArray
from geo.grid import Grid
from geo.reading import GDAL_ENV, read_to_grid
from geo.sources.base import Scene

__all__ = ["LocalGeoTiffSource", "date_from_name", "date_from_tags", "file_sha256"]

log = logging.getLogger(__name__)

_EXTS = (".tif", ".tiff", ".TIF", ".TIFF")
_DATE_TAGS = ("ACQUISITIONDATETIME", "ACQUISITION_DATETIME", "DATE_ACQUIRED", "datetime",
              "DATETIME", "TIFFTAG_DATETIME", "acquisition_date", "ACQUISITION_DATE")
_ISO_RE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_COMPACT_RE = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)")


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


def date_from_name(path: str | Path) -> str | None:
    """Date ``YYYY-MM-DD`` found in a file name (``YYYY-MM-DD`` or ``YYYYMMDD``), else None.

    The one reader of dates in file names, for rasters and footprint files alike; an ISO
    ``YYYY-MM-DD`` date wins over a compact one, impossible dates are skipped.

    Examples
    --------
    >>> date_from_name("kanggye_2021-06-03_rgb.tif")
    '2021-06-03'
    >>> date_from_name("S2A_52TBL_20230914_0_L2A.tif")
    '2023-09-14'
    >>> date_from_name("plant_2024-10-05.geojson"), date_from_name("s2_20230601_fp.gpkg")
    ('2024-10-05', '2023-06-01')
    >>> date_from_name("scene.tif") is None
    True
    """
    name = Path(path).name
    for rx in (_ISO_RE, _COMPACT_RE):
        for m in rx.finditer(name):
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


def _header(p: Path) -> tuple[dict[str, Any], str]:
    """Header facts (no pixels) and the acquisition date of one file."""
    try:
        p.name.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(p).decode("utf-8", "backslashreplace")
        raise SourceError(
            f"{shown}: file name is not valid UTF-8; rename it (e.g. with only ASCII letters, "
            "digits and YYYY-MM-DD)"
        ) from None
    try:
        with rasterio.Env(**GDAL_ENV), rasterio.open(p) as src:
            tags = src.tags()
            crs = src.crs
            meta: dict[str, Any] = {
                "crs": str(crs) if crs else None, "width": src.width, "height": src.height,
                "count": sum(c.name != "alpha" for c in src.colorinterp) or src.count,
                "res": list(src.res), "dtype": src.dtypes[0]}
    except RasterioError as err:
        msg = one_line(err, 160)
        raise SourceError(
            f"{p}: cannot open as a GeoTIFF ({msg}); replace or re-export the file"
        ) from None
    if crs is None:
        raise SourceError(
            f"{p}: raster has no CRS; georeference it (e.g. gdal_translate -a_srs EPSG:xxxx)"
        )
    date = date_from_tags(tags) or date_from_name(p.name)
    if date is None:
        raise SourceError(
            f"{p}: no acquisition date; put YYYY-MM-DD in the file name or set TIFFTAG_DATETIME"
        )
    return meta, date


def _check_band_counts(scenes: list[Scene]) -> None:
    """Refuse a date whose band count differs from the others' (the most common count).

    A 1-band or 16-band file among RGB dates would be compared band by band with the
    others; factorywatch fails and names it rather than skip a date silently.
    """
    counts = Counter(int(s.properties["count"]) for s in scenes)
    if len(counts) < 2:
        return
    usual, _ = counts.most_common(1)[0]
    odd = next(s for s in scenes if s.properties["count"] != usual)
    raise SourceError(
        f"{odd.href}: {odd.properties['count']} band(s), but the other dates have {usual}; "
        "every date must have the same bands: re-export it or move it out of the folder"
    )


class LocalGeoTiffSource:
    """Imagery from a folder of GeoTIFFs/COGs, one file per date.

    The date comes from a tag (``TIFFTAG_DATETIME``, ``ACQUISITIONDATETIME``,
    ...) or from ``YYYY-MM-DD`` / ``YYYYMMDD`` in the file name.
    """

    def __init__(self, folder: str | Path, *, bands: tuple[str, ...] = ()) -> None:
        self.folder = Path(folder)
        self.bands = tuple(bands)
        """Band roles from ``[source] bands`` (empty: from the files, or guessed)."""

    def search(self, aoi: Aoi, start: str | None = None, end: str | None = None, *,
               checksums: bool = True) -> list[Scene]:
        """List the GeoTIFFs in the folder, dated, sorted by date.

        Only headers are read; ``checksums=False`` (``validate``) skips hashing the files.

        Raises
        ------
        SourceError
            The folder is missing, or a file is unreadable, undated, has a name that is
            not UTF-8, or has a different number of bands from the other dates.
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
            meta, date = _header(p)
            if date in seen:
                raise SourceError(
                    f"{p}: same date {date} as {seen[date]}; keep one file per date"
                )
            seen[date] = p.name
            if (start and date < start) or (end and date > end):
                continue
            scenes.append(Scene(id=p.name, date=date, href=str(p.resolve()),
                                properties={**meta,
                                            "sha256": file_sha256(p) if checksums else ""}))
        _check_band_counts(scenes)
        today = dt.date.today().isoformat()
        for s in scenes:
            if s.date > today:
                log.warning("%s: acquisition date %s is in the future; check its "
                            "TIFFTAG_DATETIME or the date in its name", s.href, s.date)
        if not scenes:
            raise NoImageryError(f"{self.folder}: no GeoTIFF between {start} and {end}")
        return sorted(scenes, key=lambda s: s.date)

    def read(self, scene: Scene, grid: Grid) -> GeoArray:
        """Read one scene onto the AOI grid (windowed, any CRS)."""
        return read_to_grid(scene.href, grid, date=scene.date, source_id=scene.id,
                            roles=self.bands or None)
