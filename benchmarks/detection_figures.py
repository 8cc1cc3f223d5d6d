"""Failure-case figures: before / after / label / prediction PNGs for each benchmark pair.

Writes benchmarks/out/figures/<dataset>_<name>_<method>.png (git-ignored). Colours in
the prediction panel: green = true positive, red = false positive, blue = missed.

    python benchmarks/detection_figures.py [--method learned] [DATASET_DIR ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    params = DetectParams(min_area_m2=20.0)
    for ds in args.datasets:
        for a_p, b_p, l_p in list_triplets(ds):
            a, b, lab = read_image(a_p), read_image(b_p), read_label(l_p)
            if args.method == "learned":
                from geo.detect.learned import learned_change_map

                cm = learned_change_map(a, b, params=params, exclude_group=group_of(a_p.name))
            else:
                cm = change_map(a, b, params=params, method=args.method)
            tp, fp, fn, _ = confusion(cm.mask, lab)
            f1 = scores(tp, fp, fn)[2]
            over = np.zeros((*lab.shape, 3))
            over[cm.mask & lab] = (0, 0.8, 0)
            over[cm.mask & ~lab] = (0.9, 0, 0)
            over[~cm.mask & lab] = (0, 0.3, 1)
            fig, ax = plt.subplots(1, 4, figsize=(13, 3.6))
            for axi, img, title in (
                (ax[0], a.data.transpose(1, 2, 0) / 255, "before (A)"),
                (ax[1], b.data.transpose(1, 2, 0) / 255, "after (B)"),
                (ax[2], lab, "label (change)"),
                (ax[3], over, f"{args.method}: F1 {f1:.2f}\ngreen TP, red FP, blue missed"),
            ):
                axi.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None)
                axi.set_title(title, fontsize=9)
                axi.axis("off")
            fig.suptitle(f"{ds.name}/{a_p.name}", fontsize=10)
            fig.tight_layout()
            dst = OUT / f"{ds.name}_{a_p.stem}_{args.method}.png"
            fd, tmp = tempfile.mkstemp(dir=OUT, suffix=".png")
            os.close(fd)
            fig.savefig(tmp, dpi=80)
            plt.close(fig)
            os.replace(tmp, dst)
            print(dst)


if __name__ == "__main__":
    main()
