"""Items that real STAC services serve (issue 13): optional bands, ``proj:code``, mislabelled
offsets both ways, one-date false clouds on new roofs, partly cloudy dates with clear buildings,
and offline runs with a partial cache. Loopback server, synthetic COGs over Ryongsong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _stac_server import (
    CRS,
    NEW_ROOF_REFL,
    TEMPLATE_ITEM,
    SceneSpec,
    StacServer,
    aoi_geometry_4326,
    make_scene,
    reflectance_truth,
)
from pyproj import Transformer
from shapely.geometry import box

from geo.aoi import Aoi
from geo.errors import CacheMissError, NoImageryError
from geo.grid import Grid, grid_for_aoi
from geo.http import RetryPolicy
from geo.sources.stac import StacSource, scene_from_item

AOI = Aoi(name="ryongsong", geometry=aoi_geometry_4326())
FAST = RetryPolicy(max_retries=3, backoff_s=0.01, timeout_s=5.0)
NEW_ROOF = (385300.0, 4419500.0, 385420.0, 4419620.0)
"""A 120 m x 120 m new hall inside the AOI (built before 2023-04)."""
FALSE_CLOUD = (385300.0, 4419520.0, 385420.0, 4419620.0)
"""SCL calls 30 of the hall's 36 SCL pixels (83 %) cloud on one date."""
WEST_CLOUD = (384600.0, 4419100.0, 384960.0, 4420300.0)
"""A cloud bank over the western buffer only: the AOI itself is clear."""


def _grid() -> Grid:
    return grid_for_aoi(AOI.geometry, 10.0)


def _serve(tmp: Path, specs: list[SceneSpec]) -> StacServer:
    srv = StacServer(tmp / "assets")
    for sp in specs:
        srv.add_item(make_scene(sp, tmp / "assets", srv.url))
    return srv


def _source(srv: StacServer, cache: Path, **kw: Any) -> StacSource:
    kw.setdefault("period", "month")
    kw.setdefault("policy", FAST)
    return StacSource(srv.url, cache_dir=str(cache), **kw)


def _px(grid: Grid, bounds: tuple[float, float, float, float]) -> tuple[slice, slice]:
    minx, miny, maxx, maxy = bounds
    t = grid.transform
    return (slice(round((t.f - maxy) / 10), round((t.f - miny) / 10)),
            slice(round((minx - t.c) / 10), round((maxx - t.c) / 10)))


@pytest.fixture(scope="module")
def varied(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Dates with a new hall, one false cloud on it, a buffer-only cloud bank, no B12 on one
    date, ``proj:code`` on another and a mislabelled offset on a third."""
    d = tmp_path_factory.mktemp("varied")
    specs = [
        SceneSpec(item_id="S2A_52SCG_20230305_0_L2A", date="2023-03-05", seed=0),
        SceneSpec(item_id="S2A_52SCG_20230404_0_L2A", date="2023-04-04", seed=1,
                  new_roof_utm=NEW_ROOF, omit_bands=("swir22",), proj_code=True),
        SceneSpec(item_id="S2A_52SCG_20230504_0_L2A", date="2023-05-04", seed=2,
                  new_roof_utm=NEW_ROOF, false_cloud_utm=FALSE_CLOUD),
        SceneSpec(item_id="S2A_52SCG_20230603_0_L2A", date="2023-06-03", seed=3,
                  new_roof_utm=NEW_ROOF, cloud_utm=WEST_CLOUD),
        # says the provider removed the +1000 offset; the pixels still carry it
        SceneSpec(item_id="S2A_52SCG_20230703_0_L2A", date="2023-07-03", seed=4,
                  new_roof_utm=NEW_ROOF, offset_applied_by_provider=True, dn_add=1000),
    ]
    srv = _serve(d, specs)
    yield srv
    srv.close()


@pytest.fixture
def src(varied: StacServer, tmp_path: Path) -> StacSource:
    return _source(varied, tmp_path, max_cloud_frac=0.1)


# --- item 1: bands the methods do not need are optional ---------------------------------------
def test_items_without_b12_are_kept_and_read_without_it(src: StacSource) -> None:
    cands = {s.date: s for s in src.candidates(AOI, "2023-01-01", "2023-12-31")}
    assert "2023-04-04" in cands, "the item without swir22 was rejected"
    april = cands["2023-04-04"]
    assert april.properties["missing_assets"] == ["swir22"]
    assert april.properties["selected"]
    src.search(AOI, "2023-01-01", "2023-12-31")
    ga = src.read(april, _grid())
    assert ga.bands == ("blue", "green", "red", "nir", "swir16")
    assert ga.valid_frac > 0.5


def test_items_missing_a_needed_band_say_which_per_item(tmp_path: Path) -> None:
    srv = _serve(tmp_path, [SceneSpec(item_id=f"S2A_52SCG_2023041{i}_0_L2A",
                                      date=f"2023-04-1{i}", omit_bands=("red",))
                            for i in range(3)])
    try:
        with pytest.raises(NoImageryError) as err:
            _source(srv, tmp_path / "c").search(AOI, "2023-01-01", "2023-12-31")
    finally:
        srv.close()
    msg = str(err.value)
    assert msg.startswith("3 STAC items matched but none is usable")
    assert "no asset for red" in msg and "widen the dates" not in msg


def test_scenes_cli_lists_items_without_b12(varied: StacServer, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from geo.cli import main

    (tmp_path / "aoi.geojson").write_text(json.dumps(
        {"type": "Feature", "properties": {}, "geometry": AOI.geometry.__geo_interface__}))
    cfg = tmp_path / "aoi.toml"
    cfg.write_text(f'[aoi]\ngeometry = "aoi.geojson"\n[source]\nkind = "stac"\napi = '
                   f'"{varied.url}"\nperiod = "month"\nmax_retries = 2\ncache_dir = '
                   f'"{tmp_path / "cache"}"\nstart = "2023-01-01"\nend = "2023-12-31"\n')
    r = CliRunner().invoke(main, ["scenes", str(cfg), "-q"])
    assert r.exit_code == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(recs) == 5 and {"2023-04-04"} <= {x["date"] for x in recs}


# --- item 10: proj:code ------------------------------------------------------------------------
def test_proj_code_items_record_their_epsg() -> None:
    item = json.loads(TEMPLATE_ITEM.read_text())
    item["properties"].pop("proj:epsg", None)
    item["properties"]["proj:code"] = "EPSG:32613"
    assert scene_from_item(item).properties["epsg"] == 32613
    for a in item["assets"].values():
        a.pop("proj:epsg", None)
        a["proj:code"] = "EPSG:32613"
    item["properties"].pop("proj:code")
    assert scene_from_item(item).properties["epsg"] == 32613  # from the red asset


def test_proj_code_on_the_server_reaches_the_scene(src: StacSource) -> None:
    april = [s for s in src.search(AOI, "2023-01-01", "2023-12-31") if s.date == "2023-04-04"]
    assert april[0].properties["epsg"] == int(CRS.split(":")[1])


# --- item 9: offsets checked both ways ---------------------------------------------------------
def test_offset_claimed_removed_but_still_in_the_pixels(src: StacSource) -> None:
    scenes = {s.date: s for s in src.search(AOI, "2023-01-01", "2023-12-31")}
    july = scenes["2023-07-03"]
    assert july.properties["boa_offset_applied_by"] == "provider"
    grid = _grid()
    ga = src.read(july, grid)
    p = july.properties
    assert p["boa_offset_applied_by"] == "factorywatch (inferred from the pixels)"
    assert p["boa_offset_check"]["verdict"] == "present"
    assert p["boa_offset_check"]["frac_below_1000"] == 0.0
    rr, cc = _px(grid, (385000.0, 4419700.0, 385080.0, 4419780.0))  # off both roofs
    full = reflectance_truth("red", 10.0, 4)
    r0 = round((4421000.0 - grid.transform.f) / 10)
    c0 = round((grid.transform.c - 384000.0) / 10)
    truth = full[r0 + rr.start: r0 + rr.stop, c0 + cc.start: c0 + cc.stop]
    got = ga.band("red")[rr, cc]
    assert np.abs(got - truth).max() < 2e-3, "reflectance is 0.1 too high"
    # the properly labelled dates were checked too, and left alone
    ga3 = src.read(scenes["2023-03-05"], grid)
    assert scenes["2023-03-05"].properties["boa_offset_check"]["verdict"] == "removed"
    assert scenes["2023-03-05"].properties["boa_offset_applied_by"] == "provider"
    assert ga3.valid_frac > 0.5


# --- item 7: a one-date false cloud on the new roof --------------------------------------------
def test_one_date_false_cloud_on_a_new_roof_is_rescued(src: StacSource) -> None:
    scenes = {s.date: s for s in src.search(AOI, "2023-01-01", "2023-12-31")}
    grid = _grid()
    may = scenes["2023-05-04"]
    ga = src.read(may, grid)
    rr, cc = _px(grid, FALSE_CLOUD)
    assert ga.valid[rr, cc].mean() > 0.95, "the new roof is lost under a false cloud"
    np.testing.assert_allclose(ga.band("red")[rr, cc][ga.valid[rr, cc]], NEW_ROOF_REFL["red"],
                               atol=2e-3)
    assert may.properties["n_false_cloud_roof_px"] == int(ga.valid[rr, cc].sum())
    assert set(may.properties["false_cloud_roof_evidence"]) <= {"2023-04-04", "2023-06-03",
                                                                "2023-07-03"}
    assert may.properties["false_cloud_roof_evidence"]
    # the always-"cloud" old roof is not touched by this rule, and clear dates rescue nothing
    march = scenes["2023-03-05"]
    src.read(march, grid)
    assert march.properties["n_false_cloud_roof_px"] == 0


def test_a_real_cloud_over_the_roof_stays_masked(tmp_path: Path) -> None:
    cloud = (385280.0, 4419480.0, 385460.0, 4419640.0)  # a cloud a bit bigger than the hall
    srv = _serve(tmp_path, [
        SceneSpec(item_id=f"S2A_52SCG_2023{m:02d}04_0_L2A", date=f"2023-{m:02d}-04", seed=m,
                  new_roof_utm=NEW_ROOF, cloud_utm=cloud if m == 5 else None)
        for m in (4, 5, 6)])
    try:
        src = _source(srv, tmp_path / "c", max_cloud_frac=0.3)
        scenes = {s.date: s for s in src.search(AOI, "2023-01-01", "2023-12-31")}
        grid = _grid()
        ga = src.read(scenes["2023-05-04"], grid)
    finally:
        srv.close()
    rr, cc = _px(grid, NEW_ROOF)
    assert not ga.valid[rr, cc].any(), "a real cloud was taken for the roof"
    assert scenes["2023-05-04"].properties["n_false_cloud_roof_px"] == 0


# --- item 8: partly cloudy dates with clear buildings ------------------------------------------
def test_partly_cloudy_date_with_clear_buildings_is_kept(src: StacSource) -> None:
    cands = {s.date: s for s in src.candidates(AOI, "2023-01-01", "2023-12-31")}
    june = cands["2023-06-03"].properties
    assert june["aoi_cloud_frac"] > 0.1, "the scenario's cloud bank is not in the buffer"
    assert june["buildings_cloud_frac"] == 0.0
    assert june["selected"] and june["kept_partly_cloudy"]
    assert june["buildings_region"] == "aoi (no buffer)"


def test_buildings_decide_when_given(varied: StacServer, tmp_path: Path) -> None:
    tr = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    minx, miny, maxx, maxy = NEW_ROOF
    (x0, x1), (y0, y1) = tr.transform([minx, maxx], [miny, maxy])
    hall = box(x0, y0, x1, y1)
    # with the hall as the buildings, only the hall's own pixels decide
    src = _source(varied, tmp_path, max_cloud_frac=0.1, buildings=hall)
    cands = {s.date: s for s in src.candidates(AOI, "2023-01-01", "2023-12-31")}
    assert cands["2023-06-03"].properties["buildings_region"] == "buildings"
    assert cands["2023-06-03"].properties["buildings_cloud_frac"] == 0.0
    # the false-cloud date: 83 % of the hall is flagged cloud, so it is not "clear buildings"
    may = cands["2023-05-04"].properties
    assert may["buildings_cloud_frac"] > 0.5 and may["reject_reason"] == "cloud"


# --- item 10: offline with a partial cache lists everything, grouped by scene ------------------
def test_offline_partial_cache_lists_every_missing_window(src: StacSource, varied: StacServer,
                                                          tmp_path: Path) -> None:
    src.search(AOI, "2023-01-01", "2023-12-31")  # fills the search and every QA window
    qa = sorted((tmp_path / "windows").rglob("scl-*.npz"))
    assert len(qa) == 5
    for p in (qa[1], qa[3]):
        p.unlink()
    n = varied.n_requests
    off = _source(varied, tmp_path, max_cloud_frac=0.1, offline=True)
    with pytest.raises(CacheMissError) as err:
        off.search(AOI, "2023-01-01", "2023-12-31")
    msg = str(err.value)
    assert "2 windows of 2 scenes" in msg and "\n" not in msg
    assert qa[1].parent.name in msg and qa[3].parent.name in msg
    assert varied.n_requests == n
