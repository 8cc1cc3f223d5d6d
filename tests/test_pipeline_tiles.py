"""The pipeline's tiled detect stage gives the untiled run's footprints (SYNTHETIC demo)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from geo.config import load_config
from geo.pipeline import run_aoi


def test_demo_run_tiled_equals_untiled(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                       demo_run: dict[str, Any]) -> None:
    caplog.set_level(logging.INFO, logger="geo.detect.tiled")
    config = load_config(demo_run["files"].config)
    assert config.detect.tile_px > max(json.loads(
        (Path(demo_run["summary"].run_dir) / "grid.json").read_text())["shape"])
    runs = {0: Path(demo_run["summary"].run_dir)}  # the session's demo run is untiled
    # the demo grid is 461 x 462 px: 256 cuts it into 4 tiles
    cfg = dataclasses.replace(config, detect=dataclasses.replace(config.detect, tile_px=256),
                              output=dataclasses.replace(config.output, report=False, gpkg=False))
    runs[256] = Path(run_aoi(cfg, tmp_path / "run_256").run_dir)
    a = gpd.read_file(runs[0] / "footprints.geojson")
    b = gpd.read_file(runs[256] / "footprints.geojson")
    assert len(a) >= 4
    assert a["footprint_id"].tolist() == b["footprint_id"].tolist()
    np.testing.assert_array_equal(a["area_m2"], b["area_m2"])
    assert a.geometry.geom_equals_exact(b.geometry, 1e-9).all()
    sa = gpd.read_file(runs[0] / "sites.geojson")
    sb = gpd.read_file(runs[256] / "sites.geojson")
    np.testing.assert_array_equal(sa["area_m2"], sb["area_m2"])
    for mask in sorted((runs[0] / "masks").glob("*.tif")):
        with rasterio.open(mask) as x, rasterio.open(runs[256] / "masks" / mask.name) as y:
            np.testing.assert_array_equal(x.read(), y.read())
    tiled = [r.getMessage() for r in caplog.records if r.name == "geo.detect.tiled"]
    assert len(tiled) == len(list((runs[256] / "masks").glob("*.tif"))) >= 2
    assert all(": 4 tiles of 256 px" in m for m in tiled)
    assert json.loads((runs[256] / "run.json").read_text())["config"]["detect"]["tile_px"] == 256
