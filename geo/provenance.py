"""Provenance: library versions, git commit, hashes."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["git_commit", "versions"]


def versions() -> dict[str, str]:
    """Versions of Python, the key libraries, GDAL, PROJ and GEOS."""
    out: dict[str, str] = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("factorywatch", "numpy", "scipy", "rasterio", "shapely", "geopandas", "pyogrio",
                 "pyproj", "scikit-image", "pystac-client", "matplotlib", "dask"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    try:
        import pyproj
        import rasterio
        import shapely

        out["gdal"] = rasterio.__gdal_version__
        out["proj"] = pyproj.proj_version_str
        out["geos"] = shapely.geos_version_string
    except ImportError:  # pragma: no cover
        pass
    return out


def git_commit() -> str | None:
    """The git commit of the factorywatch checkout, if running from one."""
    here = Path(__file__).resolve().parent.parent
    if not (here / ".git").exists():
        return None
    try:
        r = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                           text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() or None
