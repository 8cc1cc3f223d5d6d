"""Peak memory and CPU of our iMAD against Orfeo ToolBox's MultivariateAlterationDetector.

Input: a **SYNTHETIC** pair of 4-band float32 GeoTIFFs, ``--size`` x ``--size`` px (default
4000: the pair of PERF-NOTES), smooth random texture, the second date a gain and offset of the
first plus noise and a few changed squares (not real imagery). Side by side, each in a fresh
child process (peak RSS = ``ru_maxrss`` of the child, CPU = its user + system time):

- ``bare``: read both files into float32 arrays (rasterio), nothing else: the floor of any
  in-memory method;
- ``ours``: the same read, then ``geo.normalize.imad`` (this checkout);
- ``ours_before`` (with ``--before COMMIT``): the same with ``geo/normalize.py`` of that commit;
- ``otb``: ``otbcli_MultivariateAlterationDetector -in1 A -in2 B -out MAD`` (streams its input
  from the files; its default RAM setting), when it is installed.

Run (about 2 CPU-minutes at 4000)::

    python benchmarks/imad_memory.py [--size 4000] [--before 82e7a1e] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _child import run_child  # noqa: E402

READ = """
import sys, numpy as np, rasterio
a = rasterio.open(sys.argv[1]).read().astype(np.float32)
b = rasterio.open(sys.argv[2]).read().astype(np.float32)
valid = np.isfinite(a).all(0) & np.isfinite(b).all(0)
"""
OURS = READ + """
sys.path.insert(0, sys.argv[3])
import importlib.util
spec = importlib.util.spec_from_file_location("fw_normalize", sys.argv[4])
mod = importlib.util.module_from_spec(spec)
sys.modules["fw_normalize"] = mod
spec.loader.exec_module(mod)
res = mod.imad(a, b, valid)
print(res.n_iter, float(res.change_prob.mean()))
"""


def write_pair(root: Path, size: int) -> tuple[Path, Path]:
    """The SYNTHETIC 4-band pair, written in row strips (never whole in float64)."""
    import rasterio
    from affine import Affine
    from scipy import ndimage

    prof = {"driver": "GTiff", "width": size, "height": size, "count": 4, "dtype": "float32",
            "crs": "EPSG:32633", "transform": Affine(1.0, 0, 400000.0, 0, -1.0, 5000000.0),
            "tiled": True, "blockxsize": 512, "blockysize": 512}
    rng = np.random.default_rng(0)
    paths = (root / "a.tif", root / "b.tif")
    strip = 500
    with rasterio.open(paths[0], "w", **prof) as da, rasterio.open(paths[1], "w", **prof) as db:
        for r0 in range(0, size, strip):
            h = min(strip, size - r0)
            base = ndimage.gaussian_filter(rng.random((4, h, size)), (0, 3, 3)).astype("float32")
            a = base + 0.01 * rng.standard_normal(base.shape).astype("float32")
            b = 1.1 * base + 0.02 + 0.01 * rng.standard_normal(base.shape).astype("float32")
            for c0 in range(0, size - 80, 600):
                b[:, 100:180, c0:c0 + 80] += 0.3  # changed squares
            win = rasterio.windows.Window(0, r0, size, h)
            da.write(a, window=win)
            db.write(b, window=win)
    return paths


SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                 "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1"}
"""Every arm on one thread (BLAS, OpenMP, OTB's ITK), so CPU seconds compare like with like."""


def child(cmd: list[str]) -> dict[str, float]:
    return run_child(cmd, env=SINGLE_THREAD)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=4000)
    ap.add_argument("--before", default=None, help="also run geo/normalize.py of this commit")
    ap.add_argument("--json", type=Path, default=None)
    ns = ap.parse_args(argv)
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="fw_imad_memory_") as tmp:
        root = Path(tmp)
        a, b = write_pair(root, ns.size)
        py = sys.executable
        rows["bare"] = child([py, "-c", READ, str(a), str(b)])
        rows["ours"] = child([py, "-c", OURS, str(a), str(b), str(ROOT),
                              str(ROOT / "geo" / "normalize.py")])
        if ns.before:
            old = root / "normalize_before.py"
            old.write_text(subprocess.run(["git", "-C", str(ROOT), "show",
                                           f"{ns.before}:geo/normalize.py"], check=True,
                                          capture_output=True, text=True).stdout)
            rows["ours_before"] = child([py, "-c", OURS, str(a), str(b), str(ROOT), str(old)])
        otb = shutil.which("otbcli_MultivariateAlterationDetector")
        if otb:
            rows["otb"] = child([otb, "-in1", str(a), "-in2", str(b), "-out",
                                 str(root / "mad.tif")])
    mpx = 2 * ns.size * ns.size / 1e6
    print(f"SYNTHETIC 4-band float32 pair, {ns.size}² px ({mpx:.0f} Mpx over both dates)")
    print("| arm | CPU s | peak RSS MB | Mpx/s (CPU) |\n|---|---|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {v['cpu_s']:.1f} | {v['peak_rss_mb']:.0f} | {mpx / 2 / v['cpu_s']:.2f} |")
    if ns.json is not None:
        ns.json.write_text(json.dumps({"size": ns.size, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
