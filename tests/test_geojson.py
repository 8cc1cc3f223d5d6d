from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from common import L_SHAPE, SQUARE, WITH_HOLE, assert_rfc7946
from shapely.geometry import Polygon

from geo.export.geojson import write_geojson


def test_rfc7946_from_utm_with_cw_input(tmp_path: Path) -> None:
    cw = Polygon(list(SQUARE.exterior.coords)[::-1])
    geoms = [cw, L_SHAPE, WITH_HOLE]
    shifted = [Polygon([(300000 + x, 4500000 + y) for x, y in g.exterior.coords],
                       [[(300000 + x, 4500000 + y) for x, y in r.coords] for r in g.interiors])
               for g in geoms]
    gdf = gpd.GeoDataFrame({"site_id": ["k:s1", "k:s2", "k:s3"], "area_m2": [1.0, np.nan, 3.0],
                            "ok": [True, False, True]}, geometry=shifted, crs="EPSG:32652")
    p = write_geojson(gdf, tmp_path / "sites.geojson", layer_name="sites", id_field="site_id")
    fc = assert_rfc7946(p)
    assert fc["name"] == "sites"
    assert [f["id"] for f in fc["features"]] == ["k:s1", "k:s2", "k:s3"]
    assert fc["features"][1]["properties"]["area_m2"] is None  # NaN → null
    assert fc["features"][0]["properties"]["ok"] is True
    lon, lat = fc["features"][0]["geometry"]["coordinates"][0][0]
    assert 120 < lon < 130 and 35 < lat < 45
    # 7 decimal places at most
    assert all(len(str(c).split(".")[-1]) <= 7 for c in fc["features"][0]["geometry"]["coordinates"][0][0])


def test_empty_layer(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame({"site_id": []}, geometry=gpd.GeoSeries([], crs="EPSG:32652"))
    p = write_geojson(gdf, tmp_path / "e.geojson", layer_name="e", id_field="site_id")
    assert json.loads(p.read_text())["features"] == []


def test_no_crs_refused(tmp_path: Path) -> None:
    gdf = gpd.GeoDataFrame({"site_id": ["a"]}, geometry=[SQUARE])
    with pytest.raises(ValueError, match="no CRS"):
        write_geojson(gdf, tmp_path / "x.geojson", layer_name="x", id_field="site_id")
    assert not (tmp_path / "x.geojson").exists()


def test_rounding_that_would_break_a_polygon_falls_back_to_valid_snapping():
    """A hole 4e-8 degrees from its shell: pointwise rounding to 1e-7 would make it touch the
    shell along an edge (invalid); that geometry is snapped by GEOS instead, and stays valid."""
    import shapely

    from geo.export.geojson import _rounded

    hole = [(0.2, 0.00000004), (0.8, 0.00000004), (0.8, 0.5), (0.2, 0.5)]
    poly = shapely.Polygon([(0, 0), (1, 0), (1, 1), (0, 1)], [hole])
    plain = shapely.box(2.123456789, 3.0, 2.5, 3.5)
    assert poly.is_valid
    assert not shapely.set_precision(poly, 1e-7, mode="pointwise").is_valid
    out = _rounded(np.array([poly, plain], dtype=object), 7)
    assert all(shapely.is_valid(out))
    assert abs(out[0].area - poly.area) < 1e-6
    assert out[1].bounds[0] == 2.1234568
