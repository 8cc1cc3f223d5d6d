"""Fault injection on the loopback server: 500s, dropped connections, slow answers.

Retries must recover, and the cache must never hold a corrupt or partial entry.
"""

from __future__ import annotations

from pathlib import Path

import _stac_server as _fx
import numpy as np
import pytest
from _stac_server import (
    StacServer,
    aoi_geometry_4326,
)

from geo.aoi import Aoi
from geo.errors import NetworkError
from geo.grid import grid_for_aoi
from geo.http import RetryPolicy
from geo.reading import GDAL_ENV
from geo.sources.cache import WindowCache
from geo.sources.stac import StacSource

stac_server = _fx.stac_server  # the loopback server, one per module
stac = _fx.stac

AOI = Aoi(name="ryongsong", geometry=aoi_geometry_4326())
START, END = "2023-01-01", "2023-12-31"
APRIL = "/assets/S2A_52SCG_20230410_0_L2A"


def _source(srv: StacServer, cache: Path, *, retries: int = 4, timeout_s: float = 5.0,
            offline: bool = False) -> StacSource:
    return StacSource(srv.url, cache_dir=str(cache), period="month", offline=offline,
                      policy=RetryPolicy(max_retries=retries, backoff_s=0.01, timeout_s=timeout_s))


@pytest.fixture
def no_gdal_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let our retry loop, not GDAL's, handle every failure (and keep the tests quick)."""
    monkeypatch.setitem(GDAL_ENV, "GDAL_HTTP_MAX_RETRY", "0")


@pytest.fixture(scope="module")
def clean(stac_server: StacServer, tmp_path_factory: pytest.TempPathFactory
          ) -> list[np.ndarray]:
    """Reference pixels of every selected scene, read once per module with no faults into a
    separate cache (with GDAL's in-process HTTP cache off, as in ``stac``, so that no later
    read is answered from memory)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CPL_VSIL_CURL_NON_CACHED", f"/vsicurl/{stac_server.url}")
        stac_server.state.faults.clear()
        src = _source(stac_server, tmp_path_factory.mktemp("clean"))
        grid = grid_for_aoi(AOI.geometry, 10.0)
        return [src.read(s, grid).data for s in src.search(AOI, START, END)]


def _assert_cache_sound(root: Path) -> None:
    assert not list(root.rglob("*.part")), "temporary files left behind"
    cache = WindowCache(root)
    for p in root.rglob("*.npz"):
        with open(p, "rb") as fh, np.load(fh) as z:
            assert z["data"].shape == z["valid"].shape
    assert cache.root == root


def _run(src: StacSource) -> list[np.ndarray]:
    grid = grid_for_aoi(AOI.geometry, 10.0)
    return [src.read(s, grid).data for s in src.search(AOI, START, END)]


def test_search_retries_500s(stac: StacServer, tmp_path: Path) -> None:
    stac.inject("/search", "500", times=2)
    stac.inject("/", "500", times=1)
    src = _source(stac, tmp_path)
    assert [s.date for s in src.search(AOI, START, END)] == [
        "2023-04-10", "2023-05-10", "2023-07-15"]


def test_search_retries_a_slow_answer(stac: StacServer, tmp_path: Path) -> None:
    n0 = stac.n_requests_to("/search")
    assert len(_source(stac, tmp_path / "clean", timeout_s=0.5).search(AOI, START, END)) == 3
    clean = stac.n_requests_to("/search") - n0
    stac.inject("/search", "slow", times=1, delay_s=2.0)
    src = _source(stac, tmp_path / "slow", timeout_s=0.5)
    assert len(src.search(AOI, START, END)) == 3
    # the slow answer was given up after timeout_s and asked again, not waited out
    assert stac.n_requests_to("/search") - n0 == 2 * clean + 1


def test_search_dropped_mid_body(stac: StacServer, tmp_path: Path) -> None:
    stac.inject("/search", "drop", times=2)
    assert len(_source(stac, tmp_path).search(AOI, START, END)) == 3


@pytest.mark.usefixtures("no_gdal_retries")
@pytest.mark.parametrize("kind", ["500", "drop", "slow"])
def test_cog_faults_recover_with_identical_pixels(
    stac: StacServer, tmp_path: Path, clean: list[np.ndarray], kind: str
) -> None:
    for band in ("B02.tif", "B11.tif", "SCL.tif"):
        stac.inject(f"{APRIL}/{band}", kind, times=2, delay_s=2.0)
    got = _run(_source(stac, tmp_path, timeout_s=1.0))
    assert all(f.times == 0 for f in stac.state.faults), "faults were not hit"
    for a, b in zip(clean, got, strict=True):
        np.testing.assert_array_equal(a, b)
    _assert_cache_sound(tmp_path)


@pytest.mark.usefixtures("no_gdal_retries")
def test_persistent_failure_is_network_error_and_caches_nothing_bad(
    stac: StacServer, tmp_path: Path, clean: list[np.ndarray]
) -> None:
    src = _source(stac, tmp_path, retries=2)
    scenes = src.search(AOI, START, END)
    stac.inject(f"{APRIL}/B08.tif", "drop", times=1000)
    grid = grid_for_aoi(AOI.geometry, 10.0)
    with pytest.raises(NetworkError, match=r"failed after 3 attempts.*--offline") as err:
        src.read(scenes[0], grid)
    assert "\n" not in str(err.value)
    stac.state.faults.clear()
    _assert_cache_sound(tmp_path)
    assert not list(tmp_path.rglob("B08-*.npz")), "a failed window was cached"
    # once the network is back, the same cache completes the run with the right pixels
    got = _run(_source(stac, tmp_path))
    for a, b in zip(clean, got, strict=True):
        np.testing.assert_array_equal(a, b)
