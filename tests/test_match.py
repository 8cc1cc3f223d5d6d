from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from _measure_helpers import building_sets, footprints_of, translated
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from geo.config import MatchParams, MeasureParams
from geo.errors import CrsMismatchError
from geo.match import EVENT_COLUMNS, SITE_COLUMNS, match_footprints, track_footprints
from geo.measure import measure_sites
from geo.types import EVENTS, STATUSES

D = ["2020-01-01", "2021-01-01", "2022-01-01"]
P = MatchParams()


def _track(by_date, dates=None, **kw):
    fp = footprints_of(by_date)
    return track_footprints(fp, dates=dates or sorted(by_date), aoi_name="t", params=P, **kw)


def _events(tr, site):
    return tr.events.loc[tr.events.site_id == site, "event"].tolist()


@settings(max_examples=30, deadline=None)
@given(building_sets())
def test_matching_a_set_with_itself_is_identity_and_ratio_one(geoms):
    tr = _track({D[0]: geoms, D[1]: geoms})
    assert len(tr.sites) == len(geoms)
    assert (tr.sites.n_dates == 2).all()
    assert set(tr.events.event) <= {"unchanged"}
    assert (tr.sites.status == "unchanged").all()
    # each site holds the same geometry on both dates
    for _, g in tr.footprints.groupby("site_id"):
        assert g.geometry.iloc[0].equals(g.geometry.iloc[1])
    m = measure_sites(tr, MeasureParams(n_draws=500))
    assert np.allclose(m.sites.growth_ratio, 1.0)
    assert (m.sites.growth_ratio_lo <= 1.0).all() and (m.sites.growth_ratio_hi >= 1.0).all()
    links = match_footprints(footprints_of({D[0]: geoms}), footprints_of({D[0]: geoms}), P)
    assert (links.index_a == links.index_b).all() and len(links) == len(geoms)
    assert np.allclose(links.iou, 1.0)


@settings(max_examples=30, deadline=None)
@given(building_sets(), st.integers(-2, 2), st.integers(-2, 2), st.integers(1, 6))
def test_matching_is_symmetric(geoms, dx, dy, drop):
    a = footprints_of({D[0]: geoms})
    b = footprints_of({D[1]: translated(geoms, dx * 10.0, dy * 10.0)[: max(1, len(geoms) - drop)]})
    ab = match_footprints(a, b, P)
    ba = match_footprints(b, a, P)
    pairs_ab = set(zip(ab.index_a, ab.index_b, strict=True))
    pairs_ba = set(zip(ba.index_b, ba.index_a, strict=True))
    assert pairs_ab == pairs_ba
    assert (ab.iou >= P.iou_threshold).all()


@settings(max_examples=25, deadline=None)
@given(building_sets(min_size=2), building_sets(min_size=1), st.integers(-50, 50),
       st.integers(-50, 50))
def test_tracking_and_measures_invariant_under_whole_pixel_translation(g0, g1, kx, ky):
    g1 = [g for g in g1 if not any(g.intersects(h) and g.intersection(h).area > 0 for h in g0)]
    by_date = {D[0]: g0, D[1]: g0[:1] + g1, D[2]: g0}
    dx, dy = kx * 10.0, ky * 10.0
    moved = {d: translated(gs, dx, dy) for d, gs in by_date.items()}
    a = track_footprints(footprints_of(by_date), dates=D, aoi_name="t", params=P)
    b = track_footprints(footprints_of(moved), dates=D, aoi_name="t", params=P)
    cols = [c for c in SITE_COLUMNS]
    pd.testing.assert_frame_equal(pd.DataFrame(a.sites[cols]), pd.DataFrame(b.sites[cols]))
    pd.testing.assert_frame_equal(a.events, b.events)
    ma = measure_sites(a, MeasureParams(n_draws=300)).sites
    mb = measure_sites(b, MeasureParams(n_draws=300)).sites
    num = ["area_m2", "area_m2_lo", "growth_ratio_hi", "neighbour_area_ratio",
           "neighbour_area_ratio_lo", "site_share_frac_hi"]
    np.testing.assert_allclose(ma[num].to_numpy(float), mb[num].to_numpy(float), rtol=1e-6)
    assert ma.neighbour_id.tolist() == mb.neighbour_id.tolist()


def test_output_schema_and_vocabularies():
    g = [box(0, 0, 100, 50), box(200, 0, 250, 50)]
    tr = _track({D[0]: g, D[1]: [g[0], box(200, 0, 250, 100)]})
    assert list(tr.sites.columns) == [*SITE_COLUMNS, "geometry"]
    assert list(tr.events.columns) == list(EVENT_COLUMNS)
    assert set(tr.sites.status) <= set(STATUSES)
    assert set(tr.events.event) <= set(EVENTS)
    assert tr.sites.site_id.tolist() == ["t:s1", "t:s2"]
    assert tr.footprints.crs == tr.sites.crs
    assert _events(tr, "t:s2") == ["grown"]
    assert tr.sites.set_index("site_id").status.to_dict() == {"t:s1": "unchanged",
                                                               "t:s2": "grown"}


def test_new_shrunk_and_demolished():
    a, b, c = box(0, 0, 100, 100), box(300, 0, 400, 100), box(600, 0, 650, 50)
    tr = _track({D[0]: [a, b], D[1]: [box(0, 0, 100, 60), c], D[2]: [box(0, 0, 100, 60), c]})
    st_ = tr.sites.set_index("site_id")
    assert st_.loc["t:s1", "status"] == "shrunk"
    assert st_.loc["t:s2", "status"] == "demolished"
    assert st_.loc["t:s3", "status"] == "new"
    ev = tr.events.set_index(["site_id", "event"])
    assert ev.loc[("t:s2", "demolished"), "date_to"] == D[1]
    assert ev.loc[("t:s3", "new"), "date_from"] == D[0]
    assert st_.loc["t:s3", "first_seen_date"] == D[1]


def test_missing_date_is_a_gap_not_a_demolition():
    a = box(0, 0, 100, 100)
    tr = _track({D[0]: [a], D[1]: [], D[2]: [a]}, dates=D)
    s = tr.sites.iloc[0]
    assert len(tr.sites) == 1 and s.n_dates == 2 and s.dates == f"{D[0]};{D[2]}"
    assert s.status == "unchanged"
    assert _events(tr, "t:s1") == ["unchanged"]
    assert tr.events.iloc[0].date_from == D[0]


def test_cloudy_last_date_is_not_a_demolition_but_clear_one_is():
    a, far = box(0, 0, 100, 100), box(5000, 5000, 5100, 5100)
    cloudy = {D[1]: box(1000, 1000, 2000, 2000)}  # valid data only away from the building
    tr = _track({D[0]: [a, far], D[1]: [far]}, dates=D[:2], valid_by_date=cloudy)
    assert tr.sites.site_id.tolist() == ["t:s1", "t:s2"]  # numbered north to south
    assert tr.sites.set_index("site_id").loc["t:s2", "status"] == "unchanged"
    clear = {D[1]: box(-1000, -1000, 1000, 1000)}
    tr = _track({D[0]: [a, far], D[1]: [far]}, dates=D[:2], valid_by_date=clear)
    assert tr.sites.set_index("site_id").loc["t:s2", "status"] == "demolished"
    assert tr.sites.set_index("site_id").loc["t:s1", "status"] == "unchanged"


def test_tolerates_one_pixel_misregistration():
    g = [box(0, 0, 60, 30), box(100, 0, 140, 40)]
    tr = _track({D[0]: g, D[1]: translated(g, 10.0, -10.0)})
    assert len(tr.sites) == 2 and (tr.sites.n_dates == 2).all()


def test_merge_and_split():
    a, b = box(0, 0, 100, 100), box(110, 0, 210, 100)
    joined = box(0, 0, 210, 100)
    tr = _track({D[0]: [a, b], D[1]: [joined], D[2]: [a, b]})
    ev = tr.events
    merged = ev[ev.event == "merged"]
    assert set(merged.site_id) == {"t:s1", "t:s2"}
    assert set(merged.related_site_ids) == {"t:s1", "t:s2"}
    split = ev[ev.event == "split"]
    assert set(split.site_id) == {"t:s1", "t:s3"}
    assert set(split.related_site_ids) == {"t:s1", "t:s3"}
    # the absorbed building does not count as demolished
    assert "demolished" not in set(ev.event)


def test_min_dates_filter():
    a, b = box(0, 0, 100, 100), box(300, 0, 400, 100)
    fp = footprints_of({D[0]: [a, b], D[1]: [a]})
    tr = track_footprints(fp, dates=D[:2], aoi_name="t", params=MatchParams(min_dates=2))
    assert tr.sites.site_id.tolist() == ["t:s1"]
    assert set(tr.footprints.site_id) == {"t:s1"} and len(tr.footprints) == 2
    assert set(tr.events.site_id) <= {"t:s1"}


def test_iou_threshold_is_respected():
    a = box(0, 0, 100, 100)
    shifted = box(70, 0, 170, 100)  # IoU = 30 / 170 ≈ 0.18
    tr = _track({D[0]: [a], D[1]: [shifted]})
    assert len(tr.sites) == 2
    fp = footprints_of({D[0]: [a], D[1]: [shifted]})
    tr = track_footprints(fp, dates=D[:2], aoi_name="t", params=MatchParams(iou_threshold=0.15))
    assert len(tr.sites) == 1


def test_rejects_geographic_crs():
    fp = footprints_of({D[0]: [box(0, 0, 0.001, 0.001)]}, crs=4326)
    with pytest.raises(CrsMismatchError, match="estimate_utm_crs"):
        track_footprints(fp, dates=D[:1], aoi_name="t", params=P)


def test_empty_input():
    fp = footprints_of({})
    tr = track_footprints(fp, dates=D, aoi_name="t", params=P)
    assert len(tr.sites) == 0 and len(tr.events) == 0
    m = measure_sites(tr, MeasureParams())
    assert "neighbour_area_ratio_lo" in m.sites.columns
    assert isinstance(m.sites, gpd.GeoDataFrame)
