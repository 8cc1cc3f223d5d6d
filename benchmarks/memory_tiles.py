"""Peak memory and CPU of the detect stage, tiled vs untiled, against the AOI size.

Input: a **SYNTHETIC** RGB scene at 0.5 m (textured ground, a road grid, bright rectangular
halls 10-60 m on an 80 m lattice, some across every tile seam), written once per size as a
tiled, deflate-compressed GeoTIFF under a temporary folder, block by block (so writing it does
not need the whole scene in memory), with an all-valid mask beside it, laid out as a run's
``.partial`` directory.

Three variants run side by side, each in a fresh child process (peak RSS = the child's
``ru_maxrss``; CPU = its user + system time, so other users of the machine do not count):

- ``bare``: decode every pixel of the scene once (rasterio, block by block): the floor;
- ``untiled``: what the pipeline's detect stage does for a small grid: ``read_to_grid`` of the
  whole scene, ``building_mask``, ``polygonize``;
- ``tiled``: ``geo.detect.tiled.detect_date_tiled`` (``detect.tile_px`` tiles read as windows
  of the scene, thresholds from a lattice sample, footprints merged exactly across seams).

It checks that ``tiled`` and ``untiled`` give the same number of footprints and total area
(identical thresholds up to 4 Mpx; above, the sample is 1 pixel in k²). This is the detect stage
only; ``benchmarks/memory_large.py`` measures a whole streamed ``run``. Run (a few minutes of CPU; run nothing else big beside it)::

    python benchmarks/memory_tiles.py [--sizes 1024 2048 3072] [--tile-px 1024] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine

RES = 0.5
ORIGIN = (400000.0, 5000000.0)
CRS = "EPSG:32633"
DATE = "2022-06-01"


def _halls(size: int, seed: int = 0) -> list[tuple[int, int, int, int]]:
    """(row, col, h, w) of the halls, in pixels: one per 80 m cell, sizes 10-60 m."""
    rng = np.random.default_rng(seed)
    cell = int(80 / RES)
    out = []
    for r0 in range(0, size - cell + 1, cell):
        for c0 in range(0, size - cell + 1, cell):
            h, w = (rng.integers(20, 120, size=2))
            r = r0 + int(rng.integers(0, cell - h))
            c = c0 + int(rng.integers(0, cell - w))
            out.append((r, c, int(h), int(w)))
    return out


def make_scene(folder: Path, size: int) -> None:
    """``scenes/DATE.tif`` (RGB float32) and ``.checkpoints/valid_DATE.tif`` of a run dir."""
    (folder / "scenes").mkdir(parents=True)
    (folder / ".checkpoints").mkdir()
    prof = {"driver": "GTiff", "width": size, "height": size, "crs": CRS,
            "transform": Affine(RES, 0, ORIGIN[0], 0, -RES, ORIGIN[1]), "tiled": True,
            "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    halls = _halls(size)
    rng = np.random.default_rng(1)
    with rasterio.open(folder / "scenes" / f"{DATE}.tif", "w", count=3, dtype="float32",
                       **prof) as dst:
        for i, d in enumerate(("red", "green", "blue"), 1):
            dst.set_band_description(i, d)
        for _, win in dst.block_windows(1):
            r0, c0, h, w = win.row_off, win.col_off, win.height, win.width
            tex = rng.normal(0, 1, (h, w)).astype(np.float32)
            img = np.stack([0.07 + 0.01 * tex, 0.13 + 0.015 * tex, 0.05 + 0.008 * tex])
            rr, cc = np.mgrid[r0:r0 + h, c0:c0 + w]
            road = (rr % 400 < 14) | (cc % 400 < 14)
            img[:, road] = np.array([0.33, 0.33, 0.34], dtype=np.float32)[:, None]
            for hr, hc, hh, hw in halls:
                a0, a1 = max(hr, r0), min(hr + hh, r0 + h)
                b0, b1 = max(hc, c0), min(hc + hw, c0 + w)
                if a0 < a1 and b0 < b1:
                    img[:, a0 - r0:a1 - r0, b0 - c0:b1 - c0] = np.array(
                        [0.58, 0.58, 0.6], dtype=np.float32)[:, None, None]
            img += rng.normal(0, 0.01, img.shape).astype(np.float32)
            dst.write(img, window=win)
    with rasterio.open(folder / ".checkpoints" / f"valid_{DATE}.tif", "w", count=1,
                       dtype="uint8", **prof) as dst:
        for _, win in dst.block_windows(1):
            dst.write(np.ones((1, win.height, win.width), np.uint8), window=win)


CHILD = """
import json, resource, sys
from pathlib import Path
spec = json.loads(sys.argv[1])
mode, folder, size, tile_px = spec["mode"], Path(spec["folder"]), spec["size"], spec["tile_px"]
from affine import Affine
from geo.grid import Grid
res, (x0, y0) = spec["res"], spec["origin"]
grid = Grid(crs=spec["crs"], transform=Affine(res, 0, x0, 0, -res, y0), shape=(size, size))
scene = folder / "scenes" / (spec["date"] + ".tif")
from geo.records import DateRecord, SceneRef
meta = DateRecord(date=spec["date"], source_id="bench", bands=("red", "green", "blue"),
                  kind="rgb", valid_frac=1.0,
                  scene=SceneRef(id="bench", date=spec["date"], properties={}))
out = {}
if mode == "bare":
    import rasterio
    with rasterio.open(scene) as src:
        total = 0.0
        for _, win in src.block_windows(1):
            total += float(src.read(window=win).sum())
elif mode == "untiled":
    import dataclasses
    from geo.config import DetectParams
    from geo.detect import building_mask
    from geo.footprints import polygonize
    from geo.reading import read_to_grid
    params = DetectParams(min_area_m2=50.0)
    ga = dataclasses.replace(read_to_grid(str(scene), grid, date=meta.date,
                                          roles=list(meta.bands)), kind="rgb")
    bm = building_mask(ga, params)
    fp = polygonize(bm.mask, grid, date=meta.date, aoi_name="b", min_area_m2=50.0,
                    alt_mask=bm.alt_mask, invalid=~ga.valid)
    out = {"n": len(fp), "area": float(fp["area_m2"].sum()), "threshold": bm.threshold}
else:
    from geo.config import DetectParams, RunConfig
    from geo.rundir import RunDir
    from geo.detect.tiled import detect_date_tiled
    cfg = RunConfig(detect=DetectParams(min_area_m2=50.0, tile_px=tile_px,
                                        tile_max_building_m=70.0))
    (folder / "masks").mkdir(exist_ok=True)
    _n_valid, det = detect_date_tiled(meta, grid, cfg, RunDir(folder), "b")
    fp = det.footprints
    out = {"n": len(fp), "area": float(fp["area_m2"].sum()),
           "threshold": det.threshold, "tiles": det.tiles}
ru = resource.getrusage(resource.RUSAGE_SELF)
out.update(cpu_s=ru.ru_utime + ru.ru_stime, peak_rss_mb=ru.ru_maxrss / 1024)
print(json.dumps(out))
"""


def run_child(mode: str, folder: Path, size: int, tile_px: int) -> dict[str, Any]:
    spec = {"mode": mode, "folder": str(folder), "size": size, "tile_px": tile_px,
            "res": RES, "origin": ORIGIN, "crs": CRS, "date": DATE}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} {size}: failed\n{proc.stderr[-3000:]}")
    res: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 3072])
    ap.add_argument("--tile-px", type=int, default=1024)
    ap.add_argument("--json", type=Path, default=None)
    ns = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fw_memory_tiles_") as tmp:
        for size in ns.sizes:
            folder = Path(tmp) / f"s{size}"
            make_scene(folder, size)
            res = {m: run_child(m, folder, size, ns.tile_px) for m in ("bare", "untiled",
                                                                        "tiled")}
            rows.append({"size": size, **res})
            print(f"{size}: {json.dumps(res)}", file=sys.stderr, flush=True)
            for p in (folder / "scenes").glob("*.tif"):
                p.unlink()
    cols = ["AOI px", "Mpx", "bare CPU s", "untiled CPU s (×bare)", "tiled CPU s (×bare)",
            "bare RSS MB", "untiled RSS MB", "tiled RSS MB", "tiles", "footprints u/t",
            "area ratio t/u"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        b, u, t = r["bare"], r["untiled"], r["tiled"]
        print(f"| {r['size']}² | {r['size'] ** 2 / 1e6:.1f} | {b['cpu_s']:.1f} | "
              f"{u['cpu_s']:.1f} ({u['cpu_s'] / b['cpu_s']:.0f}×) | "
              f"{t['cpu_s']:.1f} ({t['cpu_s'] / b['cpu_s']:.0f}×) | {b['peak_rss_mb']:.0f} | "
              f"{u['peak_rss_mb']:.0f} | {t['peak_rss_mb']:.0f} | {t['tiles']} | "
              f"{u['n']}/{t['n']} | {t['area'] / u['area'] if u['area'] else math.nan:.5f} |")
    if ns.json is not None:
        ns.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    raise SystemExit(main())
