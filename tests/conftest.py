"""Shared fixtures: tiny GeoTIFF factory, the network guard, versions header."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin


def _find_shared() -> Path:
    """``../shared`` beside the checkout (CI), found upwards from worktrees, or the env override."""
    env = os.environ.get("FACTORYWATCH_SHARED")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared"
    return here.parents[1].parent / "shared"


# qgis_check.py is a script for Debian's system Python (PyQGIS), not a test module: never import it
collect_ignore = ["qgis_check.py"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Doctests are run for ``geo/`` only; test helpers' examples are illustrations."""
    here = Path(__file__).resolve().parent
    items[:] = [it for it in items if not (isinstance(it, pytest.DoctestItem)
                                           and Path(str(it.path)).resolve().is_relative_to(here))]


SHARED = _find_shared()
DATA = SHARED / "data"


def pytest_report_header(config: pytest.Config) -> list[str]:
    from geo.provenance import versions

    v = versions()
    return [
        "factorywatch versions: "
        + ", ".join(f"{k} {v[k]}" for k in ("gdal", "proj", "geos", "rasterio", "shapely")),
        f"shared data: {DATA} ({'present' if DATA.is_dir() else 'MISSING'})",
    ]


# --- network guard: only loopback (and unix sockets) may be reached from tests --------------
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _is_loopback(host: Any) -> bool:
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


class NetworkBlockedError(OSError):
    pass


def _guard(self: socket.socket, address: Any) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
        raise NetworkBlockedError(f"tests may only reach 127.0.0.1, not {address!r}")


def _connect(self: socket.socket, address: Any) -> Any:
    _guard(self, address)
    return _real_connect(self, address)


def _connect_ex(self: socket.socket, address: Any) -> Any:
    _guard(self, address)
    return _real_connect_ex(self, address)


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _is_loopback(host):
        raise NetworkBlockedError(f"tests may only resolve loopback, not {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def _block_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("network"):
        return
    monkeypatch.setattr(socket.socket, "connect", _connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", _getaddrinfo)
    # GDAL does its own networking in C: point its proxy at a closed loopback port so that
    # any non-loopback URL fails instead of leaving the machine.
    monkeypatch.setenv("GDAL_HTTP_PROXY", "127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


# --- tiny GeoTIFFs ---------------------------------------------------------------------------
MakeGeoTiff = Callable[..., Path]


@pytest.fixture
def make_geotiff(tmp_path: Path) -> Iterator[MakeGeoTiff]:
    """Write a small georeferenced GeoTIFF and return its path.

    ``array`` is ``(rows, cols)`` or ``(bands, rows, cols)``.
    """

    def make(
        array: np.ndarray,
        *,
        crs: str | None = "EPSG:32652",
        res_m: float = 10.0,
        origin: tuple[float, float] = (300000.0, 4500000.0),
        nodata: float | None = None,
        date: str | None = "2021-06-03",
        name: str | None = None,
        descriptions: list[str] | None = None,
        tags: dict[str, str] | None = None,
        folder: Path | None = None,
        mask: np.ndarray | None = None,
    ) -> Path:
        arr = array if array.ndim == 3 else array[None]
        folder_ = folder or tmp_path
        folder_.mkdir(parents=True, exist_ok=True)
        path = folder_ / (name or f"{date}.tif")
        profile: dict[str, Any] = {
            "driver": "GTiff", "width": arr.shape[2], "height": arr.shape[1], "count": arr.shape[0],
            "dtype": arr.dtype.name, "transform": from_origin(*origin, res_m, res_m),
        }
        if crs:
            profile["crs"] = crs
        if nodata is not None:
            profile["nodata"] = nodata
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
            dst.write(arr)
            if descriptions:
                for i, d in enumerate(descriptions, 1):
                    dst.set_band_description(i, d)
            if tags:
                dst.update_tags(**tags)
            if mask is not None:
                dst.write_mask(np.where(mask, 255, 0).astype("uint8"))
        return path

    yield make


# --- one real demo run per test session (per xdist worker), shared by every test that reads it -
@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The SYNTHETIC demo written and run once: ``files``, ``summary``, ``cmp`` (truth comparison).

    Tests must treat the run directory as read-only; a test that needs to change a run copies it.
    """
    from geo.config import load_config
    from geo.demo import write_demo
    from geo.demo_report import compare_to_truth
    from geo.pipeline import run_aoi

    root = tmp_path_factory.mktemp("demo")
    files = write_demo(root / "inputs")
    summary = run_aoi(load_config(files.config), root / "run")
    return {"root": root, "files": files, "summary": summary,
            "cmp": compare_to_truth(Path(summary.run_dir), files.truth)}


@pytest.fixture(scope="session")
def qgis_run_dir(demo_run: dict[str, Any]) -> Path:
    """A complete run directory (the real SYNTHETIC demo run) for the export/QGIS tests."""
    return Path(demo_run["summary"].run_dir)
