"""Tiled detection gives exactly the untiled footprints, also for buildings on tile seams."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import rasterio.windows
from _detect_scenes import grid as make_grid
from conftest import DATA
from scipy import ndimage

from geo.config import DetectParams
from geo.detect import building_mask, building_method, building_score, thresholds_from_scores
from geo.footprints import polygonize
from geo.geoarray import GeoArray
from geo.grid import Grid, check_same_grid
from geo.tiles import (
    filter_reach_px,
    sample_thresholds,
    sub_grid,
    tile_windows,
    tiled_footprints,
)

PARAMS = DetectParams(min_area_m2=30.0)


def _scene(shape=(420, 380), res_m=1.0, seed=0) -> tuple[GeoArray, list[tuple[int, int]]]:
    """SYNTHETIC RGB: textured grass, a road, bright halls (some L-shaped), a cloud hole."""
    rng = np.random.default_rng(seed)
    tex = ndimage.gaussian_filter(rng.standard_normal(shape), 3.0)
    tex /= tex.std()
    img = np.stack([0.07 + 0.01 * tex, 0.13 + 0.015 * tex, 0.05 + 0.008 * tex])
    img[:, 200:206, :] = np.array([0.33, 0.33, 0.34])[:, None, None]  # road
    corners = []
    hall = (slice(60, 190), slice(90, 260))  # much larger than the default test halo
    for r0 in range(4, shape[0] - 50, 52):
        for c0 in range(4, shape[1] - 50, 52):
            if r0 + 52 > hall[0].start and r0 < hall[0].stop and c0 + 52 > hall[1].start \
                    and c0 < hall[1].stop:
                continue
            h, w = rng.integers(8, 36, size=2)
            r, c = r0 + rng.integers(0, 44 - h), c0 + rng.integers(0, 44 - w)
            colour = rng.uniform(0.45, 0.65, size=3)
            img[:, r:r + h, c:c + w] = colour[:, None, None]
            if rng.random() < 0.4:  # an L-shaped annex
                img[:, r + h - 4:r + h + 6, c:c + 8] = colour[:, None, None]
            corners.append((int(r), int(c)))
    img[:, hall[0], hall[1]] = np.array([0.6, 0.6, 0.62])[:, None, None]
    img = img + rng.normal(0, 0.01, img.shape)
    valid = np.ones(shape, bool)
    valid[330:360, 20:70] = False  # cloud
    g = make_grid(shape, res_m)
    return GeoArray(data=img.astype(np.float32), valid=valid, grid=g, date="2021-06-01",
                    bands=("red", "green", "blue"), kind="rgb"), corners


def _window_of(grid: Grid, other: Grid) -> tuple[int, int, int, int]:
    """``(row_off, col_off, rows, cols)`` of the pixel-aligned ``other`` inside ``grid``."""
    check_same_grid(grid, other, same_shape=False)
    col = round((other.transform.c - grid.transform.c) / grid.res_m)
    row = round((grid.transform.f - other.transform.f) / grid.res_m)
    return (row, col, other.shape[0], other.shape[1])


def _reader(ga: GeoArray):
    """Windows of an in-memory scene, as a windowed COG read gives them."""
    reads = []

    def read(g: Grid) -> GeoArray:
        r0, c0, h, w = _window_of(ga.grid, g)
        reads.append((h, w))
        return GeoArray(data=ga.data[:, r0:r0 + h, c0:c0 + w].copy(),
                        valid=ga.valid[r0:r0 + h, c0:c0 + w].copy(), grid=g, date=ga.date,
                        bands=ga.bands, kind=ga.kind)

    return read, reads


def _untiled(ga: GeoArray, params: DetectParams, thr=None):
    bm = building_mask(ga, params, thresholds=thr)
    return bm, polygonize(bm.mask, ga.grid, date=ga.date, aoi_name="t",
                          min_area_m2=params.min_area_m2, connectivity=params.connectivity,
                          alt_mask=bm.alt_mask, invalid=~ga.valid)


def _assert_same_footprints(a, b) -> None:
    assert len(a) == len(b)
    assert a["footprint_id"].tolist() == b["footprint_id"].tolist()
    for col in ("area_m2", "n_px", "area_alt_m2", "occluded", "res_m"):
        np.testing.assert_array_equal(a[col].to_numpy(), b[col].to_numpy(), err_msg=col)
    np.testing.assert_allclose(a["perimeter_m"], b["perimeter_m"], rtol=0, atol=1e-6)
    assert a.geometry.geom_equals_exact(b.geometry, 1e-6).all()


def _straddling(fp, g: Grid, tile_px: int) -> int:
    """Footprints that cross a seam between tile cores."""
    n = 0
    for geom in fp.geometry:
        x0, y0, x1, y1 = geom.bounds
        c0, c1 = (x0 - g.transform.c) / g.res_m, (x1 - g.transform.c) / g.res_m
        r0, r1 = (g.transform.f - y1) / g.res_m, (g.transform.f - y0) / g.res_m
        seams = np.arange(tile_px, max(g.shape) + 1, tile_px)
        n += bool(((seams > c0) & (seams < c1)).any() or ((seams > r0) & (seams < r1)).any())
    return n


@pytest.mark.parametrize(("tile_px", "halo_px", "connectivity"),
                         [(100, None, 4), (128, 40, 8), (64, 30, 4)])
def test_tiled_footprints_equal_untiled_on_seams(tile_px, halo_px, connectivity):
    ga, _ = _scene()
    params = DetectParams(min_area_m2=30.0, connectivity=connectivity,
                          tile_max_building_m=40.0)
    method = building_method(ga, params)
    score, veg = building_score(ga, method)
    thr = thresholds_from_scores(score, ga.valid, veg, method=method, params=params,
                                 has_swir=False)
    bm, untiled = _untiled(ga, params, thr)
    read, reads = _reader(ga)
    seen = np.zeros(ga.grid.shape, bool)
    mask = np.zeros(ga.grid.shape, bool)

    def on_tile(core, m, v):
        r0, r1, c0, c1 = core
        assert not seen[r0:r1, c0:c1].any()
        seen[r0:r1, c0:c1] = True
        mask[r0:r1, c0:c1] = m

    tiled = tiled_footprints(read, ga.grid, params, thresholds=thr, date=ga.date,
                             aoi_name="t", tile_px=tile_px, halo_px=halo_px, on_tile=on_tile)
    assert seen.all()
    assert _straddling(untiled, ga.grid, tile_px) >= 5  # the test means something
    _assert_same_footprints(tiled, untiled)
    np.testing.assert_array_equal(mask, bm.mask)
    # tiles read windows; only the tiles holding the big hall may widen to the whole scene
    whole = ga.grid.shape[0] * ga.grid.shape[1]
    assert sum(h * w < whole for h, w in reads) >= len(tile_windows(ga.grid.shape, tile_px)) - 4


def test_a_hall_larger_than_the_halo_is_redone_with_a_wider_halo():
    ga, _ = _scene(seed=1)
    params = DetectParams(min_area_m2=30.0)
    thr = sample_thresholds(_reader(ga)[0], ga.grid, params, method="rgb-objects",
                            tile_px=100, has_swir=False)
    _, untiled = _untiled(ga, params, thr)
    reach = filter_reach_px(params, 1.0, "rgb-objects")
    read, reads = _reader(ga)
    tiled = tiled_footprints(read, ga.grid, params, thresholds=thr, date=ga.date,
                             aoi_name="t", tile_px=100, halo_px=reach)
    _assert_same_footprints(tiled, untiled)
    assert len(reads) > len(tile_windows(ga.grid.shape, 100))  # some tile was redone
    assert untiled["area_m2"].max() >= 130 * 170  # the big hall is one footprint


def test_sampled_thresholds_equal_the_whole_scene_when_every_pixel_is_sampled():
    ga, _ = _scene(seed=2)
    bm, untiled = _untiled(ga, PARAMS)
    thr = sample_thresholds(_reader(ga)[0], ga.grid, PARAMS, method="rgb-objects",
                            tile_px=128, has_swir=False)
    assert thr.threshold == bm.threshold
    tiled = tiled_footprints(_reader(ga)[0], ga.grid, PARAMS, thresholds=thr, date=ga.date,
                             aoi_name="t", tile_px=128)
    _assert_same_footprints(tiled, untiled)
    # a 1-in-4 lattice moves the threshold only a little
    coarse = sample_thresholds(_reader(ga)[0], ga.grid, PARAMS, method="rgb-objects",
                               tile_px=128, has_swir=False, max_samples=ga.valid.size // 16)
    assert abs(coarse.threshold - bm.threshold) < 0.02


def test_sub_grid_is_pixel_aligned():
    g = make_grid((50, 60), 0.5)
    s = sub_grid(g, (10, 30, 5, 45))
    assert _window_of(g, s) == (10, 5, 20, 40)


@pytest.mark.skipif(not (DATA / "spacenet").is_dir(), reason="shared data not present")
def test_real_spacenet_pan_tile_tiled_equals_untiled():
    path = DATA / "spacenet" / "sn4_atlanta" / "sample_geotiff.tif"
    # the top-left 600 x 600 px of the 900 x 900 tile: 3 x 3 tiles of 256 px with 88 px edge
    # tiles, 14 buildings of which 4 straddle a seam (the whole tile: 20, 6 at 2.4x the CPU)
    window = rasterio.windows.Window(0, 0, 600, 600)
    with rasterio.open(path) as src:
        arr = src.read(1, window=window).astype(np.float32)
        t = src.window_transform(window)
        crs = src.crs.to_string()
    arr = arr / np.percentile(arr[arr > 0], 99.5)
    g = Grid(crs=crs, transform=t, shape=arr.shape)
    ga = GeoArray(data=arr[None], valid=arr > 0, grid=g, date="2016-12-22", bands=("pan",),
                  kind="pan")
    params = DetectParams(min_area_m2=20.0, tile_max_building_m=30.0)
    thr = sample_thresholds(_reader(ga)[0], g, params, method="rgb-objects", tile_px=256,
                            has_swir=False)
    _, untiled = _untiled(ga, params, thr)
    assert len(untiled) >= 10 and arr.shape == (600, 600)
    tiled = tiled_footprints(_reader(ga)[0], g, params, thresholds=thr, date=ga.date,
                             aoi_name="t", tile_px=256)
    assert _straddling(untiled, g, 256) >= 1
    _assert_same_footprints(tiled, untiled)
