"""The public API (``import geo``): the four functions a notebook needs, on the real demo run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import geo


def test_import_geo_is_light() -> None:
    code = "import sys, geo; print('geo.pipeline' in sys.modules, 'rasterio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_open_run_and_check(demo_run: dict[str, Any]) -> None:
    run = geo.open_run(demo_run["summary"].run_dir)
    assert len(run.sites) == demo_run["summary"].n_sites
    assert run.manifest["status"] == "complete" and run.footprints.crs.is_projected
    pair = demo_run["cmp"]["pair"]
    truth = pair["truth_ratio"]  # SYNTHETIC demo: hall B / its neighbour A, known exactly
    res = geo.check(run, pair["subject"], relation=">", factor=truth / 2)
    assert res.verdict == "supported", res.sentence
    res = geo.check(run.path, pair["subject"], relation="<", factor=truth / 2)
    assert res.verdict == "contradicted", res.sentence


def test_open_run_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    from geo.errors import SourceError

    with pytest.raises(SourceError, match="run directory"):
        geo.open_run(tmp_path)


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError):
        _ = geo.nope  # type: ignore[attr-defined]
