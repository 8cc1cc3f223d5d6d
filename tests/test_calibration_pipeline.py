"""Plumbing of benchmarks/calibration_pipeline.py (SYNTHETIC scenes): a few trials per mode.

The final coverage numbers come from running the benchmark; these tests check that both modes
run through the pipeline's own stages, measure a hall, and that coverage is computed.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
from conftest import DATA as SHARED_DATA
from shapely.geometry import box

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "calibration_pipeline.py"


@pytest.fixture(scope="module")
def cal():
    sys.path.insert(0, str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("calibration_pipeline", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(),
                                  reason=f"shared data missing: {SHARED_DATA}")


@needs_shared
def test_real_outlines_are_spacenet_polygons(cal) -> None:
    outs = cal.real_outlines(SHARED_DATA)
    assert len(outs) >= 20
    assert all(o.is_valid and o.area >= 30 for o in outs)
    # centred on the origin, not rectangles only
    assert all(abs(o.centroid.x) < 1e-6 and abs(o.centroid.y) < 1e-6 for o in outs)
    assert any(len(o.exterior.coords) > 5 for o in outs)


@needs_shared
def test_scene_truth_areas_in_size_class(cal) -> None:
    outs = cal.real_outlines(SHARED_DATA)
    for kind in cal.SHAPES:
        ga, truths, resid, _ = cal.render(5, 3.0, kind, 1, outs)
        assert 2000 <= truths[0].area < 6000
        assert truths[0].distance(truths[1]) >= 10.0 - 1e-6
        assert 0 <= resid <= 0.2 * 3.0
        # both buildings lie inside the grid, and roofs are brighter than the yard
        frame = box(*ga.grid.bounds)
        assert frame.contains(truths[0]) and frame.contains(truths[1])
        pt = truths[0].point_on_surface()
        col, row = ~ga.grid.transform * (pt.x, pt.y)
        assert ga.data[:, int(row), int(col)].mean() > ga.data[:, 0, 0].mean()


def test_auto_trial_measures_big_rectangle_at_half_metre(cal) -> None:
    r = cal.trial((11, "auto", 0.5, "rectangle", 2))
    assert r["method"] == "rgb-objects"
    assert r["area_in"][0] is not None  # hall A measured
    assert abs(r["rel_err"][0]) < 0.05
    assert r["ratio_in"] is not None


def test_guided_trial_contains_truth_easy_case(cal) -> None:
    r = cal.trial((11, "guided", 10.0, "rectangle", 2))
    assert r["method"] == "guided"
    assert r["area_in"] == [True, True]
    assert r["ratio_in"] is True


@needs_shared
def test_summary_counts_and_gap(cal) -> None:
    results = [cal.trial(j) for j in cal.jobs(1, 3, resolutions=(10.0,))]
    rows = cal.summarise(results)
    assert {r["mode"] for r in rows} == {"auto", "guided"}
    assert len(rows) == 2 * 3 * 2
    for r in rows:
        assert r["trials"] == 1
        assert r["measured"] in (0, 1)
        cov = r["area_coverage"]
        assert (math.isnan(cov) and r["area_gap"] == "n/a") or cov in (0.0, 1.0)
    assert cal._gap(0.95) == "in range"
    assert cal._gap(0.80) == "-13 pt"
    assert cal._gap(1.0) == "+3 pt"
    md = cal.markdown(rows, 1)
    assert "SYNTHETIC" in md and md.count("\n| guided |") == 6


def test_auto_10m_halls_no_longer_drawn_small(cal) -> None:
    """10 m contrast-objects halls of 2,000–6,000 m² (20–60 px): the outline was 35–75 % too
    small and no interval held the truth; now the area is about right and covered."""
    rs = [cal.trial((s, "auto", 10.0, "rectangle", 1)) for s in range(40, 46)]
    errs = [r["rel_err"][0] for r in rs if r["rel_err"][0] is not None]
    inside = [r["area_in"][0] for r in rs if r["area_in"][0] is not None]
    assert len(errs) >= 5
    assert abs(float(sorted(errs)[len(errs) // 2])) < 0.12
    assert sum(inside) >= len(inside) - 1


def test_small_outlines_are_refused_not_scored(cal) -> None:
    """A 10 m hall of 500–2,000 m² measured under SMALL_PX pixels gets no interval score."""
    rs = [cal.trial((s, "auto", 10.0, "rectangle", 0)) for s in range(40, 44)]
    for r in rs:
        for small, a_in in zip(r["refused_small"], r["area_in"], strict=True):
            assert not (small and a_in is not None)
    assert any(any(r["refused_small"]) for r in rs)
