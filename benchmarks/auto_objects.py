"""Automatic mode, object level: recall and precision for buildings >= 500 m² on REAL scenes.

Real third-party imagery and labels from ../shared/data (the scenes of
benchmarks/detection_buildings.py): SpaceNet 1 Rio (RGB, 0.5 m assumed), SpaceNet 4 Atlanta
(0.5 m PAN), Open Cities AI Accra (drone RGB block-averaged to 0.16 m). Each scene is run
as it is and block-averaged to 10 m (real pixels, Sentinel-2-like sampling without S2's own
PSF or bands), through the pipeline's own stages: ``building_mask`` (auto) -> ``polygonize``
-> ``gate_footprints``. Also prints what the scene-wide built-up threshold and ``auto`` return
on OSCD Paris-Bercy (real Sentinel-2, no building outlines there).

Truth objects are the connected components of the label mask (touching buildings count as
one object). A truth object >= 500 m² is found if a detected *building* (not a built-up
region) has IoU >= 0.5 with it. Precision: detected buildings >= 500 m² with IoU >= 0.5 with
any truth object, over all detected buildings >= 500 m². Regions are reported apart (they
make no claims).

    python benchmarks/auto_objects.py [--json benchmarks/out/auto_objects.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _paths import shared_data  # noqa: E402
from detection_buildings import _block, cases  # noqa: E402

from geo.config import DetectParams  # noqa: E402
from geo.detect import building_mask  # noqa: E402
from geo.footprints import polygonize  # noqa: E402
from geo.geoarray import GeoArray  # noqa: E402
from geo.plausibility import REGION, gate_footprints  # noqa: E402

MIN_M2 = 500.0
PARAMS = DetectParams(min_area_m2=100.0)


def _objects(ga: GeoArray, lab: np.ndarray) -> list[shapely.Geometry]:
    fp = polygonize(lab, ga.grid, date="2000-01-01", aoi_name="t")
    return list(fp.geometry)


def _iou(a: shapely.Geometry, b: shapely.Geometry) -> float:
    inter = a.intersection(b).area
    return float(inter / max(a.union(b).area, 1e-9))


def score(ga: GeoArray, truth: list[shapely.Geometry]) -> dict[str, float]:
    bm = building_mask(ga, PARAMS)
    fp = polygonize(bm.mask, ga.grid, date="2000-01-01", aoi_name="d",
                    min_area_m2=PARAMS.min_area_m2, alt_mask=bm.alt_mask, invalid=~ga.valid)
    fp = gate_footprints(fp, valid_area_m2=float(ga.valid.sum()) * ga.grid.pixel_area_m2,
                         params=PARAMS)
    det = [g for g, k in zip(fp.geometry, fp["footprint_kind"], strict=True) if k != REGION]
    big_t = [t for t in truth if t.area >= MIN_M2]
    big_d = [d for d in det if d.area >= MIN_M2]
    found = sum(any(_iou(t, d) >= 0.5 for d in det) for t in big_t)
    good = sum(any(_iou(t, d) >= 0.5 for t in truth) for d in big_d)
    return {"method": bm.method, "truth_ge500": len(big_t), "found": found,
            "detected_ge500": len(big_d), "correct": good,
            "regions": int((fp["footprint_kind"] == REGION).sum())}


def bercy() -> list[dict[str, object]]:
    """OSCD Paris-Bercy (real S2, 10 m, no building outlines): what each detector returns."""
    import rasterio
    from affine import Affine

    from geo.grid import Grid

    root = shared_data() / "oscd" / "bercy"
    out: list[dict[str, object]] = []
    for sub in ("imgs_1_rect", "imgs_2_rect"):
        names = ("B02", "B03", "B04", "B08", "B11")
        arr = np.stack([rasterio.open(root / sub / f"{b}.tif").read(1) for b in names])
        arr = arr.astype(np.float32) / 1e4
        grid = Grid("EPSG:32631", Affine(10, 0, 0, 0, -10, 0), arr.shape[1:])
        ga = GeoArray(data=arr, valid=np.ones(grid.shape, bool), grid=grid, date="2016-11-30",
                      bands=("blue", "green", "red", "nir", "swir16"))
        for method in ("builtup", "auto"):
            p = DetectParams(method=method, min_area_m2=800.0)  # type: ignore[arg-type]
            bm = building_mask(ga, p)
            fp = gate_footprints(polygonize(bm.mask, grid, date="2016-11-30", aoi_name="b",
                                            min_area_m2=800.0, alt_mask=bm.alt_mask),
                                 valid_area_m2=float(grid.shape[0] * grid.shape[1] * 100),
                                 params=p)
            out.append({"date": sub, "method": bm.method, "n": len(fp),
                        "largest_m2": float(fp["area_m2"].max()) if len(fp) else 0.0,
                        "marked_frac": float(bm.mask.mean()),
                        "regions": int((fp["footprint_kind"] == REGION).sum())})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    tot: dict[tuple[str, str], dict[str, float | str]] = {}
    for name, ga, lab in cases():
        truth = _objects(ga, lab)
        k = round(10.0 / ga.grid.res_m)
        views = [("native", ga)]
        if min(ga.grid.shape) // k >= 20:
            views.append(("10 m", _block(ga, k)))
        for view, g in views:
            s = score(g, truth)
            d = tot.setdefault((name, view), {"res_m": round(g.grid.res_m, 2), "method": "",
                                              "truth_ge500": 0, "found": 0,
                                              "detected_ge500": 0, "correct": 0, "regions": 0})
            d["method"] = str(s.pop("method"))
            for key, v in s.items():
                d[key] = float(d[key]) + v
    rows = []
    print(f"{'scene':24s} {'view':6s} {'res_m':>5s} {'method':16s} {'truth>=500':>10s} "
          f"{'recall':>12s} {'precision':>12s} {'regions':>7s}")
    for (name, view), d in tot.items():
        rec = d["found"] / d["truth_ge500"] if d["truth_ge500"] else float("nan")
        prec = d["correct"] / d["detected_ge500"] if d["detected_ge500"] else float("nan")
        rows.append({"scene": name, "view": view, **d, "recall": rec, "precision": prec})
        print(f"{name:24s} {view:6s} {d['res_m']:5g} {d['method']!s:16s} "
              f"{int(d['truth_ge500']):10d} {rec:6.2f} ({int(d['found'])}/{int(d['truth_ge500'])}) "
              f"{prec:6.2f} ({int(d['correct'])}/{int(d['detected_ge500'])}) "
              f"{int(d['regions']):7d}")
    print("\nOSCD Paris-Bercy (real Sentinel-2, 10 m; no building outlines to score against)")
    for b in bercy():
        print(f"  {b['date']:12s} {b['method']!s:16s} footprints {b['n']:4d}  largest "
              f"{b['largest_m2']:>12,.0f} m²  marked {b['marked_frac']:6.1%}  regions "
              f"{b['regions']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
