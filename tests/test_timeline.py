"""geo.timeline: phases and phase dates of a building, and date claims (SYNTHETIC stacks)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from geo import timeline as tl
from geo import timeline_synth as ts

HALL = ts.History(cleared="2021-03-10", construction="2021-06-01", roofed="2021-11-20")


def _days(a: str, b: str) -> int:
    return abs((dt.date.fromisoformat(a) - dt.date.fromisoformat(b)).days)


@pytest.fixture(scope="module")
def hall() -> tl.Timeline:
    rng = np.random.default_rng(16)
    return tl.fit_timeline(tl.build_series(ts.stack(rng, HALL), ts.outline()))


def test_phases_and_intervals_contain_the_truth(hall: tl.Timeline) -> None:
    for name, truth in (("cleared", HALL.cleared), ("roofed", HALL.roofed)):
        ev = hall.event(name)
        assert ev.lo is not None and ev.hi is not None and ev.estimate is not None, name
        assert ev.lo < truth <= ev.hi, (name, ev)
        assert _days(ev.estimate, truth) <= 31, (name, ev)
        assert ev.confidence > tl.MIN_CONFIDENCE, (name, ev)
    phase = dict(zip(hall.dates, hall.phases, strict=True))
    assert all(p == "vegetated" for d, p in phase.items() if d < "2021-02-15")
    assert all(p == "roofed" for d, p in phase.items() if d > "2021-12-31")
    assert "demolished" not in hall.events


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_seasonality_alone_gives_no_phase(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = tl.fit_timeline(tl.build_series(ts.stack(rng, None), ts.outline()))
    assert t.change_points == ()
    assert set(t.phases) == {"vegetated"}
    assert t.events == {}


def test_each_scene_masked_by_its_own_clouds() -> None:
    """A cloud over the hall drops the scene; the same scene clear is used."""
    rng = np.random.default_rng(0)
    clear = ts.scene(rng, HALL, "2021-08-01")
    cloudy = ts.scene(rng, HALL, "2021-08-01")
    cloudy.valid[8:22, 6:24] = False
    assert tl.scene_stats(clear, ts.outline()) is not None
    assert tl.scene_stats(cloudy, ts.outline()) is None


def test_landsat_and_s2_scenes_agree_on_the_roof() -> None:
    rng = np.random.default_rng(5)
    s2 = tl.scene_stats(ts.scene(rng, HALL, "2022-07-01", sensor="s2"), ts.outline())
    ls = tl.scene_stats(ts.scene(rng, HALL, "2022-07-02", sensor="landsat"), ts.outline())
    assert s2 is not None and ls is not None
    assert ls.res_m == 30.0 and ls.n_inside < s2.n_inside
    assert abs(s2.inside[1] - ls.inside[1]) < 0.05  # BSI of the roof


def test_date_claims(hall: tl.Timeline) -> None:
    roofed = hall.event("roofed")
    assert tl.check_date_claim(roofed, "before", "2022-03-01").verdict == "supported"
    assert tl.check_date_claim(roofed, "before", "2021-08-01").verdict == "contradicted"
    assert tl.check_date_claim(roofed, "after", "2021-08-01").verdict == "supported"
    assert tl.check_date_claim(roofed, "after", "2022-03-01").verdict == "contradicted"
    assert roofed.hi is not None
    inside = tl.check_date_claim(roofed, "before", roofed.hi)  # the date inside the interval
    assert inside.verdict == "undecidable" and "straddles" in inside.sentence


def test_date_claim_undecidable_when_unsure_or_unseen() -> None:
    weak = tl.PhaseDate("roofed", "2021-06-01", "2021-05-20", "2021-06-10", 0.6)
    res = tl.check_date_claim(weak, "before", "2022-01-01")
    assert res.verdict == "undecidable" and "confidence" in res.sentence
    unseen = tl.Timeline((), (), {}, (), ()).event("roofed")
    assert tl.check_date_claim(unseen, "before", "2022-01-01").verdict == "undecidable"
    not_yet = tl.PhaseDate("roofed", None, "2022-12-20", None, 0.99)  # not roofed by the end
    assert tl.check_date_claim(not_yet, "before", "2022-12-01").verdict == "contradicted"
    assert tl.check_date_claim(not_yet, "before", "2023-06-01").verdict == "undecidable"
    already = tl.PhaseDate("roofed", None, None, "2020-01-05", 0.99)  # roofed in scene one
    assert tl.check_date_claim(already, "before", "2020-06-01").verdict == "supported"
