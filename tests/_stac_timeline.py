"""A SYNTHETIC Sentinel-2-like scene series on the loopback STAC server: a hall's history.

Each acquisition of :func:`geo.timeline_synth.stack` (the cleared / built / roofed hall on
seasonal cropland, clouds in the mask) becomes an Earth-Search-shaped item with one COG per
band (uint16 DN = reflectance × 10,000, baseline 05.09 with the offset already removed) and an
SCL COG (9 = cloud where the scene's mask says so, 4 = vegetation elsewhere), served by
:class:`_stac_server.StacServer` on 127.0.0.1 and read by GDAL with HTTP range requests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from _stac_server import BAND_FILES, StacServer, _template
from rasterio.transform import Affine

from geo import timeline_synth as ts
from geo.geoarray import GeoArray
from geo.grid import to_crs

__all__ = ["serve_history", "write_config"]


def _cog(path: Path, arr: np.ndarray, crs: str, transform: Affine) -> None:
    prof = {"driver": "COG", "width": arr.shape[1], "height": arr.shape[0], "count": 1,
            "dtype": arr.dtype.name, "crs": crs, "nodata": 0, "transform": transform,
            "blocksize": 16, "compress": "deflate", "overviews": "none"}
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(arr, 1)


def _item(ga: GeoArray, asset_dir: Path, base_url: str) -> dict[str, Any]:
    """Write one acquisition's COGs and return its STAC item."""
    item_id = f"S2A_33TUN_{ga.date.replace('-', '')}_0_L2A"
    folder = asset_dir / item_id
    folder.mkdir(parents=True, exist_ok=True)
    tmpl = _template()
    t, crs = ga.grid.transform, ga.grid.crs
    rows, cols = ga.grid.shape
    assets: dict[str, Any] = {}
    for band in ts.BANDS:
        dn = np.clip(np.round(ga.band(band) * 10000), 1, 65535).astype("uint16")
        _cog(folder / f"{BAND_FILES[band]}.tif", dn, crs, t)
        a = dict(tmpl["assets"][band])
        a.update(href=f"{base_url}/assets/{item_id}/{BAND_FILES[band]}.tif",
                 **{"proj:shape": [rows, cols], "proj:transform": [t.a, 0, t.c, 0, t.e, t.f]})
        assets[band] = a
    _cog(folder / "SCL.tif", np.where(ga.valid, 4, 9).astype("uint8"), crs, t)
    assets["scl"] = {**tmpl["assets"]["scl"], "href": f"{base_url}/assets/{item_id}/SCL.tif",
                     "proj:shape": [rows, cols], "proj:transform": [t.a, 0, t.c, 0, t.e, t.f]}
    props = dict(tmpl["properties"])
    props.update({"datetime": f"{ga.date}T10:00:00.000000Z", "platform": "sentinel-2a",
                  "proj:epsg": int(crs.split(":")[1]), "s2:processing_baseline": "05.09",
                  "earthsearch:boa_offset_applied": True,
                  "eo:cloud_cover": round(100 * (1 - ga.valid_frac), 1),
                  "s2:product_uri": f"S2A_MSIL2A_{ga.date.replace('-', '')}T100000_N0509_R022_"
                                    "T33TUN_SYNTHETIC.SAFE"})
    b = ga.grid.bounds
    geom = shapely.set_precision(to_crs(shapely.box(*b), crs, "EPSG:4326"), 1e-7)
    return {"type": "Feature", "stac_version": "1.0.0",
            "stac_extensions": tmpl["stac_extensions"], "id": item_id,
            "collection": "sentinel-2-l2a", "bbox": list(geom.bounds),
            "geometry": shapely.geometry.mapping(geom), "properties": props,
            "assets": assets, "links": []}


def serve_history(server: StacServer, asset_dir: Path, h: ts.History, *, seed: int = 3,
                  years: float = 2.5, s2_days: float = 10.0) -> list[str]:
    """Serve the SYNTHETIC acquisitions of ``h``; return their dates."""
    rng = np.random.default_rng(seed)
    scenes = ts.stack(rng, h, years=years, s2_days=s2_days, landsat=False)
    for ga in scenes:
        server.add_item(_item(ga, asset_dir, server.url))
    return [ga.date for ga in scenes]


def write_config(root: Path, api: str, *, start: str, end: str, period: str = "month") -> Path:
    """AOI (the hall plus 70 m, in WGS 84) and a STAC run config under ``root``."""
    aoi = to_crs(ts.outline().buffer(70, join_style="mitre"), "EPSG:32633", "EPSG:4326")
    (root / "hall.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"name": "hall", "coord_source": "SYNTHETIC",
                                          "coord_confidence": "high"},
        "geometry": shapely.geometry.mapping(aoi)}]}))
    cfg = root / "hall.toml"
    cfg.write_text(
        '[aoi]\ngeometry = "hall.geojson"\nname = "hall"\n'
        f'[source]\nkind = "stac"\napi = "{api}"\ncollections = ["sentinel-2-l2a"]\n'
        f'start = "{start}"\nend = "{end}"\nperiod = "{period}"\n'
        f'cache_dir = "{root / "cache"}"\nmax_retries = 2\n'
        '[grid]\nresolution_m = 10.0\n[detect]\nmin_area_m2 = 2000.0\n'
        '[output]\nreport = false\nrasters = false\n')  # no change rasters: not looked at
    return cfg
