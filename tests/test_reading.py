from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from conftest import DATA, MakeGeoTiff
from shapely.geometry import box

from geo.aoi import Aoi
from geo.errors import NoImageryError, SourceError
from geo.grid import Grid, grid_for_aoi, to_crs
from geo.reading import read_to_grid
from geo.sources.local import LocalGeoTiffSource, date_from_name, date_from_tags

GRID = Grid("EPSG:32652", Affine(10, 0, 300000, 0, -10, 4500000), (32, 32))


def xy_image(rows: int = 32, cols: int = 32) -> np.ndarray:
    """Coordinate-encoding image: band 1 = col, band 2 = row (odc-geo's gen_test_image_xy)."""
    r, c = np.mgrid[0:rows, 0:cols]
    return np.stack([c, r]).astype("float32")


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_same_grid_is_identity(make_geotiff: MakeGeoTiff, dtype: str) -> None:
    arr = (xy_image() * 3).astype(dtype)
    p = make_geotiff(arr)
    ga = read_to_grid(str(p), GRID, date="2021-06-03", resampling=__import__("rasterio").enums.Resampling.nearest)
    assert ga.data.shape == (2, 32, 32)
    np.testing.assert_array_equal(ga.data, arr.astype("float32"))
    assert ga.valid.all()


def test_window_only_and_offset(make_geotiff: MakeGeoTiff) -> None:
    # a source four times larger; the grid sits at an offset of (5 cols, 7 rows)
    p = make_geotiff(xy_image(128, 128), origin=(300000 - 50, 4500000 + 70))
    from rasterio.enums import Resampling

    ga = read_to_grid(str(p), GRID, date="2021-06-03", resampling=Resampling.nearest)
    assert ga.data[0, 0, 0] == 5 and ga.data[1, 0, 0] == 7
    assert ga.data[0, 3, 10] == 15 and ga.data[1, 3, 10] == 10


def test_other_crs_is_warped(make_geotiff: MakeGeoTiff) -> None:
    # same ground in EPSG:3857; bilinear warp must land values near the right place
    from rasterio.enums import Resampling
    from rasterio.warp import calculate_default_transform, reproject

    src = xy_image(64, 64)
    t = Affine(10, 0, 299840, 0, -10, 4500160)
    t2, w, h = calculate_default_transform("EPSG:32652", "EPSG:3857", 64, 64,
                                          *(299840, 4500160 - 640, 299840 + 640, 4500160))
    dst = np.zeros((2, h, w), "float32")
    for b in range(2):
        reproject(src[b], dst[b], src_transform=t, src_crs="EPSG:32652", dst_transform=t2,
                  dst_crs="EPSG:3857", resampling=Resampling.bilinear)
    p = make_geotiff(dst, crs="EPSG:3857", res_m=t2.a, origin=(t2.c, t2.f))
    ga = read_to_grid(str(p), GRID, date="2021-06-03")
    # pixel (row 10, col 10) of GRID is (col 26, row 26) of the source
    assert abs(ga.data[0, 10, 10] - 26) < 0.6
    assert abs(ga.data[1, 10, 10] - 26) < 0.6


@pytest.mark.parametrize("style", ["value", "nan", "mask"])
def test_nodata_respected(make_geotiff: MakeGeoTiff, style: str) -> None:
    arr = np.full((1, 32, 32), 100, "float32")
    bad = np.zeros((32, 32), bool)
    bad[:5, :] = True
    kw: dict = {}
    if style == "value":
        arr[0][bad] = -9999
        kw["nodata"] = -9999
    elif style == "nan":
        arr[0][bad] = np.nan
        kw["nodata"] = float("nan")
    else:
        kw["mask"] = ~bad
    from rasterio.enums import Resampling

    ga = read_to_grid(str(make_geotiff(arr, **kw)), GRID, date="2021-06-03",
                      resampling=Resampling.nearest)
    np.testing.assert_array_equal(ga.valid, ~bad)
    assert np.all(ga.data[0][~bad] == 100)


def test_no_crs(make_geotiff: MakeGeoTiff) -> None:
    p = make_geotiff(np.ones((8, 8), "uint8"), crs=None)
    with pytest.raises(SourceError, match="no CRS"):
        read_to_grid(str(p), GRID, date="2021-06-03")


def test_no_overlap(make_geotiff: MakeGeoTiff) -> None:
    p = make_geotiff(np.ones((8, 8), "uint8"), origin=(600000, 4500000))
    with pytest.raises(NoImageryError, match="does not overlap"):
        read_to_grid(str(p), GRID, date="2021-06-03")


def test_corrupt_file(tmp_path: Path) -> None:
    p = tmp_path / "2021-06-03.tif"
    p.write_bytes(b"II*\x00garbage" * 10)
    with pytest.raises(SourceError, match="cannot open"):
        read_to_grid(str(p), GRID, date="2021-06-03")


def test_band_roles_from_descriptions(make_geotiff: MakeGeoTiff) -> None:
    p = make_geotiff(np.ones((4, 32, 32), "uint16"), descriptions=["B02", "B03", "B04", "B08"])
    ga = read_to_grid(str(p), GRID, date="2021-06-03")
    assert ga.bands == ("blue", "green", "red", "nir") and ga.kind == "multispectral"


def test_real_rgb_byte_landsat_subset() -> None:
    """rasterio's RGB.byte.tif (real Landsat-7 subset, EPSG:32618, nodata 0 borders)."""
    path = DATA / "geotiff_io" / "rasterio_RGB.byte.tif"
    if not path.exists():
        pytest.skip(f"shared data missing: {path}")
    aoi = box(-77.9, 24.2, -77.5, 24.6)
    g = grid_for_aoi(aoi, 300.0)
    ga = read_to_grid(str(path), g, date="2000-01-01")
    assert ga.grid.crs == "EPSG:32618"
    assert 0.2 < ga.valid_frac < 1.0  # the black nodata collar is masked
    assert ga.kind == "rgb"


# --- local folder source -----------------------------------------------------------------------
def test_dates_from_tags_and_names() -> None:
    assert date_from_tags({"TIFFTAG_DATETIME": "2021:06:03 10:20:00"}) == "2021-06-03"
    assert date_from_name("x_20230914_y.tif") == "2023-09-14"
    assert date_from_name("x_2023-13-40.tif") is None


def test_local_source_lists_sorted(make_geotiff: MakeGeoTiff, tmp_path: Path) -> None:
    folder = tmp_path / "img"
    make_geotiff(np.ones((8, 8), "uint8"), folder=folder, name="b_2022-01-05.tif")
    make_geotiff(np.ones((8, 8), "uint8"), folder=folder, name="a.tif",
                 tags={"TIFFTAG_DATETIME": "2020:03:01 00:00:00"})
    aoi = Aoi(name="x", geometry=to_crs(box(*GRID.bounds), GRID.crs, "EPSG:4326"))
    scenes = LocalGeoTiffSource(folder).search(aoi)
    assert [s.date for s in scenes] == ["2020-03-01", "2022-01-05"]
    assert all(len(s.properties["sha256"]) == 64 for s in scenes)
    assert [s.date for s in LocalGeoTiffSource(folder).search(aoi, "2021-01-01", None)] == ["2022-01-05"]


def test_local_source_errors(make_geotiff: MakeGeoTiff, tmp_path: Path) -> None:
    aoi = Aoi(name="x", geometry=box(126, 40, 126.1, 40.1))
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoImageryError, match="no GeoTIFF"):
        LocalGeoTiffSource(tmp_path / "empty").search(aoi)
    with pytest.raises(SourceError, match="not found"):
        LocalGeoTiffSource(tmp_path / "nope").search(aoi)
    make_geotiff(np.ones((8, 8), "uint8"), folder=tmp_path / "undated", name="scene.tif", date=None)
    with pytest.raises(SourceError, match="no acquisition date"):
        LocalGeoTiffSource(tmp_path / "undated").search(aoi)
