"""Run ``factorywatch benchmark`` for every method on every shared change dataset; print the table.

Each cell comes from the CLI's --json output (the same code path users run), so the
README table is reproducible with one command:

    python benchmarks/detection_table.py [--methods cva,learned] [--json benchmarks/out/table.json]

``--datasets extra`` scores the two shared change sets that are not in the README's main table
(EGY-BCD, SZTAKI AirChange Szada; never used for training or tuning); ``--datasets all`` both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
from _paths import shared_data  # noqa: E402

DATA = shared_data()
DATASETS = {
    "LEVIR crops (7×256²)": DATA / "levir_cd" / "crops_256",
    "LEVIR test_7 (1024²)": DATA / "levir_cd" / "full_1024",
    "WHU-CD (1024²)": DATA / "whu_cd",
    "DSIFN (5×256²)": DATA / "dsifn_cd",
}
EXTRA = {
    "EGY-BCD (9×256²)": DATA / "train_cd" / "egy_bcd",
    "SZTAKI Szada (7×952×640, 1.5 m)": DATA / "train_cd" / "sztaki_airchange",
}
RES_M = {"SZTAKI Szada (7×952×640, 1.5 m)": 1.5}
"""Pixel size where the data's README states one; every other set gets the benchmark's 0.5 m
(LEVIR-CD's; EGY-BCD states no GSD, so 0.5 m is an assumption there)."""
METHODS = ("cva", "imad", "index-diff", "pcc", "rgb-objects", "learned", "cnn")
"""``cnn`` scores each set with a packaged model that never saw it (leave-one-dataset-out)."""


def bench(ds: Path, method: str, res_m: float = 0.5) -> dict | None:
    """One cell; None where ``cnn`` has no packaged model that never saw ``ds``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", "from geo.cli import main; main()", "benchmark", str(ds),
         "--method", method, "--json", "-q", "--res-m", str(res_m)],
        check=method != "cnn", capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode and "every packaged model was trained on" in out.stderr:
        return None
    out.check_returncode()
    return json.loads(out.stdout)


def baseline(sets: dict[str, Path]) -> dict[str, tuple[float, float, float]]:
    """The issue's baseline, in process: |B - A| over RGB, Otsu, nothing else."""
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from geo.benchmark import confusion, list_triplets, read_image, read_label, scores
    from geo.detect import otsu_threshold

    out = {}
    for name, ds in sets.items():
        tot = np.zeros(3, int)
        for a_p, b_p, l_p in list_triplets(ds):
            a, b = read_image(a_p), read_image(b_p)
            mag = np.sqrt(((b.data - a.data) ** 2).sum(0))
            tot += confusion(mag > otsu_threshold(mag), read_label(l_p))[:3]
        p, r, f1, _ = scores(*map(int, tot))
        out[name] = (p, r, f1)
    return out


def _cell(r: dict) -> str:
    if not r:
        return "(trained on it)"
    return f"{r['precision']:.2f} / {r['recall']:.2f} / **{r['f1']:.2f}**"


def _row(m: str, res: dict[str, dict[str, dict]], names: list[str]) -> str:
    cells = [_cell(res[m][n]) for n in names]
    tail = ""
    levir = [n for n in names if n.startswith("LEVIR")]
    if len(levir) == 2 and all(res[m][n] for n in levir):
        tp, fp, fn = (sum(res[m][n][k] for n in levir) for k in ("tp", "fp", "fn"))
        pooled = 2 * tp / max(2 * tp + fp + fn, 1)
        res[m]["LEVIR pooled"] = {"f1": pooled, "tp": tp, "fp": fp, "fn": fn}
        tail += f" **{pooled:.2f}** |"
    if res[m].get("LEVIR test_7 (1024²)"):
        tail += f" {res[m]['LEVIR test_7 (1024²)']['seconds_per_megapixel']:.1f} |"
    return f"| {m} | " + " | ".join(cells) + " |" + tail


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--datasets", choices=("main", "extra", "all"), default="main")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    methods = args.methods.split(",")
    sets = {"main": DATASETS, "extra": EXTRA, "all": {**DATASETS, **EXTRA}}[args.datasets]
    names = list(sets)
    res: dict[str, dict[str, dict]] = {}
    for m in methods:
        for name, ds in sets.items():
            r = bench(ds, m, RES_M.get(name, 0.5))
            if r is None:
                print(f"{m:12s} {name:24s} not scored: in every packaged model's training set",
                      file=sys.stderr)
                res.setdefault(m, {})[name] = {}
                continue
            res.setdefault(m, {})[name] = {k: r[k] for k in (
                "precision", "recall", "f1", "iou", "n_images", "seconds_per_megapixel",
                "tp", "fp", "fn")}
            print(f"{m:12s} {name:24s} P {r['precision']:.3f} R {r['recall']:.3f} "
                  f"F1 {r['f1']:.3f} ({r['seconds_per_megapixel']:.1f} s/MP)", file=sys.stderr)
    head = "| method | " + " | ".join(names) + " |"
    if args.datasets != "extra":
        head += " LEVIR pooled (8) | s/MP (LEVIR 1024²) |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    base = baseline(sets)
    cells = [f"{base[n][0]:.2f} / {base[n][1]:.2f} / **{base[n][2]:.2f}**" for n in names]
    print("| baseline: raw CVA + Otsu (no normalisation, no cleanup) | " + " | ".join(cells)
          + " |" + (" | |" if args.datasets != "extra" else ""))
    for m in methods:
        print(_row(m, res, names))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
