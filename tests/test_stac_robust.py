"""Services that misbehave (issue 13): API errors with Retry-After, file opens after a dropped
connection, random faults across a whole run, messages that name the URL and the HTTP status,
bytes fetched once, and SAS-token signing for mirrors. Loopback server, synthetic COGs.

GDAL's in-process ``/vsicurl/`` cache stays ON here (unlike the ``stac`` fixture): a retry must
reach the server although GDAL remembers the failed answer.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import _stac_server as _fx
import numpy as np
import pytest
from _stac_server import StacServer, aoi_geometry_4326, serve_scenario

from geo.aoi import Aoi
from geo.errors import NetworkError, SourceError
from geo.grid import grid_for_aoi
from geo.http import RetryPolicy, clear_vsicurl_cache
from geo.sources.stac import StacSource

AOI = Aoi(name="ryongsong", geometry=aoi_geometry_4326())
START, END = "2023-01-01", "2023-12-31"
APRIL = "/assets/S2A_52SCG_20230410_0_L2A"
DATES = ["2023-04-10", "2023-05-10", "2023-07-15"]


def _source(srv: StacServer, cache: Path, *, retries: int = 4, **kw: Any) -> StacSource:
    return StacSource(srv.url, cache_dir=str(cache), period="month",
                      policy=RetryPolicy(max_retries=retries, backoff_s=0.01, timeout_s=5.0),
                      **kw)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    d = tmp_path_factory.mktemp("robust")
    srv = StacServer(d / "assets")
    serve_scenario(srv, d / "assets")
    yield srv
    srv.close()


@pytest.fixture
def srv(server: StacServer, monkeypatch: pytest.MonkeyPatch) -> StacServer:
    monkeypatch.delenv("CPL_VSIL_CURL_NON_CACHED", raising=False)
    server.state.faults.clear()
    server.state.chaos = None
    server.state.sas_tokens.clear()
    clear_vsicurl_cache(server.url)  # what earlier tests left in GDAL's in-process cache
    return server


@pytest.fixture(scope="module")
def clean(server: StacServer, tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    tokens, server.state.sas_tokens = server.state.sas_tokens, {}
    server.state.faults.clear()  # module fixtures are set up before ``srv`` cleans up
    server.state.chaos = None
    src = _source(server, tmp_path_factory.mktemp("clean"))
    grid = grid_for_aoi(AOI.geometry, 10.0)
    out = [src.read(s, grid).data for s in src.search(AOI, START, END)]
    server.state.sas_tokens = tokens
    clear_vsicurl_cache(server.url)
    return out


def _run(src: StacSource) -> list[np.ndarray]:
    grid = grid_for_aoi(AOI.geometry, 10.0)
    return [src.read(s, grid).data for s in src.search(AOI, START, END)]


# --- item 2: every API call retried by pystac-client's StacApiIO ------------------------------
def test_api_root_503_with_retry_after_is_retried(srv: StacServer, tmp_path: Path) -> None:
    srv.inject("/search", "500", times=1, retry_after_s=0)
    srv.inject("/", "503", times=2, retry_after_s=1)  # the API root: the first two requests
    n0 = srv.n_requests
    t0 = time.monotonic()
    got = _source(srv, tmp_path).search(AOI, START, END)
    assert [s.date for s in got] == DATES
    assert all(f.times == 0 for f in srv.state.faults)
    assert time.monotonic() - t0 >= 1.9, "Retry-After: 1 was not honoured"
    assert srv.n_requests - n0 >= 4


@pytest.mark.parametrize("trial", range(8))
def test_search_survives_a_20_percent_api_error_rate(srv: StacServer, tmp_path: Path,
                                                     trial: int) -> None:
    srv.chaos(error_rate=0.2, seed=100 + trial)
    got = _source(srv, tmp_path).search(AOI, START, END)
    assert [s.date for s in got] == DATES


def test_persistent_api_errors_are_one_network_error(srv: StacServer, tmp_path: Path) -> None:
    srv.inject("/", "503", times=1000, retry_after_s=0)
    with pytest.raises(NetworkError) as err:
        _source(srv, tmp_path, retries=2).search(AOI, START, END)
    msg = str(err.value)
    assert "failed after 3 attempts" in msg and "HTTP 503" in msg and "\n" not in msg


# --- item 3: file-open retries reach the server -----------------------------------------------
@pytest.mark.parametrize(("kind", "times"), [("drop", 1), ("500", 7)])
def test_cog_open_retry_sends_a_request(srv: StacServer, tmp_path: Path,
                                        clean: list[np.ndarray], kind: str, times: int) -> None:
    """7 x 500 outlasts GDAL's own retries (4): then our retry must reach the server again."""
    src = _source(srv, tmp_path)
    scenes = src.search(AOI, START, END)
    srv.inject(f"{APRIL}/B04.tif", kind, times=times)
    n0 = srv.n_requests_to(f"{APRIL}/B04.tif")
    ga = src.read(scenes[0], grid_for_aoi(AOI.geometry, 10.0))
    assert srv.state.faults[0].times == 0
    assert srv.n_requests_to(f"{APRIL}/B04.tif") - n0 >= times + 2, "a retry sent no request"
    np.testing.assert_array_equal(ga.data, clean[0])


@pytest.mark.parametrize("seed", [0, 7, 9])  # 0 and 9 cut off pystac's lazy root request
def test_one_run_finishes_through_errors_and_drops(srv: StacServer, tmp_path: Path,
                                                   clean: list[np.ndarray], seed: int) -> None:
    srv.chaos(error_rate=0.2, drop_rate=0.1, seed=seed)
    got = _run(_source(srv, tmp_path))
    srv.state.chaos = None
    for a, b in zip(clean, got, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not list(tmp_path.rglob("*.part"))


def test_cli_run_finishes_through_errors_and_drops(srv: StacServer, tmp_path: Path) -> None:
    """One ``factorywatch run`` (default retries) through 20 % 500/503 and 10 % drops."""
    import json

    from click.testing import CliRunner

    from geo.cli import main

    (tmp_path / "aoi.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"coord_source": "test", "coord_confidence": "high"},
         "geometry": json.loads(json.dumps(AOI.geometry.__geo_interface__))}]}))
    cfg = tmp_path / "aoi.toml"
    cfg.write_text(f'[aoi]\ngeometry = "aoi.geojson"\n[source]\nkind = "stac"\napi = "{srv.url}"\n'
                   f'start = "{START}"\nend = "{END}"\nperiod = "month"\n'
                   f'cache_dir = "{tmp_path / "cache"}"\n[output]\nreport = false\n'
                   'rasters = false\n')
    # the default retries, each after 0.05 s (the default 0.5 s doubling made this test sleep
    # ~14 s of its 15); the delay itself is in geo/http.py's RetryPolicy doctest
    cfg.write_text(cfg.read_text().replace("period = ", "backoff_s = 0.05\nperiod = "))
    srv.chaos(error_rate=0.2, drop_rate=0.1, seed=3)
    r = CliRunner().invoke(main, ["run", str(cfg), "-o", str(tmp_path / "run"), "--json", "-q"])
    srv.state.chaos = None
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["dates"] == DATES
    run_json = json.loads((tmp_path / "run" / "run.json").read_text())
    assert {i["properties"]["epsg"] for i in run_json["inputs"]} == {32652}
    fps = json.loads((tmp_path / "run" / "footprints.geojson").read_text())["features"]
    assert fps and all("cloud_share" in f["properties"] for f in fps)  # per-building cloud share


# --- item 4: messages name the URL, the HTTP status and the fix --------------------------------
def test_409_names_url_status_and_fix_and_is_not_retried(srv: StacServer,
                                                         tmp_path: Path) -> None:
    src = _source(srv, tmp_path)
    scenes = src.search(AOI, START, END)
    srv.require_sas_token("sentinel-2-l2a", "st=2099&sig=SECRETSIG")
    n0 = srv.n_requests_to(f"{APRIL}/B02.tif")
    with pytest.raises(SourceError) as err:
        src.read(scenes[0], grid_for_aoi(AOI.geometry, 10.0))
    msg = str(err.value)
    assert "HTTP 409" in msg and f"{APRIL}/B02.tif" in msg and "sign" in msg
    assert "re-export" not in msg and "corrupt" not in msg and not isinstance(
        err.value, NetworkError)
    assert srv.n_requests_to(f"{APRIL}/B02.tif") - n0 <= 2, "a 409 was retried"


def test_dropped_connection_is_a_network_error_not_a_bad_file(srv: StacServer,
                                                              tmp_path: Path) -> None:
    src = _source(srv, tmp_path, retries=1)
    scenes = src.search(AOI, START, END)
    srv.inject(f"{APRIL}/B08.tif", "drop", times=1000)
    with pytest.raises(NetworkError) as err:
        src.read(scenes[0], grid_for_aoi(AOI.geometry, 10.0))
    msg = str(err.value)
    assert f"{APRIL}/B08.tif" in msg and "cut off" in msg
    assert "re-export" not in msg and "corrupt" not in msg and "does not exist" not in msg


def test_server_gone_mid_run_is_a_network_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    monkeypatch.delenv("CPL_VSIL_CURL_NON_CACHED", raising=False)
    s = StacServer(tmp_path / "assets")
    serve_scenario(s, tmp_path / "assets")
    src = _source(s, tmp_path / "c", retries=1)
    scenes = src.search(AOI, START, END)
    s.close()
    with pytest.raises(NetworkError) as err:
        src.read(scenes[0], grid_for_aoi(AOI.geometry, 10.0))
    assert "re-export" not in str(err.value) and "--offline" in str(err.value)


# --- item 5: each byte once -------------------------------------------------------------------
def test_a_run_fetches_each_byte_about_once(srv: StacServer, tmp_path: Path) -> None:
    del srv  # a fresh server: the module's one has served other tests' bytes already
    d = tmp_path / "fresh"
    fresh = StacServer(d)
    serve_scenario(fresh, d)
    try:
        _run(_source(fresh, tmp_path / "b"))
        total, unique = fresh.byte_stats()
    finally:
        fresh.close()
    assert unique > 0 and total <= 1.2 * unique, (total, unique)


# --- item 6: a signer for token-signed mirrors -------------------------------------------------
def test_sas_token_signer_for_a_mirror(srv: StacServer, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture,
                                       clean: list[np.ndarray]) -> None:
    token = "st=2099-01-01&se=2099-01-02&sp=rl&sig=TOPSECRET%3D"
    srv.require_sas_token("sentinel-2-l2a", token)
    caplog.set_level(logging.DEBUG)
    src = _source(srv, tmp_path, sign="sas-token", sign_token_url=srv.sas_url())
    got = _run(src)
    for a, b in zip(clean, got, strict=True):
        np.testing.assert_array_equal(a, b)
    assert srv.n_requests_to("/api/sas/v1/token/sentinel-2-l2a") == 1  # one token, reused
    assert "TOPSECRET" not in caplog.text
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert b"TOPSECRET" not in p.read_bytes(), p
    for s in src.search(AOI, START, END):
        assert "TOPSECRET" not in repr(s)


def test_sign_config_reaches_the_source(tmp_path: Path) -> None:
    from geo.config import load_config

    (tmp_path / "aoi.geojson").write_text(
        '{"type": "Feature", "properties": {}, "geometry": '
        + str(AOI.geometry.__geo_interface__).replace("'", '"').replace("(", "[")
        .replace(")", "]") + "}")
    cfg = tmp_path / "aoi.toml"
    cfg.write_text('[aoi]\ngeometry = "aoi.geojson"\n[source]\nkind = "stac"\n'
                   'api = "https://mirror.example/stac/v1"\nsign = "sas-token"\n'
                   'sign_token_url = "https://mirror.example/api/sas/v1/token/{collection}"\n')
    src = StacSource.from_config(load_config(cfg))
    assert src.signer.mode == "sas-token"
    assert src.signer.token_url.endswith("/token/{collection}")
    cfg.write_text('[aoi]\ngeometry = "aoi.geojson"\n[source]\nkind = "stac"\n'
                   'sign = "sas-token"\n')
    with pytest.raises(Exception, match="sign_token_url"):
        load_config(cfg)


stac_server = _fx.stac_server  # keep the shared fixtures importable from this module
