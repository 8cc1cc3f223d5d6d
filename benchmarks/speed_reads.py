"""Speed and memory of windowed AOI reads vs reading the whole scene (baseline), side by side.

The scene is a SYNTHETIC Sentinel-2-sized band (10980 x 10980 uint16, tiled, deflate) written
to a temporary folder; the AOI is a 2 km x 2 km window at 10 m (the size of a plant AOI).

- factorywatch: ``geo.reading.read_to_grid`` (a GDAL WarpedVRT onto the AOI grid: reads only
  the blocks the grid needs);
- baseline: ``rasterio`` reads the whole band, then ``rasterio.warp.reproject`` onto the grid
  (what a notebook does when it "opens the scene and clips it").

Peak memory is measured per variant in a fresh subprocess (ru_maxrss). Run:

    python benchmarks/speed_reads.py [--size 10980] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

ORIGIN = (300000.0, 4600020.0)


def make_scene(path: Path, size: int) -> None:
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "uint16",
               "crs": "EPSG:32652", "transform": Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1]),
               "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dst:
        for _, win in dst.block_windows(1):
            dst.write(rng.integers(500, 3000, (win.height, win.width), dtype="uint16"), 1,
                      window=win)


def grid_args(size: int) -> tuple[str, list[float], list[int]]:
    # a 2 km AOI near the centre of the scene, on a 10 m grid offset by half a pixel
    cx = ORIGIN[0] + size * 5 + 5
    cy = ORIGIN[1] - size * 5 - 5
    return "EPSG:32652", [10, 0, cx - 1000, 0, -10, cy + 1000], [200, 200]


def run_variant(variant: str, path: str, size: int) -> dict[str, float]:
    from geo.grid import Grid

    crs, t, shape = grid_args(size)
    grid = Grid(crs, Affine(*t), (shape[0], shape[1]))
    t0 = time.perf_counter()
    if variant == "factorywatch":
        from geo.reading import read_to_grid

        out = read_to_grid(path, grid, date="2020-01-01").data[0]
    else:
        from rasterio.warp import Resampling, reproject

        with rasterio.open(path) as src:
            full = src.read(1).astype("float32")
            out = np.zeros(grid.shape, "float32")
            reproject(full, out, src_transform=src.transform, src_crs=src.crs,
                      dst_transform=grid.transform, dst_crs=grid.crs,
                      resampling=Resampling.bilinear)
    secs = time.perf_counter() - t0
    return {"seconds": secs, "checksum": float(out.mean()),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=10980)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--_variant", help=argparse.SUPPRESS)
    ap.add_argument("--_path", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._variant:
        print(json.dumps(run_variant(a._variant, a._path, a.size)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic_s2_band.tif"
        make_scene(path, a.size)
        res: dict[str, list[dict[str, float]]] = {"factorywatch": [], "baseline": []}
        for _ in range(a.repeat):
            for v in ("factorywatch", "baseline"):  # interleaved, side by side
                r = subprocess.run([sys.executable, __file__, "--_variant", v, "--_path", str(path),
                                    "--size", str(a.size)], capture_output=True, text=True,
                                   check=True)
                res[v].append(json.loads(r.stdout.strip().splitlines()[-1]))
    med = {v: float(np.median([r["seconds"] for r in rs])) for v, rs in res.items()}
    mem = {v: float(np.median([r["peak_rss_mb"] for r in rs])) for v, rs in res.items()}
    summary = {"scene_px": a.size, "aoi_px": 200, "repeat": a.repeat,
               "median_seconds": med, "median_peak_rss_mb": mem,
               "speedup_ratio": med["baseline"] / med["factorywatch"],
               "memory_ratio": mem["baseline"] / mem["factorywatch"],
               "same_pixels": abs(res["factorywatch"][0]["checksum"] - res["baseline"][0]["checksum"]) < 1.0}
    print("| variant | median s | peak RSS MB |\n|---|---|---|")
    for v in ("baseline", "factorywatch"):
        print(f"| {v} | {med[v]:.3f} | {mem[v]:.0f} |")
    print(f"\nspeed-up {summary['speedup_ratio']:.1f}x, memory {summary['memory_ratio']:.1f}x less "
          f"(SYNTHETIC {a.size}x{a.size} band, 200x200 AOI window)")
    if a.json:
        a.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
