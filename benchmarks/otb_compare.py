"""Orfeo ToolBox MultivariateAlterationDetector vs our iMAD, same pairs, same threshold rule.

For each A/B/label triplet both MAD variants give MAD variates; both are turned
into a chi-square change probability the same way (each variate divided by its
robust standard deviation, squares summed, chi-square CDF with p degrees of
freedom), thresholded at p > 0.99 and cleaned identically
(geo.detect.cleanup_mask, min area 20 m² at 0.5 m). F1 is from global TP/FP/FN.
Time: OTB is the wall time of the otbcli process (includes its own PNG read and
GeoTIFF write); ours is the wall time of geo.normalize.imad on arrays in memory.

    python benchmarks/otb_compare.py [DATASET_DIR ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import rasterio
from scipy.special import gammainc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _paths import shared_data  # noqa: E402

from geo.benchmark import confusion, list_triplets, read_image, read_label, scores  # noqa: E402
from geo.config import DetectParams  # noqa: E402
from geo.detect import cleanup_mask  # noqa: E402
from geo.normalize import imad  # noqa: E402

DATA = shared_data()
DEFAULT = [DATA / "levir_cd" / "crops_256", DATA / "levir_cd" / "full_1024",
           DATA / "whu_cd", DATA / "dsifn_cd"]
PARAMS = DetectParams(min_area_m2=20.0)


def chi2_prob(mad: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Same rule for both: robust standardisation, sum of squares, chi-square CDF."""
    p = mad.shape[0]
    z = np.zeros(mad.shape[1:])
    for m in mad:
        v = m[valid]
        med = np.median(v)
        sd = 1.4826 * np.median(np.abs(v - med)) or 1.0
        z += ((m - med) / sd) ** 2
    return gammainc(p / 2.0, z / 2.0)


def mask_from(prob: np.ndarray, valid: np.ndarray, res_m: float) -> np.ndarray:
    return cleanup_mask((prob > 0.99) & valid, res_m=res_m, pixel_area_m2=res_m * res_m,
                        params=PARAMS, valid=valid, radius_px=round(1.0 / res_m))


def run_otb(a_path: Path, b_path: Path, tmp: Path) -> tuple[np.ndarray, float]:
    out = tmp / "mad.tif"
    t0 = time.perf_counter()
    subprocess.run(["otbcli_MultivariateAlterationDetector", "-in1", str(a_path), "-in2",
                    str(b_path), "-out", str(out), "float"], check=True,
                   capture_output=True)
    dt = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = rasterio.open(out)
    with src:
        return src.read().astype(np.float64), dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="*", type=Path, default=DEFAULT)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if shutil.which("otbcli_MultivariateAlterationDetector") is None:
        sys.exit("otbcli_MultivariateAlterationDetector not found: apt-get install otb-bin")
    rows = []
    with tempfile.TemporaryDirectory() as td:
        for ds in args.datasets:
            tot = {"otb": np.zeros(3, int), "ours": np.zeros(3, int)}
            sec = {"otb": 0.0, "ours": 0.0}
            trips = list_triplets(ds)
            for a_p, b_p, l_p in trips:
                a, b = read_image(a_p), read_image(b_p)
                truth = read_label(l_p)
                valid = a.valid & b.valid
                mad_otb, dt = run_otb(a_p, b_p, Path(td))
                sec["otb"] += dt
                t0 = time.perf_counter()
                res = imad(a.data, b.data, valid)
                sec["ours"] += time.perf_counter() - t0
                for key, mad in (("otb", mad_otb), ("ours", res.mad.astype(np.float64))):
                    pred = mask_from(chi2_prob(mad, valid), valid, a.grid.res_m)
                    tp, fp, fn, _ = confusion(pred, truth)
                    tot[key] += (tp, fp, fn)
            row = {"dataset": str(ds), "n_images": len(trips)}
            for key in ("otb", "ours"):
                p, r, f1, iou = scores(*map(int, tot[key]))
                row[key] = {"precision": p, "recall": r, "f1": f1, "iou": iou,
                            "seconds": sec[key]}
            row["time_ratio_otb_over_ours"] = sec["otb"] / max(sec["ours"], 1e-9)
            rows.append(row)
            print(f"{ds.name:12s} n={len(trips)}  OTB MAD F1 {row['otb']['f1']:.3f} "
                  f"({sec['otb']:.2f}s)  our iMAD F1 {row['ours']['f1']:.3f} "
                  f"({sec['ours']:.2f}s)  time OTB/ours {row['time_ratio_otb_over_ours']:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
