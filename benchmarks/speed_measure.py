"""Speed of ``factorywatch measure`` against the number of footprints (1,000 → 110,000).

Input: the **real** xBD building outlines of one Joplin tile (``xbd/labels``, 185 buildings,
pre- and post-disaster polygons digitised by xView2 annotators), repeated on a grid of tiles
500 m apart. The layout and the changes between the two dates are **SYNTHETIC**: in each tile a
fixed random 5 % of the buildings are missing on the second date (demolished), 5 % appear only
on the second date (new) and 10 % are scaled by 1.3 about their centroid on the second date
(grown). The footprint count ``N`` is the total over both dates (about N/2 per date).

Each size runs the real CLI in a fresh child process::

    factorywatch measure bench_N.geojson --date-field date -o RUN --aoi-name bench

and reports its CPU time (user + system of the child, so the load from other users of the
machine does not count), wall time, peak RSS, the CPU per footprint and that figure relative to
the smallest size. Growth no faster than ``n log n`` means ``per_fp_rel`` ≤ ``log(N) /
log(N0)``, printed beside it as ``nlogn_bound``. A second child times tracking
(``track_footprints``) and measurement (``measure_sites``) alone in CPU seconds, without
start-up, reading or writing: ``algo_per_fp_rel`` is their CPU per footprint against the
smallest size. Stage wall times come from the run's ``run.json``.

Run (the 110,000 case takes a few minutes of CPU)::

    python benchmarks/speed_measure.py [--sizes 1000 10000 110000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely import affinity, wkt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _paths import shared_data

UTM = "EPSG:32615"  # Joplin, Missouri
TILE_M = 500.0
XBD = "xbd/labels/joplin-tornado_00000000_{}_disaster.json"


def xbd_outlines() -> tuple[gpd.GeoSeries, gpd.GeoSeries]:
    """Pre- and post-disaster building outlines of the xBD tile, in UTM 15N (same order)."""
    out = []
    for kind in ("pre", "post"):
        feats = json.loads((shared_data() / XBD.format(kind)).read_text())["features"]
        by_uid = {f["properties"]["uid"]: wkt.loads(f["wkt"]) for f in feats["lng_lat"]}
        out.append(by_uid)
    uids = sorted(set(out[0]) & set(out[1]))
    pre = gpd.GeoSeries([out[0][u] for u in uids], crs=4326).to_crs(UTM)
    post = gpd.GeoSeries([out[1][u] for u in uids], crs=4326).to_crs(UTM)
    return pre, post


def make_footprints(n_target: int, seed: int = 0) -> gpd.GeoDataFrame:
    """About ``n_target`` footprints over two dates (EPSG:4326), tiles of real outlines."""
    pre, post = xbd_outlines()
    x0, y0 = pre.total_bounds[0], pre.total_bounds[1]
    pre = pre.translate(-x0, -y0)
    post = post.translate(-x0, -y0)
    per_tile = 1.9 * len(pre)  # 5 % only before, 5 % only after, 90 % on both dates
    n_tiles = max(1, round(n_target / per_tile))
    side = math.ceil(math.sqrt(n_tiles))
    rng = np.random.default_rng(seed)
    geoms: list[Any] = []
    dates: list[str] = []
    for t in range(n_tiles):
        dx, dy = 300000.0 + (t % side) * TILE_M, 4100000.0 + (t // side) * TILE_M
        u = rng.random(len(pre))
        for i in range(len(pre)):
            a = affinity.translate(pre.iloc[i], dx, dy)
            b = affinity.translate(post.iloc[i], dx, dy)
            if u[i] >= 0.05:  # not new: seen on the first date
                geoms.append(a)
                dates.append("2011-05-20")
            if u[i] < 0.05 or u[i] >= 0.10:  # not demolished: seen on the second date
                if 0.10 <= u[i] < 0.20:
                    b = affinity.scale(b, 1.3, 1.3, origin="centroid")
                geoms.append(b)
                dates.append("2011-06-03")
    gdf = gpd.GeoDataFrame({"date": dates}, geometry=geoms, crs=UTM)
    return gdf.to_crs(4326)


ALGO = """
import sys, time
from geo.config import MatchParams, MeasureParams
from geo.match import track_footprints
from geo.measure import measure_sites
from geo.vector import read_footprints
fp = read_footprints([sys.argv[1]], aoi_name="bench", date_field="date")
t0 = time.process_time()
tr = track_footprints(fp, dates=sorted(set(fp["date"])), aoi_name="bench", params=MatchParams())
t1 = time.process_time()
measure_sites(tr, MeasureParams(digitising_sd_m=1.0))
t2 = time.process_time()
print(t1 - t0, t2 - t1)
"""
"""CPU of tracking and of measurement alone (no start-up, reading or writing), in a child."""


def run_one(path: Path, run_dir: Path) -> dict[str, Any]:
    """Run ``factorywatch measure`` on one file in a child process; CPU, wall, peak RSS."""
    code = (
        "import resource, sys, time\n"
        "from geo.cli import main\n"
        "t0 = time.process_time()\n"
        "try:\n"
        "    main(sys.argv[1:], standalone_mode=False)\n"
        "finally:\n"
        "    ru = resource.getrusage(resource.RUSAGE_SELF)\n"
        "    print('CPU', ru.ru_utime + ru.ru_stime, ru.ru_maxrss, file=sys.stderr)\n"
    )
    args = [sys.executable, "-c", code, "measure", str(path), "--date-field", "date",
            "-o", str(run_dir), "--aoi-name", "bench", "--overwrite", "-q"]
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ))
    algo = subprocess.run([sys.executable, "-c", ALGO, str(path)], capture_output=True,
                          text=True, env=dict(os.environ))
    if algo.returncode != 0:
        raise SystemExit(f"track+measure failed on {path}:\n{algo.stderr[-3000:]}")
    track_s, measure_s = (float(x) for x in algo.stdout.split())
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"measure failed on {path}:\n{proc.stderr[-3000:]}")
    line = [x for x in proc.stderr.splitlines() if x.startswith("CPU ")][-1].split()
    manifest = json.loads((run_dir / "run.json").read_text())
    stages = {s["stage"]: s.get("cpu_s", s.get("seconds")) for s in manifest["stages"]}
    return {"cpu_s": float(line[1]), "wall_s": wall, "peak_rss_mb": int(line[2]) / 1024,
            "n_sites": manifest["n_sites"], "stages": stages, "track_cpu_s": track_s,
            "measure_cpu_s": measure_s}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 110000])
    ap.add_argument("--json", type=Path, default=None)
    ns = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fw_speed_measure_") as tmp:
        for n in ns.sizes:
            gdf = make_footprints(n)
            path = Path(tmp) / f"bench_{n}.geojson"
            gdf.to_file(path, driver="GeoJSON")
            res = run_one(path, Path(tmp) / f"run_{n}")
            res["n_footprints"] = len(gdf)
            rows.append(res)
            print(f"N={len(gdf)}: CPU {res['cpu_s']:.1f} s, wall {res['wall_s']:.1f} s, "
                  f"peak RSS {res['peak_rss_mb']:.0f} MB, stages {res['stages']}",
                  file=sys.stderr, flush=True)
    n0, c0 = rows[0]["n_footprints"], rows[0]["cpu_s"]
    table = pd.DataFrame([{
        "footprints": r["n_footprints"], "sites": r["n_sites"], "cpu_s": round(r["cpu_s"], 1),
        "wall_s": round(r["wall_s"], 1), "peak_rss_mb": round(r["peak_rss_mb"]),
        "ms_per_fp": round(1000 * r["cpu_s"] / r["n_footprints"], 3),
        "track_cpu_s": round(r["track_cpu_s"], 2), "measure_cpu_s": round(r["measure_cpu_s"], 2),
        "algo_per_fp_rel": round(((r["track_cpu_s"] + r["measure_cpu_s"]) / r["n_footprints"])
                                 / ((rows[0]["track_cpu_s"] + rows[0]["measure_cpu_s"]) / n0),
                                 2),
        "per_fp_rel": round((r["cpu_s"] / r["n_footprints"]) / (c0 / n0), 2),
        "nlogn_bound": round(math.log(r["n_footprints"]) / math.log(n0), 2),
    } for r in rows])
    cols = list(table.columns)
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for rec in table.itertuples(index=False):
        print("| " + " | ".join(str(v) for v in rec) + " |")
    if ns.json is not None:
        ns.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    raise SystemExit(main())
