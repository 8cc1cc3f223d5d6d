from __future__ import annotations

import pytest
from shapely.geometry import box

from geo.errors import AoiError
from geo.grid import Grid, grid_for_aoi, utm_epsg_for


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [(126.585, 40.969, 32652), (125.221, 40.055, 32651), (30.0, -3.0, 32736), (-97.98, 30.21, 32614)],
)
def test_utm_zone(lon: float, lat: float, epsg: int) -> None:
    assert utm_epsg_for(lon, lat) == epsg


def test_utm_rejects_lat_lon_swapped() -> None:
    with pytest.raises(AoiError):
        utm_epsg_for(40.9, 126.5)  # (lat, lon) swapped → lat out of range


@pytest.mark.parametrize("res", [0.5, 1.0, 3.0, 10.0])
def test_grid_snapped_and_covers(res: float) -> None:
    aoi = box(127.65, 39.915, 127.665, 39.925)
    g = grid_for_aoi(aoi, res)
    assert g.crs == "EPSG:32652"
    assert g.transform.c % res == pytest.approx(0) or g.transform.c % res == pytest.approx(res)
    assert g.transform.f % res == pytest.approx(0) or g.transform.f % res == pytest.approx(res)
    from geo.grid import to_crs

    gb = box(*g.bounds)
    assert gb.contains(to_crs(aoi, "EPSG:4326", g.crs))
    assert g.pixel_area_m2 == pytest.approx(res * res)


def test_grid_roundtrip_dict() -> None:
    g = grid_for_aoi(box(127.65, 39.915, 127.66, 39.92), 10)
    assert Grid.from_dict(g.to_dict()) == g


def test_grid_empty() -> None:
    from shapely.geometry import Polygon

    with pytest.raises(AoiError, match="empty"):
        grid_for_aoi(Polygon(), 10)


def test_grid_explicit_epsg() -> None:
    g = grid_for_aoi(box(125.98, 40.0, 126.02, 40.01), 10, epsg=32651)
    assert g.crs == "EPSG:32651"
