"""Shared fixtures: tiny GeoTIFF factory, the network guard, versions header."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# One BLAS thread per process (set before numpy loads here; pytest-xdist's workers start later and
# inherit it): the two workers already use both cores, and OpenBLAS's helper threads spin-wait on
# the small matrices of these tests (iMAD, coreg) -- CPU burnt, no result changes. A value set by
# the caller wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import rasterio  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402


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
    """Doctests are run for ``geo/`` only; test helpers' examples are illustrations.

    Modules with a ``slow`` test run first (in file order, each module's tests in their own
    order): with ``--dist loadscope --no-loadscope-reorder`` (pyproject) the xdist workers
    start on the long modules and the many short ones fill in behind them, instead of one
    long module starting last and running alone.
    """
    here = Path(__file__).resolve().parent
    items[:] = [it for it in items if not (isinstance(it, pytest.DoctestItem)
                                           and Path(str(it.path)).resolve().is_relative_to(here))]
    slow = {it.path for it in items if it.get_closest_marker("slow")}
    items.sort(key=lambda it: it.path not in slow)  # stable: file and test order kept


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


# --- one real demo run per test session, shared by every test (and every xdist worker) -------
def _session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every xdist worker of this test session shares (the session's own basetemp
    when it runs without workers; with workers, their common parent, as pytest-xdist
    documents for session-wide fixtures)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def demo_cli(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``factorywatch demo FOLDER --json`` (the real CLI, in-process), run once per session.

    The first worker to get here runs it under a file lock; the others wait and read what it
    wrote. Returns ``folder`` (the demo FOLDER: ``inputs/`` and ``run/``) and ``json`` (what
    the command printed). Tests must treat the folder as read-only; copy it to change it.
    """
    from click.testing import CliRunner
    from filelock import FileLock

    from geo.cli import main

    root = _session_root(tmp_path_factory)
    folder, printed = root / "shared-demo" / "fw", root / "shared-demo" / "demo.json"
    with FileLock(str(root / "shared-demo.lock")):
        if not printed.is_file():
            r = CliRunner().invoke(main, ["demo", str(folder), "--json", "-q"])
            assert r.exit_code == 0, r.output
            printed.write_text(r.stdout)
    return {"folder": folder, "json": json.loads(printed.read_text())}


def _summary(d: dict[str, Any]) -> Any:
    """The ``--json`` summary as the :class:`geo.records.RunSummary` that ``run_aoi`` returns."""
    from geo.records import RunSummary

    seqs = ("dates", "warnings", "new_dates")
    return RunSummary(**{k: tuple(v) if k in seqs and v is not None else v for k, v in d.items()
                         if k in RunSummary.__dataclass_fields__})


@pytest.fixture(scope="session")
def demo_run(demo_cli: dict[str, Any]) -> dict[str, Any]:
    """The SYNTHETIC demo run (``demo_cli``): ``files``, ``summary``, ``cmp`` (truth comparison).

    Tests must treat the run directory as read-only; a test that needs to change a run copies it.
    """
    from geo.demo import DemoFiles

    inputs = demo_cli["folder"] / "inputs"
    files = DemoFiles(config=inputs / "demo.toml", aoi=inputs / "demo.geojson",
                      imagery=inputs / "imagery", truth=inputs / "truth.geojson")
    assert all(Path(p).exists() for p in (files.config, files.aoi, files.imagery, files.truth))
    return {"root": demo_cli["folder"], "files": files, "summary": _summary(demo_cli["json"]["summary"]),
            "cmp": demo_cli["json"]["comparison"]}


@pytest.fixture(scope="session")
def qgis_run_dir(demo_run: dict[str, Any]) -> Path:
    """A complete run directory (the real SYNTHETIC demo run) for the export/QGIS tests."""
    return Path(demo_run["summary"].run_dir)
