"""Pure per-AOI QA: SCL / QA_PIXEL fractions and the bright-stable-roof flag."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from geo.sources.qa import bright_stable_mask, landsat_qa_masks, qa_fractions, scl_masks


def test_scl_classes_split_into_masks() -> None:
    scl = np.arange(12).reshape(3, 4)
    m = scl_masks(scl)
    assert m.nodata.sum() == 1 and m.cloud.sum() == 3 and m.shadow.sum() == 1
    assert m.snow.sum() == 1 and m.bad.sum() == 1
    # vegetation, not vegetated, water, unclassified, dark area, snow stay usable
    assert sorted(scl[m.valid].tolist()) == [2, 4, 5, 6, 7, 11]


def test_landsat_qa_bits() -> None:
    # USGS C2 L2 example values: 1 fill, 21824 clear land, 21952 clear water, 22280 cloud,
    # 23888 cloud shadow, 30048 snow, 55052 cirrus + cloud
    qa = np.array([1, 21824, 21952, 22280, 23888, 30048, 55052])
    m = landsat_qa_masks(qa)
    assert m.nodata.tolist() == [True, False, False, False, False, False, False]
    assert m.cloud.tolist() == [False, False, False, True, False, False, True]
    assert m.shadow.tolist() == [False, False, False, False, True, False, False]
    assert m.valid.tolist() == [False, True, True, False, False, True, False]


def test_fractions_inside_aoi_only() -> None:
    scl = np.full((10, 10), 4)
    scl[:, :5] = 9  # cloud on the left half
    inside = np.zeros((10, 10), bool)
    inside[:, 5:] = True  # the AOI is the right half
    q = qa_fractions(scl, kind="scl", inside=inside)
    assert q.aoi_cloud_frac == 0.0 and q.valid_frac == 1.0 and q.n_px == 50
    q = qa_fractions(scl, kind="scl")
    assert q.aoi_cloud_frac == 0.5 and q.valid_frac == 0.5


def test_nodata_counts_against_valid_not_cloud() -> None:
    scl = np.full((4, 4), 4)
    scl[:, :2] = 0
    scl[0, 3] = 8
    q = qa_fractions(scl, kind="scl")
    assert q.nodata_frac == 0.5
    assert q.aoi_cloud_frac == pytest.approx(1 / 8)
    assert q.valid_frac == pytest.approx(7 / 16)
    read_valid = np.ones((4, 4), bool)
    read_valid[3] = False  # outside the tile: no source pixel
    assert qa_fractions(scl, kind="scl", read_valid=read_valid).nodata_frac == pytest.approx(10 / 16)


def test_all_nodata_and_empty_aoi() -> None:
    q = qa_fractions(np.zeros((3, 3)), kind="scl")
    assert q.aoi_cloud_frac == 1.0 and q.valid_frac == 0.0
    q = qa_fractions(np.full((3, 3), 4), kind="scl", inside=np.zeros((3, 3), bool))
    assert q.n_px == 0 and q.valid_frac == 0.0
    with pytest.raises(ValueError, match="unknown QA kind"):
        qa_fractions(np.zeros((2, 2)), kind="fmask")


@given(arrays(np.uint8, (6, 7), elements=st.integers(0, 11)))
def test_fractions_are_fractions(scl: np.ndarray) -> None:
    q = qa_fractions(scl, kind="scl")
    assert 0 <= q.aoi_cloud_frac <= 1 and 0 <= q.valid_frac <= 1 and 0 <= q.nodata_frac <= 1
    assert q.valid_frac + q.nodata_frac <= 1 + 1e-12


def _series(n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    bright = rng.uniform(0.05, 0.12, (n, 8, 8))
    masked = np.zeros((n, 8, 8), bool)
    return bright, masked


def test_roof_is_flagged_moving_cloud_is_not() -> None:
    b, m = _series()
    b[:, 1, 1] = [0.36, 0.35, 0.34, 0.35, 0.36]  # a roof the classifier calls cloud every time
    m[:, 1, 1] = True
    b[:, 5, 5] = [0.3, 0.8, 0.5, 0.95, 0.4]  # a cloud that comes and goes, bright but unstable
    m[:, 5, 5] = True
    out = bright_stable_mask(b, m, np.ones(5, bool))
    assert out[1, 1] and not out[5, 5] and out.sum() == 1


def test_new_roof_mid_series_is_flagged() -> None:
    b, m = _series(6)
    b[3:, 2, 4] = 0.4  # built between date 2 and 3, then stays
    m[3:, 2, 4] = True
    assert bright_stable_mask(b, m, np.ones(6, bool))[2, 4]


def test_needs_enough_clear_dates_and_brightness() -> None:
    b, m = _series()
    b[:, 1, 1] = 0.35
    m[:2, 1, 1] = True  # masked on only two dates
    assert not bright_stable_mask(b, m, np.ones(5, bool)).any()
    m[:, 1, 1] = True
    # masked on every date, but three of them are cloudy dates: only two clear dates count
    assert not bright_stable_mask(b, m, np.array([True, True, False, False, False])).any()
    b[:, 1, 1] = 0.1  # dark and stable: not a bright roof (e.g. a shadow mislabel)
    assert not bright_stable_mask(b, m, np.ones(5, bool)).any()


def test_bright_stable_checks_shapes() -> None:
    b, m = _series()
    with pytest.raises(ValueError, match="dates, rows, cols"):
        bright_stable_mask(b[0], m[0], np.ones(5, bool))
    with pytest.raises(ValueError, match="min_dates"):
        bright_stable_mask(b, m, np.ones(5, bool), min_dates=1)


def test_persistent_cloud_mask() -> None:
    from geo.sources.qa import persistent_cloud_mask

    cloud = np.zeros((6, 4, 4), bool)
    cloud[:, 0, 0] = True  # a roof labelled cloud every time
    cloud[:2, 1, 1] = True  # a cloud that sat there twice
    cloud[3:, 2, 2] = True  # a new roof (3 of 6 dates: half of them)
    clear = np.ones(6, bool)
    out = persistent_cloud_mask(cloud, clear)
    assert out[0, 0] and out[2, 2] and not out[1, 1] and out.sum() == 2
    # cloudy dates do not count: with only two clear dates nothing is persistent
    assert not persistent_cloud_mask(cloud, np.array([1, 1, 0, 0, 0, 0], bool)).any()
    with pytest.raises(ValueError, match="dates, rows, cols"):
        persistent_cloud_mask(cloud[0], clear)


def test_ignore_cloud_counts_as_valid() -> None:
    scl = np.full((4, 4), 4)
    scl[0, :2] = 9  # a roof
    scl[3, 3] = 8  # a real cloud
    roof = np.zeros((4, 4), bool)
    roof[0, :2] = True
    q = qa_fractions(scl, kind="scl", ignore_cloud=roof)
    assert q.aoi_cloud_frac == pytest.approx(1 / 16) and q.valid_frac == pytest.approx(15 / 16)
