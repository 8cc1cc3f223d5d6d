"""Run ``factorywatch benchmark`` for every method on every shared change dataset; print the table.

Each cell comes from the CLI's --json output (the same code path users run), so the
README table is reproducible with one command:

    python benchmarks/detection_table.py [--methods cva,learned] [--json benchmarks/out/table.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/data")
DATASETS = {
    "LEVIR crops (7×256²)": DATA / "levir_cd" / "crops_256",
    "LEVIR test_7 (1024²)": DATA / "levir_cd" / "full_1024",
    "WHU-CD (1024²)": DATA / "whu_cd",
    "DSIFN (5×256²)": DATA / "dsifn_cd",
}
METHODS = ("cva", "imad", "index-diff", "pcc", "rgb-objects", "learned")


def bench(ds: Path, method: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", "from geo.cli import main; main()", "benchmark", str(ds),
         "--method", method, "--json", "-q"],
        check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    methods = args.methods.split(",")
    res: dict[str, dict[str, dict]] = {}
    for m in methods:
        for name, ds in DATASETS.items():
            r = bench(ds, m)
            res.setdefault(m, {})[name] = {k: r[k] for k in (
                "precision", "recall", "f1", "iou", "n_images", "seconds_per_megapixel")}
            print(f"{m:12s} {name:24s} P {r['precision']:.3f} R {r['recall']:.3f} "
                  f"F1 {r['f1']:.3f} ({r['seconds_per_megapixel']:.1f} s/MP)", file=sys.stderr)
    head = "| method | " + " | ".join(DATASETS) + " | s/MP (LEVIR 1024²) |"
    print(head)
    print("|" + "---|" * (len(DATASETS) + 2))
    for m in methods:
        cells = [f"{res[m][n]['precision']:.2f} / {res[m][n]['recall']:.2f} / "
                 f"**{res[m][n]['f1']:.2f}**" for n in DATASETS]
        spm = res[m]["LEVIR test_7 (1024²)"]["seconds_per_megapixel"]
        print(f"| {m} | " + " | ".join(cells) + f" | {spm:.1f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
