"""The n log n tracking and measurement give the same results as the quadratic original.

``_legacy_match`` / ``_legacy_measure`` are frozen copies of geo/match.py and geo/measure.py
from before the rewrite (dense Hungarian matrix, a distance to every footprint per site, one
``ratio_interval`` call per pair, every share draw kept in memory). On a few hundred footprints
with every kind of event, and on the real xBD outlines, the sites, events, intervals and
sentences must be equal. The scaling itself is measured in benchmarks/speed_measure.py.
"""

from __future__ import annotations

import json

import _legacy_match
import _legacy_measure
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from _measure_helpers import CRS, footprints_of
from conftest import DATA
from shapely import affinity, wkt
from shapely.geometry import box

from geo.config import MatchParams, MeasureParams
from geo.match import _assign, track_footprints
from geo.measure import _share_interval, measure_sites

DATES = ("2020-01-01", "2021-01-01", "2022-01-01")


def _layout(seed: int, n_cells: int = 90) -> dict[str, list]:
    """Buildings on 3 dates with grown, shrunk, new, demolished, split, merged and touching."""
    rng = np.random.default_rng(seed)
    by_date: dict[str, list] = {d: [] for d in DATES}
    for c in range(n_cells):
        x0 = 300000.0 + (c % 10) * 120.0 + rng.integers(0, 4) * 10.0
        y0 = 4400000.0 + (c // 10) * 120.0 + rng.integers(0, 4) * 10.0
        w, h = rng.integers(3, 9) * 10.0, rng.integers(3, 9) * 10.0
        b = box(x0, y0, x0 + w, y0 + h)
        kind = rng.choice(["same", "grow", "shrink", "new", "gone", "split", "merge", "pair",
                           "shift"])
        if kind == "new":
            by_date[DATES[1]].append(b)
            by_date[DATES[2]].append(b)
        elif kind == "gone":
            by_date[DATES[0]].append(b)
        elif kind == "split":  # one hall, then two halves
            by_date[DATES[0]].append(b)
            for d in DATES[1:]:
                by_date[d] += [box(x0, y0, x0 + w / 2 - 5, y0 + h), box(x0 + w / 2, y0, x0 + w,
                                                                        y0 + h)]
        elif kind == "merge":  # a hall and a small annex, then one building
            annex = box(x0 + w + 5, y0, x0 + w + 25, y0 + 20)
            by_date[DATES[0]] += [b, annex]
            for d in DATES[1:]:
                by_date[d].append(box(x0, y0, x0 + w + 25, y0 + h))
        elif kind == "pair":  # two touching buildings (equal areas: ties), one grows later
            twin = affinity.translate(b, w, 0)
            by_date[DATES[0]] += [b, twin]
            by_date[DATES[1]] += [b, twin]
            by_date[DATES[2]] += [b, affinity.scale(twin, 1.3, 1.0, origin=(x0 + w, y0))]
        else:
            f = {"same": 1.0, "grow": 1.4, "shrink": 0.7, "shift": 1.0}[str(kind)]
            later = affinity.scale(b, f, 1.0, origin=(x0, y0))
            if kind == "shift":
                later = affinity.translate(b, 10.0, 0.0)
            by_date[DATES[0]].append(b)
            by_date[DATES[1]].append(later if rng.random() < 0.5 else b)
            by_date[DATES[2]].append(later)
    return by_date


def _both(fp: gpd.GeoDataFrame, *, match: MatchParams | None = None,
          measure: MeasureParams | None = None, valid=None):
    mp, ms = match or MatchParams(), measure or MeasureParams(n_draws=500)
    kw = {"dates": sorted(set(fp["date"])), "aoi_name": "t", "params": mp,
          "valid_by_date": valid}
    new = measure_sites(track_footprints(fp, **kw), ms)
    old = _legacy_measure.measure_sites(_legacy_match.track_footprints(fp, **kw), ms)
    return new, old


def _assert_same(new, old) -> None:
    for name in ("footprints", "sites"):
        a, b = getattr(new, name), getattr(old, name)
        cols = [c for c in b.columns if c != "geometry"]
        pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)
        assert a.geometry.geom_equals_exact(b.geometry, 0).all()
    pd.testing.assert_frame_equal(new.events, old.events, check_exact=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_tracking_and_measurement_equal_the_quadratic_original(seed):
    fp = footprints_of(_layout(seed), res_m=10.0, coreg_residual_m=1.0)
    new, old = _both(fp)
    assert len(fp) > 250
    events = set(new.events["event"])
    assert {"grown", "shrunk", "new", "demolished", "split", "merged", "unchanged"} <= events
    assert new.sites["neighbour_id"].notna().sum() > 0.9 * len(new.sites)
    _assert_same(new, old)


def test_largest_adjacent_rule_short_distance_and_gaps_equal_the_original():
    fp = footprints_of(_layout(2), res_m=2.0)
    # a date with data over the western half only: eastern sites are gaps, not demolished
    valid = {DATES[2]: box(299000, 4390000, 300500, 4410000)}
    new, old = _both(fp, measure=MeasureParams(n_draws=300, neighbour="largest-adjacent",
                                               neighbour_max_distance_m=60.0),
                     match=MatchParams(min_dates=2, iou_threshold=0.4), valid=valid)
    assert new.sites["neighbour_id"].isna().any()  # some have nobody within 60 m
    _assert_same(new, old)


def test_nearest_rule_with_exact_duplicates_and_far_buildings():
    g = [box(0, 0, 10, 10), box(0, 0, 10, 10), box(30, 0, 40, 10), box(1000, 0, 1010, 10),
         box(52, 0, 60, 10), box(0, 25, 20, 45)]
    g = [affinity.translate(x, 300000, 4400000) for x in g]
    fp = footprints_of({"2020-01-01": g, "2021-01-01": g[1:]}, res_m=1.0)
    new, old = _both(fp, measure=MeasureParams(n_draws=200, neighbour_max_distance_m=100.0))
    _assert_same(new, old)


@pytest.mark.skipif(not (DATA / "xbd").is_dir(), reason="shared data not present")
def test_real_xbd_outlines_equal_the_original():
    geoms = {}
    for kind, date in (("pre", "2011-05-20"), ("post", "2011-06-03")):
        p = DATA / "xbd" / "labels" / f"joplin-tornado_00000000_{kind}_disaster.json"
        feats = json.loads(p.read_text())["features"]["lng_lat"]
        gs = gpd.GeoSeries([wkt.loads(f["wkt"]) for f in feats], crs=4326).to_crs(32615)
        geoms[date] = list(gs)
    # post-disaster: destroyed buildings gone, a few grown, as a change between the dates
    post = [affinity.scale(g, 1.2, 1.2) if i % 9 == 0 else g
            for i, g in enumerate(geoms["2011-06-03"]) if i % 7]
    fp = footprints_of({"2011-05-20": geoms["2011-05-20"], "2011-06-03": post}, res_m=0.0,
                       crs=32615)
    new, old = _both(fp, measure=MeasureParams(n_draws=400, digitising_sd_m=1.0))
    assert len(fp) > 300
    _assert_same(new, old)


def test_assignment_equals_the_dense_hungarian_on_chains_and_ties():
    rng = np.random.default_rng(5)
    for _ in range(30):
        na, nb = rng.integers(1, 15, size=2)
        dense = rng.random((na, nb)) * (rng.random((na, nb)) < 0.25)
        dense[rng.random((na, nb)) < 0.2] = 0.5  # ties
        ia, ib = np.nonzero(dense)
        iou = dense[ia, ib]
        new = _assign(ia, ib, iou, na, nb, 0.25)
        old = _legacy_match._assign(ia, ib, iou, na, nb, 0.25)
        kept = iou >= 0.25
        assert np.isclose(new[2].sum(), old[2].sum())  # the same optimum
        if len(np.unique(np.round(iou[kept], 9))) == kept.sum():  # no ties: the same pairs
            for x, y in zip(new, old, strict=True):
                np.testing.assert_array_equal(x, y)


def test_share_interval_memory_is_one_chunk_but_draws_are_the_same():
    a = np.linspace(100.0, 5000.0, 1300)
    ind, com = 0.02 * a, 0.01 * a
    p = MeasureParams(n_draws=2000)
    new = _share_interval(a, ind, com, p, key="share:x")
    old = _legacy_measure._share_interval(a, ind, com, p, key="share:x")
    for x, y in zip(new, old, strict=True):
        np.testing.assert_array_equal(x, y)


def test_crs_is_kept():
    fp = footprints_of(_layout(3, n_cells=10), res_m=10.0)
    new, _ = _both(fp)
    assert new.sites.crs.to_epsg() == CRS
