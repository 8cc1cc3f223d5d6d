"""Change methods on OSCD Paris-Bercy (Sentinel-2, 10 m; label 2 = change), the 10 m multispectral case.

Bands B02, B03, B04, B08, B11 from imgs_{1,2}_rect (all on the 10 m grid), DN / 10000.
Global pixel precision / recall / F1 / IoU. Only 1046 of 142,200 pixels are change.

    python benchmarks/detection_oscd.py [--json benchmarks/out/oscd.json]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _paths import shared_data  # noqa: E402

from geo.benchmark import confusion, scores  # noqa: E402
from geo.config import DetectParams  # noqa: E402
from geo.detect import change_map  # noqa: E402
from geo.geoarray import GeoArray  # noqa: E402
from geo.grid import Grid  # noqa: E402

BERCY = shared_data() / "oscd" / "bercy"
BANDS = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "B11": "swir16"}
METHODS = ("imad", "cva", "index-diff", "pcc", "rgb-objects")


def _read(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as src:
            return src.read(1)


def load(folder: str, date: str) -> GeoArray:
    data = np.stack([_read(BERCY / folder / f"{b}.tif") for b in BANDS]).astype(np.float32) / 1e4
    g = Grid(crs="EPSG:32631", transform=Affine(10, 0, 0, 0, -10, 0), shape=data.shape[1:])
    return GeoArray(data=data, valid=np.ones(g.shape, bool), grid=g, date=date,
                    bands=tuple(BANDS.values()), kind="multispectral", source_id=folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    a = load("imgs_1_rect", "2016-11-30")
    b = load("imgs_2_rect", "2017-08-29")
    truth = _read(BERCY / "cm" / "bercy-cm.tif") == 2
    rows = []
    for m in METHODS:
        for min_area in (0.0, 200.0):
            t0 = time.perf_counter()
            cm = change_map(a, b, params=DetectParams(min_area_m2=min_area), method=m)
            dt = time.perf_counter() - t0
            p, r, f1, iou = scores(*confusion(cm.mask, truth)[:3])
            rows.append({"method": m, "min_area_m2": min_area, "precision": p, "recall": r,
                         "f1": f1, "iou": iou, "seconds": dt})
            print(f"{m:12s} min_area {min_area:5.0f} m²  P {p:.3f} R {r:.3f} F1 {f1:.3f} "
                  f"IoU {iou:.3f} ({dt:.2f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
