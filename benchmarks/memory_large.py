"""Peak memory and CPU of a whole ``factorywatch run`` against the AOI size, streamed.

Input: a **SYNTHETIC** two-date RGB pair at 0.5 m (uint8, textured ground, a road grid,
bright halls 10-60 m on an 80 m lattice; the second date is 5 % brighter and has new halls
in one cell out of seven), written block by block (never held whole) as tiled deflate
GeoTIFFs under a temporary folder, with an AOI and a config that sets
``[grid] memory_budget_mb = 2000`` (``--budget-mb``; a grid whose in-memory run would need more
streams block by block, see ``geo/stream.py``).

Side by side, each in a fresh child process (peak RSS = the child's ``ru_maxrss`` from
``wait4``; CPU = its user + system time, so other users of the machine do not count):

- ``bare``: decode every pixel of both input files once (rasterio, block by block): the floor;
- ``run``: ``python -m geo.cli run <config> -o <dir>``, the whole pipeline (read and warp,
  co-registration, normalisation, detection, change maps, tracking, outputs, report).

Check ``df -h /tmp`` first: a 20,000² pair needs about 1.2 GB of input and 6 GB of run
outputs and staging. Run (5k and 10k: about 30 CPU-minutes on this machine)::

    nice -n 10 python benchmarks/memory_large.py --sizes 5000 10000 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _child import run_child

RES = 0.5
ORIGIN = (400000.0, 5000000.0)
CRS = "EPSG:32633"
DATES = ("2021-06-01", "2022-06-01")
MARGIN_PX = 200
BLOCK = 1024


def _halls(size: int, seed: int) -> list[tuple[int, int, int, int]]:
    """(row, col, h, w) of the halls in pixels: one per 80 m cell, 10-60 m a side."""
    rng = np.random.default_rng(seed)
    cell = int(80 / RES)
    out = []
    for r0 in range(0, size - cell + 1, cell):
        for c0 in range(0, size - cell + 1, cell):
            h, w = rng.integers(20, 120, size=2)
            out.append((r0 + int(rng.integers(0, cell - h)), c0 + int(rng.integers(0, cell - w)),
                        int(h), int(w)))
    return out


def _block(r0: int, c0: int, h: int, w: int, halls: np.ndarray, gain: float,
           rng: np.random.Generator) -> np.ndarray:
    tex = rng.normal(0, 1, (h, w)).astype(np.float32)
    img = np.stack([70 + 10 * tex, 120 + 14 * tex, 50 + 8 * tex])
    rr, cc = np.mgrid[r0:r0 + h, c0:c0 + w]
    img[:, (rr % 400 < 14) | (cc % 400 < 14)] = np.float32(150)
    near = ((halls[:, 0] < r0 + h) & (halls[:, 0] + halls[:, 2] > r0)
            & (halls[:, 1] < c0 + w) & (halls[:, 1] + halls[:, 3] > c0))
    for hr, hc, hh, hw in halls[near]:
        a0, a1, b0, b1 = max(hr, r0), min(hr + hh, r0 + h), max(hc, c0), min(hc + hw, c0 + w)
        if a0 < a1 and b0 < b1:
            img[:, a0 - r0:a1 - r0, b0 - c0:b1 - c0] = np.float32(200)
    img = img * gain + rng.normal(0, 3, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_inputs(root: Path, size: int, budget_mb: float = 2000.0, tile_px: int = 2048) -> Path:
    """Both dates, the AOI and the config under ``root``; returns the config path."""
    img = root / "imagery"
    img.mkdir(parents=True)
    full = size + 2 * MARGIN_PX
    x0, y0 = ORIGIN[0] - MARGIN_PX * RES, ORIGIN[1] + MARGIN_PX * RES
    prof = {"driver": "GTiff", "width": full, "height": full, "count": 3, "dtype": "uint8",
            "crs": CRS, "transform": Affine(RES, 0, x0, 0, -RES, y0), "tiled": True,
            "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    base = _halls(full, 0)
    new = [h for i, h in enumerate(_halls(full, 7)) if i % 7 == 3]
    for k, date in enumerate(DATES):
        halls = np.array(base + (new if k else []), dtype=np.int64)
        rng = np.random.default_rng(10 + k)
        with rasterio.open(img / f"{date}.tif", "w", **prof) as dst:
            for i, band in enumerate(("red", "green", "blue"), 1):
                dst.set_band_description(i, band)
            for r0 in range(0, full, BLOCK):
                for c0 in range(0, full, BLOCK):
                    h, w = min(BLOCK, full - r0), min(BLOCK, full - c0)
                    dst.write(_block(r0, c0, h, w, halls, 1.05 if k else 1.0, rng),
                              window=Window(c0, r0, w, h))
    from geo.grid import to_crs

    aoi = to_crs(shapely.box(ORIGIN[0], ORIGIN[1] - size * RES, ORIGIN[0] + size * RES,
                             ORIGIN[1]), CRS, "EPSG:4326")
    (root / "aoi.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {
            "site_id": "memory_large", "name": "SYNTHETIC benchmark AOI (not real imagery)",
            "synthetic": True, "point_kind": "synthetic", "coord_confidence": "low",
            "coord_source": "synthetic scene (benchmarks/memory_large.py)"},
        "geometry": shapely.geometry.mapping(aoi)}]}))
    cfg = root / "run.toml"
    cfg.write_text(f"""# SYNTHETIC benchmark AOI ({size} px at {RES} m)
[aoi]
geometry = "aoi.geojson"
name = "memory_large"

[source]
kind = "local"
path = "imagery"
bands = ["red", "green", "blue"]

[grid]
resolution_m = {RES}
memory_budget_mb = {budget_mb:g}

[detect]
tile_max_building_m = 70.0
tile_px = {tile_px}
""")
    return cfg


BARE = """
import sys, rasterio
total = 0.0
for p in sys.argv[1:]:
    with rasterio.open(p) as src:
        for _, win in src.block_windows(1):
            total += float(src.read(window=win).sum())
"""


def measure(cmd: list[str], log: Path) -> dict[str, Any]:
    """Run ``cmd`` as a child (:func:`_child.run_child`, output to ``log``), rounded."""
    r = run_child(cmd, log=log)
    return {"cpu_s": round(r["cpu_s"], 1), "peak_rss_mb": round(r["peak_rss_mb"]),
            "wall_s": round(r["wall_s"], 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--budget-mb", type=float, default=2000.0,
                    help="[grid] memory_budget_mb of the runs (a grid above it streams)")
    ap.add_argument("--tile-px", type=int, default=2048, help="[detect] tile_px: the block side")
    ap.add_argument("--keep", type=Path, default=None, help="keep each run's logs here")
    ns = ap.parse_args(argv)
    rows = []
    for size in ns.sizes:
        with tempfile.TemporaryDirectory(prefix="fw_memory_large_") as tmp:
            root = Path(tmp)
            cfg = make_inputs(root, size, ns.budget_mb, ns.tile_px)
            logs = ns.keep or root
            logs.mkdir(parents=True, exist_ok=True)
            bare = measure([sys.executable, "-c", BARE,
                            *map(str, sorted((root / "imagery").glob("*.tif")))],
                           logs / f"bare_{size}.log")
            run = measure([sys.executable, "-m", "geo.cli", "run", str(cfg), "-o",
                           str(root / "run"), "-v"], logs / f"run_{size}.log")
            manifest = json.loads((root / "run" / "run.json").read_text())
            stages = {s["stage"]: s["seconds"] for s in manifest["stages"]}
            rows.append({"size": size, "bare": bare, "run": run, "stages_wall_s": stages,
                         "n_sites": manifest["n_sites"]})
            print(f"{size}: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
    print(table(rows))
    if ns.json is not None:
        ns.json.write_text(json.dumps(rows, indent=2))
    return 0


def table(rows: list[dict[str, Any]]) -> str:
    """The README table: one row per AOI size."""
    head = ["AOI px", "Mpx", "bare decode CPU s", "run CPU s", "run / bare", "bare RSS MB",
            "run peak RSS MB", "sites"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [f"| {r['size']:,}² | {r['size'] ** 2 / 1e6:.0f} | {r['bare']['cpu_s']:.1f} | "
              f"{r['run']['cpu_s']:.0f} | {r['run']['cpu_s'] / r['bare']['cpu_s']:.0f}× | "
              f"{r['bare']['peak_rss_mb']} | {r['run']['peak_rss_mb']} | {r['n_sites']} |"
              for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
