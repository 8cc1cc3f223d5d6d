"""StacSource against a real loopback STAC API + COG server; item parsing on real STAC items."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import _stac_server as _fx
import numpy as np
import pytest
from _stac_server import (
    AOI_UTM,
    ROOF_UTM,
    STAC_EXAMPLES,
    StacServer,
    aoi_geometry_4326,
    reflectance_truth,
)
from click.testing import CliRunner

from geo.aoi import Aoi
from geo.errors import CacheMissError, ConfigError, NetworkError, NoImageryError
from geo.grid import Grid, grid_for_aoi
from geo.http import RetryPolicy, redact
from geo.sources.base import ImagerySource, Scene
from geo.sources.stac import (
    PRESETS,
    StacSource,
    reflectance_params,
    scene_from_item,
    select_scenes,
)

stac_server = _fx.stac_server  # the loopback server, one per module
stac = _fx.stac

AOI = Aoi(name="ryongsong", geometry=aoi_geometry_4326())
START, END = "2023-01-01", "2023-12-31"
FAST = RetryPolicy(max_retries=3, backoff_s=0.01, timeout_s=5.0)


def _source(srv: StacServer, cache: Path, **kw: Any) -> StacSource:
    kw.setdefault("period", "month")
    kw.setdefault("policy", FAST)
    return StacSource(srv.url, cache_dir=str(cache), **kw)


def _grid() -> Grid:
    return grid_for_aoi(AOI.geometry, 10.0)


def _truth_on_grid(band: str, seed: int, grid: Grid) -> np.ndarray:
    full = reflectance_truth(band, 10.0, seed)
    r0 = round((4421000.0 - grid.transform.f) / 10)
    c0 = round((grid.transform.c - 384000.0) / 10)
    return full[r0: r0 + grid.shape[0], c0: c0 + grid.shape[1]]


# --- items from the real APIs ----------------------------------------------------------------
def _load(rel: str) -> dict[str, Any]:
    return json.loads((STAC_EXAMPLES / rel).read_text())


def test_scene_from_real_earth_search_item() -> None:
    item = _load("earth_search_v1/sentinel-2-l2a/S2A_13TDE_20231008_0_L2A.json")
    s = scene_from_item(item, api=PRESETS["earth-search"])
    assert s.id == item["id"] and s.date == "2023-10-08"
    assert s.assets["red"].endswith("/B04.tif") and s.assets["qa"].endswith("/SCL.tif")
    assert s.assets["swir22"].endswith("/B12.tif")
    p = s.properties
    assert p["platform"] == "sentinel-2a" and p["processing_baseline"] == "05.09"
    assert p["relative_orbit"] == 141  # from s2:product_uri "_R141_"
    assert p["view_sun_elevation_deg"] == pytest.approx(42.619, abs=1e-3)
    assert p["datatake_id"] == "GS2A_20231008T175231_043324_N05.09"
    # this collection's pixels already had BOA_ADD_OFFSET removed by the provider
    assert p["boa_offset_applied_by"] == "provider" and p["reflectance_offset"] == 0.0


def test_scene_from_real_planetary_computer_item() -> None:
    item = _load("planetary_computer/S2A_MSIL2A_20190101T000001_R116_T60VUK_20201007T214652.json")
    s = scene_from_item(item, api=PRESETS["planetary-computer"])
    assert s.assets["blue"].endswith(".tif") and "B02" in s.assets["blue"]
    assert "SCL" in s.assets["qa"]
    p = s.properties
    assert p["relative_orbit"] == 116 and p["tile"] == "60VUK"
    assert p["view_sun_elevation_deg"] == pytest.approx(90 - 81.3310068623942)
    assert p["processing_baseline"] == "02.12" and p["boa_offset_applied_by"] == "not-needed"


def test_scene_from_real_c1_item_applies_offset() -> None:
    item = _load("earth_search_v1/sentinel-2-c1-l2a/S2B_T24MUV_20250731T130245_L2A.json")
    p = scene_from_item(item).properties
    assert p["processing_baseline"] == "05.11"
    assert p["boa_offset_applied_by"] == "factorywatch"
    assert p["reflectance_offset"] == pytest.approx(-0.1)
    assert p["view_incidence_angle_deg"] == pytest.approx(9.1935, abs=1e-3)


def test_landsat_item_scale_offset_and_assets() -> None:
    item = {"id": "LC09_L2SP_116032_20230501_02_T1", "collection": "landsat-c2-l2",
            "properties": {"datetime": "2023-05-01T02:10:00Z", "platform": "landsat-9",
                           "landsat:wrs_path": "116", "landsat:wrs_row": "032",
                           "view:off_nadir": 0, "view:sun_elevation": 60.1},
            "assets": {k: {"href": f"https://x/{k}.TIF"} for k in
                       ("blue", "green", "red", "nir08", "swir16", "swir22", "qa_pixel")}}
    s = scene_from_item(item)
    assert s.properties["mission"] == "landsat"
    assert s.assets["nir"].endswith("nir08.TIF") and s.assets["qa"].endswith("qa_pixel.TIF")
    assert reflectance_params(item)["reflectance_scale"] == pytest.approx(2.75e-5)
    assert reflectance_params(item)["reflectance_offset"] == pytest.approx(-0.2)
    assert s.properties["wrs_path"] == "116"


def test_item_without_needed_assets_is_refused() -> None:
    item = {"id": "x", "collection": "c", "properties": {"datetime": "2023-01-01T00:00:00Z"},
            "assets": {"visual": {"href": "https://x/TCI.tif"}}}
    with pytest.raises(Exception, match="no asset for blue"):
        scene_from_item(item)


def test_source_pickles_for_dask_workers(stac: StacServer, tmp_path: Path) -> None:
    import pickle

    src = _source(stac, tmp_path)
    scenes = src.search(AOI, START, END)
    clone = pickle.loads(pickle.dumps(src))
    a = clone.read(scenes[1], _grid())
    b = src.read(scenes[1], _grid())
    np.testing.assert_array_equal(a.data, b.data)


def test_each_window_is_decoded_once_per_run_not_once_per_pair(stac: StacServer,
                                                                tmp_path: Path) -> None:
    """The cloud-QA steps compare every date with every other: n dates, not n² window reads."""
    import pickle

    import geo.sources.stac as stac_mod

    src = _source(stac, tmp_path)
    scenes, grid = src.search(AOI, START, END), _grid()
    for s in scenes:
        src.read(s, grid)
    reads = src.cache.stats.hits + src.cache.stats.misses
    again = [src.read(s, grid) for s in scenes]  # the memo: the visible bands are not re-decoded
    per_read = (src.cache.stats.hits + src.cache.stats.misses - reads) / len(scenes)
    # this scene's 6 bands, its QA and the 3 visible bands of the offset check; not the others'
    assert per_read <= 10, per_read
    vis = src._visible(scenes[0], grid)
    assert vis is src._visible(scenes[0], grid) and not vis[0].flags.writeable
    assert not pickle.loads(pickle.dumps(src))._vis  # workers start without the memo
    # the memo is bounded: with room for one scene only the results are the same
    small = _source(stac, tmp_path)
    old, stac_mod._VISIBLE_MEMO_BYTES = stac_mod._VISIBLE_MEMO_BYTES, sum(a.nbytes for a in vis)
    try:
        small.search(AOI, START, END)
        for s, ga in zip(scenes, again, strict=True):
            b = small.read(s, grid)
            np.testing.assert_array_equal(b.data, ga.data)
            np.testing.assert_array_equal(b.valid, ga.valid)
            assert len(small._vis) == 1
    finally:
        stac_mod._VISIBLE_MEMO_BYTES = old


def test_presets_and_bad_api(tmp_path: Path) -> None:
    es = StacSource("earth-search", cache_dir=str(tmp_path))
    assert es.api_url == PRESETS["earth-search"] and not es.is_planetary_computer
    pc = StacSource("planetary-computer", cache_dir=str(tmp_path))
    assert pc.is_planetary_computer
    assert StacSource("https://example.org/stac/", cache_dir=str(tmp_path)).api_url == (
        "https://example.org/stac")
    with pytest.raises(ConfigError, match="preset"):
        StacSource("earthsearch", cache_dir=str(tmp_path))
    assert isinstance(es, ImagerySource)


def test_select_scenes_rules() -> None:
    def sc(i: str, date: str, cloud: float, valid: float, platform: str = "s2a") -> Scene:
        return Scene(id=i, date=date, href="", properties={
            "aoi_cloud_frac": cloud, "valid_frac": valid, "platform": platform})

    a = sc("a", "2023-01-05", 0.0, 0.99)
    b = sc("b", "2023-01-05", 0.0, 0.60)  # same acquisition, half outside the swath
    c = sc("c", "2023-02-01", 0.5, 0.50)  # cloudy
    d = sc("d", "2023-02-11", 0.1, 0.90)
    e = sc("e", "2023-04-01", 0.0, 0.20)  # mostly nodata
    f = sc("f", "2023-02-20", 0.0, 0.95, platform="s2b")
    got = select_scenes([a, b, c, d, e, f], period="month", max_cloud_frac=0.2,
                        min_valid_frac=0.5)
    assert [s.id for s in got] == ["a", "f"]
    assert b.properties["reject_reason"] == "duplicate_of:a"
    assert c.properties["reject_reason"] == "cloud"
    assert d.properties["reject_reason"] == "not_best_in_period:f"
    assert e.properties["reject_reason"] == "low_valid"
    got = select_scenes([a, b, c, d, e, f], period="quarter", max_cloud_frac=0.2,
                        min_valid_frac=0.5)
    assert [s.id for s in got] == ["a"]


# --- against the loopback server -------------------------------------------------------------
def test_candidates_measure_cloud_inside_aoi(stac: StacServer, tmp_path: Path) -> None:
    src = _source(stac, tmp_path)
    cands = {s.id: s for s in src.candidates(AOI, START, END)}
    assert len(cands) == 5
    april = cands["S2A_52SCG_20230410_0_L2A"].properties
    cloudy = cands["S2B_52SCG_20230420_0_L2A"].properties
    dup = cands["S2A_52SCG_20230510_1_L2A"].properties
    pc = cands["S2A_MSIL2A_20230715T021959_R031_T52SCG_20230715T053000"].properties
    # only the roof (SCL 9 over 80 m x 80 m) is "cloud" in April: 16 px of the 20 m QA grid;
    # it is "cloud" on every clear date, so it is not counted as cloud when choosing scenes
    assert april["aoi_cloud_frac_raw"] == pytest.approx(16 / april["qa_n_px"], abs=1e-4)
    assert april["n_persistent_cloud_px"] == 16
    assert april["aoi_cloud_frac"] == 0.0 and april["valid_frac"] == 1.0
    assert cloudy["aoi_cloud_frac"] > 0.5 and cloudy["reject_reason"] == "cloud"
    assert dup["reject_reason"] == "duplicate_of:S2A_52SCG_20230510_0_L2A"
    assert dup["nodata_frac"] > 0.3
    assert pc["boa_offset_applied_by"] == "factorywatch" and pc["relative_orbit"] == 31
    assert pc["view_sun_elevation_deg"] == pytest.approx(55.0)
    # the scene-level cloud cover of the template says ~0 %: we do not use it
    assert cloudy["scene_cloud_cover_pct"] < 1


def test_search_best_per_period(stac: StacServer, tmp_path: Path) -> None:
    monthly = _source(stac, tmp_path).search(AOI, START, END)
    assert [s.date for s in monthly] == ["2023-04-10", "2023-05-10", "2023-07-15"]
    quarterly = _source(stac, tmp_path, period="quarter").search(AOI, START, END)
    assert [s.date for s in quarterly] == ["2023-04-10", "2023-07-15"]
    yearly = _source(stac, tmp_path, period="year").search(AOI, START, END)
    assert [s.date for s in yearly] == ["2023-04-10"]
    assert _source(stac, tmp_path).search(AOI, "2023-05-01", "2023-05-31")[0].id == (
        "S2A_52SCG_20230510_0_L2A")


def test_search_nothing_found(stac: StacServer, tmp_path: Path) -> None:
    with pytest.raises(NoImageryError, match="widen the dates"):
        _source(stac, tmp_path).search(AOI, "2019-01-01", "2019-12-31")
    with pytest.raises(NoImageryError, match="max_cloud_frac"):  # only the cloudy scene
        _source(stac, tmp_path).search(AOI, "2023-04-15", "2023-04-25")


def test_read_reflectance_offsets_and_masks(stac: StacServer, tmp_path: Path) -> None:
    src = _source(stac, tmp_path)
    scenes = src.search(AOI, START, END)
    grid = _grid()
    arrs = [src.read(s, grid) for s in scenes]
    for ga, seed in zip(arrs, (0, 2, 3), strict=True):
        assert ga.bands == ("blue", "green", "red", "nir", "swir16", "swir22")
        assert ga.grid == grid and ga.data.dtype == np.float32
        for b in ("blue", "nir"):
            truth = _truth_on_grid(b, seed, grid)
            # DNs are round(refl * 1e4) (+1000 for the PC item): exact to half a DN
            np.testing.assert_allclose(ga.band(b)[ga.valid], truth[ga.valid], atol=0.6e-4)
        # 20 m bands are resampled onto the 10 m grid (bilinear): close to the smooth truth
        swir = ga.band("swir16")
        truth = _truth_on_grid("swir16", seed, grid)
        inner = ga.valid.copy()
        inner[[0, -1], :] = inner[:, [0, -1]] = False
        diff = np.abs(swir[inner] - truth[inner])
        assert np.percentile(diff, 95) < 0.002  # smooth field; edges of the roof blur by 1 px
    # the Planetary-Computer item's DNs carry +1000: the offset was removed and recorded
    assert scenes[2].properties["boa_offset_applied"] is True
    assert scenes[2].properties["boa_offset_applied_by"] == "factorywatch"
    assert scenes[2].properties["boa_offset_check_frac"] == 0.0  # pixels agree with metadata
    # May has a small cloud (SCL 9) and its shadow (SCL 3): masked
    may = arrs[1]
    assert not may.valid.all() and may.valid_frac > 0.9
    # the roof is "cloud" in SCL on all three dates, bright and stable: kept valid
    for s, ga in zip(scenes, arrs, strict=True):
        assert s.properties["n_bright_stable_px"] == 64
        rr = slice(round((grid.transform.f - ROOF_UTM[3]) / 10),
                   round((grid.transform.f - ROOF_UTM[1]) / 10))
        cc = slice(round((ROOF_UTM[0] - grid.transform.c) / 10),
                   round((ROOF_UTM[2] - grid.transform.c) / 10))
        assert ga.valid[rr, cc].all()
        np.testing.assert_allclose(ga.band("red")[rr, cc], 0.35, atol=1e-4)
    assert AOI_UTM[0] >= grid.bounds[0]


def test_reads_only_the_window(stac: StacServer, tmp_path: Path) -> None:
    src = _source(stac, tmp_path)
    s = src.search(AOI, START, END)[0]
    before = dict(stac.state.counts)
    log_start = len(stac.state.log)
    src.read(s, _grid())
    ranged = [line for line in stac.state.log[log_start:] if line.startswith("GET /assets/")]
    assert ranged and all("bytes=" in line for line in ranged)  # range requests, never whole
    assert sum(stac.state.counts.values()) > sum(before.values())


def test_second_run_hits_only_the_cache(stac: StacServer, tmp_path: Path) -> None:
    grid = _grid()
    first = _source(stac, tmp_path)
    n0 = stac.n_requests
    a = [first.read(s, grid) for s in first.search(AOI, START, END)]
    assert stac.n_requests > n0
    n1 = stac.n_requests
    again = _source(stac, tmp_path)  # a new process would build a new source
    b = [again.read(s, grid) for s in again.search(AOI, START, END)]
    assert stac.n_requests == n1, "the second run talked to the server"
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.data, y.data)
        np.testing.assert_array_equal(x.valid, y.valid)
    # and offline gives the same pixels with no server at all
    off = _source(stac, tmp_path, offline=True)
    c = [off.read(s, grid) for s in off.search(AOI, START, END)]
    assert stac.n_requests == n1
    np.testing.assert_array_equal(a[0].data, c[0].data)


def test_offline_lists_what_is_missing(stac: StacServer, tmp_path: Path) -> None:
    off = _source(stac, tmp_path, offline=True)
    with pytest.raises(CacheMissError, match=r"no search of .* run once online"):
        off.search(AOI, START, END)
    scenes = _source(stac, tmp_path).search(AOI, START, END)  # fills search + QA windows only
    n = stac.n_requests
    off = _source(stac, tmp_path, offline=True)
    assert [s.id for s in off.search(AOI, START, END)] == [s.id for s in scenes]
    with pytest.raises(CacheMissError) as err:
        off.read(off.search(AOI, START, END)[0], _grid())
    msg = str(err.value)
    # every window the run needs: 7 per selected scene (6 bands + SCL), grouped by scene
    assert "21 windows of 3 scenes" in msg and "S2A_52SCG_20230410_0_L2A/blue@" in msg
    assert "\n" not in msg
    assert stac.n_requests == n


def test_unreachable_api_is_one_line_network_error(tmp_path: Path) -> None:
    src = StacSource("http://127.0.0.1:9/v1", cache_dir=str(tmp_path),
                     policy=RetryPolicy(max_retries=1, backoff_s=0.01, timeout_s=2))
    with pytest.raises(NetworkError) as err:
        src.search(AOI, START, END)
    msg = str(err.value)
    assert "\n" not in msg and "127.0.0.1:9" in msg and "--offline" in msg
    assert "Traceback" not in msg


def test_signed_urls_never_leak(stac: StacServer, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    from geo.reading import GDAL_ENV

    monkeypatch.setitem(GDAL_ENV, "GDAL_HTTP_MAX_RETRY", "0")  # keep the test quick
    secret = "sv=2021-06-08&se=2099-01-01T00%3A00%3A00Z&sp=rl&sig=TOPSECRET%2Fabc%3D"

    def signer(href: str) -> str:
        return f"{href}?{secret}"

    caplog.set_level(logging.DEBUG)
    stac.inject("/assets/S2A_52SCG_20230410_0_L2A/B08.tif", "500", times=1000)
    src = _source(stac, tmp_path, signer=signer,
                  policy=RetryPolicy(max_retries=1, backoff_s=0.01, timeout_s=5))
    scenes = src.search(AOI, START, END)
    with pytest.raises(NetworkError) as err:
        src.read(scenes[0], _grid())
    stac.state.faults.clear()
    assert "TOPSECRET" not in str(err.value) and "sig=" not in str(err.value)
    assert "TOPSECRET" not in caplog.text and "sig=" not in caplog.text
    assert "TOPSECRET" not in json.dumps([s.properties for s in scenes] +
                                         [s.assets for s in scenes])
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert b"TOPSECRET" not in p.read_bytes(), p
    # the server did receive signed requests
    assert any("sig=TOPSECRET" in line for line in stac.state.log)


def test_redact_examples() -> None:
    url = ("https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/52/S/CG/B04.tif?"
           "st=2023-01-01&se=2023-01-02&sp=rl&sv=2021&sr=c&skoid=a&sig=abc%2B")
    out = redact(f"CPLE_HttpResponse in /vsicurl/{url}: HTTP 500")
    assert "sig=" not in out and "se=" not in out and out.endswith("?REDACTED: HTTP 500")
    assert redact("https://x/search?token=eyJabc") == "https://x/search?REDACTED"
    assert redact("https://x/y.tif?X-Amz-Signature=1&X-Amz-Credential=2") == (
        "https://x/y.tif?REDACTED")
    assert redact("no url here") == "no url here"


# --- CLI ---------------------------------------------------------------------------------------
def _write_config(tmp_path: Path, api: str, **extra: str) -> Path:
    aoi_path = tmp_path / "ryongsong_test.geojson"
    aoi_path.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"coord_source": "test", "coord_confidence": "high"},
        "geometry": json.loads(json.dumps(AOI.geometry.__geo_interface__))}]}))
    lines = ["[aoi]", f'geometry = "{aoi_path.name}"', "", "[source]", 'kind = "stac"',
             f'api = "{api}"', 'collections = ["sentinel-2-l2a"]', f'start = "{START}"',
             f'end = "{END}"', 'period = "month"', f'cache_dir = "{tmp_path / "cache"}"',
             "max_retries = 2"]
    lines += [f"{k} = {v}" for k, v in extra.items()]
    # figures and change rasters are not what is compared here (scenes/ and masks/ are)
    lines += ["", "[output]", "report = false", "rasters = false"]
    p = tmp_path / "ryongsong_test.toml"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_scenes_cli_json_lines(stac: StacServer, tmp_path: Path) -> None:
    from geo.cli import main

    cfg = _write_config(tmp_path, stac.url)
    r = CliRunner().invoke(main, ["scenes", str(cfg)])
    assert r.exit_code == 0, r.output
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(recs) == 5
    assert list(recs[0])[:4] == ["id", "date", "aoi_cloud_frac", "valid_frac"]
    assert sum(r["selected"] for r in recs) == 3
    assert {"platform", "relative_orbit", "processing_baseline", "view_sun_elevation_deg",
            "reject_reason"} <= set(recs[0])
    n = stac.n_requests
    r = CliRunner().invoke(main, ["scenes", str(cfg), "--offline", "--selected"])
    assert r.exit_code == 0, r.output
    assert len(r.stdout.splitlines()) == 3 and stac.n_requests == n


def test_scenes_cli_errors_are_one_line(tmp_path: Path) -> None:
    from geo.cli import main

    cfg = _write_config(tmp_path, "http://127.0.0.1:9/v1")
    r = CliRunner().invoke(main, ["scenes", str(cfg), "--offline"])
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: offline:") and "Traceback" not in r.stderr
    r = CliRunner().invoke(main, ["scenes", str(cfg), "-q"])
    assert r.exit_code == 1 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("Error: STAC search http://127.0.0.1:9/v1: failed after 3 attempts")


# --- Done-when: `factorywatch run` on a STAC config == the same pixels run locally --------------
@pytest.fixture(scope="module")
def stac10(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A second server whose SWIR bands are 10 m, so that a local copy is exactly the same."""
    from _stac_server import DEFAULT_SPECS, serve_scenario

    d = tmp_path_factory.mktemp("stac10")
    srv = StacServer(d / "assets")
    specs = tuple(dataclasses.replace(s, swir_res_m=10.0) for s in DEFAULT_SPECS)
    serve_scenario(srv, d / "assets", specs)
    yield srv
    srv.close()


def _local_copy(folder: Path, scenes: list[tuple[str, int, int, tuple[float, ...] | None]]) -> None:
    """The selected dates as local 6-band reflectance GeoTIFFs with the SCL mask (+ the roof)."""
    import rasterio
    from _stac_server import BAND_FILES, ROOF_UTM, TILE_LEFT, TILE_TOP, _px_slices
    from rasterio.transform import from_origin

    folder.mkdir(parents=True)
    for date, seed, add, cloud in scenes:
        bands = []
        for band in BAND_FILES:
            refl = reflectance_truth(band, 10.0, seed)
            if cloud is not None:
                rr, cc = _px_slices(cloud, 10.0)
                refl[rr, cc] = 0.6 + 0.1 * seed
            dn = np.round(refl * 10000 + add).astype("uint16").astype(np.float32)
            bands.append(dn * np.float32(1e-4) + np.float32(-add * 1e-4))
        data = np.stack(bands).astype(np.float32)
        valid = np.ones(data.shape[1:], bool)
        if cloud is not None:  # SCL 9 over the cloud (20 m cells) and 3 rows of shadow below it
            rr, cc = _px_slices(cloud, 20.0)
            v20 = np.ones((128, 128), bool)
            v20[rr, cc] = False
            v20[rr.stop: rr.stop + 3, cc] = False
            valid = np.kron(v20, np.ones((2, 2), bool)).astype(bool)
        rr, cc = _px_slices(ROOF_UTM, 10.0)
        valid[rr, cc] = True
        data[:, ~valid] = 0.0
        prof = {"driver": "GTiff", "width": 256, "height": 256, "count": 6, "dtype": "float32",
                "crs": "EPSG:32652", "transform": from_origin(TILE_LEFT, TILE_TOP, 10, 10)}
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), \
                rasterio.open(folder / f"{date}.tif", "w", **prof) as dst:
            dst.write(data)
            for i, b in enumerate(BAND_FILES, 1):
                dst.set_band_description(i, b)
            dst.write_mask(np.where(valid, 255, 0).astype("uint8"))


def _outputs(run_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("footprints", "sites", "changes"):
        doc = json.loads((run_dir / f"{name}.geojson").read_text())
        feats = sorted(doc["features"], key=lambda f: str(f.get("id")))
        for f in feats:
            f["properties"] = {k: v for k, v in f["properties"].items()
                               if k not in ("source_id", "scene_id")}
        out[name] = feats
    out["measurements"] = (run_dir / "measurements.csv").read_text()
    return out


def _rasters(run_dir: Path) -> dict[str, np.ndarray]:
    import rasterio

    out = {}
    for p in sorted([*run_dir.glob("scenes/*.tif"), *run_dir.glob("masks/*.tif")]):
        with rasterio.open(p) as src:
            a = src.read(masked=True)
            out[f"{p.parent.name}/{p.name}"] = np.where(a.mask, -9999.0, a.data.astype(float))
    return out


def test_run_stac_config_end_to_end_matches_local(stac10: StacServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("geo.detect", reason="pipeline detection stage not on this branch yet")
    from geo.cli import main

    monkeypatch.setenv("CPL_VSIL_CURL_NON_CACHED", f"/vsicurl/{stac10.url}")
    cfg = _write_config(tmp_path, stac10.url)
    runner = CliRunner()
    r = runner.invoke(main, ["run", str(cfg), "-o", str(tmp_path / "run_stac"), "--json", "-q"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["dates"] == ["2023-04-10", "2023-05-10", "2023-07-15"]
    n_first = stac10.n_requests
    assert n_first > 0
    # the same pixels, as a local folder of GeoTIFFs, through the same pipeline
    _local_copy(tmp_path / "local_imgs", [
        ("2023-04-10", 0, 0, None),
        ("2023-05-10", 2, 0, (385300.0, 4419500.0, 385400.0, 4419600.0)),
        ("2023-07-15", 3, 1000, None),
    ])
    local_cfg = tmp_path / "ryongsong_local.toml"
    local_cfg.write_text(cfg.read_text().replace('kind = "stac"', 'kind = "local"\npath = '
                                                 '"local_imgs"').replace(
        'geometry = "ryongsong_test.geojson"', 'geometry = "ryongsong_test.geojson"\n'
        'name = "ryongsong_test"'))
    r = runner.invoke(main, ["run", str(local_cfg), "-o", str(tmp_path / "run_local"), "-q"])
    assert r.exit_code == 0, r.output
    assert _outputs(tmp_path / "run_stac") == _outputs(tmp_path / "run_local")
    stac_px, local_px = _rasters(tmp_path / "run_stac"), _rasters(tmp_path / "run_local")
    assert len(stac_px) == 6 and stac_px.keys() == local_px.keys()  # 3 scenes + 3 masks
    for k in stac_px:
        np.testing.assert_allclose(stac_px[k], local_px[k], atol=1e-6, err_msg=k)
    # run.json records provenance without secrets
    run_json = (tmp_path / "run_stac" / "run.json").read_text()
    assert "boa_offset_applied_by" in run_json and "aoi_cloud_frac" in run_json
    # a second run reads nothing from the network, and --offline works with no server traffic
    r = runner.invoke(main, ["run", str(cfg), "-o", str(tmp_path / "run_stac2"), "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["run", str(cfg), "-o", str(tmp_path / "run_off"), "--offline", "-q"])
    assert r.exit_code == 0, r.output
    assert stac10.n_requests == n_first, "a second run talked to the server"
    assert _outputs(tmp_path / "run_stac2") == _outputs(tmp_path / "run_stac")
    assert _outputs(tmp_path / "run_off") == _outputs(tmp_path / "run_stac")
    # offline with an empty cache: one line naming what is missing and the fix, exit 1
    empty = tmp_path / "empty.toml"
    empty.write_text(cfg.read_text().replace(str(tmp_path / "cache"), str(tmp_path / "nocache")))
    r = runner.invoke(main, ["run", str(empty), "-o", str(tmp_path / "run_x"), "--offline", "-q"])
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: offline:") and "run once online" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "run_x").exists()


def test_landsat_qa_pixel_and_scale(stac: StacServer, tmp_path: Path) -> None:
    from _stac_server import landsat_truth, make_landsat_scene

    asset_dir = stac.state.asset_dir
    assert asset_dir is not None
    if not any(i["collection"] == "landsat-c2-l2" for i in stac.state.items):
        stac.add_item(make_landsat_scene("LC08_L2SP_116032_20230601_02_T1", "2023-06-01",
                                         asset_dir, stac.url,
                                         cloud_utm=(385200.0, 4419600.0, 385500.0, 4419900.0)))
        stac.add_item(make_landsat_scene("LC08_L2SP_116032_20230617_02_T1", "2023-06-17",
                                         asset_dir, stac.url))
    src = _source(stac, tmp_path, collections=["landsat-c2-l2"])
    cands = src.candidates(AOI, START, END)
    assert [s.properties["mission"] for s in cands] == ["landsat", "landsat"]
    cloudy, clear = cands
    assert cloudy.properties["qa_res_m"] == 30.0
    assert 0.05 < cloudy.properties["aoi_cloud_frac"] < 0.5
    assert clear.properties["aoi_cloud_frac"] == 0.0 and clear.properties["valid_frac"] == 1.0
    assert clear.properties["wrs_path"] == "116" and clear.properties["platform"] == "landsat-8"
    chosen = src.search(AOI, START, END)
    assert [s.id for s in chosen] == [clear.id]  # both in June: the clear one wins
    grid = _grid()
    ga = src.read(cloudy, grid)
    assert ga.bands == ("blue", "green", "red", "nir", "swir16", "swir22")
    assert 0.5 < ga.valid_frac < 1.0
    for band, role in zip(("blue", "nir08", "swir22"), ("blue", "nir", "swir22"), strict=True):
        # DN * 2.75e-5 - 0.2 recovers the reflectance to within one DN step
        np.testing.assert_allclose(ga.band(role)[ga.valid], landsat_truth(band), atol=2.8e-5)


def test_server_speaks_stac_get_and_post_with_pagination(stac: StacServer) -> None:
    """The loopback API is a real STAC API to pystac-client: paging by GET and by POST."""
    from pystac_client import Client

    client = Client.open(f"{stac.url}/")
    ids = {}
    for method in ("GET", "POST"):
        n0 = stac.n_requests_to("/search")
        search = client.search(collections=["sentinel-2-l2a"], intersects=AOI.geometry,
                               datetime=f"{START}/{END}", method=method, limit=2)
        ids[method] = sorted(i["id"] for i in search.items_as_dicts())
        assert stac.n_requests_to("/search") - n0 == 3  # 5 items, 2 per page
    assert ids["GET"] == ids["POST"] and len(ids["GET"]) == 5


def test_gdal_reaches_loopback_despite_the_dead_proxy(stac: StacServer, tmp_path: Path) -> None:
    """conftest points GDAL_HTTP_PROXY at a closed port; GDAL still honours NO_PROXY=127.0.0.1."""
    import os

    assert os.environ["GDAL_HTTP_PROXY"] == "127.0.0.1:9"
    assert "127.0.0.1" in os.environ["NO_PROXY"]
    src = _source(stac, tmp_path)
    n0 = stac.n_requests_to("/assets/")
    src.read(src.search(AOI, START, END)[0], _grid())
    assert stac.n_requests_to("/assets/") > n0


def test_signer_network_failure_is_retried_then_network_error(stac: StacServer,
                                                              tmp_path: Path) -> None:
    calls = []

    def flaky_signer(href: str) -> str:
        calls.append(href)
        if len(calls) <= 2:
            raise ConnectionError("token endpoint unreachable")
        return href

    src = _source(stac, tmp_path, signer=flaky_signer)
    scene = src.search(AOI, START, END)[0]
    ga = src.read(scene, _grid())  # two failures, then fine
    assert ga.valid_frac > 0.9 and len(calls) > 2

    def dead_signer(href: str) -> str:
        raise ConnectionError("token endpoint unreachable")

    scene = _source(stac, tmp_path / "other").search(AOI, START, END)[0]  # QA windows cached
    src = _source(stac, tmp_path / "other", signer=dead_signer,
                  policy=RetryPolicy(max_retries=1, backoff_s=0.01))
    with pytest.raises(NetworkError, match="token endpoint unreachable"):
        src.read(scene, _grid())


def test_scenes_cli_on_a_local_folder(make_geotiff: Any, tmp_path: Path) -> None:
    from geo.cli import main

    folder = tmp_path / "imgs"
    for d in ("2023-03-01", "2023-06-03"):
        make_geotiff(np.ones((3, 8, 8), np.float32), date=d, folder=folder,
                     origin=(385000.0, 4420000.0))
    cfg = _write_config(tmp_path, "earth-search")
    cfg.write_text(cfg.read_text().replace('kind = "stac"', 'kind = "local"\npath = "imgs"'))
    r = CliRunner().invoke(main, ["scenes", str(cfg)])
    assert r.exit_code == 0, r.output
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["date"] for x in recs] == ["2023-03-01", "2023-06-03"]
    assert all(x["aoi_cloud_frac"] is None and "sha256" in x for x in recs)


def test_mislabelled_boa_flag_is_caught_by_the_pixels(stac: StacServer, tmp_path: Path) -> None:
    """Earth Search items exist that say the offset is in the pixels when it was removed."""
    from _stac_server import SceneSpec, make_scene

    col = "sentinel-2-l2a-mislabelled"
    if not any(i["collection"] == col for i in stac.state.items):
        spec = SceneSpec(item_id="S2B_52SCG_20230902_0_L2A", date="2023-09-02",
                         platform="sentinel-2b", baseline="04.00",
                         offset_applied_by_provider=False, dn_add=0, seed=4)
        assert stac.state.asset_dir is not None
        stac.add_item(make_scene(spec, stac.state.asset_dir, stac.url, collection=col))
    src = _source(stac, tmp_path, collections=[col])
    (scene,) = src.search(AOI, START, END)
    assert scene.properties["boa_offset_applied_by"] == "factorywatch"  # what the item says
    grid = _grid()
    ga = src.read(scene, grid)
    assert scene.properties["boa_offset_applied_by"] == "provider (inferred from the pixels)"
    assert scene.properties["boa_offset_check_frac"] > 0.1
    truth = _truth_on_grid("red", 4, grid)
    np.testing.assert_allclose(ga.band("red")[ga.valid], truth[ga.valid], atol=0.6e-4)
