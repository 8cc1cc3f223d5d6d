"""Validate an AOI config, its AOI file and its imagery source without running."""

from __future__ import annotations

from pathlib import Path

from geo.aoi import read_aoi
from geo.config import load_config
from geo.errors import FactoryWatchError
from geo.preflight import preflight_problems
from geo.sources.local import LocalGeoTiffSource

__all__ = ["config_warnings", "validate_config"]


def validate_config(path: str | Path) -> list[str]:
    """List every problem found in the config at ``path`` (empty when it is fine).

    These are exactly the checks ``run`` makes before reading pixels
    (:func:`geo.preflight.preflight_problems`, then for a local folder the same header
    scan as ``run``'s search), so a config that passes here does not fail in ``run`` on a
    config, AOI, grid-size or imagery-header error. STAC sources are not searched (that
    needs the network).
    """
    try:
        config = load_config(path)
    except FactoryWatchError as err:
        return [str(err)]
    problems, aoi, _grid = preflight_problems(config)
    src = config.source
    if not problems and aoi is not None and src.kind in ("local", "synthetic"):
        try:  # headers only, as run's search does: dates, CRS, band counts, date range
            LocalGeoTiffSource(src.path).search(aoi, src.start or None, src.end or None,
                                                checksums=False)
        except FactoryWatchError as err:
            problems.append(str(err))
    return problems


def config_warnings(path: str | Path) -> list[str]:
    """Things worth knowing about a valid config that are not errors."""
    try:
        config = load_config(path)
        aoi = read_aoi(config.aoi.geometry, name=config.aoi.name)
    except FactoryWatchError:
        return []
    if not aoi.is_measuring:
        return [
            f"AOI {aoi.name} is a search window around a {aoi.properties.get('point_kind')} "
            f"(coord_confidence={aoi.properties.get('coord_confidence')}), not a located plant: "
            "re-centre it before publishing areas or ratios"
        ]
    return []
