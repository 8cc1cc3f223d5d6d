"""Live checks against the real Earth Search and Planetary Computer APIs (opt-in).

Run with ``pytest -m network tests/test_stac_live.py``; deselected by default and in CI.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from shapely.geometry import box

from geo.aoi import Aoi
from geo.grid import grid_for_aoi
from geo.sources.stac import StacSource

pytestmark = pytest.mark.network

# a 600 m box near Ryongsong (127.657 E, 39.920 N)
AOI = Aoi(name="ryongsong_live", geometry=box(127.6535, 39.9173, 127.6605, 39.9227))


@pytest.mark.parametrize("api", ["earth-search", "planetary-computer"])
def test_live_search_and_read(api: str, tmp_path: Path) -> None:
    src = StacSource(api, collections=["sentinel-2-l2a"], cache_dir=str(tmp_path),
                     period="month", max_cloud_frac=0.5)
    scenes = src.search(AOI, "2023-04-01", "2023-06-30")
    assert scenes and all(0 <= s.properties["aoi_cloud_frac"] <= 0.5 for s in scenes)
    ga = src.read(scenes[0], grid_for_aoi(AOI.geometry, 10.0))
    assert ga.valid_frac > 0.3
    refl = ga.band("red")[ga.valid]
    assert 0.0 < float(refl.mean()) < 0.5  # reflectance, not DNs
    for s in scenes:
        assert "sig=" not in str(s.assets) and "sig=" not in str(s.properties)
