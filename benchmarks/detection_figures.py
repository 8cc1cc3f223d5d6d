"""Failure-case figures: before / after / label / prediction PNGs for each benchmark pair.

Writes benchmarks/out/figures/<dataset>_<name>_<method>.png (git-ignored). Colours in
the prediction panel: green = true positive, red = false positive, blue = missed.

    python benchmarks/detection_figures.py [--method learned] [DATASET_DIR ...]
    python benchmarks/detection_figures.py --method cnn --only test_7,000213 --out docs/cnn

``--method cnn`` uses, per dataset, a packaged model that never saw it (geo.detect.cnn.held_out).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _figures import LEGEND, overlay, rgb, save_panels  # noqa: E402
from _paths import shared_data  # noqa: E402

from geo.benchmark import (  # noqa: E402
    confusion,
    group_of,
    list_triplets,
    read_image,
    read_label,
    scores,
)
from geo.config import DetectParams  # noqa: E402
from geo.detect import change_map  # noqa: E402

DATA = shared_data()
DEFAULT = [DATA / "levir_cd" / "crops_256", DATA / "whu_cd", DATA / "dsifn_cd"]
OUT = ROOT / "benchmarks" / "out" / "figures"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="*", type=Path, default=DEFAULT)
    ap.add_argument("--method", default="learned")
    ap.add_argument("--only", default="", help="comma-separated image names (stems) to draw")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    only = {s for s in args.only.split(",") if s}
    args.out.mkdir(parents=True, exist_ok=True)
    params = DetectParams(min_area_m2=20.0)
    for ds in args.datasets:
        for a_p, b_p, l_p in list_triplets(ds):
            if only and a_p.stem not in only:
                continue
            a, b, lab = read_image(a_p), read_image(b_p), read_label(l_p)
            if args.method == "learned":
                from geo.detect.learned import learned_change_map

                cm = learned_change_map(a, b, params=params, exclude_group=group_of(a_p.name))
            elif args.method == "cnn":
                from geo.detect.cnn import dataset_key, held_out

                with held_out(dataset_key(ds)):
                    cm = change_map(a, b, params=params, method="cnn")
            else:
                cm = change_map(a, b, params=params, method=args.method)
            tp, fp, fn, _ = confusion(cm.mask, lab)
            f1 = scores(tp, fp, fn)[2]
            dst = args.out / f"{ds.name}_{a_p.stem}_{args.method}.png"
            save_panels(dst, f"{ds.name}/{a_p.name}", [
                (rgb(a.data), "before (A)"), (rgb(b.data), "after (B)"), (lab, "label (change)"),
                (overlay(cm.mask, lab), f"{args.method}: F1 {f1:.2f}\n{LEGEND}")])
            print(dst)


if __name__ == "__main__":
    main()
