from __future__ import annotations

import json
from pathlib import Path

import pytest
from common import BOW_TIE
from shapely.geometry import box, mapping

from geo.aoi import Aoi, read_aoi, validate_aoi
from geo.errors import AoiError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["kanggye_tractor_plant", "huichon_ryonha", "ryongsong_feb11_plant"])
def test_seed_aois_valid_with_provenance(name: str) -> None:
    aoi = read_aoi(ROOT / "aoi" / f"{name}.geojson")
    assert validate_aoi(aoi) == []
    assert aoi.properties["coord_confidence"] in ("low", "medium", "high")
    assert aoi.properties["coord_source"]
    assert "crs" not in json.loads((ROOT / "aoi" / f"{name}.geojson").read_text())


def test_town_centre_aoi_is_not_measuring() -> None:
    assert not read_aoi(ROOT / "aoi" / "kanggye_tractor_plant.geojson").is_measuring
    assert read_aoi(ROOT / "aoi" / "ryongsong_feb11_plant.geojson").is_measuring


def test_feb11_aoi_contains_buildings_a_and_b() -> None:
    from shapely.geometry import Point

    aoi = read_aoi(ROOT / "aoi" / "ryongsong_feb11_plant.geojson")
    assert aoi.geometry.contains(Point(127.657091, 39.920212))
    assert aoi.geometry.contains(Point(127.656521, 39.921628))


def _write(tmp_path: Path, obj: object) -> Path:
    p = tmp_path / "a.geojson"
    p.write_text(json.dumps(obj))
    return p


def test_empty_collection(tmp_path: Path) -> None:
    with pytest.raises(AoiError, match="no polygon"):
        read_aoi(_write(tmp_path, {"type": "FeatureCollection", "features": []}))


def test_not_json(tmp_path: Path) -> None:
    p = tmp_path / "a.geojson"
    p.write_text("{nope")
    with pytest.raises(AoiError, match="not valid GeoJSON"):
        read_aoi(p)


def test_missing(tmp_path: Path) -> None:
    with pytest.raises(AoiError, match="not found"):
        read_aoi(tmp_path / "nope.geojson")


def test_invalid_geometry_reported() -> None:
    problems = validate_aoi(Aoi(name="x", geometry=BOW_TIE, properties={
        "coord_source": "x", "coord_confidence": "high"}))
    assert any("invalid" in p and "Fix Geometries" in p for p in problems)


def test_projected_coordinates_reported(tmp_path: Path) -> None:
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": mapping(box(300000, 4500000, 301000, 4501000))}]}
    problems = validate_aoi(read_aoi(_write(tmp_path, fc)))
    assert any("lon/lat" in p for p in problems)


def test_too_large(tmp_path: Path) -> None:
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"coord_source": "x", "coord_confidence": "low"},
         "geometry": mapping(box(126.0, 40.0, 127.0, 41.0))}]}
    assert any("split the AOI" in p for p in validate_aoi(read_aoi(_write(tmp_path, fc))))
