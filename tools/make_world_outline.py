"""Write geo/export/data/world_110m.geojson: the report's locator-map country outlines.

Source: Natural Earth 1:110m Admin 0 countries (public domain, naturalearthdata.com), as
shipped in pyogrio's test fixtures (``naturalearth_lowres``). Kept: ``name`` and the
geometry, coordinates rounded to 0.01° (about 1 km: far below what a 12°-wide locator map
shows). Rerun after upgrading the source::

    python tools/make_world_outline.py [path/to/naturalearth_lowres.shp]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import geopandas as gpd
import shapely

OUT = Path(__file__).resolve().parents[1] / "geo" / "export" / "data" / "world_110m.geojson"


def main(argv: list[str]) -> None:
    """Read the source shapefile (argv[0] or pyogrio's fixture) and write OUT."""
    if argv:
        src = Path(argv[0])
    else:
        import pyogrio

        src = (Path(pyogrio.__file__).parent / "tests" / "fixtures" / "naturalearth_lowres"
               / "naturalearth_lowres.shp")
    gdf = gpd.read_file(src)[["name", "geometry"]].to_crs(4326)
    gdf["geometry"] = shapely.set_precision(gdf.geometry.values, 0.01)
    gdf = gdf[~gdf.geometry.is_empty].reset_index(drop=True)
    fc = json.loads(gdf.to_json(drop_id=True))
    fc["name"] = "world_110m"
    fc["source"] = ("Natural Earth 1:110m Admin 0 countries (public domain), "
                    "coordinates rounded to 0.01 degrees")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fc, separators=(",", ":")) + "\n")
    print(f"{OUT}: {len(gdf)} countries, {OUT.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main(sys.argv[1:])
