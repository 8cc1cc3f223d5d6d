"""The ``auto`` change rule's SYNTHETIC demo criterion (benchmarks/detection_demo.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from geo.detect import AUTO_CHANGE
from geo.synthetic import default_spec, render_series

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "detection_demo.py"


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("detection_demo_bench", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_truth_change_is_the_known_halls(demo):
    # 2019 -> 2022: B built (90 x 60 m), E built (L: 80 x 30 + 30 x 60 m), D demolished (45 x 30 m)
    scenes = render_series(default_spec())
    shape = scenes[0].rgb.shape[1:]
    t0, t3 = (demo.truth_mask(scenes[k], shape, 1.0) for k in (0, 3))
    changed = int((t0 ^ t3).sum())
    assert changed == pytest.approx(5400 + 4200 + 1350, rel=0.01)
    assert int((t0 & t3).sum()) == pytest.approx(2400 + 6000 + 1800, rel=0.01)  # A, C, F


def test_auto_rgb_method_passes_the_demo_criterion(demo):
    # the documented rule keeps a method as the RGB default only if F1 >= 0.8 on every demo pair
    method = AUTO_CHANGE["rgb"]
    cells = demo.demo_scores((method,))[method]
    assert [c["pair"] for c in cells] == ["2019→2022", "2019→2020", "2020→2021"]
    assert min(float(c["f1"]) for c in cells) >= 0.8, cells
