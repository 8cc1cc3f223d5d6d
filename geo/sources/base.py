"""The imagery-source interface shared by local folders and STAC APIs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from geo.aoi import Aoi
from geo.geoarray import GeoArray
from geo.grid import Grid

__all__ = ["ImagerySource", "Scene"]


@dataclass(frozen=True, kw_only=True)
class Scene:
    """One acquisition that may cover the AOI."""

    id: str
    """Stable id: the file name for local files, the STAC item id otherwise."""
    date: str
    """Acquisition date ``YYYY-MM-DD`` (UTC)."""
    href: str
    """Path or URL of the main asset (for local files: the GeoTIFF)."""
    datetime: str = ""
    """Full acquisition timestamp if known (ISO 8601)."""
    assets: dict[str, str] = field(default_factory=dict)
    """Band role → href, for sources with one file per band (STAC)."""
    properties: dict[str, Any] = field(default_factory=dict)
    """Provenance: platform, orbit, processing baseline, angles, cloud fraction, hash..."""


@runtime_checkable
class ImagerySource(Protocol):
    """Anything that lists scenes for an AOI and reads them onto a grid."""

    def search(self, aoi: Aoi, start: str | None = None, end: str | None = None) -> list[Scene]:
        """Scenes covering ``aoi`` between ``start`` and ``end`` (inclusive), by date."""
        ...

    def read(self, scene: Scene, grid: Grid) -> GeoArray:
        """Read ``scene`` onto ``grid`` (only the window that the grid needs)."""
        ...
