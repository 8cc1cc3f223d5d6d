"""How fast oversized grids are refused: ``validate`` on three SYNTHETIC configs.

A 380 km² AOI at 1 m (8 GiB budget), ``buffer_m = 1e7`` and a 1 cm grid (default budget)
must each give one line with the grid size in well under a second, before anything is
read (issue 10). The AOI boxes are SYNTHETIC (near Kanggye); no imagery is read.

Run::

    PYTHONPATH=. python benchmarks/preflight_speed.py
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from shapely.geometry import box, mapping

from geo.grid import to_crs
from geo.validate import validate_config

ORIGIN = (300000.0, 4500000.0)  # UTM 52N
PROPS = {"coord_source": "SYNTHETIC", "coord_confidence": "high"}
CASES = {
    "380 km² AOI at 1 m, budget 8192 MiB": (19_500, '[grid]\nresolution_m = 1.0\n'
                                            'memory_budget_mb = 8192\n'),
    "buffer_m = 1e7 at 10 m, default budget": (280, '[grid]\nresolution_m = 10.0\n'
                                               'buffer_m = 1e7\n'),
    "1 cm grid, default budget": (280, '[grid]\nresolution_m = 0.01\n'),
}


def main() -> None:
    """Time ``validate_config`` (5 repeats) per case and print the refusal line."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "img").mkdir()
        (root / "img" / "2021-06-03.tif").write_bytes(b"")  # never opened: refused before
        for label, (side_m, grid_toml) in CASES.items():
            aoi = to_crs(box(ORIGIN[0], ORIGIN[1] - side_m, ORIGIN[0] + side_m, ORIGIN[1]),
                         "EPSG:32652", "EPSG:4326")
            fc = {"type": "FeatureCollection", "features": [
                {"type": "Feature", "properties": PROPS, "geometry": mapping(aoi)}]}
            (root / "site.geojson").write_text(json.dumps(fc))
            (root / "site.toml").write_text('[source]\nkind = "local"\npath = "img"\n'
                                            + grid_toml)
            times, problems = [], []
            for _ in range(5):
                t0 = time.perf_counter()
                problems = validate_config(root / "site.toml")
                times.append(time.perf_counter() - t0)
            print(f"{label}: median {statistics.median(times) * 1000:.0f} ms, "
                  f"max {max(times) * 1000:.0f} ms")
            print(f"  {problems[0].split(': ', 1)[1] if problems else 'ACCEPTED (unexpected)'}")


if __name__ == "__main__":
    main()
