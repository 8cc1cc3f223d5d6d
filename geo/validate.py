"""Validate an AOI config, its AOI file and its imagery source without running."""

from __future__ import annotations

from pathlib import Path

from geo.aoi import read_aoi, validate_aoi
from geo.config import load_config
from geo.errors import FactoryWatchError

__all__ = ["config_warnings", "validate_config"]


def validate_config(path: str | Path) -> list[str]:
    """List every problem found in the config at ``path`` (empty when it is fine)."""
    try:
        config = load_config(path)
    except FactoryWatchError as err:
        return [str(err)]
    problems: list[str] = []
    try:
        aoi = read_aoi(config.aoi.geometry, name=config.aoi.name)
    except FactoryWatchError as err:
        return [str(err)]
    problems += [f"{aoi.path}: {p}" for p in validate_aoi(aoi)]
    src = config.source
    if src.kind in ("local", "synthetic"):
        if not src.path:
            problems.append("[source] path is required for kind = 'local'")
        elif not Path(src.path).is_dir():
            problems.append(f"{src.path}: imagery folder not found; fix [source] path")
        elif not any(Path(src.path).glob("*.tif*")):
            problems.append(f"{src.path}: no GeoTIFF (*.tif) in the imagery folder")
    if src.start and src.end and src.start > src.end:
        problems.append(f"[source] start {src.start} is after end {src.end}")
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
