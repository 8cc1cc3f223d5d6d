"""The SYNTHETIC issue-12 factory through `factorywatch run` (geo.pipeline.run_aoi), end to end.

Renders the factory (geo/factory_scene.py, loaded by path so that this script also runs with an
older checkout's ``geo`` first on PYTHONPATH, e.g. main before issue 12) as three dated 5-band
GeoTIFFs with Sentinel-2 band names, runs the whole pipeline in automatic mode and prints the
verdict on "new hall B > 2 x its neighbour" per date next to the true ratio. SYNTHETIC.

    PYTHONPATH=. python benchmarks/factory_run.py [--seed 3]
    PYTHONPATH=/path/to/main python benchmarks/factory_run.py   # the same scene on main
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import rasterio
import shapely
from affine import Affine
from shapely.geometry import box

HERE = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("factory_scene", HERE / "geo" / "factory_scene.py")
assert _spec is not None and _spec.loader is not None
fs = importlib.util.module_from_spec(_spec)
sys.modules["factory_scene"] = fs
_spec.loader.exec_module(fs)

import geo  # noqa: E402
from geo.claims import check_claim  # noqa: E402
from geo.config import MeasureParams, load_config  # noqa: E402
from geo.grid import to_crs  # noqa: E402
from geo.pipeline import run_aoi  # noqa: E402
from geo.vector import read_run_tables  # noqa: E402

X0, Y0 = 600000.0, 4500000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    print(f"geo from {Path(geo.__file__).parent}")
    tmp = Path(tempfile.mkdtemp(prefix="factory_run_"))
    (tmp / "imagery").mkdir()
    lay = fs.issue12_factory()
    for d, arr in zip(lay.dates, fs.render_factory(lay, seed=args.seed), strict=True):
        prof = {"driver": "GTiff", "width": arr.shape[2], "height": arr.shape[1], "count": 5,
                "dtype": "float32", "crs": "EPSG:32652",
                "transform": Affine(10, 0, X0, 0, -10, Y0)}
        with rasterio.open(tmp / "imagery" / f"factory_{d}.tif", "w", **prof) as dst:
            dst.write(arr)
            for i, n in enumerate(("B02", "B03", "B04", "B08", "B11"), 1):
                dst.set_band_description(i, n)
    w, h = lay.size_m
    poly = to_crs(box(X0 + 20, Y0 - h + 20, X0 + w - 20, Y0 - 20), "EPSG:32652", "EPSG:4326")
    (tmp / "factory.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"coord_source": "SYNTHETIC", "coord_confidence": "high"},
        "geometry": shapely.geometry.mapping(poly)}]}))
    (tmp / "factory.toml").write_text('[source]\nkind = "local"\npath = "imagery"\n'
                                      '[grid]\nresolution_m = 10.0\n')
    cfg = load_config(tmp / "factory.toml")
    cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, report=False))
    summary = run_aoi(cfg, tmp / "run")
    sites, fps, _ = read_run_tables(summary.run_dir)
    for d in lay.dates:
        x, y = lay.centre("B", d)
        hit = fps[(fps["date"] == d) & fps.geometry.contains(shapely.Point(X0 + x, Y0 - y))]
        truth = lay.truth_area_m2("B", d) / lay.truth_area_m2("A", d)
        if hit.empty:
            print(f"{d} truth {truth:.2f}: B not detected")
            continue
        r = check_claim(sites, fps, subject=str(hit["site_id"].iloc[0]), reference="neighbour",
                        relation=">", factor=2.0, date=d, params=MeasureParams())
        print(f"{d} truth {truth:.2f}: {r.verdict:12s} {r.sentence}")


if __name__ == "__main__":
    main()
