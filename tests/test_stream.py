"""A streamed run (grid above the memory budget) gives the in-memory run's results (SYNTHETIC).

The demo's 461 x 462 px grid is forced to stream with ``[grid] memory_budget_mb = 10`` and
256-px blocks, so every stage crosses block seams: reading and warping (one date is in Web
Mercator), co-registration applied per block with a halo (one date is shifted), normalisation,
change maps and detection. The grid is smaller than the statistics samples, so the streamed
run must reproduce the session's in-memory demo run, and its change maps must equal
:func:`geo.detect.change_map` on its own scenes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from geo.config import load_config
from geo.detect import change_map
from geo.grid import Grid
from geo.pipeline import run_aoi
from geo.reading import read_to_grid


def _tifs_equal(a: Path, b: Path) -> None:
    with rasterio.open(a) as x, rasterio.open(b) as y:
        if x.dtypes[0] == "uint8":
            np.testing.assert_array_equal(x.read(), y.read(), err_msg=a.name)
        else:
            np.testing.assert_allclose(x.read(), y.read(), atol=1e-5, equal_nan=True,
                                       err_msg=a.name)


def test_streamed_run_equals_in_memory_run(tmp_path: Path, demo_run: dict[str, Any],
                                           caplog: pytest.LogCaptureFixture) -> None:
    mem = Path(demo_run["summary"]["run_dir"] if isinstance(demo_run["summary"], dict)
               else demo_run["summary"].run_dir)
    config = load_config(demo_run["files"].config)
    # cva: the change method whose statistics a streamed run fits scene-wide (RGB/pan default)
    config = dataclasses.replace(
        config, grid=dataclasses.replace(config.grid, memory_budget_mb=10.0),
        detect=dataclasses.replace(config.detect, tile_px=256, change_method="cva"),
        output=dataclasses.replace(config.output, report=False, gpkg=False))
    caplog.set_level(logging.INFO, logger="geo")
    run = Path(run_aoi(config, tmp_path / "streamed").run_dir)
    logs = [r.getMessage() for r in caplog.records]
    manifest = json.loads((run / "run.json").read_text())
    assert sum("streamed in 4 blocks of 256 px" in m for m in logs) == len(manifest["dates"])
    assert sum("scene-wide statistics" in m for m in logs) == len(manifest["change_maps"]) >= 2
    ref = json.loads((mem / "run.json").read_text())
    shifts = [(c["shift_dy_px"], c["shift_dx_px"]) for c in manifest["coregistration"]]
    assert shifts == [(c["shift_dy_px"], c["shift_dx_px"]) for c in ref["coregistration"]]
    assert any(s != (0.0, 0.0) for s in shifts)
    for kind in ("scenes", "masks"):
        files = sorted((mem / kind).glob("*.tif"))
        assert len(files) == len(manifest["dates"])
        for f in files:
            _tifs_equal(f, run / kind / f.name)
    fa = gpd.read_file(mem / "footprints.geojson")
    fb = gpd.read_file(run / "footprints.geojson")
    assert len(fa) >= 4
    assert fa["footprint_id"].tolist() == fb["footprint_id"].tolist()
    np.testing.assert_allclose(fa["area_m2"], fb["area_m2"], atol=1.0)
    grid = Grid.from_dict(json.loads((run / "grid.json").read_text()))
    for d0, d1 in itertools.pairwise(manifest["dates"]):
        a = read_to_grid(str(run / "scenes" / f"{d0}.tif"), grid, date=d0)
        b = read_to_grid(str(run / "scenes" / f"{d1}.tif"), grid, date=d1)
        cm = change_map(a, b, params=config.detect)
        both = a.valid & b.valid
        with rasterio.open(run / "change" / f"{d0}_{d1}_mask.tif") as src:
            np.testing.assert_array_equal(src.read(1), np.where(both, cm.mask, 255))
        with rasterio.open(run / "change" / f"{d0}_{d1}_prob.tif") as src:
            np.testing.assert_allclose(src.read(1), np.where(both, cm.probability, np.nan),
                                       atol=1e-5, equal_nan=True)
