"""Guided mode at VHR on REAL third-party images and footprints: IoU and area error by size.

Data (``$FACTORYWATCH_SHARED/data``, see its README):

* SpaceNet 4 Atlanta: one 0.5 m panchromatic GeoTIFF tile and its 43 labelled footprints
  (footprints cut by the tile edge, ``partialDec`` < 0.95, are left out);
* xBD Joplin (pre-disaster QuickBird RGB, 1024 px, ``pan_resolution`` 0.63 m in its metadata;
  this PNG is pan-sharpened, so the pixel size is taken from the labels: the UTM area of each
  lon/lat polygon over its pixel-coordinate area): 185 footprints.

For every footprint three priors are made from the truth (seeded): ``shift+scale`` (shifted by
up to 5 m in a random direction and scaled by 0.8–1.2 about its centroid), ``scale`` (scaled
only) and ``point`` (the centroid shifted by up to 5 m, ``size_m2`` = true area × 0.8–1.2).
All other footprints of the image are given as priors too (perturbed the same way), as an
analyst would. The pipeline's own refinement (:func:`geo.refine.refine_prior`) then fits each
prior; a date that does not support a fit ("not observed") is counted, not scored.

Usage::

    python benchmarks/guided_vhr.py          # about 2 minutes on 1 core

Prints markdown tables and writes ``benchmarks/out/guided_vhr.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from affine import Affine
from PIL import Image
from shapely import affinity, wkt
from shapely.geometry import Point

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _paths import shared_data

from geo.geoarray import GeoArray
from geo.grid import Grid
from geo.guided import Prior
from geo.refine import refine_prior

CLASSES = ((0, 100), (100, 500), (500, 2000), (2000, math.inf))
VARIANTS = ("shift+scale", "scale", "point")


def spacenet() -> tuple[GeoArray, list[shapely.Polygon]]:
    d = shared_data() / "spacenet/sn4_atlanta"
    with rasterio.open(d / "sample_geotiff.tif") as src:
        data = src.read().astype(np.float32)
        grid = Grid(str(src.crs), src.transform, (src.height, src.width))
    lab = gpd.read_file(d / "geotiff_labels.geojson")
    keep = lab[lab["partialDec"].astype(float) >= 0.95] if "partialDec" in lab else lab
    polys = [g for g in keep.geometry if g is not None and g.geom_type == "Polygon"]
    ga = GeoArray(data=data, valid=np.ones(grid.shape, bool), grid=grid, date="2017-01-01",
                  bands=("pan",), kind="pan")
    return ga, polys


def xbd() -> tuple[GeoArray, list[shapely.Polygon]]:
    d = shared_data() / "xbd"
    img = np.asarray(Image.open(d / "images/joplin-tornado_00000000_pre_disaster.png"))
    lab = json.loads((d / "labels/joplin-tornado_00000000_pre_disaster.json").read_text())
    xy = [wkt.loads(f["wkt"]) for f in lab["features"]["xy"]]
    ll = gpd.GeoSeries([wkt.loads(f["wkt"]) for f in lab["features"]["lng_lat"]], crs=4326)
    utm = ll.to_crs(ll.estimate_utm_crs())
    ratios = [u.area / p.area for u, p in zip(utm, xy, strict=True) if p.area > 20]
    res = float(math.sqrt(np.median(ratios)))
    t = Affine(res, 0.0, 0.0, 0.0, -res, 0.0)
    polys = [affinity.affine_transform(p, [res, 0, 0, -res, 0, 0]) for p in xy]
    grid = Grid("EPSG:32615", t, img.shape[:2])
    data = np.moveaxis(img[..., :3], -1, 0).astype(np.float32)
    ga = GeoArray(data=data, valid=np.ones(grid.shape, bool), grid=grid, date="2009-08-08",
                  bands=("red", "green", "blue"), kind="rgb")
    return ga, [p for p in polys if p.geom_type == "Polygon" and p.area > 0]


def _perturb(g: shapely.Polygon, variant: str, rng: np.random.Generator, pid: str) -> Prior:
    ang = rng.uniform(0, 2 * math.pi)
    dist = rng.uniform(0, 5.0)
    scale = float(rng.uniform(0.8, 1.2))
    dx, dy = dist * math.cos(ang), dist * math.sin(ang)
    c = g.centroid
    if variant == "point":
        return Prior(prior_id=pid, name=pid, geometry=Point(c.x + dx, c.y + dy),
                     size_m2=float(g.area) * scale)
    s = math.sqrt(scale)  # ±20 % in area
    h = affinity.scale(g, s, s, origin=c)
    if variant == "shift+scale":
        h = affinity.translate(h, dx, dy)
    return Prior(prior_id=pid, name=pid, geometry=h)


def run(name: str, ga: GeoArray, truth: list[shapely.Polygon], seed: int) -> list[dict[str, Any]]:
    from geo.guided import prior_outline

    out = []
    for variant in VARIANTS:
        rng = np.random.default_rng(seed)
        priors = [_perturb(g, variant, rng, f"b{i}") for i, g in enumerate(truth)]
        outlines = [prior_outline(p) for p in priors]
        for i, (p, g) in enumerate(zip(priors, truth, strict=True)):
            near = [outlines[j] for j in range(len(priors))
                    if j != i and outlines[j].distance(outlines[i]) < 30.0]
            rows = refine_prior(p, outlines[i], near, [ga], ga.grid, 0.0)
            r = rows[0]
            o = outlines[i]
            rec: dict[str, Any] = {"dataset": name, "variant": variant, "area_true": g.area,
                                   "state": r["state"], "note": r["note"],
                                   "prior_iou": float(o.intersection(g).area / o.union(g).area)}
            if r["state"] == "roofed" and r["geometry"] is not None:
                m = r["geometry"]
                rec["iou"] = float(m.intersection(g).area / m.union(g).area)
                rec["area_err"] = float((m.area - g.area) / g.area)
                rec["in_interval"] = bool(abs(m.area - g.area) <= 1.96 * r["area_sd_m2"])
            out.append(rec)
    return out


def summarise(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for ds in [*sorted({r["dataset"] for r in recs}), "all"]:
        for v in VARIANTS:
            for lo, hi in CLASSES:
                sel = [r for r in recs if (ds == "all" or r["dataset"] == ds)
                       and r["variant"] == v and lo <= r["area_true"] < hi]
                if not sel:
                    continue
                got = [r for r in sel if "iou" in r]
                row: dict[str, Any] = {"dataset": ds, "variant": v,
                                       "size": f"{lo}–{hi if hi < math.inf else ''}",
                                       "n": len(sel), "measured": len(got)}
                row["median_prior_iou"] = round(float(np.median([r["prior_iou"] for r in sel])),
                                                3)
                if got:
                    row["median_iou"] = round(float(np.median([r["iou"] for r in got])), 3)
                    row["median_abs_area_err_pct"] = round(float(np.median(
                        [abs(r["area_err"]) for r in got])) * 100, 1)
                    row["median_area_err_pct"] = round(float(np.median(
                        [r["area_err"] for r in got])) * 100, 1)
                    row["iou_ge_0.5"] = round(float(np.mean([r["iou"] >= 0.5 for r in got])), 3)
                    row["coverage"] = round(float(np.mean([r["in_interval"] for r in got])), 3)
                rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "out" / "guided_vhr.json"))
    args = ap.parse_args()
    recs: list[dict[str, Any]] = []
    for name, loader in (("spacenet_atlanta", spacenet), ("xbd_joplin", xbd)):
        ga, truth = loader()
        print(f"{name}: {len(truth)} footprints, {ga.grid.res_m:.2f} m", file=sys.stderr)
        recs += run(name, ga, truth, args.seed)
    rows = summarise(recs)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "records": recs}, indent=1,
                                         default=str))
    print("REAL images and footprints; priors = true outlines perturbed\n")
    print("| data | prior | size m² | n | measured | prior's median IoU | median IoU | IoU ≥ 0.5 | "
          "median abs area err % | median area err % | 95% coverage |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['variant']} | {r['size']} | {r['n']} | {r['measured']} | "
              f"{r['median_prior_iou']} | {r.get('median_iou', '–')} | {r.get('iou_ge_0.5', '–')} | "
              f"{r.get('median_abs_area_err_pct', '–')} | {r.get('median_area_err_pct', '–')} | "
              f"{r.get('coverage', '–')} |")


if __name__ == "__main__":
    main()
