"""The locator map's country outlines ship with factorywatch (issue 11 item 7)."""

from __future__ import annotations

from pathlib import Path

from shapely.geometry import Point

import geo.export.report as report
import geo.export.report_figures as figures


def test_world_outlines_are_shipped_not_read_from_pyogrio_fixtures() -> None:
    for mod in (report, figures):
        src = Path(mod.__file__).read_text()
        assert "fixtures" not in src and "import pyogrio" not in src
    assert figures._WORLD.is_file() and figures._WORLD.stat().st_size < 300_000
    assert figures._WORLD.is_relative_to(Path(report.__file__).parent)


def test_world_outlines_place_kanggye_in_north_korea() -> None:
    world = figures._world()
    assert world is not None and len(world) > 150 and str(world.crs) == "EPSG:4326"
    hit = world[world.contains(Point(126.585, 40.969))]   # Kanggye (GeoNames)
    assert hit["name"].tolist() == ["North Korea"]
