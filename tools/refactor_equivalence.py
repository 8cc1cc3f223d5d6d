"""Run the functions issue 11 split on fixed inputs; print a digest of every result.

Run it once with each tree's ``geo`` on PYTHONPATH and diff the two outputs::

    git archive main geo | tar -x -C /tmp/fw_main
    PYTHONPATH=/tmp/fw_main python tools/refactor_equivalence.py > a.txt
    PYTHONPATH=. python tools/refactor_equivalence.py > b.txt
    diff a.txt b.txt    # empty: polygonize, imad, normalize_to, plan, demo, vector agree

The inputs are SYNTHETIC (seeded random masks and images, the demo series).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
from affine import Affine
from scipy import ndimage

from geo.demo import write_demo
from geo.footprints import polygonize
from geo.geoarray import GeoArray
from geo.grid import Grid
from geo.normalize import imad, normalize_to
from geo.plan import plan_feasibility
from geo.vector import read_footprints


def _h(x: Any) -> str:
    """A short digest of ``repr(x)``."""
    return hashlib.sha256(repr(x).encode()).hexdigest()[:16]


def _rasters(rng: np.random.Generator, g: Grid) -> None:
    mask = ndimage.binary_opening(rng.random(g.shape) > 0.6, iterations=1)
    inv = np.zeros(g.shape, bool)
    inv[50:60, 70:90] = True
    fp = polygonize(mask, g, date="2024-01-01", aoi_name="x", min_area_m2=12,
                    alt_mask=ndimage.binary_erosion(mask), invalid=inv)
    print("polygonize", len(fp), _h(fp.drop(columns="geometry").to_csv()),
          _h([gg.wkb for gg in fp.geometry]))
    x = rng.random((4, *g.shape)).astype(np.float32)
    y = (x * 0.8 + 0.05 + 0.02 * rng.random(x.shape)).astype(np.float32)
    y[:, 10:40, 10:40] += 0.5
    r = imad(x, y, np.ones(g.shape, bool))
    print("imad", r.n_iter, _h(r.chi2.tobytes()), _h(r.mad.tobytes()), _h(r.rho.tobytes()))
    bands = ("blue", "green", "red", "nir")
    ok = np.ones(g.shape, bool)
    a = GeoArray(data=x, valid=ok, grid=g, date="a", bands=bands, kind="multispectral")
    b = GeoArray(data=y, valid=ok, grid=g, date="b", bands=bands, kind="multispectral")
    out, info = normalize_to(a, b)
    print("normalize_to", _h(out.data.tobytes()),
          _h(json.dumps(info, sort_keys=True, default=str)))


def _demo_and_vector() -> None:
    d = Path(tempfile.mkdtemp()) / "demo"
    files = write_demo(d)
    for p in sorted(d.rglob("*")):
        if p.is_file():
            print("demo", p.relative_to(d), hashlib.sha256(p.read_bytes()).hexdigest()[:16])
    truth = gpd.read_file(files.truth)
    for date in sorted(set(truth["date"])):
        truth[truth["date"] == date].to_file(d.parent / f"fp_{date}.geojson")
    v = read_footprints(sorted(d.parent.glob("fp_*.geojson")), aoi_name="t", name_field="hall")
    cols = [c for c in v.columns if c not in ("geometry", "edge_corr_len_m", "alt_parts")]
    print("read_footprints", len(v), _h(v[cols].to_csv()), _h([gg.wkb for gg in v.geometry]))


def main() -> None:
    """Print one digest line per checked result."""
    _rasters(np.random.default_rng(3),
             Grid("EPSG:32652", Affine(2, 0, 300000, 0, -2, 4500000), (120, 140)))
    print("plan", _h(json.dumps(plan_feasibility(6000.0), sort_keys=True)))
    _demo_and_vector()


if __name__ == "__main__":
    main()
