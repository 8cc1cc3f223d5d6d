"""Change F1 of every method on the SYNTHETIC demo pairs (the ``auto`` rule's demo criterion).

``auto``'s RGB choice (docs/detection.md, "Defaults") is the best mean F1 on the real sets among
methods with F1 >= 0.8 on every SYNTHETIC demo pair. This script computes that criterion:
geo.synthetic's default demo series (1 m RGB, as the demo writes it: 8-bit DN / 255), pairs
2019→2022, 2019→2020, 2020→2021, the later date co-registered to the earlier one
(geo.coreg.coregister), ``change_map`` with the demo's ``min_area_m2 = 300``, and pixel
precision / recall / F1 against the XOR of the two dates' rasterised true footprints, on pixels
valid on both dates (the 2020 cloud is excluded). SYNTHETIC data: not evidence about real imagery.

    python benchmarks/detection_demo.py [--methods cva,pcc] [--json benchmarks/out/demo_change.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.features import rasterize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geo.benchmark import confusion, scores  # noqa: E402
from geo.config import DetectParams  # noqa: E402
from geo.coreg import coregister  # noqa: E402
from geo.detect import change_map  # noqa: E402
from geo.geoarray import GeoArray  # noqa: E402
from geo.grid import Grid  # noqa: E402
from geo.synthetic import SyntheticScene, default_spec, render_series  # noqa: E402

METHODS = ("cva", "imad", "index-diff", "pcc", "rgb-objects", "learned")
PAIRS = ((0, 3), (0, 1), (1, 2))


def as_geoarray(sc: SyntheticScene, grid: Grid) -> GeoArray:
    """One demo date as the pipeline reads it (8-bit DN / 255, cloud invalid)."""
    dn = np.clip(np.round(sc.rgb * 255.0), 0, 255) / 255.0
    return GeoArray(data=dn.astype(np.float32), valid=~sc.cloud, grid=grid, date=sc.date,
                    bands=("red", "green", "blue"), kind="rgb", source_id=sc.date)


def truth_mask(sc: SyntheticScene, shape: tuple[int, int], res: float) -> np.ndarray:
    """The date's true footprints rasterised at pixel centres (local metres, y down)."""
    if not sc.truth:
        return np.zeros(shape, bool)
    return rasterize(list(sc.truth.values()), out_shape=shape,
                     transform=Affine(res, 0, 0, 0, res, 0)).astype(bool)


def demo_scores(methods: tuple[str, ...]) -> dict[str, list[dict[str, float | str]]]:
    """Pixel precision / recall / F1 of each method on each demo pair (in :data:`PAIRS` order)."""
    spec = default_spec()
    scenes = render_series(spec)
    shape = scenes[0].rgb.shape[1:]
    grid = Grid(crs="EPSG:32652", transform=Affine(spec.res_m, 0, 500000, 0, -spec.res_m,
                                                   4500000), shape=shape)
    gas = [as_geoarray(sc, grid) for sc in scenes]
    truths = [truth_mask(sc, shape, spec.res_m) for sc in scenes]
    params = DetectParams(min_area_m2=300.0)
    res: dict[str, list[dict[str, float | str]]] = {}
    for m in methods:
        for i, j in PAIRS:
            b, _ = coregister(gas[i], gas[j])
            cm = change_map(gas[i], b, params=params, method=m)
            v = gas[i].valid & b.valid
            tp, fp, fn = confusion(cm.mask & v, (truths[i] ^ truths[j]) & v)[:3]
            p, r, f1, _ = scores(int(tp), int(fp), int(fn))
            pair = f"{scenes[i].date[:4]}→{scenes[j].date[:4]}"
            res.setdefault(m, []).append({"pair": pair, "precision": p, "recall": r, "f1": f1})
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    res = demo_scores(tuple(args.methods.split(",")))
    print("| method | " + " / ".join(f"{c['pair']}" for c in next(iter(res.values())))
          + " | min |")
    for m, cells in res.items():
        f1s = " / ".join(f"{c['f1']:.2f}" for c in cells)
        print(f"| {m} | {f1s} | {min(float(c['f1']) for c in cells):.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
