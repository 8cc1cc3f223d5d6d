"""How much a windowed AOI read fetches, and what a second run fetches (SYNTHETIC, loopback).

Writes a full-size synthetic Sentinel-2 10 m band COG (10980 x 10980 uint16, 1024 x 1024
blocks, deflate -- the layout of the Earth Search COGs), serves it from the loopback test
server with HTTP Range support, and reads a 600 m AOI near Ryongsong onto its 10 m grid the way
StacSource does (GDAL /vsicurl/). Then runs StacSource twice over the synthetic test scenario
(tests/_stac_server.py) with one cache folder and counts HTTP requests.

    PYTHONPATH=$PWD python benchmarks/stac_window_bytes.py

Numbers are for synthetic data on 127.0.0.1 (no real imagery is reachable offline); the pixel
values are noise, so the COG compresses worse than real imagery (real bands are smaller).
"""

from __future__ import annotations

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
from geo.reading import read_to_grid
from geo.sources.stac import StacSource


def main() -> None:
    d = Path(tempfile.mkdtemp(prefix="fw-bench-"))
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

    srv = StacServer(d / "scenario")
    serve_scenario(srv, d / "scenario")
    os.environ["CPL_VSIL_CURL_NON_CACHED"] = f"/vsicurl/{srv.url}"
    area = Aoi(name="ryongsong", geometry=aoi_geometry_4326())
    grid = grid_for_aoi(area.geometry, 10.0)
    for run in (1, 2):
        n0, b0 = srv.n_requests, sum(srv.state.bytes_sent.values())
        src = StacSource(srv.url, cache_dir=str(d / "cache"), period="month")
        scenes = src.search(area, "2023-01-01", "2023-12-31")
        for s in scenes:
            src.read(s, grid)
        print(f"| run {run}: search + QA of 5 items + read of {len(scenes)} scenes x 6 bands | "
              f"{srv.n_requests - n0} requests | "
              f"{(sum(srv.state.bytes_sent.values()) - b0) / 1e3:.0f} kB |")
    srv.close()
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
