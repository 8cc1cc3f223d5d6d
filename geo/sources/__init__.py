"""Imagery sources: a local folder of GeoTIFFs, or a STAC API."""

from __future__ import annotations

from geo.config import RunConfig
from geo.errors import ConfigError
from geo.sources.base import ImagerySource, Scene
from geo.sources.local import LocalGeoTiffSource

__all__ = ["ImagerySource", "LocalGeoTiffSource", "Scene", "open_source"]


def open_source(config: RunConfig, *, offline: bool = False) -> ImagerySource:
    """Build the imagery source that ``config.source`` describes."""
    src = config.source
    if src.kind in ("local", "synthetic"):
        if not src.path:
            raise ConfigError(f"{config.config_path}: [source] path is required for kind = 'local'")
        return LocalGeoTiffSource(src.path, bands=src.bands)
    if src.kind == "stac":
        from geo.sources.stac import StacSource

        return StacSource.from_config(config, offline=offline)
    raise ConfigError(f"unknown source kind {src.kind!r}")
