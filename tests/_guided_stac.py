"""The guided-mode factory series (tests/_guided_scenes.py) served as a STAC API on 127.0.0.1.

Reuses :mod:`_stac_server` unchanged: its ``make_scene`` writes the COGs and items, with the
synthetic reflectance swapped for the SYNTHETIC factory scenes (pasted into the test tile, on
vegetation). Hall B is under a cloud (SCL 9) on :data:`_guided_scenes.CLOUDY`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import _stac_server as fx
import numpy as np
from _guided_scenes import CLOUDY, DATES, write_series
from shapely.geometry import box, mapping

from geo.grid import to_crs

ORIGIN = (384980.0, 4419960.0)
"""Top-left corner of the 600 m factory scene inside the STAC test tile (EPSG:32652)."""


def serve_factory(server: fx.StacServer, root: Path) -> dict[str, Any]:
    """Write the scenes as STAC items on ``server``; return config path, priors and truth."""
    import _guided_scenes as gs

    gs_origin = gs.ORIGIN
    gs.ORIGIN = ORIGIN  # render the layout at the tile location (the CRS is the same)
    try:
        series = write_series(root / "local")
        scenes, _, _ = gs.render_scenes(0)
    finally:
        gs.ORIGIN = gs_origin
    r0 = round((fx.TILE_TOP - ORIGIN[1]) / 10)
    c0 = round((ORIGIN[0] - fx.TILE_LEFT) / 10)
    rng = np.random.default_rng(5)
    veg = {"blue": 0.04, "green": 0.07, "red": 0.05, "nir": 0.33}

    def truth(band: str, res: float, seed: int) -> np.ndarray:
        n = round(fx.TILE_PX * 10 / res)
        data = scenes[seed]
        idx = {"blue": 0, "green": 1, "red": 2, "nir": 3}
        if band in idx:
            base, patch = veg[band], data[idx[band]]
        elif band == "swir16":
            base, patch = 0.9 * veg["nir"] + 0.02, 0.9 * data[3] + 0.02
        else:
            base, patch = 0.7 * veg["red"] + 0.02, 0.7 * data[2] + 0.02
        out = base + rng.normal(0, 0.004, (n, n))
        out[r0:r0 + 60, c0:c0 + 60] = np.nan_to_num(patch, nan=0.6)
        return np.clip(out, 0.001, 1.0)

    b_box = (ORIGIN[0] + 300, ORIGIN[1] - 400, ORIGIN[0] + 560, ORIGIN[1] - 220)
    specs = [fx.SceneSpec(item_id=f"S2A_52SCG_{d.replace('-', '')}_0_L2A", date=d, seed=i,
                          swir_res_m=10.0, cloud_utm=b_box if d == CLOUDY else None)
             for i, d in enumerate(DATES)]
    orig = fx.reflectance_truth
    fx.reflectance_truth = truth  # make_scene looks it up at call time
    try:
        fx.serve_scenario(server, root / "assets", tuple(specs))
    finally:
        fx.reflectance_truth = orig
    aoi = to_crs(box(ORIGIN[0] + 20, ORIGIN[1] - 580, ORIGIN[0] + 580, ORIGIN[1] - 20),
                 fx.CRS, "EPSG:4326")
    (root / "plant.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"coord_source": "SYNTHETIC test scene",
                                          "coord_confidence": "high", "synthetic": True},
        "geometry": mapping(aoi)}]}))
    cfg = root / "plant.toml"
    cfg.write_text("\n".join([
        "[aoi]", 'geometry = "plant.geojson"', "", "[source]", 'kind = "stac"',
        f'api = "{server.url}"', 'collections = ["sentinel-2-l2a"]', 'start = "2019-01-01"',
        'end = "2023-12-31"', 'period = "month"', f'cache_dir = "{root / "cache"}"',
        "max_retries = 2", "", "[grid]", "resolution_m = 10.0", "",
        "[output]", "report = false", "rasters = false", ""]))
    return {"config": cfg, "priors": series.priors, "truth": series.truth}
