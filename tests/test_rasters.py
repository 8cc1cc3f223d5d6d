"""COG export: valid COGs with overviews, deflate, tags, band names and a QML sidecar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rio_cogeo.cogeo import cog_validate

from geo.errors import CrsMismatchError
from geo.export.rasters import overview_count, write_cog
from geo.grid import Grid

GRID = Grid(crs="EPSG:32652", transform=Affine(2.0, 0, 465000.0, 0, -2.0, 4535200.0),
            shape=(300, 520))


@pytest.mark.parametrize(
    ("kind", "dtype", "bands", "nodata"),
    [("scene", "float32", 4, None), ("probability", "float32", 1, None),
     ("mask", "uint8", 1, 255), ("scene", "uint16", 3, 0)],
)
def test_write_cog_validates(tmp_path: Path, kind: str, dtype: str, bands: int,
                             nodata: float | None) -> None:
    rng = np.random.default_rng(0)
    data = (rng.random((bands, *GRID.shape)) * (1 if dtype == "float32" else 2)).astype(dtype)
    names = ["blue", "green", "red", "nir"][:bands] if kind == "scene" else None
    out = write_cog(data, GRID, tmp_path / "x.tif", kind=kind,  # type: ignore[arg-type]
                    nodata=nodata, band_names=names, tags={"DATE": "2021-06-03"})
    valid, errors, warnings = cog_validate(out, strict=True)
    assert valid and not errors and not warnings
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == GRID.epsg
        assert ds.transform == GRID.transform
        assert ds.shape == GRID.shape
        assert ds.count == bands
        assert ds.compression is not None and ds.compression.name == "deflate"
        assert ds.overviews(1) == [2, 4]  # 520 px / 256-px tiles → 2 levels
        assert ds.tags()["FACTORYWATCH_KIND"] == kind
        assert ds.tags()["DATE"] == "2021-06-03"
        assert ds.nodata == nodata
        if names:
            assert list(ds.descriptions) == names
        np.testing.assert_array_equal(ds.read(), data)
    assert (tmp_path / "x.qml").exists()
    assert (out.stat().st_mode & 0o777) == (tmp_path / "x.qml").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.qml", "x.tif"]


def test_small_raster_still_has_an_overview(tmp_path: Path) -> None:
    g = Grid(crs=GRID.crs, transform=GRID.transform, shape=(40, 50))
    out = write_cog(np.ones(g.shape, "uint8"), g, tmp_path / "m.tif", kind="mask", nodata=255)
    assert cog_validate(out)[0]
    with rasterio.open(out) as ds:
        assert ds.overviews(1) == [2]


def test_nan_becomes_nodata_and_bool_is_uint8(tmp_path: Path) -> None:
    p = np.full(GRID.shape, 0.5, "float32")
    p[0, 0] = np.nan
    with rasterio.open(write_cog(p, GRID, tmp_path / "p.tif", kind="probability")) as ds:
        assert ds.nodata is not None and np.isnan(ds.nodata)
    m = np.zeros(GRID.shape, bool)
    with rasterio.open(write_cog(m, GRID, tmp_path / "m.tif", kind="mask")) as ds:
        assert ds.dtypes[0] == "uint8"


def test_off_grid_array_refused(tmp_path: Path) -> None:
    with pytest.raises(CrsMismatchError, match="not on the grid"):
        write_cog(np.zeros((10, 10), "uint8"), GRID, tmp_path / "m.tif", kind="mask")
    with pytest.raises(ValueError, match="band names"):
        write_cog(np.zeros((2, *GRID.shape), "float32"), GRID, tmp_path / "s.tif",
                  kind="scene", band_names=["red"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("shape", "n"), [((1, 1), 0), ((2, 3), 1), ((256, 256), 1),
                                          ((257, 10), 1), ((1024, 1024), 2), ((5000, 10), 5)])
def test_overview_count(shape: tuple[int, int], n: int) -> None:
    assert overview_count(shape) == n
