"""How much a windowed AOI read fetches, and what a second run fetches (SYNTHETIC, loopback).

Writes a full-size synthetic Sentinel-2 10 m band COG (10980 x 10980 uint16, 1024 x 1024
blocks, deflate -- the layout of the Earth Search COGs), serves it from the loopback test
server with HTTP Range support, and reads a 600 m AOI near Ryongsong onto its 10 m grid the way
StacSource does (GDAL /vsicurl/). Then runs StacSource twice over the synthetic test scenario
(tests/_stac_server.py) with one cache folder, without and with injected faults (20 % of
requests answered 500/503, 10 % dropped mid-body, seeded), and counts HTTP requests, asset bytes
sent (dropped halves included) and unique asset bytes (union of the byte ranges answered).

    PYTHONPATH=$PWD python benchmarks/stac_window_bytes.py [--scenario-only]

Numbers are for synthetic data on 127.0.0.1 (no real imagery is reachable offline); the pixel
values are noise, so the COG compresses worse than real imagery (real bands are smaller).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _stac_server import StacServer, aoi_geometry_4326, serve_scenario

from geo.aoi import Aoi
from geo.grid import grid_for_aoi
from geo.http import RetryPolicy
from geo.reading import read_to_grid
from geo.sources.stac import StacSource


def main() -> None:
    d = Path(tempfile.mkdtemp(prefix="fw-bench-"))
    if "--scenario-only" not in sys.argv:
        _big_cog(d)
    _scenario(d)
    shutil.rmtree(d, ignore_errors=True)


def _big_cog(d: Path) -> None:
    (d / "big").mkdir()
    rng = np.random.default_rng(0)
    n = 10980
    base = rng.integers(0, 4000, (n // 10 + 1, n // 10 + 1), dtype="uint16")
    arr = base.repeat(10, 0).repeat(10, 1)[:n, :n] + rng.integers(0, 200, (n, n), dtype="uint16")
    arr += 1000
    prof = {"driver": "COG", "width": n, "height": n, "count": 1, "dtype": "uint16",
            "crs": "EPSG:32652", "transform": from_origin(300000, 4500000, 10, 10), "nodata": 0,
            "blocksize": 1024, "compress": "deflate", "predictor": 2}
    with rasterio.open(d / "big" / "B04.tif", "w", **prof) as dst:
        dst.write(arr, 1)
    del arr, base
    size = (d / "big" / "B04.tif").stat().st_size
    srv = StacServer(d / "big")
    os.environ["CPL_VSIL_CURL_NON_CACHED"] = f"/vsicurl/{srv.url}"  # count every request
    aoi = box(127.6535, 39.9173, 127.6605, 39.9227)
    g = grid_for_aoi(aoi, 10.0)
    read_to_grid(f"/vsicurl/{srv.asset_url('B04.tif')}", g, date="x", bands=[1], roles=["red"])
    sent = sum(srv.state.bytes_sent.values())
    print(f"| windowed read, one band | COG {n}x{n} uint16, {size / 1e6:.1f} MB | AOI grid "
          f"{g.shape[0]}x{g.shape[1]} px | {srv.n_requests} requests, {sent / 1e6:.2f} MB "
          f"({100 * sent / size:.2f} % of the file) |")
    srv.close()


def _scenario(d: Path) -> None:
    os.environ.pop("CPL_VSIL_CURL_NON_CACHED", None)  # as in a real run: GDAL's cache on
    logging.basicConfig(level=logging.ERROR)  # the retry warnings are expected here
    print("| run | requests | asset bytes sent | unique | sent / unique | answered in full / "
          "unique |\n|---|---|---|---|---|---|")
    area = Aoi(name="ryongsong", geometry=aoi_geometry_4326())
    grid = grid_for_aoi(area.geometry, 10.0)
    for label, chaos in (("no faults", None), ("20 % errors + 10 % drops", (0.2, 0.1))):
        srv = StacServer(d / label.replace(" ", "_"))
        serve_scenario(srv, d / label.replace(" ", "_"))
        cache = d / f"cache-{len(label)}"
        for run in (1, 2):
            if chaos is not None and run == 1:
                srv.chaos(error_rate=chaos[0], drop_rate=chaos[1], seed=1)
            n0, (b0, _), a0 = srv.n_requests, srv.byte_stats(), srv.answered_bytes()
            src = StacSource(srv.url, cache_dir=str(cache), period="month",
                             policy=RetryPolicy(max_retries=6, backoff_s=0.05))
            scenes = src.search(area, "2023-01-01", "2023-12-31")
            for s in scenes:
                src.read(s, grid)
            srv.state.chaos = None
            total, unique = srv.byte_stats()
            answered = srv.answered_bytes() - a0
            ratio = (f"{(total - b0) / unique:.2f}x | {answered / unique:.2f}x" if run == 1
                     else "- | -")
            print(f"| {label}, run {run}: search + QA of 5 items + read of {len(scenes)} scenes "
                  f"| {srv.n_requests - n0} | {(total - b0) / 1e3:.0f} kB | {unique / 1e3:.0f} kB "
                  f"| {ratio} |")
        srv.close()


if __name__ == "__main__":
    main()
