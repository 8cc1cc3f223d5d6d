from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from _measure_helpers import footprints_of
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from geo.config import MatchParams, MeasureParams
from geo.match import track_footprints
from geo.measure import (
    Z95,
    area_errors,
    area_interval,
    area_sd_m2,
    measure_sites,
    neighbour_of,
    ratio_interval,
    small_outline_sd,
)

D = ["2020-01-01", "2021-01-01"]


def _measured(by_date, params=None, **kw):
    fp = footprints_of(by_date, **kw)
    tr = track_footprints(fp, dates=sorted(by_date), aoi_name="t", params=MatchParams())
    return measure_sites(tr, params or MeasureParams(n_draws=2000))


@pytest.mark.parametrize("res_m", [10.0, 3.0, 0.5])
def test_pixel_quantisation_scale_of_a_6000_m2_hall(res_m):
    # 109.5 m × 54.8 m hall, edges uniform within ±½ pixel (sd res/(2√3)), independent over
    # two pixels of outline: sd = res/(2√3) × sqrt(P × 2 res); plus blur corner rounding
    a, p = 6000.0, 2 * (109.5 + 54.8)
    sd = area_sd_m2(a, p, res_m=res_m, boundary_sd_m=np.nan, coreg_residual_m=0.0)
    quant = res_m / (2 * math.sqrt(3)) * math.sqrt(p * 2 * res_m)
    corners = 4 * 0.85 * (0.75 * res_m) ** 2
    assert sd[0] == pytest.approx(math.hypot(quant, corners))
    assert {10.0: 0.0504, 3.0: 0.00702, 0.5: 0.000443}[res_m] == pytest.approx(sd[0] / a, rel=0.05)


def test_vector_outline_sides_are_independent():
    sd = area_sd_m2(5000.0, 300.0, res_m=0.0, boundary_sd_m=1.0, coreg_residual_m=0.0)
    assert sd[0] == pytest.approx(1.0 * 300.0 / 2)


def test_area_sd_sources_add_in_quadrature_and_split_by_correlation():
    a, p = np.array([1000.0, 4000.0]), np.array([130.0, 260.0])
    e = area_errors(a, p, res_m=10.0, boundary_sd_m=2.0, coreg_residual_m=3.0,
                    area_alt_m2=a * 1.1, area_reg_m2=a - 50.0)
    # the 10 px outline also gets the calibrated small-outline term, the 40 px one does not
    small = small_outline_sd(a, 10.0)
    assert small[0] > 0 and small[1] == 0
    np.testing.assert_allclose(e.independent, np.sqrt(4.0 * p * 20.0 + 50.0**2 + small**2))
    corners = 4 * 0.85 * (0.75 * 10.0) ** 2  # blur rounding four corners, PSF 0.75 px
    np.testing.assert_allclose(e.common, np.sqrt((0.1 * a) ** 2 + (3.0 * p / math.pi) ** 2
                                                 + corners**2))
    total = area_sd_m2(a, p, res_m=10.0, boundary_sd_m=2.0, coreg_residual_m=3.0,
                       area_alt_m2=a * 1.1, area_reg_m2=a - 50.0)
    np.testing.assert_allclose(total, np.hypot(e.independent, e.common))
    # NaN alt/reg mean "no such source"
    no_alt = area_sd_m2(a, p, res_m=10.0, boundary_sd_m=2.0, coreg_residual_m=0.0,
                        area_alt_m2=np.nan)
    np.testing.assert_allclose(no_alt, np.sqrt(4.0 * p * 20.0 + small**2 + corners**2))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(50.0, 1e5), min_size=1, max_size=5),
    st.floats(0.0, 0.8), st.floats(0.0, 0.8), st.floats(0.0, 1.0),
)
def test_every_interval_contains_its_estimate(areas, rel_ind, rel_com, rho):
    a = np.array(areas)
    lo, hi = area_interval(a, a * (rel_ind + rel_com))
    assert (lo <= a).all() and (a <= hi).all()
    num, den = a, a[::-1] * 1.7
    r, rlo, rhi = ratio_interval(num, (num * rel_ind, num * rel_com), den,
                                 (den * rel_ind, den * rel_com), common_corr=rho, n_draws=200)
    assert (rlo <= r).all() and (r <= rhi).all()
    assert np.allclose(r, num / den)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.integers(2, 12), st.integers(2, 12)), min_size=1, max_size=5),
       st.floats(0.0, 0.2))
def test_every_site_interval_contains_its_estimate(sizes, alt):
    g0 = [box(i * 300.0, 0, i * 300.0 + w * 10, h * 10) for i, (w, h) in enumerate(sizes)]
    g1 = [box(i * 300.0, 0, i * 300.0 + w * 10, h * 15) for i, (w, h) in enumerate(sizes)]
    s = _measured({D[0]: g0, D[1]: g1}, MeasureParams(n_draws=300), alt_frac=alt).sites
    for q in ("area_m2", "growth_ratio", "neighbour_area_ratio", "site_share_frac"):
        ok = s[q].notna()
        assert (s.loc[ok, f"{q}_lo"] <= s.loc[ok, q]).all()
        assert (s.loc[ok, q] <= s.loc[ok, f"{q}_hi"]).all()


def test_ratio_interval_covers_truth_under_its_own_model():
    """Draw data from the stated error model; the 95% interval must cover ~95%."""
    rng = np.random.default_rng(1)
    n = 2000
    t_num, t_den = rng.uniform(1000, 20000, n), rng.uniform(1000, 20000, n)
    ind_n, ind_d = 0.05 * t_num, 0.08 * t_den
    com_n, com_d = 0.06 * t_num, 0.06 * t_den
    zc = rng.standard_normal(n)
    o_num = t_num + ind_n * rng.standard_normal(n) + com_n * zc
    o_den = t_den + ind_d * rng.standard_normal(n) + com_d * zc
    _, lo, hi = ratio_interval(o_num, (ind_n, com_n), o_den, (ind_d, com_d), common_corr=1.0,
                               n_draws=2000, seed=3)
    truth = t_num / t_den
    cover = np.mean((lo <= truth) & (truth <= hi))
    assert 0.93 <= cover <= 0.97
    # ignoring the correlation gives wider intervals here (common parts cancel in the ratio)
    _, lo0, hi0 = ratio_interval(o_num, (ind_n, com_n), o_den, (ind_d, com_d), common_corr=0.0,
                                 n_draws=2000, seed=3)
    assert np.median(np.log(hi0 / lo0)) > np.median(np.log(hi / lo)) * 1.2


def test_area_interval_is_normal_and_floored():
    lo, hi = area_interval(np.array([100.0, 10.0]), np.array([10.0, 10.0]))
    np.testing.assert_allclose(hi, [100 + Z95 * 10, 10 + Z95 * 10])
    assert lo[0] == pytest.approx(100 - Z95 * 10) and lo[1] == 0.0


def test_neighbour_ratio_sentence_and_shares():
    big, small, far = box(0, 0, 200, 100), box(220, 0, 320, 100), box(5000, 0, 5100, 100)
    s = _measured({D[0]: [big, small, far], D[1]: [big, small, far]}).sites.set_index("site_id")
    assert s.loc["t:s1", "neighbour_id"] == "t:s2"
    assert s.loc["t:s1", "neighbour_area_ratio"] == pytest.approx(2.0)
    assert s.loc["t:s1", "neighbour_area_ratio_lo"] < 2.0 < s.loc["t:s1", "neighbour_area_ratio_hi"]
    assert s.loc["t:s2", "neighbour_area_ratio"] == pytest.approx(0.5)
    assert pd.isna(s.loc["t:s3", "neighbour_id"])  # 4.7 km away: beyond neighbour_max_distance_m
    assert np.isnan(s.loc["t:s3", "neighbour_area_ratio"])
    assert s.site_share_frac.sum() == pytest.approx(1.0)
    assert (s.site_share_frac_hi <= 1.0).all()
    sent = s.loc["t:s1", "sentence"]
    assert sent.startswith("t:s1 is 2.00x the area of its neighbour t:s2 (95% interval ")
    assert "m²" in s.loc["t:s3", "sentence"]
    # reproducible
    s2 = _measured({D[0]: [big, small, far], D[1]: [big, small, far]}).sites.set_index("site_id")
    assert s2.loc["t:s1", "neighbour_area_ratio_lo"] == s.loc["t:s1", "neighbour_area_ratio_lo"]


def test_neighbour_rules():
    import geopandas as gpd

    cand = gpd.GeoDataFrame({"site_id": ["a", "b"], "area_m2": [100.0, 10000.0]},
                            geometry=[box(110, 0, 120, 10), box(200, 0, 300, 100)], crs=32652)
    g = box(0, 0, 100, 100)
    assert neighbour_of(g, cand, rule="nearest", max_distance_m=500) == 0
    assert neighbour_of(g, cand, rule="largest-adjacent", max_distance_m=500) == 1
    assert neighbour_of(g, cand, rule="nearest", max_distance_m=5) is None


def test_finer_resolution_gives_narrower_intervals():
    g = [box(0, 0, 120, 50), box(150, 0, 210, 50)]
    w = {}
    for res in (10.0, 3.0, 0.5):
        s = _measured({D[0]: g}, res_m=res).sites
        w[res] = float((s.neighbour_area_ratio_hi - s.neighbour_area_ratio_lo).iloc[0])
    assert w[10.0] > w[3.0] > w[0.5]


def test_digitising_sd_param_overrides_vector_boundary_sd():
    g = [box(0, 0, 120, 50), box(150, 0, 210, 50)]
    a = _measured({D[0]: g}, res_m=0.0).sites
    b = _measured({D[0]: g}, MeasureParams(digitising_sd_m=3.0), res_m=0.0).sites
    assert (b.area_m2_sd > a.area_m2_sd).all()
    assert b.area_m2_sd.iloc[0] == pytest.approx(3.0 * 340 / 2 * math.hypot(1, 0.03 * 6000 / 510),
                                                 rel=0.5)


def test_small_pixel_outlines_get_the_calibrated_term() -> None:
    """Under SMALL_OUTLINE_PX pixels an outline's sd grows (blur bias of small roofs); larger
    outlines, vector outlines and the doctest hall are unchanged."""
    from geo.measure import SMALL_OUTLINE_PX, SMALL_OUTLINE_SD_PER_PX

    base = dict(res_m=10.0, boundary_sd_m=np.nan, coreg_residual_m=0.0)
    big = area_errors([6000.0], [330.0], **base).independent[0]
    assert big == pytest.approx(float(np.hypot(
        base["res_m"] / (2 * math.sqrt(3)) * math.sqrt(330.0 * 20.0), 0.0)))
    small = area_errors([2200.0], [190.0], **base).independent[0]
    term = SMALL_OUTLINE_SD_PER_PX * (SMALL_OUTLINE_PX - 22.0) * 2200.0
    assert small > term > 0.25 * 2200.0 * 0.9
    assert small_outline_sd([2200.0], [0.0])[0] == 0.0  # vector outline: no pixels
    assert small_outline_sd([3200.0], [10.0])[0] == 0.0
