from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from rasterio import features

from geo.footprints import FOOTPRINT_COLUMNS, polygonize
from geo.grid import Grid


def grid_for(shape: tuple[int, int], res: float = 10.0, crs: str = "EPSG:32652") -> Grid:
    return Grid(crs, Affine(res, 0, 300000, 0, -res, 4500000), shape)


masks = arrays(np.bool_, st.tuples(st.integers(1, 24), st.integers(1, 24)))


@settings(max_examples=80, deadline=None)
@given(mask=masks, conn=st.sampled_from([4, 8]))
def test_rasterize_polygonize_roundtrip(mask: np.ndarray, conn: int) -> None:
    g = grid_for(mask.shape)
    fp = polygonize(mask, g, date="2021-01-01", aoi_name="t", connectivity=conn)  # type: ignore[arg-type]
    if mask.any():
        back = features.rasterize(((geom, 1) for geom in fp.geometry), out_shape=mask.shape,
                                  transform=g.transform, fill=0, dtype="uint8").astype(bool)
    else:
        back = np.zeros_like(mask)
    np.testing.assert_array_equal(back, mask)


@settings(max_examples=80, deadline=None)
@given(mask=masks, res=st.sampled_from([0.5, 3.0, 10.0]), conn=st.sampled_from([4, 8]))
def test_area_equals_pixel_count(mask: np.ndarray, res: float, conn: int) -> None:
    g = grid_for(mask.shape, res)
    fp = polygonize(mask, g, date="2021-01-01", aoi_name="t", connectivity=conn)  # type: ignore[arg-type]
    assert fp["area_m2"].sum() == pytest.approx(mask.sum() * res * res)
    for geom, a in zip(fp.geometry, fp["area_m2"], strict=True):
        assert geom.is_valid
        assert geom.area == pytest.approx(a)


def test_columns_ids_and_min_area() -> None:
    m = np.zeros((20, 20), bool)
    m[2:6, 2:6] = True   # 16 px = 1600 m²
    m[10:11, 10:12] = True  # 2 px = 200 m²
    fp = polygonize(m, grid_for(m.shape), date="2021-01-01", aoi_name="k", min_area_m2=500)
    assert list(fp.columns[:-1]) == list(FOOTPRINT_COLUMNS)
    assert list(fp["footprint_id"]) == ["k:2021-01-01:1"]
    assert fp.loc[0, "perimeter_m"] == pytest.approx(160)


def test_connectivity_changes_count() -> None:
    m = np.zeros((6, 6), bool)
    m[1, 1] = m[2, 2] = True
    assert len(polygonize(m, grid_for(m.shape), date="d", aoi_name="k", connectivity=4)) == 2
    assert len(polygonize(m, grid_for(m.shape), date="d", aoi_name="k", connectivity=8)) == 1


def test_alt_area_and_occlusion() -> None:
    m = np.zeros((20, 20), bool)
    m[5:10, 5:10] = True
    alt = np.zeros_like(m)
    alt[6:9, 6:9] = True
    invalid = np.zeros_like(m)
    invalid[5:10, 10] = True  # cloud touching the right edge
    fp = polygonize(m, grid_for(m.shape), date="d", aoi_name="k", alt_mask=alt, invalid=invalid)
    assert fp.loc[0, "area_alt_m2"] == pytest.approx(900)
    assert bool(fp.loc[0, "occluded"])
    fp2 = polygonize(m, grid_for(m.shape), date="d", aoi_name="k")
    assert not bool(fp2.loc[0, "occluded"]) and np.isnan(fp2.loc[0, "area_alt_m2"])


def test_hole_kept() -> None:
    m = np.zeros((12, 12), bool)
    m[2:10, 2:10] = True
    m[5:7, 5:7] = False
    fp = polygonize(m, grid_for(m.shape), date="d", aoi_name="k")
    assert len(fp) == 1 and len(fp.geometry[0].interiors) == 1
    assert fp.loc[0, "area_m2"] == pytest.approx(60 * 100)


def test_empty_mask() -> None:
    fp = polygonize(np.zeros((5, 5), bool), grid_for((5, 5)), date="d", aoi_name="k")
    assert len(fp) == 0 and fp.crs == "EPSG:32652"


def test_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="does not match"):
        polygonize(np.zeros((5, 5), bool), grid_for((6, 6)), date="d", aoi_name="k")


def test_southern_zone() -> None:
    m = np.zeros((8, 8), bool)
    m[1:4, 1:4] = True
    fp = polygonize(m, grid_for(m.shape, crs="EPSG:32736"), date="d", aoi_name="k")
    assert fp.crs == "EPSG:32736" and shapely.area(fp.geometry[0]) == pytest.approx(900)
