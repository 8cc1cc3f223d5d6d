"""Smoke tests of the calibration benchmark (the study itself is run from benchmarks/)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "calibration.py"


@pytest.fixture(scope="module")
def calib():
    spec = importlib.util.spec_from_file_location("calibration_bench", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_coverage_is_exact_area(calib):
    # a 40 m × 20 m rectangle at 45° on 1 m pixels: supersampled coverage sums to its area
    cov = calib._coverage((80, 80), 1.0, [(40.0, 40.0, 40.0, 20.0, math.pi / 4)], (0.3, 0.7), 8)
    assert cov.sum() == pytest.approx(800.0, rel=0.01)
    assert cov.max() == 1.0 and cov.min() == 0.0


@pytest.mark.parametrize("res", [0.5, 3.0, 10.0])
def test_trial_measures_close_to_truth(calib, res):
    ok = [r for r in (calib._trial((s, res)) for s in range(4)) if r["ok"]]
    assert ok
    for r in ok:
        rel = np.abs(np.array(r["area_rel_err"]))
        big = np.array(r["area_true_m2"]) >= 2000.0  # ≥ 20 pixels even at 10 m
        assert (rel[big] < {0.5: 0.06, 3.0: 0.2, 10.0: 0.5}[res]).all()
        assert len(r["area_in"]) == 3 and isinstance(r["ratio_in"], bool)


def test_main_writes_labelled_json(calib, tmp_path, capsys):
    assert calib.main(["--trials", "2", "--workers", "1", "--out", str(tmp_path)]) == 0
    out = json.loads((tmp_path / "calibration.json").read_text())
    assert out["label"] == "SYNTHETIC" and out["trials_per_resolution"] == 2
    assert {r["res_m"] for r in out["rows"]} == {0.5, 3.0, 10.0}
    md = capsys.readouterr().out
    assert "SYNTHETIC" in md and "| res (m) |" in md
