"""Canonical geometries and RFC 7946 checks shared by the tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import Polygon, box, shape

SQUARE = box(0, 0, 10, 10)
L_SHAPE = Polygon([(0, 0), (20, 0), (20, 10), (10, 10), (10, 20), (0, 20)])
WITH_HOLE = Polygon([(0, 0), (30, 0), (30, 30), (0, 30)], [[(10, 10), (20, 10), (20, 20), (10, 20)]])
TOUCHING_PAIR = shapely.MultiPolygon([box(0, 0, 10, 10), box(10, 0, 20, 10)])
SLIVER = box(0, 0, 1, 30)
EMPTY = Polygon()
BOW_TIE = Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])


def assert_rfc7946(path: Path) -> dict[str, Any]:
    """Assert that ``path`` is an RFC 7946 FeatureCollection as factorywatch writes them."""
    fc = json.loads(Path(path).read_text())
    assert fc["type"] == "FeatureCollection"
    assert "crs" not in fc, "RFC 7946 has no crs member"
    assert isinstance(fc.get("name"), str)
    for f in fc["features"]:
        assert f["type"] == "Feature"
        assert isinstance(f["id"], str) and f["id"], "stable string id at top level"
        assert f["id"] in f["properties"].values(), "id copied into properties"
        for k, v in f["properties"].items():
            assert k == k.lower() and " " not in k, k
            assert not isinstance(v, (dict, list)), f"nested property {k}"
            assert not (isinstance(v, float) and v != v), f"NaN in {k}"
        g = f["geometry"]
        if g is None:
            continue
        geom = shape(g)
        minx, miny, maxx, maxy = geom.bounds
        assert -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90, "lon/lat"
        polys = list(geom.geoms) if geom.geom_type == "MultiPolygon" else [geom]
        for p in polys:
            assert p.exterior.is_ccw, f"exterior ring of {f['id']} must be counter-clockwise"
            for ring in p.interiors:
                assert not ring.is_ccw, "holes must be clockwise"
    return fc
