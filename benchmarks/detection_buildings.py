"""Building-mask accuracy of geo.detect.building_mask on real VHR data (and the SYNTHETIC demo).

Real, third-party labels from ../shared/data:
- SpaceNet 1 Rio (WorldView-2 RGB, ~0.5 m; EPSG:4326 tiles, so 0.5 m is assumed),
- SpaceNet 4 Atlanta (0.5 m panchromatic, EPSG:32616; polygons rasterised on the tile grid),
- Open Cities AI Accra (drone RGB, ~2 cm; block-averaged 8x to ~0.16 m before detection).
Pixel precision/recall/F1/IoU from global TP/FP/FN per dataset, and the detected/true
area ratio. The SYNTHETIC demo row uses geo.synthetic (labelled synthetic).

    python benchmarks/detection_buildings.py [--method cnn] [--json benchmarks/out/buildings.json]

``--method cnn`` scores each real set with a packaged model that never saw it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.features import rasterize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _paths import shared_data  # noqa: E402

from geo.benchmark import confusion, read_image, read_label, scores  # noqa: E402
from geo.config import DetectParams  # noqa: E402
from geo.detect import building_mask  # noqa: E402
from geo.geoarray import GeoArray  # noqa: E402
from geo.grid import Grid  # noqa: E402

DATA = shared_data()
PARAMS = DetectParams(min_area_m2=20.0)


def _block(ga: GeoArray, k: int) -> GeoArray:
    c, h, w = ga.data.shape
    h2, w2 = h // k, w // k
    d = ga.data[:, :h2 * k, :w2 * k].reshape(c, h2, k, w2, k).mean((2, 4)).astype(np.float32)
    v = ga.valid[:h2 * k, :w2 * k].reshape(h2, k, w2, k).all((1, 3))
    t = ga.grid.transform
    g = Grid(crs=ga.grid.crs, transform=Affine(t.a * k, 0, t.c, 0, t.e * k, t.f), shape=(h2, w2))
    return GeoArray(data=d, valid=v, grid=g, date=ga.date, bands=ga.bands, kind=ga.kind,
                    source_id=ga.source_id)


def cases() -> list[tuple[str, GeoArray, np.ndarray]]:
    out: list[tuple[str, GeoArray, np.ndarray]] = []
    rio = DATA / "spacenet" / "sn1_rio"
    for p in sorted((rio / "3band").glob("*.tif")):
        out.append(("spacenet1_rio", read_image(p, res_m=0.5), read_label(rio / "building_mask" / p.name)))
    atl = DATA / "spacenet" / "sn4_atlanta"
    ga = read_image(atl / "sample_geotiff.tif")
    import geopandas as gpd

    gdf = gpd.read_file(atl / "geotiff_labels.geojson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(atl / "sample_geotiff.tif") as src:
            gdf = gdf.to_crs(src.crs)
    lab = rasterize([(g, 1) for g in gdf.geometry if g is not None and not g.is_empty],
                    out_shape=ga.grid.shape, transform=ga.grid.transform).astype(bool)
    out.append(("spacenet4_atlanta_pan", ga, lab))
    oc = DATA / "open_cities_ai"
    for p in sorted((oc / "images").glob("*.tif")):
        g = read_image(p, res_m=0.02)
        lab = read_label(oc / "masks" / f"{p.stem}_mask.tif")
        k = 8
        h2, w2 = lab.shape[0] // k, lab.shape[1] // k
        lab_k = lab[:h2 * k, :w2 * k].reshape(h2, k, w2, k).mean((1, 3)) > 0.5
        out.append(("open_cities_accra", _block(g, k), lab_k))
    return out


def synthetic_cases() -> list[tuple[str, GeoArray, np.ndarray]]:
    from shapely.affinity import affine_transform

    from geo.synthetic import default_spec, render_series

    spec = default_spec()
    out = []
    for s in render_series(spec):
        shape = s.rgb.shape[1:]
        g = Grid(crs="EPSG:32652", transform=Affine(spec.res_m, 0, 0, 0, -spec.res_m, 0),
                 shape=shape)
        ga = GeoArray(data=s.rgb, valid=~s.cloud, grid=g, date=s.date,
                      bands=("red", "green", "blue"), kind="rgb")
        polys = [affine_transform(p, [1 / spec.res_m, 0, 0, 1 / spec.res_m, 0, 0])
                 for p in s.truth.values()]
        lab = rasterize([(p, 1) for p in polys], out_shape=shape,
                        transform=Affine.identity()).astype(bool) if polys else np.zeros(shape, bool)
        out.append(("SYNTHETIC demo (geo.synthetic)", ga, lab))
    return out


def _figure(out: Path, name: str, ga: GeoArray, lab: np.ndarray, mask: np.ndarray, method: str,
            tp: int, fp: int, fn: int) -> None:
    from _figures import LEGEND, overlay, rgb, save_panels

    out.mkdir(parents=True, exist_ok=True)
    dst = out / f"{name.split(' ')[0]}_{ga.source_id or ga.date}_{method}.png".replace("/", "_")
    iou = scores(tp, fp, fn)[3]
    save_panels(dst, name, [(rgb(ga.data), "image"), (lab, "label (building)"),
                            (overlay(mask, lab), f"{method}: IoU {iou:.2f}\n{LEGEND}")])
    print(dst, file=sys.stderr)


HELD_OUT = {"spacenet1_rio": "spacenet", "spacenet4_atlanta_pan": "spacenet",
            "open_cities_accra": "opencities"}
"""Training-source name of each real set: ``--method cnn`` scores it with a model that never
saw it (leave-one-dataset-out, geo.detect.cnn.held_out)."""


def main() -> None:
    from geo.detect.cnn import held_out

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--method", default="auto", help="building method (auto, rgb-objects, cnn, ...)")
    ap.add_argument("--figures", type=Path, help="write image / label / prediction PNGs here")
    args = ap.parse_args()
    params = DetectParams(min_area_m2=PARAMS.min_area_m2, method=args.method)
    tot: dict[str, dict[str, float]] = {}
    for name, ga, lab in cases() + synthetic_cases():
        t0 = time.perf_counter()
        with held_out(HELD_OUT.get(name)):
            bm = building_mask(ga, params)
        dt = time.perf_counter() - t0
        valid = ga.valid
        tp, fp, fn, _ = confusion(bm.mask, lab, valid)
        if args.figures:
            _figure(args.figures, name, ga, lab, bm.mask, bm.method, tp, fp, fn)
        d = tot.setdefault(name, {"tp": 0, "fp": 0, "fn": 0, "n": 0, "s": 0.0, "mp": 0.0,
                                  "det_px": 0, "true_px": 0, "method": bm.method})
        d["tp"] += tp
        d["fp"] += fp
        d["fn"] += fn
        d["n"] += 1
        d["s"] += dt
        d["mp"] += lab.size / 1e6
        d["det_px"] += int((bm.mask & valid).sum())
        d["true_px"] += int((lab & valid).sum())
    rows = []
    print(f"{'dataset':32s} {'n':>2s} {'method':12s} {'P':>6s} {'R':>6s} {'F1':>6s} {'IoU':>6s} "
          f"{'area ratio':>10s} {'s/MP':>6s}")
    for name, d in tot.items():
        p, r, f1, iou = scores(int(d["tp"]), int(d["fp"]), int(d["fn"]))
        ratio = d["det_px"] / max(d["true_px"], 1)
        rows.append({"dataset": name, "n_images": d["n"], "method": d["method"], "precision": p,
                     "recall": r, "f1": f1, "iou": iou, "area_ratio": ratio,
                     "seconds_per_megapixel": d["s"] / d["mp"]})
        print(f"{name:32s} {d['n']:2d} {d['method']:12s} {p:6.3f} {r:6.3f} {f1:6.3f} {iou:6.3f} "
              f"{ratio:10.3f} {d['s'] / d['mp']:6.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
