"""Canonical geometries and RFC 7946 checks shared by the tests."""

from __future__ import annotations

import ast
import functools
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


def parse_source(path: Path) -> ast.Module:
    """``ast.parse`` of a source file, parsed once per distinct text in a test process (the
    architecture and vocabulary tests walk every module of ``geo/`` several times; nothing
    may modify the returned tree)."""
    return _parse_text(path.read_text())


@functools.cache
def _parse_text(text: str) -> ast.Module:
    return ast.parse(text)


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


def write_bercy_inputs(tmp_path: Path, data: Path, detect_toml: str) -> Path:
    """The real OSCD Paris-Bercy S2 pair as two 4-band local dates + AOI + TOML; the TOML path.

    ``detect_toml`` is the body of the ``[detect]`` section. Skips when the shared data is absent.
    """
    import numpy as np
    import pytest
    import rasterio

    root = data / "oscd" / "bercy"
    if not root.is_dir():
        pytest.skip(f"shared data missing: {root}")
    img = tmp_path / "imagery"
    img.mkdir()
    bands = ["B02", "B03", "B04", "B08"]
    for sub, date in (("imgs_1", "2016-11-30"), ("imgs_2", "2017-08-29")):
        files = [sorted((root / sub).glob(f"*_{b}.tif"))[0] for b in bands]
        with rasterio.open(files[0]) as s0:
            prof = s0.profile
        arr = np.stack([rasterio.open(f).read(1) for f in files])
        prof.update(count=4, driver="GTiff")
        with rasterio.open(img / f"bercy_{date}.tif", "w", **prof) as dst:
            dst.write(arr)
            for i, b in enumerate(bands, 1):
                dst.set_band_description(i, b)
    fc = json.loads((root / "bercy.geojson").read_text())
    fc["features"][0]["properties"] = {"coord_source": "OSCD", "coord_confidence": "high"}
    (tmp_path / "bercy.geojson").write_text(json.dumps(fc))
    toml = tmp_path / "bercy.toml"
    toml.write_text('[source]\nkind = "local"\npath = "imagery"\n[grid]\nresolution_m = 10.0\n'
                    f"[detect]\n{detect_toml}")
    return toml
